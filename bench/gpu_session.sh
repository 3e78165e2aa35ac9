#!/usr/bin/env bash
# gpu_session.sh — a whole device session in ONE device call (one machine start, at most 600 s): issue 8's
# check (bench/gpu_check.sh run: every CUDA test, GPU vs CPU losses, resume) and then issue 11's
# measurement (bench/gpu_perf.sh: ours vs the PyTorch peer, op profiles) in the time that is left. The
# device budget is 15 minutes per session, machine start included, so the two scripts' default budgets
# (≈ 540 s each, in two calls) do not fit; this does.
#
#   here:    bash bench/gpu_check.sh prepare         (the CUDA build and the carried bundle, ≈ 15 min)
#   device:  bash bench/gpu_session.sh               (carry [".gpu-carry"], timeout_s 600)
#   here:    commit $OUT/gpu_check/gpu_check.md, $OUT/gpu_perf/gpu_perf.md and profile_*.txt, dated,
#            under bench/results/
#
# GPU_SESSION_S (default 580): this call's budget. gpu_check gets at most GPU_SESSION_CHECK_S (default
# 270; a cut check leaves tests.txt and logs but no table), gpu_perf the rest (GPU_PERF_BUDGET_S = what is
# left − 30 s, and a hard stop 10 s before the end) when at least 150 s are left. Every GPU_CHECK_* and
# GPU_PERF_* variable passes through (GPU_PERF_DEVICE=cpu rehearses the flow here: the check then stops at
# once for want of a bundle). When cuda_attention_test failed in the check (or the check was cut during it),
# gpu_perf gets GPU_PERF_ATTENTION_FAILED=1: the tensor-core attention is then suspect, and ours is measured
# with the warp kernels too (gpu_perf.sh's fallback, step 3). Output under ${OUT:-build-gpu/session}:
# gpu_check/, gpu_perf/, each script's stdout (gpu_check.out, gpu_perf.out) and session.txt (exit statuses and
# times). Exit status 0 when both scripts exited 0.
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${OUT:-build-gpu/session}
TOTAL=${GPU_SESSION_S:-580}
CHECK=${GPU_SESSION_CHECK_S:-270}
mkdir -p "$OUTDIR"
start=$SECONDS

OUT=$OUTDIR/gpu_check timeout "$CHECK" bash bench/gpu_check.sh run > "$OUTDIR/gpu_check.out" 2>&1
check_rc=$?
check_s=$((SECONDS - start))

left=$((TOTAL - check_s))
# Failed, or the check was cut before it finished (a hang: the tests run in name order, it is the second).
attention_failed=0
grep -qs '^cuda_attention_test .*FAILED' "$OUTDIR/gpu_check/tests.txt" && attention_failed=1
[[ $check_rc == 124 ]] && ! grep -qs '^cuda_attention_test ' "$OUTDIR/gpu_check/tests.txt" && attention_failed=1
perf_rc=skipped
if ((left >= 150)); then
  OUT=$OUTDIR/gpu_perf GPU_PERF_BUDGET_S=$((left - 30)) GPU_PERF_ATTENTION_FAILED=$attention_failed \
      timeout $((left - 10)) bash bench/gpu_perf.sh > "$OUTDIR/gpu_perf.out" 2>&1
  perf_rc=$?
fi

{
  echo "gpu_check.sh run: exit $check_rc in $check_s s$([[ $check_rc == 124 ]] && echo " (cut at ${CHECK} s)")"
  ((attention_failed)) &&
    echo "cuda_attention_test failed or did not finish: gpu_perf ran with GPU_PERF_ATTENTION_FAILED=1"
  if [[ $perf_rc == skipped ]]; then echo "gpu_perf.sh: skipped (under 150 s left)"
  else echo "gpu_perf.sh: exit $perf_rc in $((SECONDS - start - check_s)) s"; fi
  echo "session: $((SECONDS - start)) s of $TOTAL"
} | tee "$OUTDIR/session.txt"
[[ -f $OUTDIR/gpu_check/gpu_check.md ]] && cat "$OUTDIR/gpu_check/gpu_check.md"
[[ -f $OUTDIR/gpu_perf/gpu_perf.md ]] && cat "$OUTDIR/gpu_perf/gpu_perf.md"
[[ $check_rc == 0 && $perf_rc == 0 ]]
