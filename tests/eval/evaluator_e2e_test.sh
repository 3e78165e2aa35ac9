#!/usr/bin/env bash
# ortho_eval end to end on a model trained here (issue 7 "On a trained tiny checkpoint", "the same numbers
# for the same weights saved at tp2·dp2 and tp1·dp1"):
#   1. tokenizer (vocab 1024) + datasets from the bundled corpus; train `tiny` at T 64 for 200 steps
#   2. ortho_eval with every quantisation scheme: w8a8-fine's penalty < 1 % of the perplexity, w4's larger
#      than w8a8-fine's, every number finite, the report's three files written
#   3. the same weights re-saved by a tp2·dp2 job (--load, no training step) evaluate to the same numbers,
#      bit for bit (the evaluator reads logical tensors)
#   4. ortho_eval under mpirun -np 2 gives the same numbers up to the order of its double sums
#   evaluator_e2e_test.sh BIN_DIR CORPUS WORK_DIR [MPIRUN] [PYTHON]
set -euo pipefail
BIN=$1 CORPUS=$2 WORK=$3 MPIRUN=${4:-mpirun} PY=${5:-python3}
rm -rf "$WORK" && mkdir -p "$WORK"
export OMP_NUM_THREADS=2 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1

"$BIN/ortho_data" tokenizer-train --input "$CORPUS" --model-prefix "$WORK/tok" --vocab-size 1024 \
    --valid-fraction 0.05 --seed 7 > "$WORK/data.log"
"$BIN/ortho_data" preprocess --input "$CORPUS" --tokenizer-model "$WORK/tok.model" --output-prefix "$WORK/d" \
    --valid-fraction 0.05 --seed 7 >> "$WORK/data.log"
TRAIN=(--model tiny --seq-length 64 --data-path "$WORK/d_train" --global-batch-size 8 --lr 3e-3 --min-lr 3e-4
       --lr-warmup-iters 20 --log-interval 100)
"$BIN/ortho_megatron" "${TRAIN[@]}" --micro-batch-size 8 --train-iters 200 --save "$WORK/tp1" > "$WORK/train.log" 2>&1
OMP_NUM_THREADS=1 "$MPIRUN" -np 4 "$BIN/ortho_megatron" "${TRAIN[@]}" --tp 2 --dp 2 --micro-batch-size 4 \
    --train-iters 200 --load "$WORK/tp1" --save "$WORK/tp2dp2" > "$WORK/resave.log" 2>&1
grep -q '"tp": 2' "$WORK/tp2dp2/step_00000200/manifest.json"

for run in tp1 tp2dp2; do
  "$BIN/ortho_eval" --load "$WORK/$run" --data-path "$WORK/d_valid" --eval-tokens 8192 --quant all \
      --report "$WORK/report_$run" > "$WORK/eval_$run.log" 2>&1
  for f in report.json report.md report.html; do [[ -s $WORK/report_$run/$f ]] || { echo "FAIL: $run $f missing"; exit 1; }; done
done

# 4. under mpirun (2 ranks share the windows): the same numbers up to the order of double sums.
OMP_NUM_THREADS=1 "$MPIRUN" -np 2 "$BIN/ortho_eval" --load "$WORK/tp1" --data-path "$WORK/d_valid" --eval-tokens 8192 \
    --quant all --report "$WORK/report_mpi" > "$WORK/eval_mpi.log" 2>&1

"$PY" - "$WORK/report_tp1/report.json" "$WORK/report_tp2dp2/report.json" "$WORK/report_mpi/report.json" <<'PY'
import json, math, sys
a, b, c = (json.load(open(p)) for p in sys.argv[1:4])
def numbers(x, path=""):
    if isinstance(x, dict):
        for k, v in x.items():
            if k != "meta": yield from numbers(v, path + "/" + k)
    elif isinstance(x, list):
        for i, v in enumerate(x): yield from numbers(v, f"{path}[{i}]")
    elif isinstance(x, (int, float)):
        yield path, x
na, nb = dict(numbers(a)), dict(numbers(b))
assert na.keys() == nb.keys(), "reports differ in fields"
diff = [k for k in na if na[k] != nb[k]]
assert not diff, f"tp2·dp2 vs tp1 differ in {len(diff)} numbers, e.g. {diff[:3]}"
assert all(math.isfinite(v) for v in na.values()), "non-finite number in the report"
q = {r["scheme"]: r for r in a["quant"]}
ppl = a["ppl"]
fine, w4 = q["w8a8-fine"]["penalty"], q["w4"]["penalty"]
print(f"ppl {ppl:.3f}; penalties: " + ", ".join(f"{s} {r['penalty']:+.4f}" for s, r in q.items()))
assert abs(fine) < 0.01 * ppl, f"w8a8-fine penalty {fine} is not < 1% of ppl {ppl}"
assert w4 > fine, f"w4 penalty {w4} is not larger than w8a8-fine's {fine}"
nc = dict(numbers(c))
# Double sums of ≤ 8192 terms in another order: relative ≤ 8192·2⁻⁵³ ≈ 1e-12 of their magnitude.
worst = max(abs(nc[k] - na[k]) / max(abs(na[k]), 1e-300) for k in na if na[k] != 0)
assert worst < 1e-9, f"mpirun -np 2 vs one process: relative difference {worst}"
print(f"ok: {len(na)} numbers equal for tp1 and tp2·dp2 checkpoints; mpirun -np 2 within {worst:.1e}")
PY
