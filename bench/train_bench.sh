#!/usr/bin/env bash
# End-to-end CPU training throughput: ortho_megatron vs the same model in PyTorch (bench/peers/torch_llama.py),
# timed in the same run, for the `tiny` and `small` presets (softmax-1, batch 8 x 256 tokens, fp32).
#   bash bench/train_bench.sh [STEPS]        (needs a build in ${OM_BUILD_DIR:-build}; PyTorch: python3-torch)
# Prints a table: tokens/s, TFLOP/s and MFU (6·N_matmul + 12·L·C·T FLOPs per token against the trainer's
# fp32 FMA peak: 222.5 GFLOP/s per AVX-512 core, 95 per AVX2 core, launch/trainer.cc) and the ratio ours / PyTorch.
# On an AVX-512 CPU PyTorch runs with OPENBLAS_CORETYPE=SKYLAKEX, set for it alone: Debian's OpenBLAS
# misdetects the AVX-512 development CPU and falls back to a slow kernel (ENVIRONMENT.md). Elsewhere it
# autodetects (an AVX2-only CPU dies of an illegal instruction with that kernel).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-12}
BIN=${OM_BUILD_DIR:-build}/launch
DIR=${OM_BUILD_DIR:-build}/bench-train
THREADS=${OMP_NUM_THREADS:-$(nproc)}
mkdir -p "$DIR"
PEER_ENV=
if grep -qw avx512f /proc/cpuinfo 2> /dev/null; then PEER_ENV=OPENBLAS_CORETYPE=SKYLAKEX; fi
# Vocabulary 8192: the tiny preset's, and the PyTorch reference figure's (ENVIRONMENT.md).
if [ ! -f "$DIR/moby_train.idx" ]; then
  "$BIN"/ortho_data tokenizer-train --input data/corpus/moby_dick.jsonl --model-prefix "$DIR/tok" \
      --vocab-size 8192 --valid-fraction 0.05 --seed 1234 >/dev/null
  "$BIN"/ortho_data preprocess --input data/corpus/moby_dick.jsonl --tokenizer-model "$DIR/tok.model" \
      --output-prefix "$DIR/moby" --valid-fraction 0.05 --seed 1234 >/dev/null
fi

# median of the per-step tokens/s after the first 2 steps, from metrics.jsonl
median_tps() {
  /usr/bin/python3 - "$1" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])][2:]
print("%.0f %.4f %.4f" % (statistics.median(r["tokens_per_s"] for r in rows),
                          statistics.median(r["tflops"] for r in rows),
                          statistics.median(r["mfu"] for r in rows)))
PY
}

printf "%-6s %10s %9s %7s %12s %7s\n" model "ours tok/s" "TFLOP/s" "MFU" "torch tok/s" ratio
for spec in "tiny 256 688 4 4" "small 384 1024 6 6"; do
  set -- $spec
  name=$1
  rm -rf "$DIR/run_$name"
  OMP_NUM_THREADS=$THREADS "$BIN"/ortho_megatron --model "$name" --attention softmax1 --data-path "$DIR/moby_train" \
      --micro-batch-size 8 --train-iters "$STEPS" --log-dir "$DIR/run_$name" --log-interval 1000 >/dev/null
  read -r ours tflops mfu < <(median_tps "$DIR/run_$name/metrics.jsonl")
  torch_json=$(env $PEER_ENV /usr/bin/python3 bench/peers/torch_llama.py --hidden "$2" --ffn "$3" \
      --heads "$4" --layers "$5" --vocab 8192 --seq 256 --batch 8 --steps $((STEPS - 2)) --attention softmax1 \
      --threads "$THREADS")
  theirs=$(echo "$torch_json" | /usr/bin/python3 -c 'import json,sys; print("%.0f" % json.load(sys.stdin)["tokens_per_s"])')
  printf "%-6s %10s %9s %6.1f%% %12s %6.2fx\n" "$name" "$ours" "$tflops" \
      "$(/usr/bin/python3 -c "print(100*$mfu)")" "$theirs" "$(/usr/bin/python3 -c "print($ours/$theirs)")"
done
