#!/usr/bin/env python3
"""Rewrites a .cu file into C++ that g++ compiles against cuda_emu/device.h (cuda_emu/README.md).

Three rewrites, nothing else (every other line is the kernel source as written):
  kernel<TArgs><<<grid, block, smem, stream>>>(args)  ->  ::om_emu::launch("kernel<TArgs>", kernel<TArgs>, grid, block, smem, stream)(args)
  extern __shared__ [__align__(n)] T name[];          ->  T* name = reinterpret_cast<T*>(::om_emu::dynamic_smem());
  __shared__ T name[N];   (and __shared__ T name;)    ->  T* name = ::om_emu::static_shared<T, (N)>([] {});
The last gives each declaration its own slot in the block's shared memory, refilled with NaN bytes at
every block start as the dynamic part is (a plain static array would carry values across blocks).
Line numbers are kept (newlines inside a rewritten launch are re-emitted after it), and a #line
directive names the original file, so compiler and sanitizer reports point into the .cu source.
Usage: transform_cu.py IN.cu OUT.cc
"""
import re
import sys


def find_callee_start(src, end):
    """Start of the callee expression ending at `end` (exclusive): identifiers, ::, <...> groups."""
    k, depth = end, 0
    while k > 0:
        c = src[k - 1]
        if c == '>':
            depth += 1
        elif c == '<' and depth > 0:
            depth -= 1
        elif depth == 0 and not (c.isalnum() or c in '_:'):
            break
        k -= 1
    return k


def matching_paren(src, open_pos):
    depth = 0
    for q in range(open_pos, len(src)):
        if src[q] == '(':
            depth += 1
        elif src[q] == ')':
            depth -= 1
            if depth == 0:
                return q
    raise SystemExit(f"transform_cu: unbalanced launch arguments at offset {open_pos}")


def rewrite_launches(src, path):
    out, i = [], 0
    while True:
        j = src.find('<<<', i)
        if j < 0:
            out.append(src[i:])
            return ''.join(out)
        end = j
        while end > i and src[end - 1].isspace():
            end -= 1
        start = find_callee_start(src, end)
        callee = src[start:end]
        if not callee:
            raise SystemExit(f"transform_cu: {path}: no kernel name before <<< at offset {j}")
        close = src.find('>>>', j)
        config = src[j + 3:close]
        p = close + 3
        while src[p].isspace():
            p += 1
        if src[p] != '(':
            raise SystemExit(f"transform_cu: {path}: expected ( after >>> at offset {p}")
        q = matching_paren(src, p)
        args = src[p + 1:q]
        newlines = src[start:p].count('\n')
        out.append(src[i:start])
        name = ' '.join(callee.split())
        out.append(f"::om_emu::launch(\"{name}\", {callee}, {' '.join(config.split())})({args})")
        out.append('\n' * newlines)
        i = q + 1


EXTERN_SHARED = re.compile(
    r'extern\s+__shared__\s+(?:__align__\(\s*\d+\s*\)\s+)?([A-Za-z_][\w:]*(?:\s+[A-Za-z_][\w:]*)*)\s+(\w+)\s*\[\s*\]\s*;')


STATIC_SHARED_ARRAY = re.compile(r'(?<!extern )__shared__\s+([A-Za-z_][\w:]*)\s+(\w+)\s*\[([^\]]+)\]\s*;')
STATIC_SHARED_SCALAR = re.compile(r'(?<!extern )__shared__\s+([A-Za-z_][\w:]*)\s+(\w+)\s*;')


def main():
    src_path, out_path = sys.argv[1], sys.argv[2]
    with open(src_path, encoding='utf-8') as f:
        src = f.read()
    src = EXTERN_SHARED.sub(lambda m: f"{m.group(1)}* {m.group(2)} = reinterpret_cast<{m.group(1)}*>(::om_emu::dynamic_smem());", src)
    src = STATIC_SHARED_ARRAY.sub(lambda m: f"{m.group(1)}* {m.group(2)} = ::om_emu::static_shared<{m.group(1)}, ({m.group(3)})>([] {{}});", src)
    src = STATIC_SHARED_SCALAR.sub(lambda m: f"{m.group(1)}& {m.group(2)} = *::om_emu::static_shared<{m.group(1)}, 1>([] {{}});", src)
    src = rewrite_launches(src, src_path)
    with open(out_path, 'w', encoding='utf-8') as f:
        f.write(f'#line 1 "{src_path}"\n')
        f.write(src)


if __name__ == '__main__':
    main()
