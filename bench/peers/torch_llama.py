#!/usr/bin/python3
"""PyTorch peer for the end-to-end CPU benchmark: the same Llama as ortho-megatron, trained in fp32.

Model (DESIGN.md "Model" and "Conventions"): untied token embedding; L blocks of
RMSNorm -> q, k, v (no bias) -> RoPE (theta 10000, rotate-half, positions 0..T-1) -> causal attention
(scale 1/sqrt(D), softmax or softmax-1) -> o -> residual -> RMSNorm -> down(silu(gate(x)) * up(x))
-> residual; final RMSNorm; LM head; mean cross-entropy. RMSNorm: y = x * rsqrt(mean(x^2) + 1e-6) * g,
with g of shape [C] (rmsnorm) or [1] (rmsnorm-s). AdamW(0.9, 0.999, 1e-8, weight decay 0).

Prints one JSON line: {"tokens_per_s", "step_ms", "params", "torch", "threads", ...}.
Run it with the fast GEMM (ENVIRONMENT.md: Debian's OpenBLAS misdetects this CPU otherwise):
    OPENBLAS_CORETYPE=SKYLAKEX /usr/bin/python3 bench/peers/torch_llama.py --threads 2 ...
"""
import argparse
import json
import math
import os
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hidden", type=int, default=256, help="C")
    p.add_argument("--ffn", type=int, default=688, help="F")
    p.add_argument("--heads", type=int, default=4, help="H (head dim D = C / H)")
    p.add_argument("--layers", type=int, default=4, help="L")
    p.add_argument("--vocab", type=int, default=8192, help="V")
    p.add_argument("--seq", type=int, default=256, help="T")
    p.add_argument("--batch", type=int, default=8, help="B (sequences per step)")
    p.add_argument("--steps", type=int, default=10, help="timed training steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (allocator, thread pools)")
    p.add_argument("--attention", choices=["softmax", "softmax1"], default="softmax1")
    p.add_argument("--norm", choices=["rmsnorm", "rmsnorm-s"], default="rmsnorm")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=1234)
    args = p.parse_args()
    if args.hidden % args.heads or (args.hidden // args.heads) % 2:
        p.error("--hidden must be a multiple of --heads with an even head dim (RoPE pairs i with i + D/2)")
    return args


ARGS = parse_args()
# OpenBLAS (torch's BLAS here) reads its thread count when it loads: set it before importing torch.
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(ARGS.threads))
os.environ.setdefault("OMP_NUM_THREADS", str(ARGS.threads))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class RMSNorm(nn.Module):
    def __init__(self, dim, shared):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1 if shared else dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


def rope_tables(seq, head_dim):
    # Hugging Face Llama: inv_freq_i = theta^(-2i/D), i < D/2; channel i pairs with i + D/2.
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    freqs = torch.outer(torch.arange(seq, dtype=torch.float32), inv_freq)  # (T, D/2)
    emb = torch.cat([freqs, freqs], dim=-1)  # (T, D)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


class Attention(nn.Module):
    def __init__(self, c, heads, softmax1):
        super().__init__()
        self.h, self.d, self.softmax1 = heads, c // heads, softmax1
        self.q = nn.Linear(c, c, bias=False)
        self.k = nn.Linear(c, c, bias=False)
        self.v = nn.Linear(c, c, bias=False)
        self.o = nn.Linear(c, c, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, c = x.shape
        q, k, v = (proj(x).view(b, t, self.h, self.d).transpose(1, 2) for proj in (self.q, self.k, self.v))
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.d)  # (B, H, T, T)
        scores = scores.masked_fill(mask, float("-inf"))
        if self.softmax1:
            # softmax-1: exp(s_j) / (1 + sum_k exp(s_k)) = softmax over [0, s], zero column dropped.
            zeros = scores.new_zeros(b, self.h, t, 1)
            probs = torch.softmax(torch.cat([zeros, scores], dim=-1), dim=-1)[..., 1:]
        else:
            probs = torch.softmax(scores, dim=-1)
        y = (probs @ v).transpose(1, 2).reshape(b, t, c)
        return self.o(y)


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        shared = a.norm == "rmsnorm-s"
        self.attn_norm = RMSNorm(a.hidden, shared)
        self.attn = Attention(a.hidden, a.heads, a.attention == "softmax1")
        self.mlp_norm = RMSNorm(a.hidden, shared)
        self.gate = nn.Linear(a.hidden, a.ffn, bias=False)
        self.up = nn.Linear(a.hidden, a.ffn, bias=False)
        self.down = nn.Linear(a.ffn, a.hidden, bias=False)

    def forward(self, x, cos, sin, mask):
        x = x + self.attn(self.attn_norm(x), cos, sin, mask)
        h = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed = nn.Embedding(a.vocab, a.hidden)
        self.layers = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.final_norm = RMSNorm(a.hidden, a.norm == "rmsnorm-s")
        self.lm_head = nn.Linear(a.hidden, a.vocab, bias=False)  # untied from embed
        cos, sin = rope_tables(a.seq, a.hidden // a.heads)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        mask = torch.triu(torch.ones(a.seq, a.seq, dtype=torch.bool), diagonal=1)  # True = future key
        self.register_buffer("mask", mask, persistent=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, tokens, targets):
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin, self.mask)
        logits = self.lm_head(self.final_norm(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def main(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = Llama(a)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    gen = torch.Generator().manual_seed(a.seed + 1)

    def step():
        batch = torch.randint(a.vocab, (a.batch, a.seq + 1), generator=gen)
        opt.zero_grad(set_to_none=True)
        loss = model(batch[:, :-1], batch[:, 1:])
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    start = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    elapsed = time.perf_counter() - start
    if not math.isfinite(loss):
        print(f"torch_llama: non-finite loss {loss}", file=sys.stderr)
        return 1
    tokens = a.batch * a.seq * a.steps
    print(json.dumps({
        "tokens_per_s": round(tokens / elapsed, 1),
        "step_ms": round(1000.0 * elapsed / a.steps, 2),
        "params": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "loss": round(loss, 4),
        "attention": a.attention,
        "norm": a.norm,
        "config": {"C": a.hidden, "F": a.ffn, "H": a.heads, "L": a.layers, "V": a.vocab, "T": a.seq,
                   "B": a.batch, "steps": a.steps},
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
