#!/usr/bin/env bash
# stop_slurm.sh [DIR] -- stop the private SLURM cluster started by start_slurm.sh DIR.
# A copy of ../shared/slurm-local/stop_slurm.sh, kept here (unchanged but for this
# note) so that the slurm test runs from a fresh clone without ../shared.
# Cancels remaining jobs, SIGTERMs the PIDs recorded in DIR/pids, then SIGKILLs
# strays marked as ours by their environment (slurmstepd: SLURM_LOCAL_OWNER=DIR;
# escaped job processes: SLURM_JOB_ID + SLURM_CONF=DIR/slurm.conf).  Never kills
# by process name.
# Set SLURM_LOCAL_KEEP=1 to keep DIR (logs, key) instead of deleting it.
set -uo pipefail

DIR=${1:-${SLURM_LOCAL_DIR:-/tmp/slurm-local}}
log() { echo "[stop_slurm] $*" >&2; }
[ -d "$DIR/pids" ] || { log "nothing to stop in $DIR"; exit 0; }
export SLURM_CONF=$DIR/slurm.conf

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
pid_of() { [ -s "$DIR/pids/$1.pid" ] && cat "$DIR/pids/$1.pid"; }

# 1. cancel jobs while the controller still runs, so slurmstepd cleans up
ctld=$(pid_of slurmctld || true)
if alive "$ctld" && [ -f "$SLURM_CONF" ]; then
  jobs=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    for _ in $(seq 50); do
      [ -z "$(squeue -h -t R,CG,S -o %A 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
fi

# 2. stop daemons by recorded PID (all at once: each takes ~2 s to shut down)
pids=""
for p in slurmd slurmctld munged; do
  pid=$(pid_of $p || true)
  alive "$pid" || continue
  pids="$pids $pid"
  kill -TERM "$pid" 2>/dev/null
done
for pid in $pids; do
  for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then log "pid $pid ignored SIGTERM, sending SIGKILL"; kill -KILL "$pid" 2>/dev/null; fi
done

# 3. strays: slurmstepd (inherits SLURM_LOCAL_OWNER=DIR from slurmd) and job
#    processes that escaped proctrack (their environment has SLURM_JOB_ID and
#    SLURM_CONF=DIR/slurm.conf).  Never ourselves or our ancestors.
self_chain=" $$ "
p=$$
while [ "$p" -gt 1 ] 2>/dev/null; do
  p=$(awk '{print $4}' /proc/"$p"/stat 2>/dev/null) || break
  self_chain="$self_chain$p "
done
for d in /proc/[0-9]*; do
  pid=${d#/proc/}
  case "$self_chain" in *" $pid "*) continue ;; esac
  env=$(tr '\0' '\n' 2>/dev/null <"$d/environ") || continue
  if grep -qxF "SLURM_LOCAL_OWNER=$DIR" <<<"$env" \
     || { grep -qxF "SLURM_CONF=$DIR/slurm.conf" <<<"$env" && grep -q '^SLURM_JOB_ID=' <<<"$env"; }; then
    log "killing stray pid $pid ($(cat "$d/comm" 2>/dev/null))"
    kill -KILL "$pid" 2>/dev/null || true
  fi
done

# 4. proctrack/cgroup leaves an empty slurm_<node> cgroup per controller; rmdir
#    removes it only if empty
if [ -f "$DIR/cgroup.conf" ]; then
  node=$(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' "$DIR/slurm.conf" 2>/dev/null)
  [ -n "$node" ] && for cg in /sys/fs/cgroup/*/slurm_"$node" /sys/fs/cgroup/slurm_"$node"; do
    [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
fi

rm -rf "$DIR/pids"
if [ "${SLURM_LOCAL_KEEP:-0}" != 1 ]; then
  rm -rf "$DIR"
  log "stopped; removed $DIR"
else
  log "stopped; kept $DIR"
fi
