#!/usr/bin/env bash
# slurm/train.sbatch on a real SLURM: a private one-node slurmctld + slurmd + munged on 127.0.0.1
# (start_slurm.sh here), two 4-rank jobs of the `tiny` preset on the CPU (tp 2 x dp 2; seq 32,
# micro-batch 2, global batch 8), each preempted mid-run, against an uninterrupted reference run:
#   job A (LAUNCHER=srun, `srun --mpi=pmix`): SIGUSR1 to the batch shell (`scancel --signal=USR1
#     --batch`) after >= 2 steps -> the step exits 75 after saving, the script requeues the job itself;
#     the rerun logs SLURM_RESTART_COUNT=1 and resumes from the saved step; after >= 2 more steps an
#     external `scontrol requeue` (SIGTERM from SLURM: the script must NOT requeue again) -> the third
#     run resumes from `latest` and finishes.
#   job B (LAUNCHER=mpirun, Open MPI's mpirun inside the allocation): SIGUSR1 once, as for A.
#   reference: `mpirun -np 4` outside SLURM, the same flags, never interrupted.
# Asserts, per job: COMPLETED with exit 0:0 and Restarts=N; run 0 (SLURM_RESTART_COUNT unset) stopped
# with exit 75 and the job requeued itself exactly once; rerun k logs SLURM_RESTART_COUNT=k and the
# trainer's "resumed from RUN_DIR/step_…: step S," where S is the step that run 0 saved (rerun 1) or a
# step >= it (rerun 2 of A: whatever the SIGTERM left as latest); the job ends with "training
# finished", latest = the last step, and it verifies (ortho_ckpt); and the loss, lr and gradient norm
# of EVERY step (the last occurrence of a step a restart redid) equal the reference's as printed
# (%.6f) -- exactly, no tolerance: a resume at the same layout is bitwise (README "Checkpoints and
# resuming", tested by the checkpoint tests), and srun and mpirun give the same ranks the same layout,
# so any difference is a bug, not rounding.
#   requeue_test.sh ORTHO_MEGATRON ORTHO_CKPT DATA_PREFIX WORK_DIR [MPIRUN=mpirun]
# Exit 77 (skipped): not root, or slurmctld/slurmd/slurm-client/munge/mpirun missing. Cleans up on
# any exit: cancels the jobs and stops the daemons (stop_slurm.sh: by recorded PID), kills the
# reference run by PID, removes WORK_DIR and the SLURM state directory.
# Env: OM_SLURM_TEST_ITERS (default 100 steps), OM_SLURM_TEST_KEEP=1 keeps WORK_DIR (logs).
set -uo pipefail
MEGATRON=$(realpath -m "$1") CKPT=$(realpath -m "$2") DATA=$(realpath -m "$3") WORK=$(realpath -m "$4")
MPIRUN=${5:-mpirun}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SBATCH_SCRIPT=$ROOT/slurm/train.sbatch
ITERS=${OM_SLURM_TEST_ITERS:-100}

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (slurmd runs the jobs as root here)"
for b in slurmctld slurmd sbatch scontrol scancel squeue srun munged "$MPIRUN"; do
  command -v "$b" > /dev/null || skip "$b not installed (scripts/setup.sh installs slurmctld slurmd slurm-client munge)"
done
if [ ! -x "$MEGATRON" ] || [ ! -x "$CKPT" ] || [ ! -f "$DATA.bin" ]; then
  echo "FAIL: missing $MEGATRON, $CKPT or $DATA.bin"; exit 1
fi

T0=$(date +%s.%N)
elapsed() { awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $T0}"; }
say() { echo "[$(elapsed) s] $*"; }

rm -rf "$WORK" && mkdir -p "$WORK" || exit 1
# The munge socket path must stay short (sun_path is 108 bytes): the state lives under /tmp.
SLURM_DIR=$(mktemp -d /tmp/om-slurm.XXXXXX) || exit 1
REF_PID=""
JOBS=()
cleanup() {
  local rc=$?
  if [ -n "$REF_PID" ] && kill -0 "$REF_PID" 2> /dev/null; then
    kill -TERM "$REF_PID" 2> /dev/null
    for _ in $(seq 50); do kill -0 "$REF_PID" 2> /dev/null || break; sleep 0.1; done
    kill -KILL "$REF_PID" 2> /dev/null
  fi
  bash "$HERE/stop_slurm.sh" "$SLURM_DIR" > /dev/null 2>&1
  rm -rf "$SLURM_DIR"
  if [ "${OM_SLURM_TEST_KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

jfield() { scontrol show job "$1" 2> /dev/null | grep -o "\b$2=[^ ]*" | head -1 | cut -d= -f2; }
fail() {
  echo "FAIL: $*"
  for j in "${JOBS[@]}"; do
    echo "--- job $j: $(scontrol show job "$j" 2> /dev/null | grep -o 'JobState=[^ ]*\|Restarts=[0-9]*\|ExitCode=[^ ]*' | tr '\n' ' ')"
  done
  for f in "$WORK"/*.out "$WORK"/ref.log; do
    [ -f "$f" ] || continue
    echo "--- $f (without the trainer's I lines but its resume/stop lines)"
    grep -v '^I ' "$f" | tail -n 30
    grep -E 'resumed from|stopping at step' "$f" | tail -n 5
  done
  echo "--- slurmctld.log"; tail -n 15 "$SLURM_DIR/log/slurmctld.log" 2> /dev/null
  exit 1
}
# wait_for SECONDS DESCRIPTION COMMAND...: poll every 0.1 s until COMMAND succeeds, else fail.
wait_for() {
  local limit=$1 what=$2; shift 2
  local end=$(($(date +%s) + limit))
  until "$@"; do
    [ "$(date +%s)" -lt "$end" ] || fail "timed out after ${limit}s waiting for: $what"
    sleep 0.1
  done
}
# wait_job JOBID SECONDS DESCRIPTION COMMAND...: wait_for, failing at once if the job left the queue.
wait_job() {
  local j=$1 limit=$2 what=$3; shift 3
  local end=$(($(date +%s) + limit))
  until "$@"; do
    job_gone "$j" && ! "$@" && fail "job $j ended before: $what"
    [ "$(date +%s)" -lt "$end" ] || fail "timed out after ${limit}s waiting for: $what"
    sleep 0.1
  done
}
# Step of the last line of a metrics.jsonl (0 when there is none).
last_step() { tail -n 1 "$1" 2> /dev/null | sed -nE 's/^\{"step": ([0-9]+),.*/\1/p' | grep . || echo 0; }
steps_at_least() { [ "$(last_step "$1")" -ge "$2" ]; }
job_gone() { [ -z "$(squeue -h -j "$1" 2> /dev/null)" ]; }
has_line() { grep -qF -- "$2" "$1" 2> /dev/null; }

# --- the cluster: 8 CPUs on 2 cores, so both 4-task jobs run at once -----------------------------
port_free() { ! ss -Hltn "sport = :$1" 2> /dev/null | grep -q .; }
port=$((20000 + ($$ % 4000) * 2))
until port_free "$port" && port_free $((port + 1)); do port=$((port + 2)); done
SLURM_LOCAL_CPUS=8 SLURM_LOCAL_CTLD_PORT=$port SLURM_LOCAL_SLURMD_PORT=$((port + 1)) \
  bash "$HERE/start_slurm.sh" "$SLURM_DIR" > "$WORK/start_slurm.log" 2>&1 \
  || { cat "$WORK/start_slurm.log"; fail "start_slurm.sh"; }
export SLURM_CONF=$SLURM_DIR/slurm.conf
say "cluster up: $(grep -o 'up in .*proctrack/[a-z]*' "$WORK/start_slurm.log")"

# --- the jobs -------------------------------------------------------------------------------------
# shellcheck source=SCRIPTDIR/../../scripts/mpi_env.sh
source "$ROOT/scripts/mpi_env.sh"   # Open MPI as root, oversubscribed, yielding (inherited by the jobs)
export OMP_NUM_THREADS=1
export OM_BIN=$MEGATRON DATA_PATH=$DATA MODEL=tiny TP=2 DP=2 MICRO_BATCH=2 GLOBAL_BATCH=8
export TRAIN_ITERS=$ITERS LR=1e-3 SAVE_INTERVAL=100000 DEVICE=cpu
export EXTRA_ARGS="--seq-length 32 --log-interval 10"
# The flags train.sbatch builds from the settings above, for the reference (RUN_DIR appended).
# shellcheck disable=SC2206  # EXTRA_ARGS is a word list, as in train.sbatch
REF_ARGS=(--model tiny --data-path "$DATA" --tp 2 --dp 2 --device cpu --micro-batch-size 2
          --global-batch-size 8 --train-iters "$ITERS" --lr 1e-3 --save-interval 100000 $EXTRA_ARGS)
submit() {  # NAME LAUNCHER: prints the job id
  RUN_DIR=$WORK/$1 LAUNCHER=$2 sbatch --parsable -J "$1" --chdir="$WORK" -o "$WORK/$1.out" \
    --nodes=1 --ntasks-per-node=4 --gpus-per-node=0 --time=15 "$SBATCH_SCRIPT"
}
A=$(submit A srun) || fail "sbatch of job A"
B=$(submit B mpirun) || fail "sbatch of job B"
JOBS=("$A" "$B")
"$MPIRUN" -np 4 "$MEGATRON" "${REF_ARGS[@]}" --save "$WORK/ref" > "$WORK/ref.log" 2>&1 &
REF_PID=$!
say "submitted job A=$A (srun) and B=$B (mpirun), $ITERS steps each; reference pid $REF_PID"

# --- preempt: SIGUSR1 to the batch shells once the trap is installed and >= 2 steps ran -----------
# preempt NAME JOBID
preempt() {
  wait_job "$2" 120 "$1: trap marker of run 0" has_line "$WORK/$1.out" "ready: signal trap installed; job $2 restart 0"
  wait_job "$2" 180 "$1: 2 steps in metrics.jsonl" steps_at_least "$WORK/$1/metrics.jsonl" 2
  local at; at=$(last_step "$WORK/$1/metrics.jsonl")
  scancel --signal=USR1 --batch "$2" || fail "scancel --signal=USR1 --batch $2"
  say "$1: SIGUSR1 to the batch shell after step $at"
}
preempt A "$A"
preempt B "$B"
# saved_step NAME: the step that the exit-75 stop of run 0 published as latest
saved_step() {
  sed -nE 's/.*stopped after saving \(exit 75\); .*latest: step_0*([0-9]+)$/\1/p' "$WORK/$1.out" | head -1
}
wait_job "$A" 180 "A: run 1 started" has_line "$WORK/A.out" "job $A restart 1 (SLURM_RESTART_COUNT=1)"
SA=$(saved_step A)
[ -n "$SA" ] || fail "A: no 'stopped after saving (exit 75)' line with latest before the requeue"
say "A: run 0 exited 75 after saving step $SA; requeued, run 1 started"
# --- then an external requeue of A (SLURM sends SIGTERM) after >= 2 steps past the resume --------
wait_job "$A" 180 "A: 2 steps after the resume" steps_at_least "$WORK/A/metrics.jsonl" $((SA + 2))
at=$(last_step "$WORK/A/metrics.jsonl")
scontrol requeue "$A" || fail "scontrol requeue $A"
say "A: scontrol requeue at step $at"

wait_for 400 "both jobs to finish" job_gone "$A"
wait_for 400 "both jobs to finish" job_gone "$B"
say "both jobs left the queue"
wait "$REF_PID"; rc=$?
REF_PID=""
[ "$rc" = 0 ] || fail "reference run exited $rc"
say "reference run done"

# --- checks ---------------------------------------------------------------------------------------
# metrics TSV: "step loss lr grad_norm" per line, the last occurrence of each step, sorted by step.
metrics() {
  sed -nE 's/^\{"step": ([0-9]+), "loss": ([^,]+), "lr": ([^,]+), "grad_norm": ([^,]+),.*/\1 \2 \3 \4/p' "$1" \
    | awk '{row[$1] = $0} END {for (s in row) print row[s]}' | sort -n
}
metrics "$WORK/ref/metrics.jsonl" > "$WORK/ref.tsv"
[ "$(wc -l < "$WORK/ref.tsv")" = "$ITERS" ] || fail "reference: $(wc -l < "$WORK/ref.tsv") steps in metrics.jsonl, want $ITERS"

# check_job NAME JOBID RESTARTS
check_job() {
  local name=$1 j=$2 want=$3 out=$WORK/$1.out dir=$WORK/$1
  local state exitc restarts
  state=$(jfield "$j" JobState) exitc=$(jfield "$j" ExitCode) restarts=$(jfield "$j" Restarts)
  if [ "$state" != COMPLETED ] || [ "$exitc" != 0:0 ] || [ "$restarts" != "$want" ]; then
    fail "$name: JobState=$state ExitCode=$exitc Restarts=$restarts, want COMPLETED 0:0 $want"
  fi
  has_line "$out" "job $j restart 0 (SLURM_RESTART_COUNT=unset)" || fail "$name: run 0 marker (SLURM_RESTART_COUNT unset)"
  local k
  for k in $(seq 1 "$want"); do
    has_line "$out" "job $j restart $k (SLURM_RESTART_COUNT=$k)" || fail "$name: no run $k with SLURM_RESTART_COUNT=$k"
  done
  # The first stop: exit 75 from SIGUSR1, and exactly one self-requeue in the whole log.
  has_line "$out" "SIGUSR1: forwarding SIGUSR1 to the training step" || fail "$name: the trap did not forward SIGUSR1"
  local saved; saved=$(saved_step "$name")
  if [ -z "$saved" ] || [ "$saved" -lt 2 ] || [ "$saved" -ge "$ITERS" ]; then
    fail "$name: saved step '$saved' of the first stop, want 2 <= step < $ITERS"
  fi
  [ "$(grep -c "requeued job $j" "$out")" = 1 ] || fail "$name: $(grep -c "requeued job $j" "$out") self-requeues, want 1"
  # Every rerun resumed: the first from the saved step, a later one from a step at least that.
  local resumed
  mapfile -t resumed < <(sed -nE "s|.*resumed from $dir(/step_[0-9]+)?: step ([0-9]+),.*|\2|p" "$out")
  [ "${#resumed[@]}" = "$want" ] || fail "$name: ${#resumed[@]} 'resumed from $dir' lines (${resumed[*]}), want $want"
  [ "${resumed[0]}" = "$saved" ] || fail "$name: run 1 resumed from step ${resumed[0]}, the stop saved step $saved"
  if [ "$want" -ge 2 ] && [ "${resumed[1]}" -lt "$saved" ]; then
    fail "$name: run 2 resumed from step ${resumed[1]} < $saved"
  fi
  has_line "$out" "training finished (exit 0)" || fail "$name: no 'training finished' line"
  [ "$(cat "$dir/latest")" = "$(printf 'step_%08d' "$ITERS")" ] || fail "$name: latest is $(cat "$dir/latest")"
  "$CKPT" verify "$dir" > "$WORK/$name.verify" 2>&1 || fail "$name: ortho_ckpt verify: $(tail -3 "$WORK/$name.verify")"
  # The whole loss curve, as printed, equals the uninterrupted run's (exact: see the header).
  metrics "$dir/metrics.jsonl" > "$WORK/$name.tsv"
  if ! diff "$WORK/ref.tsv" "$WORK/$name.tsv" > "$WORK/$name.diff"; then
    head -n 10 "$WORK/$name.diff"; fail "$name: step/loss/lr/grad_norm differ from the uninterrupted run"
  fi
  say "ok $name: stopped at step $saved with exit 75, requeued itself once; resumed from step(s) ${resumed[*]};" \
      "Restarts=$restarts; $ITERS steps equal to the reference, final $(tail -n 1 "$WORK/$name.tsv")"
}
check_job A "$A" 2
# After the external requeue the script must not have requeued again: when the trainer saved on
# SLURM's SIGTERM in time (KillWait 5 s) the script says so instead.
if has_line "$WORK/A.out" "SIGTERM came from SLURM ending the job: not requeuing from here"; then
  say "A: the external requeue's SIGTERM: the step saved and exited 75, the script left the requeue to SLURM"
else
  say "A: the external requeue's SIGTERM: the step was killed before it saved (run 2 redid the steps since)"
fi
check_job B "$B" 1
say "slurm requeue: all passed"
