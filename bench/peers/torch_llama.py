#!/usr/bin/python3
"""PyTorch peer: the same Llama as ortho-megatron, trained on the CPU (f32) or one CUDA GPU (f32 or bf16).

Model (DESIGN.md "Model" and "Conventions"): untied token embedding; L blocks of
RMSNorm -> q, k, v (no bias) -> RoPE (theta 10000, rotate-half, positions 0..T-1) -> causal attention
(scale 1/sqrt(D), softmax or softmax-1) -> o -> residual -> RMSNorm -> down(silu(gate(x)) * up(x))
-> residual; final RMSNorm; LM head; mean cross-entropy. RMSNorm: y = x * rsqrt(mean(x^2) + 1e-6) * g,
with g of shape [C] (rmsnorm) or [1] (rmsnorm-s). AdamW(0.9, 0.999, 1e-8, weight decay 0). Tokens are
uniform random ids drawn on the training device (no data loading in the timed loop).

Variants (--variant; the same parameters and optimizer, only attention and compilation differ):
  eager         softmax-1 written out: a zero logit column is concatenated, softmax, the column dropped
                (standard softmax instead with --attention softmax). Not compiled.
  compile       the eager model under torch.compile (--compile-mode default; max-autotune etc. allowed).
  sdpa-zero-kv  softmax-1 through F.scaled_dot_product_attention: one key and one value of zeros are
                prepended per head. The zero key's logit is q.0 = 0, so exp(0) = 1 joins the denominator,
                and its zero value adds nothing to the numerator: exactly softmax-1. The mask is (T, T+1),
                True = attend: column 0 (the zero key) for every query, then causal (query i sees keys
                0..i+1 of the T+1). --zero-kv-mask explicit (default) passes that boolean tensor, which
                flash kernels do not take (memory-efficient or cuDNN or math runs: the JSON's sdpa_backend
                says which the dispatcher picks, attention_ops_seen what one profiled step ran);
                lower-right passes torch.nn.attention.bias.causal_lower_right(T, T+1), the same mask as a
                causal variant that flash kernels do take. Compiled.
  sdpa-softmax  standard softmax, SDPA is_causal=True, compiled: the reference figure.
Precision (--dtype, the same recipe for every variant): f32, or bf16 = torch.autocast(bfloat16) over the
forward pass and the loss with f32 parameters (master weights), f32 gradients and f32 AdamW state
(fused=True on CUDA): PyTorch's standard mixed precision, and the same split as ortho-megatron's
--dtype bf16 (bf16 matmul inputs and activations, f32 gradients and master weights). RoPE's cos/sin
tables are cast to q's dtype (as Hugging Face Llama does) so q, k, v reach attention in bf16.
FLOPs per token: model/llama_config.cc LlamaConfig::flops_per_token, replicated exactly (flops_per_token
below): 6 x (L (4 C^2 + 3 C F) + V C) + 12 L C T; the JSON's tflops is that times tokens/s.

Prints one JSON line: {"tokens_per_s", "step_ms", "median_tokens_per_s", "tflops", "peak_mem_mib",
"time_to_first_step_s", "first_step_unix", "variant", "device_name", "torch", ...}; on an unsupported
request (torch.compile or SDPA on torch < 2.0) one {"error": ...} line and exit status 2.
    CPU:  OPENBLAS_CORETYPE=SKYLAKEX /usr/bin/python3 bench/peers/torch_llama.py --threads 2 ...
          (on an AVX-512 CPU: the fast GEMM, ENVIRONMENT.md, as Debian's OpenBLAS misdetects the development
          CPU; on an AVX2-only CPU leave it out, that kernel dies of an illegal instruction there)
    GPU:  python3 bench/peers/torch_llama.py --device cuda --dtype bf16 --preset llama-130m --batch 64 \
              --variant compile --warmup 5 --steps 25
    Self-test of the zero key/value formulation: ... torch_llama.py --self-test [--device cuda]
"""
import argparse
import contextlib
import inspect
import json
import math
import os
import resource
import statistics
import sys
import time

SCRIPT_START_UNIX = time.time()  # before importing torch: time_to_first_step_s counts the import

# (V, C, F, H, L): model/llama_config.cc kPresets, the same numbers (all at T = 256).
PRESETS = {
    "llama-60m": (32000, 512, 1376, 8, 8),
    "llama-130m": (32000, 768, 2048, 12, 12),
    "llama-350m": (32000, 1024, 2736, 16, 24),
    "llama-1b": (32000, 2048, 5461, 32, 24),
    "tiny": (8192, 256, 688, 4, 4),
    "small": (8192, 384, 1024, 6, 6),
}
DEFAULTS = {"vocab": 8192, "hidden": 256, "ffn": 688, "heads": 4, "layers": 4}  # = tiny
VARIANTS = ["eager", "compile", "sdpa-zero-kv", "sdpa-softmax"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), help="sets V, C, F, H, L (explicit flags still win)")
    p.add_argument("--hidden", type=int, help="C (default 256)")
    p.add_argument("--ffn", type=int, help="F (default 688)")
    p.add_argument("--heads", type=int, help="H, head dim D = C / H (default 4)")
    p.add_argument("--layers", type=int, help="L (default 4)")
    p.add_argument("--vocab", type=int, help="V (default 8192)")
    p.add_argument("--seq", type=int, default=256, help="T")
    p.add_argument("--batch", type=int, default=8, help="B (sequences per step)")
    p.add_argument("--steps", type=int, default=10, help="timed training steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (>= 1: allocator, compilation)")
    p.add_argument("--variant", choices=VARIANTS, default="eager")
    p.add_argument("--attention", choices=["softmax", "softmax1"],
                   help="eager/compile: default softmax1; the sdpa-* variants fix it (zero-kv: softmax1)")
    p.add_argument("--zero-kv-mask", choices=["explicit", "lower-right"], default="explicit")
    p.add_argument("--compile-mode", default="default",
                   choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32", help="bf16: autocast, f32 master weights")
    p.add_argument("--norm", choices=["rmsnorm", "rmsnorm-s"], default="rmsnorm")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (--device cpu)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--self-test", action="store_true",
                   help="check sdpa-zero-kv's attention against the eager softmax-1 one on random q, k, v; exit")
    a = p.parse_args()
    preset = dict(zip(["vocab", "hidden", "ffn", "heads", "layers"], PRESETS[a.preset])) if a.preset else {}
    for key, default in DEFAULTS.items():
        if getattr(a, key) is None:
            setattr(a, key, preset.get(key, default))
    fixed = {"sdpa-zero-kv": "softmax1", "sdpa-softmax": "softmax"}.get(a.variant)
    if fixed and a.attention not in (None, fixed):
        p.error(f"--variant {a.variant} is {fixed} attention; drop --attention {a.attention}")
    a.attention = fixed or a.attention or "softmax1"
    if a.hidden % a.heads or (a.hidden // a.heads) % 2:
        p.error("--hidden must be a multiple of --heads with an even head dim (RoPE pairs i with i + D/2)")
    if a.warmup < 1 or a.steps < 1:
        p.error("--warmup and --steps must be >= 1 (the first step, which compiles, is never timed)")
    return a


ARGS = parse_args()
if ARGS.device == "cpu":
    # OpenBLAS (torch's BLAS here) reads its thread count when it loads: set it before importing torch.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(ARGS.threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(ARGS.threads))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")  # torch >= 2.0
HAS_COMPILE = hasattr(torch, "compile")  # torch >= 2.0


def flops_per_token(a):
    """model/llama_config.cc LlamaConfig::flops_per_token, the same formula: 6 FLOPs (multiply-add x forward,
    input gradient, weight gradient) per matmul parameter (per layer q, k, v, o: C x C; gate, up, down: C x F;
    the LM head V x C), plus 12 L C T for q.k^T and p.v (forward + backward, causal mask not discounted)."""
    matmul_params = a.layers * (4 * a.hidden * a.hidden + 3 * a.hidden * a.ffn) + a.vocab * a.hidden
    return 6.0 * matmul_params + 12.0 * a.layers * a.hidden * a.seq


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


def future_mask(t):
    """(T, T) bool, True = a future key (masked out): the eager variants' convention."""
    return torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)


def zero_kv_mask(t):
    """(T, T+1) bool, True = attend (SDPA's convention): query i sees the zero key (column 0) and keys
    0..i (columns 1..i+1), i.e. columns j <= i + 1 -- the causal mask aligned to the lower right."""
    return torch.ones(t, t + 1, dtype=torch.bool).tril(diagonal=1)


def attend_eager(q, k, v, masked, softmax1):
    """q, k, v (B, H, T, D); masked (T, T) True = future. Returns (B, H, T, D)."""
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))  # (B, H, T, T)
    scores = scores.masked_fill(masked, float("-inf"))
    if softmax1:
        # softmax-1: exp(s_j) / (1 + sum_k exp(s_k)) = softmax over [0, s], zero column dropped.
        zeros = scores.new_zeros(*scores.shape[:-1], 1)
        probs = torch.softmax(torch.cat([zeros, scores], dim=-1), dim=-1)[..., 1:]
    else:
        probs = torch.softmax(scores, dim=-1)
    return probs @ v


def sdpa_plain_math(q, k, v, attn_mask):
    """F.scaled_dot_product_attention written out for a boolean attn_mask (True = attend), scale 1/sqrt(D).
    Only the self-test uses it, standing in for SDPA where torch has none (< 2.0)."""
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    return torch.softmax(scores.masked_fill(~attn_mask, float("-inf")), dim=-1) @ v


def attend_zero_kv(q, k, v, attn_mask, sdpa):
    """softmax-1 as SDPA over [0; k], [0; v]: q, k, v (B, H, T, D); attn_mask (T, T+1) bool True = attend,
    or a lower-right causal bias of that shape; sdpa: F.scaled_dot_product_attention or its stand-in."""
    zero = k.new_zeros(*k.shape[:-2], 1, k.size(-1))  # (B, H, 1, D)
    return sdpa(q, torch.cat([zero, k], dim=-2), torch.cat([zero, v], dim=-2), attn_mask=attn_mask)


def lower_right_bias(t):
    from torch.nn.attention.bias import causal_lower_right  # torch >= 2.3
    return causal_lower_right(t, t + 1)


class Attention(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.h, self.d, self.variant, self.softmax1 = a.heads, a.hidden // a.heads, a.variant, a.attention == "softmax1"
        lower_right = a.variant == "sdpa-zero-kv" and a.zero_kv_mask == "lower-right"
        self.lower_right = lower_right_bias(a.seq) if lower_right else None
        self.q = nn.Linear(a.hidden, a.hidden, bias=False)
        self.k = nn.Linear(a.hidden, a.hidden, bias=False)
        self.v = nn.Linear(a.hidden, a.hidden, bias=False)
        self.o = nn.Linear(a.hidden, a.hidden, bias=False)

    def forward(self, x, cos, sin, masked, attend_mask):
        b, t, c = x.shape
        q, k, v = (proj(x).view(b, t, self.h, self.d).transpose(1, 2) for proj in (self.q, self.k, self.v))
        cos, sin = cos.to(q.dtype), sin.to(q.dtype)  # no-op at f32; keeps q, k in bf16 under autocast
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if self.variant == "sdpa-softmax":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif self.variant == "sdpa-zero-kv":
            mask = self.lower_right if self.lower_right is not None else attend_mask
            y = attend_zero_kv(q, k, v, mask, F.scaled_dot_product_attention)
        else:
            y = attend_eager(q, k, v, masked, self.softmax1)
        return self.o(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        shared = a.norm == "rmsnorm-s"
        self.attn_norm = RMSNorm(a.hidden, shared)
        self.attn = Attention(a)
        self.mlp_norm = RMSNorm(a.hidden, shared)
        self.gate = nn.Linear(a.hidden, a.ffn, bias=False)
        self.up = nn.Linear(a.hidden, a.ffn, bias=False)
        self.down = nn.Linear(a.ffn, a.hidden, bias=False)

    def forward(self, x, cos, sin, masked, attend_mask):
        x = x + self.attn(self.attn_norm(x), cos, sin, masked, attend_mask)
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
        self.register_buffer("masked", future_mask(a.seq), persistent=False)
        self.register_buffer("attend_mask", zero_kv_mask(a.seq), persistent=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, tokens, targets):
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin, self.masked, self.attend_mask)
        logits = self.lm_head(self.final_norm(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def sdpa_report(a, dev):
    """Which SDPA backend runs: the enabled-backend flags and the dispatcher's choice for these inputs
    (torch._fused_sdp_choice, what F.scaled_dot_product_attention itself calls; torch.compile traces
    the same choice into its graph). CUDA only; {} elsewhere. attention_ops_seen says what actually ran."""
    if dev.type != "cuda" or not a.variant.startswith("sdpa"):
        return {}
    flags = {}
    for name in ("flash", "mem_efficient", "cudnn", "math"):
        fn = getattr(torch.backends.cuda, f"{name}_sdp_enabled", None)
        if fn is not None:
            flags[name] = bool(fn())
    dt = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    q = torch.zeros(a.batch, a.heads, a.seq, a.hidden // a.heads, device=dev, dtype=dt)
    zero_kv = a.variant == "sdpa-zero-kv"
    kv = q.new_zeros(a.batch, a.heads, a.seq + 1, q.size(-1)) if zero_kv else q
    if zero_kv and a.zero_kv_mask == "lower-right":
        choice_args = (q, kv, kv, None, 0.0, True)  # CausalBias runs flash / efficient as a causal call
        how = "lower-right causal bias (flash or memory-efficient with lower-right causal, else math)"
    else:
        # SDPA turns a boolean mask into an additive one (0 / -inf, q's dtype) before it dispatches.
        mask = None
        if zero_kv:
            mask = torch.zeros(a.seq, a.seq + 1, device=dev, dtype=dt).masked_fill(
                ~zero_kv_mask(a.seq).to(dev), float("-inf"))
        choice_args = (q, kv, kv, mask, 0.0, not zero_kv)
        how = "explicit (T, T+1) boolean mask" if zero_kv else "is_causal=True"
    try:
        choice = int(torch._fused_sdp_choice(*choice_args))
        from torch.nn.attention import SDPBackend
        backend = next((n for n, m in SDPBackend.__members__.items() if int(m) == choice), str(choice))
    except Exception as e:  # noqa: BLE001 (private API: report, do not fail the run)
        backend = f"unknown ({type(e).__name__}: {e})"
    return {"sdpa_backend": backend, "sdpa_mask": how, "sdpa_enabled": flags}


def attention_ops_seen(step, sync):
    """The attention ops and kernels one profiled training step actually ran (torch.profiler; names holding
    scaled_dot_product / flash / fmha / cudnn / attention): what ran, under torch.compile too."""
    try:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            step()
            sync()
        keys = {e.key for e in prof.key_averages()}
    except Exception as e:  # noqa: BLE001 (a report only)
        return [f"profiler failed: {type(e).__name__}: {e}"]
    words = ("scaled_dot_product", "flash", "fmha", "cudnn", "attention")
    return sorted(k[:120] for k in keys if any(w in k.lower() for w in words))[:12]


def error_exit(a, message):
    print(json.dumps({"error": message, "variant": a.variant, "device": a.device, "torch": torch.__version__}))
    return 2


def self_test(a):
    """sdpa-zero-kv's attention == the eager softmax-1 one at f32 on random q, k, v (one JSON line; exit 0/1).
    Uses F.scaled_dot_product_attention where torch has it (both --zero-kv-mask forms where available) and
    always the plain-math stand-in, which takes the same (T, T+1) boolean mask, so the mask is tested on
    torch 1.13 too. A control (standard softmax against softmax-1) must differ by far more than the
    tolerance: the comparison can fail."""
    dev = torch.device(a.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # true f32 products: the bound below is for f32
    gen = torch.Generator(device=dev).manual_seed(a.seed)
    b, h, t, d = 2, 3, 16, 8
    q, k, v = (torch.randn(b, h, t, d, generator=gen, device=dev) for _ in range(3))
    want = attend_eager(q, k, v, future_mask(t).to(dev), softmax1=True)
    # Tolerance: each output is sum_j p_j v_j over <= T+1 terms with sum_j p_j <= 1; the two forms differ
    # in summation order and in how exp and the normaliser round. Recursive f32 summation errs by at most
    # (T+1) u max|v| (u = 2^-24), and the probabilities' own rounding (a few u relative, GPU exp
    # approximations ~2^-22 = 4u) adds <= ~8 u max|v|: (T + 9) u max|v| = 25 * 6e-8 * ~4 = 6e-6 here
    # (max|v| of 768 normal draws is ~3.5), inside the 1e-5 this check uses.
    tolerance = 1e-5
    bound = (t + 9) * 2.0 ** -24 * v.abs().max().item()
    forms = {"plain-math SDPA stand-in, explicit mask": lambda: attend_zero_kv(
        q, k, v, zero_kv_mask(t).to(dev), sdpa_plain_math)}
    if HAS_SDPA:
        forms["F.scaled_dot_product_attention, explicit mask"] = lambda: attend_zero_kv(
            q, k, v, zero_kv_mask(t).to(dev), F.scaled_dot_product_attention)
        try:
            bias = lower_right_bias(t)
            forms["F.scaled_dot_product_attention, lower-right causal bias"] = lambda: attend_zero_kv(
                q, k, v, bias, F.scaled_dot_product_attention)
        except ImportError:
            pass
    diffs = {name: (fn() - want).abs().max().item() for name, fn in forms.items()}
    control = (attend_eager(q, k, v, future_mask(t).to(dev), softmax1=False) - want).abs().max().item()
    ok = all(x <= tolerance for x in diffs.values()) and control > 100 * tolerance and bound <= tolerance
    print(json.dumps({"self_test": "pass" if ok else "FAIL", "max_abs_diff": diffs, "tolerance": tolerance,
                      "f32_error_bound": bound, "control_softmax_vs_softmax1_diff": control,
                      "device": a.device, "torch": torch.__version__, "shape_BHTD": [b, h, t, d]}))
    return 0 if ok else 1


def main(a):
    if a.self_test:
        return self_test(a)
    dev = torch.device(a.device)
    compiled = a.variant != "eager"
    if a.variant.startswith("sdpa") and not HAS_SDPA:
        return error_exit(a, f"--variant {a.variant} needs F.scaled_dot_product_attention and torch.compile "
                             f"(torch >= 2.0); this is torch {torch.__version__}: run --variant eager")
    if compiled and not HAS_COMPILE:
        return error_exit(a, f"--variant {a.variant} needs torch.compile (torch >= 2.0); this is torch "
                             f"{torch.__version__}: run --variant eager, or a newer torch")
    if dev.type == "cuda" and not torch.cuda.is_available():
        return error_exit(a, "--device cuda: torch sees no CUDA device")
    if a.variant == "sdpa-zero-kv" and a.zero_kv_mask == "lower-right":
        try:
            lower_right_bias(a.seq)
        except ImportError:
            return error_exit(a, "--zero-kv-mask lower-right needs torch.nn.attention.bias (torch >= 2.3)")
    if dev.type == "cpu":
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = Llama(a).to(dev)
    fused = dev.type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                            **({"fused": True} if fused else {}))
    run = model
    if compiled:
        run = torch.compile(model) if a.compile_mode == "default" else torch.compile(model, mode=a.compile_mode)
    gen = torch.Generator(device=dev).manual_seed(a.seed + 1)

    def precision():
        if a.dtype == "bf16":
            return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step():
        batch = torch.randint(a.vocab, (a.batch, a.seq + 1), generator=gen, device=dev)
        opt.zero_grad(set_to_none=True)
        with precision():
            loss = run(batch[:, :-1], batch[:, 1:])
        loss.backward()
        opt.step()
        return loss.detach()  # no host synchronisation inside the loop

    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    step()  # the first step: compilation, allocator, cuBLAS handles
    sync()
    first_step_unix = time.time()
    for _ in range(a.warmup - 1):
        step()
    sync()
    # Per-step times: CUDA events on the GPU (no sync between steps), perf_counter on the CPU.
    marks = [torch.cuda.Event(enable_timing=True) for _ in range(a.steps + 1)] if cuda else []
    cpu_marks = []
    start = time.perf_counter()
    for i in range(a.steps):
        if cuda:
            marks[i].record()
        else:
            cpu_marks.append(time.perf_counter())
        loss = step()
    if cuda:
        marks[a.steps].record()
    sync()
    elapsed = time.perf_counter() - start
    cpu_marks.append(time.perf_counter())
    if cuda:
        step_s = [marks[i].elapsed_time(marks[i + 1]) / 1e3 for i in range(a.steps)]
    else:
        step_s = [cpu_marks[i + 1] - cpu_marks[i] for i in range(a.steps)]
    loss = loss.item()
    ops = attention_ops_seen(step, sync) if cuda and a.variant.startswith("sdpa") else None  # after the timing
    if not math.isfinite(loss):
        print(f"torch_llama: non-finite loss {loss}", file=sys.stderr)
        return 1
    tokens_per_step = a.batch * a.seq
    tokens_per_s = tokens_per_step * a.steps / elapsed
    median_tokens_per_s = tokens_per_step / statistics.median(step_s)
    fpt = flops_per_token(a)
    if cuda:
        peak = {"peak_mem_mib": round(torch.cuda.max_memory_allocated(dev) / 2**20, 1),
                "peak_mem_kind": "torch.cuda.max_memory_allocated",
                "peak_reserved_mib": round(torch.cuda.max_memory_reserved(dev) / 2**20, 1)}
        device_name = torch.cuda.get_device_name(dev)
    else:
        peak = {"peak_mem_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "peak_mem_kind": "process peak RSS (ru_maxrss)"}
        device_name = f"cpu ({torch.get_num_threads()} threads)"
    print(json.dumps({
        "tokens_per_s": round(tokens_per_s, 1),
        "step_ms": round(1000.0 * elapsed / a.steps, 2),
        "median_tokens_per_s": round(median_tokens_per_s, 1),
        "median_step_ms": round(1000.0 * statistics.median(step_s), 3),
        "flops_per_token": fpt,
        "tflops": float(f"{fpt * tokens_per_s / 1e12:.6g}"),
        "median_tflops": float(f"{fpt * median_tokens_per_s / 1e12:.6g}"),
        **peak,
        "time_to_first_step_s": round(first_step_unix - SCRIPT_START_UNIX, 3),
        "first_step_unix": round(first_step_unix, 3),
        "variant": a.variant,
        "compile_mode": a.compile_mode if compiled else None,
        **({"zero_kv_mask": a.zero_kv_mask} if a.variant == "sdpa-zero-kv" else {}),
        **sdpa_report(a, dev),
        **({"attention_ops_seen": ops} if ops is not None else {}),
        "device": a.device,
        "device_name": device_name,
        "dtype": a.dtype,
        "precision": "autocast bf16, f32 master weights" if a.dtype == "bf16" else "f32",
        "fused_adamw": fused,
        "params": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "loss": round(loss, 4),
        "attention": a.attention,
        "norm": a.norm,
        "preset": a.preset,
        "config": {"C": a.hidden, "F": a.ffn, "H": a.heads, "L": a.layers, "V": a.vocab, "T": a.seq,
                   "B": a.batch, "steps": a.steps, "warmup": a.warmup},
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
