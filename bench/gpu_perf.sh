#!/usr/bin/env bash
# gpu_perf.sh — issue 11's one device call: ortho_megatron against the PyTorch peer (bench/peers/torch_llama.py)
# on one H200, llama-130m and llama-350m, bf16, seq 256, micro-batch 64 (the issue's shapes), AdamW.
#
#   here:   bash bench/gpu_check.sh prepare          (the CUDA bundle .gpu, packed in .gpu-carry; data .gpu/data)
#   device: bash bench/gpu_perf.sh                   (one call, carry [".gpu-carry"], timeout_s >= 540)
#   here:   GPU_PERF_DEVICE=cpu OUT=/tmp/x bash bench/gpu_perf.sh   (rehearsal: tiny, CPU f32, 3 steps,
#           ours from ${OM_BUILD_DIR:-build}/launch, the peer under /usr/bin/python3; tests this script)
#
# Runs, in this order, each under `timeout` and a shared time budget (GPU_PERF_BUDGET_S, default 450 s: the
# whole script ends in < 8 minutes; a run that would start with < 20 s left is skipped and says so):
#   0. the peer's --self-test on the device (SDPA with a zero key/value == written-out softmax-1, f32);
#   1. ours on each model: --train-iters 30; tokens/s and TFLOP/s = the medians of metrics.jsonl's steps 6..30;
#      steps 2..5 (warm-up, not in the medians) run under --profile-steps 4: the op profiler's table of
#      device time per op (core/profiler.h), and of the GEMMs per shape, goes to profile_<model>.txt;
#      then the first model again with --cuda-graphs (each micro-batch replayed from a CUDA graph from
#      step 6 on; its row's last column is what graphs are worth);
#   2. the peer's variants compile, sdpa-zero-kv, sdpa-softmax, eager on each model (python3 there: PyTorch
#      2.11), 5 warm-up steps (the first compiles) then 25 timed; tokens/s = the median per-step figure
#      (CUDA events), the same statistic as ours;
#   3. ours again on the first model with OM_ATTENTION_KERNEL=warp (the reference attention kernels instead
#      of the tensor-core ones), if the budget leaves room: what the tensor-core attention is worth;
#      the fallback: a model whose default run failed (exit status not 0) is run so at once, after the
#      defaults, and so is every model when GPU_PERF_ATTENTION_FAILED=1 (gpu_session.sh sets it when
#      cuda_attention_test failed: the tensor-core kernels, never run on a GPU before, are then suspect); the
#      verdict then takes that row as ours, says so, and the later variants run with the warp kernels too;
#   4. then, budget permitting, ours on the first model with --optimizer orthoadam (the paper's optimizer;
#      its rotations in fp32) and with --ortho-precision tf32 (on TF32 tensor cores): what OrthoAdam costs
#      over AdamW per step and at start-up (the rotations, drawn beside the other phases), and what TF32 saves.
# Time to first step, for both, on one clock: the shell's launch of the process -> step 1 done (ours: the
# first metrics.jsonl line appears, polled every 20 ms; the peer: its first_step_unix, after a
# synchronize). It includes process start, CUDA init, the import of torch and compilation. Ours' own
# breakdown by phase (exec, device, data, model, weights, optimizer, first step: the first metrics line's
# "startup", launch/startup.h) is in the notes.
# Memory: each side's own count (ours: arena + optimizer state from its log; the peer:
# torch.cuda.max_memory_allocated) and, for both, the peak of nvidia-smi's memory.used during the run
# minus the idle figure before it (CUDA context and allocator slack included).
# Output under ${OUT:-build-gpu/gpu_perf}: gpu_perf.md (the table), gpu_perf.json (every run's raw
# figures), runs.log (every run's output), profile_<model>.txt (ours: where a step's time goes). Exit status 0 when the self-test passed, ours and at least one
# softmax-1 peer ran on every model and both count the same FLOPs per token; the issue's goal (>= 1.3x the
# best softmax-1 peer, <= 5 s to the first step) is reported, not enforced. The verdict also divides ours by
# the issue's own torch.compile figures (489k and 179k tokens/s, the same H200 and shapes): a ratio even
# when the budget cut the peers.
set -uo pipefail
cd "$(dirname "$0")/.."
DEV=${GPU_PERF_DEVICE:-cuda}
OUTDIR=${OUT:-build-gpu/gpu_perf}
BUNDLE=.gpu
CORES=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # the machine's (nproc alone obeys OMP_NUM_THREADS)
if [[ $DEV == cuda ]]; then
  MODELS=${GPU_PERF_MODELS:-llama-130m llama-350m}
  DTYPE=bf16 MB=${GPU_PERF_MICRO_BATCH:-64} STEPS=${GPU_PERF_STEPS:-30} WARM=${GPU_PERF_WARMUP:-5}
  PEAK_TFLOPS=${GPU_PERF_PEAK_TFLOPS:-790}  # the H200's bf16 GEMM limit (ENVIRONMENT.md)
  BUDGET=${GPU_PERF_BUDGET_S:-450} OURS_CAP=90 PEER_CAP=180
  PY=python3 PEER_ENV=
  if [[ ! -f $BUNDLE/env.sh && -f .gpu-carry/bundle.tar.xz ]]; then xz -dc .gpu-carry/bundle.tar.xz | tar -xf -; fi
  [[ -f $BUNDLE/env.sh ]] ||
    { echo "gpu_perf: no $BUNDLE/env.sh: run 'bash bench/gpu_check.sh prepare' here first" >&2; exit 2; }
  OURS=$BUNDLE/bin/ortho_megatron
elif [[ $DEV == cpu ]]; then
  MODELS=${GPU_PERF_MODELS:-tiny}
  # The trainer's CPU peak (launch/trainer.cc): 222.5 GFLOP/s per AVX-512 core, 95 per AVX2 core.
  AVX512=0; grep -qw avx512f /proc/cpuinfo 2> /dev/null && AVX512=1
  CORE_TFLOPS=0.095; ((AVX512)) && CORE_TFLOPS=0.2225
  DTYPE=f32 MB=2 STEPS=3 WARM=1
  PEAK_TFLOPS=${GPU_PERF_PEAK_TFLOPS:-$(python3 -c "print($CORES * $CORE_TFLOPS)")}
  BUDGET=${GPU_PERF_BUDGET_S:-300} OURS_CAP=60 PEER_CAP=60
  PY=/usr/bin/python3  # Debian's, with torch (ENVIRONMENT.md)
  # Debian's OpenBLAS misdetects the AVX-512 development CPU (ENVIRONMENT.md): the fast kernel there, as
  # ours has. Not elsewhere: on an AVX2-only CPU that kernel dies of an illegal instruction.
  PEER_ENV=; ((AVX512)) && PEER_ENV=OPENBLAS_CORETYPE=SKYLAKEX
  OURS=${OM_BUILD_DIR:-build}/launch/ortho_megatron
  [[ -x $OURS ]] || { echo "gpu_perf: no $OURS: build ortho_megatron first" >&2; exit 2; }
else
  echo "gpu_perf: GPU_PERF_DEVICE must be cuda or cpu" >&2; exit 2
fi
# GPU_PERF_MODELS, GPU_PERF_VARIANTS, GPU_PERF_MICRO_BATCH, GPU_PERF_STEPS, GPU_PERF_WARMUP trim a run (cuda).
# sdpa-zero-kv-lr (opt in): sdpa-zero-kv with --zero-kv-mask lower-right (a causal bias flash kernels take).
VARIANTS=${GPU_PERF_VARIANTS:-compile sdpa-zero-kv sdpa-softmax eager}
DEADLINE=$((SECONDS + BUDGET))
mkdir -p "$OUTDIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_perf.XXXXXX")
LOG=$OUTDIR/runs.log RECORDS=$WORK/records.jsonl
: > "$LOG"; : > "$RECORDS"
[[ ${GPU_PERF_KEEP:-0} == 1 ]] || trap 'rm -rf "$WORK"' EXIT
HAVE_SMI=0
command -v nvidia-smi > /dev/null && nvidia-smi > /dev/null 2>&1 && HAVE_SMI=1
if ((HAVE_SMI)); then
  GPU_NAME=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -n 1)
else
  GPU_NAME="no GPU ($CORES CPU cores)"
fi

DATA=${GPU_PERF_DATA:-$BUNDLE/data/moby_train}
if [[ ! -f $DATA.idx && $DEV == cpu ]]; then  # the rehearsal tokenizes the bundled corpus itself (≈ 1 s)
  DATA=$WORK/data/moby_train
  mkdir -p "$WORK/data"
  "${OURS%/*}"/ortho_data tokenizer-train --input data/corpus/moby_dick.jsonl --model-prefix "$WORK/data/tok" \
      --vocab-size 1000 --valid-fraction 0.05 --seed 1234 >> "$LOG" 2>&1
  "${OURS%/*}"/ortho_data preprocess --input data/corpus/moby_dick.jsonl --tokenizer-model "$WORK/data/tok.model" \
      --output-prefix "$WORK/data/moby" --valid-fraction 0.05 --seed 1234 >> "$LOG" 2>&1
fi
[[ -f $DATA.idx ]] ||
  { echo "gpu_perf: no dataset $DATA (.idx/.bin): run 'bash bench/gpu_check.sh prepare'" >&2; exit 2; }

# The seconds a run may take: min(cap, what is left of the budget); 0 = skip it.
limit_for() {
  local left=$((DEADLINE - SECONDS))
  ((left < 20)) && { echo 0; return; }
  echo $((left < $1 ? left : $1))
}
# nvidia-smi memory.used (MiB) every 100 ms into $1 while a run goes on; mem_stop ends it.
MEM_PID=
mem_start() {
  ((HAVE_SMI)) || return 0
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$1" 2> /dev/null &
  MEM_PID=$!
}
mem_stop() { [[ -n $MEM_PID ]] && { kill "$MEM_PID" 2> /dev/null; wait "$MEM_PID" 2> /dev/null; MEM_PID=; }; }
idle_mem() { ((HAVE_SMI)) && nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -n 1 || echo ""; }

# ours MODEL [VARIANT]: one ortho_megatron run; a record with its metrics, log, launch and first-metrics
# times. VARIANT warp-attention: OM_ATTENTION_KERNEL=warp (the reference attention kernels instead of
# the tensor-core ones), to measure what those are worth; cuda-graphs: --cuda-graphs (step 1 and the
# profiled steps run eagerly, the first unprofiled step after them captures, the rest replay);
# orthoadam: --optimizer orthoadam (fp32 rotations); orthoadam-tf32: the same with --ortho-precision tf32.
# A variant may be two joined by "+" (cuda-graphs+warp-attention). OURS_RC: the run's exit status, or
# "skipped".
ours() {
  local model=$1 variant=${2:-} tag=$1${2:+_$2} limit rc t0 t1 pid idle
  local dir=$WORK/ours_$tag
  limit=$(limit_for "$OURS_CAP")
  if ((limit == 0)); then
    printf '{"kind": "ours", "model": "%s", "variant": "%s", "skipped": "time budget"}\n' "$model" "$variant" \
        >> "$RECORDS"
    OURS_RC=skipped
    return
  fi
  local optimizer=adamw; [[ $variant == orthoadam* ]] && optimizer=orthoadam
  local args=(--model "$model" --device "$DEV" --dtype "$DTYPE" --attention softmax1 --optimizer "$optimizer"
              --seq-length 256 --micro-batch-size "$MB" --global-batch-size "$MB" --train-iters "$STEPS"
              --log-interval 1 --log-dir "$dir" --data-path "$DATA" --seed 1234
              --profile-steps $((WARM > 1 ? WARM - 1 : 1)))
  # The preset's vocabulary, as the peer's --preset has it (ours would otherwise take the tokenizer's).
  if [[ $model == llama-* ]]; then args+=(--vocab-size 32000); else args+=(--vocab-size 8192); fi
  [[ $variant == *cuda-graphs* ]] && args+=(--cuda-graphs)
  [[ $variant == *orthoadam-tf32* ]] && args+=(--ortho-precision tf32)
  echo "=== ours $model ${variant:-default}: ${args[*]} (timeout ${limit}s)" >> "$LOG"
  idle=$(idle_mem); mem_start "$WORK/mem_ours_$tag"
  t0=$EPOCHREALTIME
  (
    [[ $DEV == cuda ]] && source "$BUNDLE/env.sh"
    [[ $DEV == cpu ]] && export OMP_NUM_THREADS=$CORES
    [[ $variant == *warp-attention* ]] && export OM_ATTENTION_KERNEL=warp
    exec timeout "$limit" "$OURS" "${args[@]}"
  ) > "$WORK/ours_$tag.log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2> /dev/null && [[ ! -s $dir/metrics.jsonl ]]; do sleep 0.02; done
  t1=$EPOCHREALTIME
  wait "$pid"; rc=$?
  OURS_RC=$rc
  mem_stop
  cat "$WORK/ours_$tag.log" >> "$LOG"
  [[ -f $dir/profile.txt ]] && cp "$dir/profile.txt" "$OUTDIR/profile_$tag.txt"
  printf '{"kind": "ours", "model": "%s", "variant": "%s", "rc": %d, "limit_s": %d, "t0": %s, "t1": %s, ' \
      "$model" "$variant" "$rc" "$limit" "$t0" "$t1" >> "$RECORDS"
  printf '"metrics": "%s", "log": "%s", "mem_file": "%s", "idle_mib": "%s"}\n' \
      "$dir/metrics.jsonl" "$WORK/ours_$tag.log" "$WORK/mem_ours_$tag" "$idle" >> "$RECORDS"
}

# peer MODEL VARIANT: one torch_llama.py run; a record with its JSON line and launch time.
peer() {
  local model=$1 variant=$2 limit rc t0 idle out=$WORK/peer_${1}_$2
  limit=$(limit_for "$PEER_CAP")
  if ((limit == 0)); then
    printf '{"kind": "peer", "model": "%s", "variant": "%s", "skipped": "time budget"}\n' "$model" "$variant" \
        >> "$RECORDS"
    return
  fi
  local args=(--preset "$model" --device "$DEV" --dtype "$DTYPE" --seq 256 --batch "$MB"
              --warmup "$WARM" --steps $((STEPS - WARM)) --threads "$CORES")
  if [[ $variant == sdpa-zero-kv-lr ]]; then args+=(--variant sdpa-zero-kv --zero-kv-mask lower-right)
  else args+=(--variant "$variant"); fi
  echo "=== peer $model $variant: ${args[*]} (timeout ${limit}s)" >> "$LOG"
  idle=$(idle_mem); mem_start "$WORK/mem_$(basename "$out")"
  t0=$EPOCHREALTIME
  env $PEER_ENV PYTHONUNBUFFERED=1 timeout "$limit" "$PY" bench/peers/torch_llama.py "${args[@]}" \
      > "$out.json" 2> "$out.err"
  rc=$?
  mem_stop
  cat "$out.json" "$out.err" >> "$LOG"
  printf '{"kind": "peer", "model": "%s", "variant": "%s", "rc": %d, "limit_s": %d, "t0": %s, "out": "%s", '\
'"mem_file": "%s", "idle_mib": "%s"}\n' \
      "$model" "$variant" "$rc" "$limit" "$t0" "$out.json" "$WORK/mem_$(basename "$out")" "$idle" >> "$RECORDS"
}

echo "=== peer self-test (--device $DEV)" >> "$LOG"
SELFTEST=$(timeout 60 "$PY" bench/peers/torch_llama.py --self-test --device "$DEV" 2>> "$LOG" | tail -n 1)
echo "$SELFTEST" >> "$LOG"
# Ours, then on the first model ours with --cuda-graphs (a short run, before the peers' long ones), the
# peers, and last, what the budget leaves, ours with the reference attention kernels on the first model
# and OrthoAdam in fp32 and TF32 (GPU_PERF_CUDA_GRAPHS, GPU_PERF_WARP_ATTENTION, GPU_PERF_ORTHOADAM: 1 on
# cuda, 0 on the cpu rehearsal, where --cuda-graphs and tf32 are refused and the warp kernels change
# nothing but the script path; GPU_PERF_ORTHOADAM=1 there runs the fp32 one).
# The fallback (3.): WARP ("+warp-attention" or empty) is what the later variants of ours add once the
# tensor-core attention is suspect and the warp kernels ran. With GPU_PERF_ATTENTION_FAILED=1 the warp runs
# come first and the suspect default runs last, budget permitting (a hung kernel costs OURS_CAP seconds).
VARIANT_DEFAULT=0; [[ $DEV == cuda ]] && VARIANT_DEFAULT=1
ATTENTION_FAILED=${GPU_PERF_ATTENTION_FAILED:-0}
FIRST=${MODELS%% *} FALLBACK=() WARP= WARP_RAN=0
if [[ $ATTENTION_FAILED == 1 ]]; then
  FALLBACK=($MODELS)
else
  for m in $MODELS; do
    ours "$m"
    [[ $OURS_RC != 0 && $OURS_RC != skipped ]] && FALLBACK+=("$m")
  done
fi
for m in "${FALLBACK[@]}"; do
  ours "$m" warp-attention
  [[ $m == "$FIRST" ]] && WARP_RAN=1 && [[ $OURS_RC == 0 ]] && WARP=+warp-attention
done
if [[ ${GPU_PERF_CUDA_GRAPHS:-$VARIANT_DEFAULT} == 1 ]]; then ours "$FIRST" "cuda-graphs$WARP"; fi
for v in $VARIANTS; do for m in $MODELS; do peer "$m" "$v"; done; done
if [[ ${GPU_PERF_WARP_ATTENTION:-$VARIANT_DEFAULT} == 1 && $WARP_RAN == 0 ]]; then ours "$FIRST" warp-attention; fi
if [[ ${GPU_PERF_ORTHOADAM:-$VARIANT_DEFAULT} == 1 ]]; then
  ours "$FIRST" "orthoadam$WARP"
  [[ $DEV == cuda ]] && ours "$FIRST" "orthoadam-tf32$WARP"
fi
if [[ $ATTENTION_FAILED == 1 ]]; then for m in $MODELS; do ours "$m"; done; fi

python3 - "$RECORDS" "$OUTDIR" "$PEAK_TFLOPS" "$WARM" "$GPU_NAME" \
    "$DEV $DTYPE, seq 256, micro-batch $MB, $STEPS steps" "$SELFTEST" "$BUDGET" "$SECONDS" "$ATTENTION_FAILED" <<'PY'
import datetime, json, os, re, statistics, sys

records_path, outdir, peak, warm, gpu, shape, selftest, budget, took, attention_failed = sys.argv[1:]
peak, warm, attention_failed = float(peak), int(warm), attention_failed == "1"
SOFTMAX1 = ("eager", "compile", "sdpa-zero-kv", "sdpa-zero-kv-lr")  # the peers the goal is measured against
GOAL_RATIO, GOAL_FIRST_S = 1.3, 5.0
# Issue 11's own figures for the best softmax-1 peer (torch.compile, bf16, seq 256, micro-batch 64, PyTorch
# 2.11, measured by the issue's filer on the lent H200): a second ratio, and the only one when no softmax-1
# peer ran in this call.
ISSUE_PEER = {"llama-130m": 489e3, "llama-350m": 179e3}


def mem_peak(rec):
    try:
        used = [float(x) for x in open(rec["mem_file"]).read().split() if x.replace(".", "", 1).isdigit()]
        return max(used) - float(rec["idle_mib"]) if used and rec["idle_mib"] else None
    except OSError:
        return None


rows = []
for line in open(records_path):
    rec = json.loads(line)
    impl = ("ortho_megatron" + (f" ({rec['variant']})" if rec.get("variant") else "") if rec["kind"] == "ours"
            else "torch " + rec["variant"])
    row = {"model": rec["model"], "impl": impl, "kind": rec["kind"], "variant": rec.get("variant") or None,
           "tps": None, "status": "ok"}
    if "skipped" in rec:
        row["status"] = "skipped: " + rec["skipped"]
    elif rec["kind"] == "ours":
        try:
            steps = [json.loads(l) for l in open(rec["metrics"])]
        except OSError:
            steps = []
        timed = [s for s in steps if s["step"] > warm]
        log = open(rec["log"], errors="replace").read()
        arena = re.search(r"memory ([0-9.]+) MiB \(parameters", log)
        state = re.search(r"([0-9.]+) MiB of state", log)
        row.update(first_s=float(rec["t1"]) - float(rec["t0"]) if steps else None,
                   mem_own=(float(arena.group(1)) + (float(state.group(1)) if state else 0.0)) if arena else None,
                   mem_own_kind="arena (parameters, gradients, activations) + optimizer state, from the log",
                   mem_smi=mem_peak(rec), per_step_tokens_per_s=[s["tokens_per_s"] for s in steps],
                   startup=steps[0].get("startup") if steps else None)
        if timed:
            row["tps"] = statistics.median(s["tokens_per_s"] for s in timed)
            row["tflops"] = statistics.median(s["tflops"] for s in timed)
            # FLOP/token as ours counts it (metrics: tflops = flops_per_token x tokens_per_s, printed to 6
            # and 1 decimals): compared with the peer's replica of the formula below.
            top = max(timed, key=lambda s: s["tflops"])
            row["flops_per_token"] = top["tflops"] * 1e12 / top["tokens_per_s"]
            row["flops_per_token_rtol"] = 0.5e-6 / top["tflops"] + 0.05 / top["tokens_per_s"]
        if rec["rc"] != 0:
            row["status"] = "timeout" if rec["rc"] in (124, 137) else f"exit {rec['rc']}"
    else:
        printed = [l for l in open(rec["out"], errors="replace").read().splitlines() if l.startswith("{")]
        out = json.loads(printed[-1]) if printed else {}
        row["raw"] = out
        if "error" in out:
            row["status"] = "error: " + out["error"]
        elif rec["rc"] != 0:
            row["status"] = "timeout" if rec["rc"] in (124, 137) else f"exit {rec['rc']}"
        if "median_tokens_per_s" in out and rec["rc"] == 0:
            row.update(tps=out["median_tokens_per_s"], tflops=out["median_tflops"],
                       mem_own=out["peak_mem_mib"], mem_own_kind=out["peak_mem_kind"],
                       first_s=out["first_step_unix"] - float(rec["t0"]), mem_smi=mem_peak(rec),
                       flops_per_token=out["flops_per_token"], backend=out.get("sdpa_backend"))
        row["torch"] = out.get("torch")
    rows.append(row)

fmt = lambda v, f: "n/a" if v is None else f.format(v)
tf = lambda x: f"{x:.1f}" if x >= 1 else f"{x:.3g}"  # TFLOP/s: H200 hundreds, the CPU rehearsal hundredths
lines = [f"# gpu_perf {datetime.date.today()} — {gpu}", "",
         f"{shape}; AdamW; softmax-1 unless marked. tokens/s: median per-step figure (ours: steps {warm + 1}.., "
         f"metrics.jsonl; the peer: CUDA events / perf_counter after {warm} warm-up steps). TFLOP/s: "
         f"model/llama_config.cc flops_per_token x tokens/s (the peer replicates the formula). MFU against "
         f"{peak:g} TFLOP/s. Time to first step: launch -> step 1 done, wall clock.", "",
         "| model | implementation | tokens/s | TFLOP/s | MFU | peak memory, own count (MiB) | GPU memory used, "
         "nvidia-smi peak − idle (MiB) | time to first step (s) | ours ÷ this |",
         "|---|---|---|---|---|---|---|---|---|"]
notes, verdicts, ok = [], [], True
for model in dict.fromkeys(r["model"] for r in rows):
    mine = [r for r in rows if r["model"] == model]
    ours = next((r for r in mine if r["kind"] == "ours" and not r["variant"]), None)
    # The fallback: the warp attention kernels' run stands for ours when the default run failed or the
    # tensor-core attention failed its test; without a good fallback row there is no valid figure.
    suspect = ("cuda_attention_test failed in gpu_check, so the tensor-core attention kernels are suspect"
               if attention_failed else None)
    if not attention_failed and (ours is None or ours["status"] != "ok" or not ours["tps"]):
        suspect = f"the default run: {ours['status'] if ours else 'missing'}"
    fallback = None
    if suspect:
        warp = next((r for r in mine if r["kind"] == "ours" and r["variant"] == "warp-attention"), None)
        if ours and ours["tps"] and attention_failed:
            ours["status"] = "tensor-core attention failed its test: not counted"
        if warp and warp["status"] == "ok" and warp["tps"]:
            ours, fallback = warp, suspect
        elif attention_failed:
            ours = None
    for r in mine:
        name = r["impl"] + (" (standard softmax)" if r["variant"] == "sdpa-softmax" else "")
        if r.get("backend"):
            name += f" [SDPA: {r['backend']}]"
        if r["status"] != "ok" and r["tps"] is not None:
            name += f" ({r['status']})"
        if r["tps"] is None:
            lines.append(f"| {model} | {name} | {r['status']} | | | | | | |")
            continue
        ratio = ours["tps"] / r["tps"] if ours and ours["tps"] and r is not ours else None
        lines.append(f"| {model} | {name} | {r['tps']:,.0f} | {tf(r['tflops'])} | {100 * r['tflops'] / peak:.1f}% | "
                     f"{fmt(r.get('mem_own'), '{:,.0f}')} | {fmt(r.get('mem_smi'), '{:,.0f}')} | "
                     f"{fmt(r.get('first_s'), '{:.1f}')} | {fmt(ratio, '{:.2f}×')} |")
    best = max((r for r in mine if r["variant"] in SOFTMAX1 and r["tps"]), key=lambda r: r["tps"], default=None)
    if ours is None or not ours["tps"] or best is None:
        ok = False
        verdicts.append(f"- {model}: no ratio (ours: {suspect or (ours['status'] if ours else 'missing')}; "
                        f"softmax-1 peers: {'none ran' if best is None else 'ok'})")
    else:
        ratio = ours["tps"] / best["tps"]
        first = ours.get("first_s")
        met = ratio >= GOAL_RATIO and first is not None and first <= GOAL_FIRST_S
        verdicts.append(f"- **{model}: ours ÷ best softmax-1 peer ({best['impl']}) = {ratio:.2f}×** "
                        f"(goal ≥ {GOAL_RATIO}×, time to first step {fmt(first, '{:.1f}')} s, "
                        f"goal ≤ {GOAL_FIRST_S:g} s): "
                        f"{'met' if met else 'not met'}" +
                        (f"; ours is the fallback run with OM_ATTENTION_KERNEL=warp, because {fallback}"
                         if fallback else ""))
    if ours and ours["tps"] and model in ISSUE_PEER:
        ratio = ours["tps"] / ISSUE_PEER[model]
        which = " (the warp-attention fallback)" if fallback else ""
        verdicts.append(f"- {model}: ours{which} ÷ the issue's torch.compile figure ({ISSUE_PEER[model]:,.0f} "
                        f"tokens/s) = {ratio:.2f}× (goal ≥ {GOAL_RATIO}×)")
    # Every run of ours: the variants' start-up differs too (orthoadam draws its rotations on a thread of
    # their own meanwhile: the notes say how long, and how long the first step waited for them).
    for r in (r for r in mine if r["kind"] == "ours" and r.get("startup")):
        st = r["startup"]
        notes.append(f"- {model}: {r['impl']}'s time to first step by phase (its own clocks: the process's age at "
                     f"main, then launch/startup.h's phases): {st['total_s']:.2f} s = " +
                     ", ".join(f"{name} {sec:.2f}" for name, sec in st["phases"]) +
                     "".join(f"; {name} {sec:.2f}" for name, sec in st.get("notes", [])))
    peer_fpt = next((r["flops_per_token"] for r in mine if r["kind"] == "peer" and r.get("flops_per_token")), None)
    if ours and ours.get("flops_per_token") and peer_fpt:
        rel = abs(ours["flops_per_token"] - peer_fpt) / peer_fpt
        same = rel <= ours["flops_per_token_rtol"]
        if not same:
            ok = False
        notes.append(f"- {model}: FLOP per token: ours {ours['flops_per_token'] / 1e6:.2f} M (from metrics.jsonl), "
                     f"the peer {peer_fpt / 1e6:.2f} M: {'the same' if same else 'DIFFERENT'} to the metrics' print "
                     f"precision (relative difference {rel:.1g}, allowed {ours['flops_per_token_rtol']:.1g})")
kinds = dict.fromkeys(f"{r['impl'].split()[0]}: {r['mem_own_kind']}" for r in rows if r.get("mem_own_kind"))
notes.append("- peak memory, own count: " + "; ".join(kinds))
profiles = sorted(f for f in os.listdir(outdir) if f.startswith("profile_") and f.endswith(".txt"))
notes.append("- where ours spends a step (device time per op, --profile-steps over warm-up steps): " +
             (", ".join(profiles) if profiles else "no profile was written"))
if '"self_test": "pass"' not in selftest:
    ok = False
    verdicts.append("- **peer self-test did not pass: the sdpa-zero-kv rows are not shown to be softmax-1**")
lines += ["", *verdicts, "", "Notes:", *notes,
          f"- peer self-test (zero key/value SDPA == written-out softmax-1, f32): {selftest or 'no output'}",
          f"- torch {next((r['torch'] for r in rows if r.get('torch')), 'n/a')}; script took {took} s of a "
          f"{budget} s budget"]
table = "\n".join(lines) + "\n"
open(os.path.join(outdir, "gpu_perf.md"), "w").write(table)
json.dump({"gpu": gpu, "shape": shape, "peak_tflops": peak, "self_test": selftest, "runs": rows},
          open(os.path.join(outdir, "gpu_perf.json"), "w"), indent=1, default=str)
print(table)
sys.exit(0 if ok else 1)
PY
