#!/usr/bin/env bash
# The README's main job: set up and build, check the kernels, tokenize the bundled corpus, and train
# the `tiny` Llama with the paper's remedies (softmax-1 attention, OrthoAdam, RMSNorm-S) on 4 MPI ranks
# (tensor parallel 2 x data parallel 2) with a falling loss, validation on held-out chapters and
# checkpoints; verify the last checkpoint; evaluate it (ortho_eval: perplexity, first-token attention,
# kurtosis, quantisation penalties) into build/demo/report/.
#   DEMO_ITERS=300 DEMO_DIR=build/demo bash scripts/demo.sh     (the defaults)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/mpi_env.sh
BIN=${OM_BUILD_DIR:-build}/launch
DIR=${DEMO_DIR:-${OM_BUILD_DIR:-build}/demo}
ITERS=${DEMO_ITERS:-300}
CORPUS=data/corpus/moby_dick.jsonl
mkdir -p "$DIR"

echo "== 1/6 kernel self-check (gradients vs finite differences, f32 vs f64)"
"$BIN"/ortho_selfcheck > "$DIR/selfcheck.txt" || { cat "$DIR/selfcheck.txt"; exit 1; }
tail -n 1 "$DIR/selfcheck.txt"

echo "== 2/6 tokenizer: SentencePiece BPE, vocab 4096, on the training chapters of $CORPUS"
"$BIN"/ortho_data tokenizer-train --input "$CORPUS" --model-prefix "$DIR/tokenizer" --vocab-size 4096 \
    --valid-fraction 0.05 --seed 1234

echo "== 3/6 preprocess: $DIR/moby_train and $DIR/moby_valid (held-out chapters)"
"$BIN"/ortho_data preprocess --input "$CORPUS" --tokenizer-model "$DIR/tokenizer.model" \
    --output-prefix "$DIR/moby" --valid-fraction 0.05 --seed 1234

echo "== 4/6 train: tiny Llama, softmax-1 + OrthoAdam + RMSNorm-S, tp 2 x dp 2 (4 MPI ranks), $ITERS steps of 8 x 256 tokens"
rm -rf "$DIR/run"
OMP_NUM_THREADS=1 mpirun -np 4 "$BIN"/ortho_megatron --tp 2 --dp 2 \
    --model tiny --attention softmax1 --norm rmsnorm-s --optimizer orthoadam \
    --data-path "$DIR/moby_train" --valid-data-path "$DIR/moby_valid" \
    --micro-batch-size 4 --global-batch-size 8 --train-iters "$ITERS" \
    --lr 3e-3 --min-lr 3e-4 --lr-warmup-iters 20 --seed 1234 \
    --eval-interval 100 --eval-iters 2 --eval-metrics --log-interval 10 --save "$DIR/run" --save-interval 100 --save-keep 2

echo "== 5/6 checkpoint: $DIR/run/$(cat "$DIR/run/latest")"
"$BIN"/ortho_ckpt verify "$DIR/run" | tail -n 1

echo "== 6/6 evaluate: ortho_eval on the held-out chapters -> $DIR/report/report.{json,md,html}"
"$BIN"/ortho_eval --load "$DIR/run" --data-path "$DIR/moby_valid" --quant all --report "$DIR/report" \
    > "$DIR/report.log" 2>&1 || { cat "$DIR/report.log"; exit 1; }
sed -n '/^## Summary/,$p' "$DIR/report/report.md"

first=$(head -n 1 "$DIR/run/metrics.jsonl" | sed 's/.*"loss": \([0-9.]*\).*/\1/')
last=$(tail -n 1 "$DIR/run/metrics.jsonl" | sed 's/.*"loss": \([0-9.]*\).*/\1/')
val=$(grep val_loss "$DIR/run/metrics.jsonl" | tail -n 1 | sed 's/.*"val_loss": \([0-9.]*\).*/\1/')
echo "demo done: training loss $first -> $last, held-out loss $val (metrics: $DIR/run/metrics.jsonl; resume with --load $DIR/run)"
