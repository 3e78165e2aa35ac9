#!/usr/bin/env bash
# Faults under mpirun (issue 9): --nan-policy with a NaN injected on one rank, and the hang watchdog
# with one rank made to sleep.
#   1. abort (default): NaN on rank 1 of dp 2 at step 3 → the job fails (exit 1), the message names
#      step 3 and rank 1, and no step-3 line reaches metrics.jsonl.
#   2. skip: the same fault → the job finishes (exit 0); metrics.jsonl marks step 3 skipped with null
#      loss and norm, counts skipped_steps 1 from then on, and the last loss is finite; the same at tp 2
#      with the fault on tp rank 1 only (no deadlock: the world agrees on the branch).
#   3. watchdog: tp 2 × dp 2, rank 1 sleeps before step 3, --comm-timeout-s 10 → the job ends with exit 3
#      well before the sleep would, and every rank printed its hang-watchdog line: rank 1 "no collective
#      started ... during step 3", the others a collective "at step 3 has not finished".
#   faults_test.sh ORTHO_MEGATRON DATA_PREFIX WORK_DIR [MPIRUN=mpirun]
set -euo pipefail
MEGATRON=$1 DATA=$2 WORK=$3 MPIRUN=${4:-mpirun}
rm -rf "$WORK" && mkdir -p "$WORK"
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
ARGS=(--model tiny --seq-length 32 --data-path "$DATA" --micro-batch-size 2 --global-batch-size 4
      --lr 1e-3 --lr-decay-iters 100 --log-interval 1 --device cpu)
fail() { echo "FAIL: $*"; exit 1; }

# 1. --nan-policy abort
rc=0
"$MPIRUN" -np 2 "$MEGATRON" "${ARGS[@]}" --dp 2 --train-iters 6 --inject-fault nan@3:1 --log-dir "$WORK/abort" \
    > "$WORK/abort.log" 2>&1 || rc=$?
[[ $rc -ne 0 ]] || fail "abort: the job succeeded"
grep -q "step 3: loss nan" "$WORK/abort.log" || { cat "$WORK/abort.log"; fail "abort: no 'step 3: loss nan' message"; }
grep -q "not finite on rank(s) 1 of the world" "$WORK/abort.log" || { cat "$WORK/abort.log"; fail "abort: rank 1 not named"; }
[[ $(wc -l < "$WORK/abort/metrics.jsonl") -eq 2 ]] || fail "abort: metrics.jsonl should hold steps 1-2 only"
echo "ok abort: exit $rc naming step 3 and rank 1"

# 2. --nan-policy skip
"$MPIRUN" -np 2 "$MEGATRON" "${ARGS[@]}" --dp 2 --train-iters 6 --inject-fault nan@3:1 --nan-policy skip \
    --log-dir "$WORK/skip" > "$WORK/skip.log" 2>&1 || { cat "$WORK/skip.log"; fail "skip: the job failed"; }
M=$WORK/skip/metrics.jsonl
[[ $(wc -l < "$M") -eq 6 ]] || fail "skip: metrics.jsonl has $(wc -l < "$M") lines, want 6"
sed -n 3p "$M" | grep -q '"loss": null, .*"grad_norm": null, .*"skipped_steps": 1, "skipped": true' \
    || fail "skip: step 3 line: $(sed -n 3p "$M")"
sed -n 2p "$M" | grep -q '"skipped_steps": 0' || fail "skip: step 2 line: $(sed -n 2p "$M")"
tail -n 1 "$M" | grep -q '"skipped_steps": 1' || fail "skip: last line: $(tail -n 1 "$M")"
tail -n 1 "$M" | grep -q '"loss": [0-9]' || fail "skip: last loss not finite: $(tail -n 1 "$M")"
grep -q "step 3 skipped" "$WORK/skip.log" || fail "skip: no warning line"
echo "ok skip: step 3 skipped and counted, training went on"

# 2b. tp 2: the NaN on tp rank 1 only (its loss; the norm sees its qkv slice): every rank must take the
# same branch (a split decision deadlocked in the next collective before the world agreed on it).
timeout 120 "$MPIRUN" -np 2 "$MEGATRON" "${ARGS[@]}" --tp 2 --train-iters 6 --inject-fault nan@3:1 --nan-policy skip \
    --log-dir "$WORK/skip_tp" > "$WORK/skip_tp.log" 2>&1 || { tail -5 "$WORK/skip_tp.log"; fail "skip at tp 2: exit $?"; }
sed -n 3p "$WORK/skip_tp/metrics.jsonl" | grep -q '"skipped": true' || fail "skip at tp 2: step 3 not skipped"
echo "ok skip at tp 2: both tp ranks skipped step 3"

# 2c. --overlap-grad-reduce: the buckets are reduced during the last backward, so the NaN must be in the
# gradient before then (it is: injected before the last micro-batch) and still reach every rank's norm.
timeout 120 "$MPIRUN" -np 2 "$MEGATRON" "${ARGS[@]}" --dp 2 --train-iters 6 --inject-fault nan@3:1 --nan-policy skip \
    --overlap-grad-reduce --ddp-bucket-size 20000 --log-dir "$WORK/skip_overlap" > "$WORK/skip_overlap.log" 2>&1 \
    || { tail -5 "$WORK/skip_overlap.log"; fail "skip with --overlap-grad-reduce: exit $?"; }
grep -q "reduction(s) issued during the backward, 0 after it" "$WORK/skip_overlap.log" \
    || fail "skip with --overlap-grad-reduce: the buckets were not reduced during the backward"
sed -n 3p "$WORK/skip_overlap/metrics.jsonl" | grep -q '"grad_norm": null, .*"skipped": true' \
    || fail "skip with --overlap-grad-reduce: step 3 line: $(sed -n 3p "$WORK/skip_overlap/metrics.jsonl")"
echo "ok skip with --overlap-grad-reduce: step 3 skipped"

# 3. the hang watchdog
start=$SECONDS rc=0
timeout 300 "$MPIRUN" -np 4 "$MEGATRON" "${ARGS[@]}" --tp 2 --dp 2 --train-iters 1000 --inject-fault hang@3:1 \
    --comm-timeout-s 10 > "$WORK/hang.log" 2>&1 || rc=$?
took=$((SECONDS - start))
[[ $rc -ne 0 && $rc -ne 124 ]] || { tail -20 "$WORK/hang.log"; fail "watchdog: exit $rc after $took s"; }
grep -q "exit code: *3\|Exit code: *3\|exit 3" "$WORK/hang.log" || { tail -20 "$WORK/hang.log"; fail "watchdog: no exit 3"; }
grep -q "\[rank 1 .*hang watchdog: no collective started for .* during step 3" "$WORK/hang.log" \
    || { grep watchdog "$WORK/hang.log"; fail "watchdog: rank 1 (the sleeper) did not report"; }
for r in 0 2 3; do
  grep -q "\[rank $r .*hang watchdog: collective '.*' of [0-9]* bytes at step 3 has not finished" "$WORK/hang.log" \
      || { grep watchdog "$WORK/hang.log"; fail "watchdog: rank $r did not report its collective"; }
done
echo "ok watchdog: every rank reported within $took s (the sleeper: 1 hour); exit $rc"
echo "faults: all passed"
