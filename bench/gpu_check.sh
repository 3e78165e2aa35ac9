#!/usr/bin/env bash
# gpu_check.sh — the one-call GPU check of the CUDA backend (issue 8; ../shared/ENVIRONMENT.md workflow).
#
#   bash bench/gpu_check.sh prepare   HERE (no GPU needed): CUDA build in build-gpu (sm_90), the bundled
#                                     corpus tokenized into .gpu/data, the run bundle .gpu
#                                     (../shared/device/bundle.sh: 133 MB, mostly oneDNN and OpenBLAS),
#                                     packed as .gpu-carry/bundle.tar.xz (≈ 26 MB: the device call
#                                     carries at most 64 MiB). About 15 minutes on 2 cores.
#   bash bench/gpu_check.sh run       ON THE GPU, in one device call with carry [".gpu-carry"] (it
#                                     unpacks the bundle into .gpu first, ≈ 2 s):
#     1. every CUDA test binary (each kernel against the CPU reference, STYLE.md §8 tolerances; the
#        trainer on the GPU vs the CPU; checkpoints from and to GPU memory);
#     2. llama-60m shapes (--vocab-size 32000; softmax-1, OrthoAdam, RMSNorm-S; seq 256, batch 8) on the
#        bundled corpus: 50 steps on the GPU at --dtype ${GPU_CHECK_DTYPE:-bf16} (bf16 weights and
#        activations, f32 gradients and master weights), 5 on the CPU (f32); the first 5 losses must agree
#        within the bf16 tolerance |gpu − cpu| <= 2·2^-7·|cpu| (tests/cuda/trainer_test.cc says why);
#     3. the GPU run saves at step 25 and 50; a second GPU run loads step 25 and must log the same
#        losses for steps 26..50 (metrics.jsonl prints 6 decimals; tests/cuda/trainer_test.cc checks bits);
#     4. a table last: tests passed, the losses, tokens/s.
#   GPU_CHECK_DEVICE=cpu rehearses step 2–4 on a CPU machine with a bundle of CPU binaries (the
#   script's own test; the GPU must give the same verdict); it trains at f32 (bf16 is CUDA only).
#   Output under ${OUT:-build-gpu/gpu_check} (the device tool returns $OUT): gpu_check.md (the table),
#   tests.log, the runs' logs and metrics. Exit status 0 only when every check passed.
set -uo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."
DEV=${GPU_CHECK_DEVICE:-cuda}
DTYPE=${GPU_CHECK_DTYPE:-bf16}
[[ $DEV == cpu ]] && DTYPE=f32
GPU_BUILD=${GPU_BUILD:-build-gpu}  # prepare's CUDA build directory (any Release build with CUDA on will do)
MODE=${1:-run}
BUNDLE=.gpu
CORES=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # the machine's (nproc alone obeys OMP_NUM_THREADS)

if [[ $MODE == prepare ]]; then
  set -e
  export PATH=/usr/local/cuda/bin:$PATH
  cmake -S . -B "$GPU_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DOM_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DOM_BUILD_BENCHMARKS=OFF > /dev/null
  ninja -C "$GPU_BUILD"
  tests=$(cd "$GPU_BUILD"/tests && ls cuda_*_test)
  bash ../shared/device/bundle.sh "$GPU_BUILD" "$BUNDLE" ortho_megatron ortho_ckpt $tests
  mkdir -p "$BUNDLE/data"
  "$GPU_BUILD"/launch/ortho_data tokenizer-train --input data/corpus/moby_dick.jsonl --model-prefix "$BUNDLE/data/tokenizer" \
      --vocab-size 4096 --valid-fraction 0.05 --seed 1234 > /dev/null
  "$GPU_BUILD"/launch/ortho_data preprocess --input data/corpus/moby_dick.jsonl \
      --tokenizer-model "$BUNDLE/data/tokenizer.model" --output-prefix "$BUNDLE/data/moby" --valid-fraction 0.05 \
      --seed 1234 > /dev/null
  mkdir -p .gpu-carry
  tar -cf - "$BUNDLE" | xz -T0 -6 > .gpu-carry/bundle.tar.xz
  echo "gpu_check: bundle ready: $(du -sh "$BUNDLE" | cut -f1) in $BUNDLE, $(du -sh .gpu-carry/bundle.tar.xz | cut -f1)" \
       "packed in .gpu-carry (carry it: run 'bash bench/gpu_check.sh run')"
  exit 0
fi
[[ $MODE == run ]] || { echo "usage: $0 prepare|run" >&2; exit 2; }
if [[ ! -f $BUNDLE/env.sh && -f .gpu-carry/bundle.tar.xz ]]; then xz -dc .gpu-carry/bundle.tar.xz | tar -xf -; fi
[[ -f $BUNDLE/env.sh ]] || { echo "gpu_check: no $BUNDLE/env.sh: run 'bash bench/gpu_check.sh prepare' here first" >&2; exit 2; }
source "$BUNDLE/env.sh"
OUTDIR=${OUT:-build-gpu/gpu_check}
mkdir -p "$OUTDIR"
BIN=$BUNDLE/bin
FAILED=0
fail() { echo "FAIL: $*" | tee -a "$OUTDIR/failures.txt"; FAILED=1; }
{ command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; } \
    > "$OUTDIR/gpu.txt" 2>&1 || echo "no nvidia-smi: no GPU here" > "$OUTDIR/gpu.txt"

# 1. Every CUDA test binary; exit 77 (skipped: no GPU visible) counts as a failure here.
[[ $DEV == cuda && -z $(ls "$BIN"/cuda_*_test 2> /dev/null) ]] && fail "no cuda_*_test binaries in $BIN"
passed=0 total=0
: > "$OUTDIR/tests.log"
for t in "$BIN"/cuda_*_test; do
  name=$(basename "$t")
  # One GPU per rank (mpirun -np 4): not on a one-GPU machine; CI runs it on the emulator.
  if [[ $name == cuda_parallel_trainer_test ]]; then
    printf '%-28s %s\n' "$name" "not run (tp2·dp2 needs 4 GPUs)" | tee -a "$OUTDIR/tests.txt"
    continue
  fi
  total=$((total + 1))
  start=$SECONDS
  if timeout 300 "$t" >> "$OUTDIR/tests.log" 2>&1; then
    passed=$((passed + 1)); status=passed
  else
    status="FAILED (exit $?)"; fail "$name"
  fi
  printf '%-28s %s (%d s)\n' "$name" "$status" $((SECONDS - start)) | tee -a "$OUTDIR/tests.txt"
done

# 2–3. llama-60m shapes on the bundled corpus.
ARGS=(--model llama-60m --vocab-size 32000 --attention softmax1 --norm rmsnorm-s --optimizer orthoadam
      --data-path "$BUNDLE/data/moby_train" --micro-batch-size 8 --global-batch-size 8 --seq-length 256
      --lr 1e-3 --min-lr 1e-4 --lr-warmup-iters 5 --lr-decay-iters 50 --seed 1234 --log-interval 10)
rm -rf "$OUTDIR"/gpu_run "$OUTDIR"/gpu_resume "$OUTDIR"/cpu_run
ortho_megatron "${ARGS[@]}" --device "$DEV" --dtype "$DTYPE" --train-iters 50 --save "$OUTDIR/gpu_run" --save-interval 25 \
    > "$OUTDIR/gpu_run.log" 2>&1 || fail "GPU training (gpu_run.log)"
OMP_NUM_THREADS=$CORES ortho_megatron "${ARGS[@]}" --device cpu --dtype f32 --train-iters 5 --log-dir "$OUTDIR/cpu_run" \
    > "$OUTDIR/cpu_run.log" 2>&1 || fail "CPU training (cpu_run.log)"
ortho_megatron "${ARGS[@]}" --device "$DEV" --dtype "$DTYPE" --train-iters 50 --load "$OUTDIR/gpu_run/step_00000025" \
    --log-dir "$OUTDIR/gpu_resume" > "$OUTDIR/gpu_resume.log" 2>&1 || fail "GPU resume (gpu_resume.log)"
ortho_ckpt verify "$OUTDIR/gpu_run" > "$OUTDIR/verify.log" 2>&1 || fail "ortho_ckpt verify of the GPU checkpoint"

field() { sed -n "s/.*\"$1\": \([-0-9.e+]*\).*/\1/p" "$2"; }
gpu_losses=$(field loss "$OUTDIR/gpu_run/metrics.jsonl" 2> /dev/null | head -5 | paste -sd' ')
cpu_losses=$(field loss "$OUTDIR/cpu_run/metrics.jsonl" 2> /dev/null | head -5 | paste -sd' ')
compare=$(python3 - "$gpu_losses" "$cpu_losses" <<'PY'
import sys
g = [float(x) for x in sys.argv[1].split()]; c = [float(x) for x in sys.argv[2].split()]
if len(g) < 5 or len(c) < 5: print("missing losses"); sys.exit(1)
worst = max(abs(a - b) / (2 * 2**-7 * abs(b)) for a, b in zip(g, c))
print(f"max |gpu-cpu| / tolerance = {worst:.3g}"); sys.exit(0 if worst <= 1 else 1)
PY
) || fail "first 5 losses GPU vs CPU: $compare"
resume_a=$(field loss "$OUTDIR/gpu_run/metrics.jsonl" 2> /dev/null | sed -n '26,50p' | paste -sd' ')
resume_b=$(field loss "$OUTDIR/gpu_resume/metrics.jsonl" 2> /dev/null | paste -sd' ')
[[ -n $resume_a && $resume_a == "$resume_b" ]] || fail "losses 26..50 after reloading step 25 differ"
tok_s=$(field tokens_per_s "$OUTDIR/gpu_run/metrics.jsonl" 2> /dev/null | sed -n '2,50p' | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}')
cpu_tok_s=$(field tokens_per_s "$OUTDIR/cpu_run/metrics.jsonl" 2> /dev/null | sed -n '2,5p' | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}')
last=$(field loss "$OUTDIR/gpu_run/metrics.jsonl" 2> /dev/null | tail -n 1)

{
  echo "# gpu_check $(date -u +%Y-%m-%d) — $(head -n 1 "$OUTDIR/gpu.txt")"
  echo
  echo "| check | result |"
  echo "|---|---|"
  echo "| CUDA test binaries | $passed / $total passed |"
  echo "| first 5 losses, GPU ($DTYPE) | $gpu_losses |"
  echo "| first 5 losses, CPU | $cpu_losses |"
  echo "| GPU vs CPU (bf16 tolerance 2·2^-7 relative) | ${compare:-n/a} |"
  echo "| save at 25, reload, steps 26..50 equal | $([[ -n $resume_a && $resume_a == "$resume_b" ]] && echo yes || echo NO) |"
  echo "| loss after 50 GPU steps | ${last:-n/a} |"
  echo "| tokens/s, GPU (median of steps 2..50; $DTYPE model) | ${tok_s:-n/a} |"
  echo "| tokens/s, CPU $CORES threads (median of steps 2..5) | ${cpu_tok_s:-n/a} |"
  echo "| verdict | $([[ $FAILED == 0 ]] && echo PASS || echo FAIL) |"
} > "$OUTDIR/gpu_check.md"
cat "$OUTDIR/gpu_check.md"
exit $FAILED
