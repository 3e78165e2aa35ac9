#!/usr/bin/env bash
# start_slurm.sh [DIR] -- start a private, single-node SLURM cluster (munged +
# slurmctld + slurmd, all as root, all traffic on 127.0.0.1) for tests.
#
# A copy of ../shared/slurm-local/start_slurm.sh (the project's shared notes,
# ENVIRONMENT.md "A real SLURM on this machine"), kept here so that the slurm
# test runs from a fresh clone without ../shared.  Adapted: no package install
# (scripts/setup.sh installs slurmctld slurmd slurm-client munge; the test is
# skipped without them).  Keep the two in step.
#
# Everything lives in DIR (default /tmp/slurm-local): munge key/socket, slurm.conf,
# state, spool, logs, PIDs.  Nothing under /etc is changed and no system service
# is started.  Stop with stop_slurm.sh DIR.
#
# Afterwards:   source DIR/env.sh     (sets SLURM_CONF; sbatch/srun/squeue then work)
#
# Knobs (environment):
#   SLURM_LOCAL_CPUS        CPUs= of the node (default: nproc). Larger than nproc is
#                           fine (SlurmdParameters=config_overrides), e.g. 8 on 2 cores.
#   SLURM_LOCAL_MEM_MB      RealMemory= of the node (default 1024)
#   SLURM_LOCAL_OVERSUBSCRIBE  OverSubscribe= of partitions (default NO; e.g. FORCE:4)
#   SLURM_LOCAL_CTLD_PORT / SLURM_LOCAL_SLURMD_PORT  (default 6817 / 6818)
#   SLURM_LOCAL_NODE        node name (default localhost)
#   SLURM_LOCAL_TIMEOUT     seconds to wait for the node to become idle (default 60)
#   SLURM_LOCAL_CRED_EXPIRE AuthInfo cred_expire (default 5 = minimum); a requeued job
#                           becomes eligible again only after cred_expire+1 s
#   SLURM_LOCAL_MPI         MpiDefault (default pmix: srun ./mpi_prog works with Debian's
#                           Open MPI; pmi2 does NOT work with it)
#   SLURM_LOCAL_PROCTRACK   auto | cgroup | pgid | linuxproc (default auto: cgroup when a
#                           cgroup-v1 freezer hierarchy is writable, else pgid).
#                           pgid misses processes that leave the job's process group
#                           (e.g. mpirun's ranks after scancel); linuxproc misses orphans.
#   SLURM_LOCAL_GRACE       GraceTime (s) of a preempted job in partition debug (default 10)
set -euo pipefail
log() { echo "[start_slurm] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

DIR=${1:-${SLURM_LOCAL_DIR:-/tmp/slurm-local}}
CPUS=${SLURM_LOCAL_CPUS:-$(nproc)}
MEM=${SLURM_LOCAL_MEM_MB:-1024}
OVERSUB=${SLURM_LOCAL_OVERSUBSCRIBE:-NO}
CTLD_PORT=${SLURM_LOCAL_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_LOCAL_SLURMD_PORT:-6818}
NODE=${SLURM_LOCAL_NODE:-localhost}
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-60}
CRED_EXPIRE=${SLURM_LOCAL_CRED_EXPIRE:-5}
[ "$CRED_EXPIRE" -ge 5 ] 2>/dev/null || die "SLURM_LOCAL_CRED_EXPIRE must be >= 5 (slurm rejects smaller values)"
MPI=${SLURM_LOCAL_MPI:-pmix}
PROCTRACK=${SLURM_LOCAL_PROCTRACK:-auto}
GRACE=${SLURM_LOCAL_GRACE:-10}
if [ "$PROCTRACK" = auto ]; then
  PROCTRACK=pgid
  if [ "$(stat -fc %T /sys/fs/cgroup/freezer 2>/dev/null)" = cgroupfs ] \
     && mkdir "/sys/fs/cgroup/freezer/slurm_probe_$$" 2>/dev/null; then
    rmdir "/sys/fs/cgroup/freezer/slurm_probe_$$"; PROCTRACK=cgroup
  fi
fi

[ "$(id -u)" = 0 ] || die "must run as root (SlurmUser=root, slurmd launches jobs)"

t0=$(date +%s.%N)

# --- packages ---------------------------------------------------------------
for b in slurmctld slurmd sbatch munged; do
  command -v "$b" >/dev/null \
    || die "$b not found (apt-get install --no-install-recommends slurmctld slurmd slurm-client munge; scripts/setup.sh does)"
done

# --- refuse to clobber a running instance ------------------------------------
for p in munged slurmctld slurmd; do
  if [ -s "$DIR/pids/$p.pid" ] && kill -0 "$(cat "$DIR/pids/$p.pid")" 2>/dev/null; then
    die "$p from $DIR still running (pid $(cat "$DIR/pids/$p.pid")); run stop_slurm.sh $DIR first"
  fi
done
for port in "$CTLD_PORT" "$SLURMD_PORT"; do
  if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
    die "TCP port $port already in use (set SLURM_LOCAL_CTLD_PORT/SLURM_LOCAL_SLURMD_PORT)"
  fi
done

# Fresh state every start (keep an existing munge key).
rm -rf "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/pids" "$DIR/run"
mkdir -p "$DIR"/{munge,state,log,pids,run} "$DIR/spool/slurmd-$NODE"
chmod 700 "$DIR"; chmod 711 "$DIR/munge"

# --- munge --------------------------------------------------------------------
KEY=$DIR/munge/munge.key
if [ ! -s "$KEY" ]; then
  if command -v mungekey >/dev/null; then
    mungekey --create --keyfile="$KEY"
  else
    dd if=/dev/urandom of="$KEY" bs=1 count=1024 status=none
  fi
fi
chmod 400 "$KEY"
MSOCK=$DIR/munge/munge.socket.2
# -F: stay in foreground so $! is munged's own PID; setsid: detach from the
# caller's session/terminal; SLURM_LOCAL_OWNER marks our daemons (and the
# slurmstepd processes slurmd forks) for stop_slurm.sh.  --force: start even if
# a stale socket/lock was left by a killed run (not needed on a clean start).
SLURM_LOCAL_OWNER=$DIR setsid munged -F --force \
  --key-file="$KEY" --socket="$MSOCK" \
  --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" \
  --seed-file="$DIR/munge/munged.seed" \
  </dev/null >>"$DIR/log/munged.out" 2>&1 &
echo $! >"$DIR/pids/munged.pid"
for _ in $(seq 100); do [ -S "$MSOCK" ] && break; sleep 0.1; done
[ -S "$MSOCK" ] || { cat "$DIR/log/munged.out" "$DIR/log/munged.log" >&2 || true; die "munged did not start"; }
munge -n -S "$MSOCK" | unmunge -S "$MSOCK" >/dev/null || die "munge round trip failed"

# --- slurm.conf -----------------------------------------------------------------
CONF=$DIR/slurm.conf
cat >"$CONF" <<EOF
# Private single-node test cluster written by start_slurm.sh
ClusterName=localci
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
# private munged socket; cred_expire also is the delay before a requeued job may start again (default 120 s)
AuthInfo=socket=$MSOCK,cred_expire=$CRED_EXPIRE
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/slurmd-%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no task/cgroup, no accounting; proctrack/cgroup only if a v1 freezer is usable
ProctrackType=proctrack/$PROCTRACK
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
MpiDefault=$MPI
MailProg=/bin/true
ReturnToService=2
SlurmdParameters=config_overrides
JobRequeue=1
KillWait=5
MinJobAge=600
InactiveLimit=0
# preemption: jobs in partition "urgent" requeue jobs in "debug"; the job's
# --signal is sent at preemption time, then GraceTime, then SIGTERM/SIGKILL
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
NodeName=$NODE NodeHostname=$(hostname) NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=$OVERSUB PriorityTier=1 PreemptMode=REQUEUE GraceTime=$GRACE
PartitionName=urgent Nodes=$NODE Default=NO MaxTime=INFINITE State=UP OverSubscribe=$OVERSUB PriorityTier=10 PreemptMode=OFF
EOF
# Empty plugstack (do not pick up /etc/slurm/plugstack.conf.d)
: >"$DIR/plugstack.conf"
echo "PlugStackConfig=$DIR/plugstack.conf" >>"$CONF"

if [ "$PROCTRACK" = cgroup ]; then
  # cgroup v1 hierarchy (tmpfs at /sys/fs/cgroup; tested) or unified v2 (untested)
  if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then CG=cgroup/v2; else CG=cgroup/v1; fi
  printf 'CgroupPlugin=%s\nCgroupMountpoint=/sys/fs/cgroup\nConstrainCores=no\nConstrainRAMSpace=no\n' "$CG" >"$DIR/cgroup.conf"
fi

cat >"$DIR/env.sh" <<EOF
export SLURM_CONF=$CONF
EOF
export SLURM_CONF=$CONF

# --- daemons ------------------------------------------------------------------
SLURM_LOCAL_OWNER=$DIR setsid slurmctld -D -i -f "$CONF" </dev/null >>"$DIR/log/slurmctld.out" 2>&1 &
echo $! >"$DIR/pids/slurmctld.pid"
SLURM_LOCAL_OWNER=$DIR setsid slurmd -D -N "$NODE" -f "$CONF" </dev/null >>"$DIR/log/slurmd.out" 2>&1 &
echo $! >"$DIR/pids/slurmd.pid"

state=""
deadline=$(( $(date +%s) + TIMEOUT ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  for p in slurmctld slurmd; do
    kill -0 "$(cat "$DIR/pids/$p.pid")" 2>/dev/null || {
      tail -n 20 "$DIR/log/$p.out" "$DIR/log/$p.log" >&2 || true; die "$p exited"; }
  done
  state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1 || true)
  case "$state" in idle|mixed|allocated) break ;; esac
  sleep 0.2
done
case "$state" in
  idle|mixed|allocated) ;;
  *) tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
     die "node $NODE not idle after ${TIMEOUT}s (state '$state')" ;;
esac
t1=$(date +%s.%N)
log "up in $(awk "BEGIN{printf \"%.1f\", $t1-$t0}") s: node $NODE $state, CPUs=$CPUS, proctrack/$PROCTRACK; source $DIR/env.sh"
echo "export SLURM_CONF=$CONF"
