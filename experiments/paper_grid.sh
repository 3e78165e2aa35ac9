#!/usr/bin/env bash
# The paper's 2×2 grid at CPU scale (../shared/PAPER.md; issue 10): {softmax, softmax-1} × {AdamW + RMSNorm,
# OrthoAdam + RMSNorm-S}, plus the control softmax-1 + AdamW + RMSNorm-S. Five runs with identical data,
# seed, tokens and schedule, each on 4 MPI ranks (tp 2 × dp 2), then ortho_eval on the held-out split of
# each and one combined table (OUT_DIR/grid.md, OUT_DIR/grid.html).
#
#   bash experiments/paper_grid.sh [OUT_DIR]        (default build/paper_grid; 1 h 52 min measured on 2 cores)
#   GRID_STEPS=20 GRID_EVAL_TOKENS=2048 bash experiments/paper_grid.sh /tmp/grid_smoke   (a smoke test)
#
# Steps: enmix (data/corpus/build_enmix.sh, when missing) → one SentencePiece tokenizer on the training
# split → preprocess train and held-out separately (--valid-fraction 0: the held-out split is enmix's own,
# by whole documents) → five training runs → five reports → combine_reports.py.
# Resumable: rerun the same command after an interruption. Finished steps are skipped (a run whose final
# checkpoint step_<GRID_STEPS> exists is not retrained; a run with an earlier checkpoint resumes from it
# bitwise; a report.json that exists is kept). The knobs are recorded in OUT_DIR/grid.env; rerunning
# into the same OUT_DIR with different knobs is refused (use another OUT_DIR).
#
# Knobs (environment; defaults measured on this 2-core machine, experiments/README.md):
#   GRID_MODEL=tiny  GRID_SEQ=256  GRID_MICRO=8  GRID_GLOBAL=32  GRID_STEPS=850  GRID_LR=1e-3
#   GRID_VOCAB=8192  GRID_EVAL_TOKENS=0 (0 = the whole held-out set)  GRID_SEED=1234
#   GRID_BOS=1 (--bos: "<s>" at position 0 of every sequence, as Llama's tokenizer starts every document;
#   PAPER.md's calibration: first-token effects form on a fixed first token, not on windows at random
#   offsets — a no-BOS grid at this scale showed none; 0: windows at random offsets)
#   GRID_SEC_ADAMW=1.30  GRID_SEC_ORTHO=1.40 (measured seconds per step at the defaults; only for the estimate)
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-build/paper_grid}
BIN=${OM_BUILD_DIR:-build}/launch
MODEL=${GRID_MODEL:-tiny}
SEQ=${GRID_SEQ:-256}
MICRO=${GRID_MICRO:-8}
GLOBAL=${GRID_GLOBAL:-32}
STEPS=${GRID_STEPS:-850}
LR=${GRID_LR:-1e-3}
VOCAB=${GRID_VOCAB:-8192}
EVAL_TOKENS=${GRID_EVAL_TOKENS:-0}
SEED=${GRID_SEED:-1234}
BOS=${GRID_BOS:-1}
SEC_ADAMW=${GRID_SEC_ADAMW:-1.30}
SEC_ORTHO=${GRID_SEC_ORTHO:-1.40}
TP=2
DP=2
ENMIX=build/enmix

# The paper's schedule (GaLore recipe): cosine decay to 0.1× peak, 10 % linear warm-up, Adam(0.9, 0.999,
# 1e-8), no weight decay, no clipping — the binary's defaults for the last three.
MIN_LR=$(python3 -c "print(f'{$LR / 10:.3g}')")
WARMUP=$(( STEPS / 10 > 0 ? STEPS / 10 : 1 ))
EVAL_INTERVAL=$(( STEPS / 10 > 0 ? STEPS / 10 : 1 ))
SAVE_INTERVAL=$(( STEPS / 5 > 0 ? STEPS / 5 : 1 ))

# name  attention  optimizer  norm. The control is softmax-1 + AdamW + RMSNorm-S: it differs from
# softmax1_adamw in the norm only and from softmax1_orthoadam in the optimizer only, so it separates
# what RMSNorm-S does from what OrthoAdam does in the paper's final configuration (PAPER.md
# "Normalisation matters": the paper's norm ablation is run with softmax-1).
RUNS=(
  "softmax_adamw        softmax   adamw      rmsnorm"
  "softmax1_adamw       softmax1  adamw      rmsnorm"
  "softmax_orthoadam    softmax   orthoadam  rmsnorm-s"
  "softmax1_orthoadam   softmax1  orthoadam  rmsnorm-s"
  "softmax1_adamw_rmsnorms  softmax1  adamw  rmsnorm-s"
)

log() { echo "[paper_grid $(date +%H:%M:%S)] $*"; }

mkdir -p "$OUT"
knobs="model=$MODEL seq=$SEQ micro=$MICRO global=$GLOBAL steps=$STEPS lr=$LR vocab=$VOCAB eval_tokens=$EVAL_TOKENS seed=$SEED tp=$TP dp=$DP"
# bos=1 is recorded in grid.env; GRID_BOS=0 leaves the knobs line as before the knob existed.
bos_flag=()
if [[ $BOS == 1 ]]; then knobs+=" bos=1"; bos_flag=(--bos); elif [[ $BOS != 0 ]]; then echo "paper_grid: GRID_BOS must be 0 or 1" >&2; exit 2; fi
if [[ -f $OUT/grid.env ]]; then
  if [[ $(cat "$OUT/grid.env") != "$knobs" ]]; then
    echo "paper_grid: $OUT was made with other knobs:" >&2
    echo "  there: $(cat "$OUT/grid.env")" >&2
    echo "  now:   $knobs" >&2
    echo "  use another OUT_DIR (or delete $OUT)" >&2
    exit 2
  fi
else
  echo "$knobs" > "$OUT/grid.env"
fi

tokens=$(( STEPS * GLOBAL * SEQ ))
# 3 AdamW runs + 2 OrthoAdam runs; fixed costs measured at the defaults: corpus + tokenizer + preprocess
# ~60 s, start-up ~5 s per run, ortho_eval ~140 s per run on the whole held-out set (194k tokens, 6 passes; measured 2026-11-29).
est_s=$(python3 -c "print(round($STEPS * (3 * $SEC_ADAMW + 2 * $SEC_ORTHO) + 60 + 5 * 5 + 5 * 140 * (1 if $EVAL_TOKENS == 0 else min(1, $EVAL_TOKENS / 194000))))")
log "out $OUT; $knobs"
log "$STEPS steps × $GLOBAL sequences × $SEQ tokens = $tokens tokens per run, 5 runs (3 AdamW, 2 OrthoAdam)"
log "schedule: lr $LR → $MIN_LR cosine, warm-up $WARMUP steps; estimated total $(( est_s / 3600 )) h $(( est_s % 3600 / 60 )) min on 2 idle cores"

# 1. Corpus.
if [[ ! -f $ENMIX/enmix_train.jsonl || ! -f $ENMIX/enmix_valid.jsonl ]]; then
  log "building enmix (data/corpus/build_enmix.sh)"
  bash data/corpus/build_enmix.sh
fi

# 2. Tokenizer on the training split only (the held-out file is a different input).
if [[ ! -f $OUT/data/.tokenizer_done ]]; then
  log "tokenizer: SentencePiece BPE, vocab $VOCAB, on $ENMIX/enmix_train.jsonl"
  mkdir -p "$OUT/data"
  "$BIN"/ortho_data tokenizer-train --input "$ENMIX/enmix_train.jsonl" --model-prefix "$OUT/data/tokenizer" \
      --vocab-size "$VOCAB" --valid-fraction 0 --seed "$SEED"
  touch "$OUT/data/.tokenizer_done"
fi

# 3. Preprocess. With --valid-fraction 0 preprocess writes PREFIX_train.*: the training set is
# data/enmix_train, the held-out set data/heldout_train (enmix_valid.jsonl tokenized alone).
TRAIN=$OUT/data/enmix_train
HELDOUT=$OUT/data/heldout_train
if [[ ! -f $OUT/data/.preprocess_done ]]; then
  log "preprocess: $TRAIN and $HELDOUT"
  "$BIN"/ortho_data preprocess --input "$ENMIX/enmix_train.jsonl" --tokenizer-model "$OUT/data/tokenizer.model" \
      --output-prefix "$OUT/data/enmix" --valid-fraction 0
  "$BIN"/ortho_data preprocess --input "$ENMIX/enmix_valid.jsonl" --tokenizer-model "$OUT/data/tokenizer.model" \
      --output-prefix "$OUT/data/heldout" --valid-fraction 0
  touch "$OUT/data/.preprocess_done"
fi

# The model's shape and parameter count, from the dry run's memory plan:
# "model tiny: V=8192 C=256 F=688 H=4 L=4 T=256 softmax rmsnorm, 7.4M params".
shape=$("$BIN"/ortho_megatron --dry-run --model "$MODEL" --seq-length "$SEQ" --data-path "$TRAIN" \
          --micro-batch-size "$MICRO" --global-batch-size "$GLOBAL" --train-iters "$STEPS" --tp "$TP" --dp "$DP" \
          2>&1 | sed -n 's/^ *model \(.*\) softmax rmsnorm, \(.*\)$/\1, \2/p')
log "model ${shape:-$MODEL (see ortho_megatron --dry-run)}"

# 4. Training: five runs, same seed (initial weights and data order), tokens and schedule.
source scripts/mpi_env.sh
export OMP_NUM_THREADS=1
final=$(printf 'step_%08d' "$STEPS")
for spec in "${RUNS[@]}"; do
  read -r name attention optimizer norm <<< "$spec"
  run=$OUT/runs/$name
  if [[ -d $run/$final ]]; then
    log "$name: $run/$final exists, not retrained"
    continue
  fi
  resume=()
  if [[ -f $run/latest ]]; then
    resume=(--load "$run")
    log "$name: resuming from $run/$(cat "$run/latest")"
  fi
  mkdir -p "$run"
  log "$name: --attention $attention --optimizer $optimizer --norm $norm (log: $run/train.log)"
  start=$SECONDS
  mpirun -np $(( TP * DP )) "$BIN"/ortho_megatron --tp "$TP" --dp "$DP" \
      --model "$MODEL" --seq-length "$SEQ" --attention "$attention" --norm "$norm" --optimizer "$optimizer" \
      --data-path "$TRAIN" --valid-data-path "$HELDOUT" \
      --micro-batch-size "$MICRO" --global-batch-size "$GLOBAL" --train-iters "$STEPS" \
      --lr "$LR" --min-lr "$MIN_LR" --lr-warmup-iters "$WARMUP" --seed "$SEED" \
      --eval-interval "$EVAL_INTERVAL" --eval-iters 2 --eval-metrics --log-interval 10 \
      --save "$run" --save-interval "$SAVE_INTERVAL" --save-keep 2 "${bos_flag[@]}" "${resume[@]}" \
      >> "$run/train.log" 2>&1 \
    || { tail -n 20 "$run/train.log"; log "$name: training failed (rerun to resume)"; exit 1; }
  log "$name: done in $(( SECONDS - start )) s; last: $(grep -o 'step .*' "$run/train.log" | tail -n 1)"
done

# 5. Evaluation of each final checkpoint on the held-out set.
for spec in "${RUNS[@]}"; do
  read -r name _ <<< "$spec"
  run=$OUT/runs/$name
  if [[ -f $run/report/report.json ]]; then
    log "$name: $run/report/report.json exists, kept"
    continue
  fi
  log "$name: ortho_eval → $run/report"
  "$BIN"/ortho_eval --load "$run/$final" --data-path "$HELDOUT" --eval-tokens "$EVAL_TOKENS" --quant all \
      --report "$run/report.tmp" > "$run/eval.log" 2>&1 || { cat "$run/eval.log"; exit 1; }
  rm -rf "$run/report" && mv "$run/report.tmp" "$run/report"
done

# 6. The combined table.
names=()
for spec in "${RUNS[@]}"; do read -r name _ <<< "$spec"; names+=("$name=$OUT/runs/$name/report/report.json"); done
python3 experiments/combine_reports.py --out "$OUT" --tokens-per-run "$tokens" "${names[@]}"
log "done: $OUT/grid.md, $OUT/grid.html"
