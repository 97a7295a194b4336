#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# slurm-up.sh -- Slurm 22.05 (Debian 12 packages) for the lxr dev cluster, several compute
# nodes on this one machine. munged + MariaDB + slurmdbd + slurmctld + one slurmd per node,
# all started directly (no systemd), tracked by pid file. Idempotent: restarts Slurm daemons
# only if a config changed, waits until every node is usable.
#
# Layout:
#   ClusterName=lxr
#   node vm          : this host ($(hostname -s)), SLURM_DEV_CPUS CPUs, `slurmd -N vm`
#   nodes lxr-n1..N  : SLURM_DEV_NODES more nodes (default 3), each its own `slurmd -N lxr-nI`
#                      on port 6820+I, address 127.0.0.(10+I) (/etc/hosts), SLURM_DEV_NODE_CPUS
#                      CPUs (default 2 = the real core count: 2 nodes x 2 tasks run at once)
#   partition batch  : Default, node vm, PriorityTier=1,   PreemptMode=REQUEUE
#   partition multi  : nodes lxr-n[1-N], PriorityTier=1,  PreemptMode=REQUEUE (multi-node jobs)
#   partition urgent : every node, PriorityTier=100, PreemptMode=OFF  (its jobs preempt batch
#                      and multi jobs)
#   The Debian build runs several slurmd on one host: per-node pid file, spool dir and log
#   (%n), a port per node. Every slurmd's host name is this host's (`hostname` in a task says
#   vm): a task tells its node by SLURMD_NODENAME. Heterogeneous jobs are scheduled only by
#   the backfill scheduler, hence bf_interval=2 (default 30 s).
#   PreemptType=preempt/partition_prio, PreemptMode=REQUEUE, MinJobAge=300,
#   MaxArraySize=10001, accounting via slurmdbd (real sacct), jobcomp/filetxt too.
#   Memory: CR_Core_Memory + JobAcctGatherParams=OverMemoryKill (no cgroups here): a
#   job whose RSS exceeds its --mem is killed at the next accounting sample (2 s).
#
# Knobs (env):
#   SLURM_DEV_CPUS    CPUs node vm advertises (default 8; > real CPUs => config_overrides)
#   SLURM_DEV_NODES   number of lxr-nI nodes (default 3; 0 = vm alone, no partition multi)
#   SLURM_DEV_NODE_CPUS / SLURM_DEV_NODE_MEM_MB  CPUs / RealMemory of each (default 2 / 4096)
#   SLURM_DEV_MEM_MB  RealMemory (default: real MiB - 1024)
#   SLURM_DEV_DEF_MEM_PER_CPU  DefMemPerCPU in MiB for jobs without --mem (default 512)
#   SLURM_DEV_CLEAN=1 restart slurmctld with -c (forget all jobs)
#   SLURM_DEV_STORE_COMMENT=1  AccountingStoreFlags=job_comment (default off, like most
#                     sites: then sacct's Comment column is EMPTY; squeue still shows it)
#   SLURMDBD_DBPASS   MariaDB password of the slurm DB user (default slurmdbpass)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LOGNAME_TAG=slurm-up; . "$here/lib.sh"

HOST=$LXR_HOST
REAL_CPUS=$(nproc)
CPUS=${SLURM_DEV_CPUS:-8}
REAL_MEM=$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)
MEM=${SLURM_DEV_MEM_MB:-$((REAL_MEM - 1024))}
DBPASS=${SLURMDBD_DBPASS:-slurmdbpass}
DEF_MEM=${SLURM_DEV_DEF_MEM_PER_CPU:-512}
NNODES=${SLURM_DEV_NODES:-3}
NODE_CPUS=${SLURM_DEV_NODE_CPUS:-2}
NODE_MEM=${SLURM_DEV_NODE_MEM_MB:-4096}
NODES=()
for i in $(seq "$NNODES"); do NODES+=("lxr-n$i"); done
ALL_NODES=("$HOST" "${NODES[@]}")

apt_need munge slurm-wlm slurmctld slurmd slurm-client slurmdbd mariadb-server
ensure_user
getent hosts "$HOST" >/dev/null || echo "127.0.0.1 $HOST" >> /etc/hosts
# every node name resolves (a rank's MASTER_ADDR is the first node's name), each to an
# address of its own on the loopback; appended, so 127.0.0.1's reverse name stays the same
for i in $(seq "$NNODES"); do
  grep -qE "^127\.0\.0\.$((10 + i))[[:space:]]+lxr-n$i\$" /etc/hosts || echo "127.0.0.$((10 + i)) lxr-n$i" >> /etc/hosts
done

# ---------------------------------------------------------------- munge
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /etc/munge
install -d -o munge -g munge -m 0711 /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --force; chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
fi
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
  rm -f /run/munge/munged.pid /run/munge/munge.socket.2*       # stale after a crash
  runuser -u munge -- /usr/sbin/munged
  wait_for 10 munge_ok || { echo "munged failed" >&2; tail /var/log/munge/munged.log >&2; exit 1; }
  log "munged started (pid $(cat /run/munge/munged.pid))"
fi

# ---------------------------------------------------------------- MariaDB
install -d -o mysql -g root -m 0755 /run/mysqld
db_ok() { mariadb -uroot -e 'select 1' >/dev/null 2>&1; }
if ! db_ok; then
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
  # mysqld_safe stays in the foreground and restarts a killed mariadbd: detach it,
  # stop it with `mariadb-admin shutdown` (down.sh does)
  setsid /usr/bin/mysqld_safe --user=mysql >/var/log/mysqld_safe-lxr.out 2>&1 </dev/null &
  wait_for 30 db_ok || { echo "mariadb failed" >&2; tail -20 /var/log/mysqld_safe-lxr.out >&2; exit 1; }
  log "mariadb started (pid $(cat /run/mysqld/mysqld.pid))"
fi
mariadb -uroot <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL

# ---------------------------------------------------------------- dirs
install -d -o slurm -g slurm -m 0755 /var/lib/slurm/slurmctld /var/log/slurm
install -d -o root -g root -m 0755 /var/lib/slurm/slurmd
for n in "${ALL_NODES[@]}"; do install -d -o root -g root -m 0755 "/var/lib/slurm/slurmd/$n"; done
touch /var/log/slurm/jobcomp.log; chown slurm:slurm /var/log/slurm/jobcomp.log

# write_if_changed FILE CONTENT -> returns 0 if it changed the file
write_if_changed() {
  if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; then return 1; fi
  printf '%s\n' "$2" > "$1"; return 0
}

# ---------------------------------------------------------------- slurm.conf
overrides=""
[ "$CPUS" -gt "$REAL_CPUS" ] && overrides="SlurmdParameters=config_overrides"
[ "${SLURM_DEV_STORE_COMMENT:-0}" = 1 ] && overrides="$overrides
AccountingStoreFlags=job_comment"
node_lines="NodeName=$HOST CPUs=$CPUS RealMemory=$MEM Weight=1 State=UNKNOWN"
multi=""
if [ "$NNODES" -gt 0 ]; then
  for i in $(seq "$NNODES"); do
    node_lines="$node_lines
NodeName=lxr-n$i NodeHostname=lxr-n$i NodeAddr=127.0.0.$((10 + i)) Port=$((6820 + i)) CPUs=$NODE_CPUS RealMemory=$NODE_MEM Weight=10 State=UNKNOWN"
  done
  multi="PartitionName=multi  Nodes=lxr-n[1-$NNODES] Default=NO MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE"
fi
urgent_nodes=$(IFS=,; echo "${ALL_NODES[*]}")
conf=$(cat <<CONF
# generated by lxr deploy/dev-cluster/slurm-up.sh -- dev cluster, all nodes on this host
ClusterName=lxr
SlurmctldHost=$HOST
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# no mailer configured: avoids "Configured MailProg is invalid"
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd-%n.pid
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd/%n
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
SchedulerType=sched/backfill
# heterogeneous jobs start only in a backfill pass: every 2 s, not 30
SchedulerParameters=bf_interval=2
SelectType=select/cons_tres
# memory is a consumable resource, like on most real clusters; DefMemPerCPU keeps a job
# without --mem from taking the whole node's memory
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$DEF_MEM
# finished jobs stay visible in squeue/scontrol for MinJobAge seconds
MinJobAge=300
MaxArraySize=10001
MaxJobCount=50000
KillWait=5
InactiveLimit=0
Waittime=0
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$HOST
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
JobAcctGatherParams=OverMemoryKill
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
# preemption: a job in a higher PriorityTier partition requeues lower-tier jobs
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
$overrides
$node_lines
PartitionName=batch  Nodes=$HOST Default=YES MaxTime=INFINITE State=UP PriorityTier=1   PreemptMode=REQUEUE
$multi
PartitionName=urgent Nodes=$urgent_nodes Default=NO  MaxTime=INFINITE State=UP PriorityTier=100 PreemptMode=OFF
CONF
)
changed=0
# written before slurmdbd starts: sacctmgr reads it to find slurmdbd
write_if_changed /etc/slurm/slurm.conf "$conf" && changed=1
[ -f /etc/slurm/cgroup.conf ] || printf 'CgroupPlugin=cgroup/v1\n' > /etc/slurm/cgroup.conf

# ---------------------------------------------------------------- slurmdbd
dbd_conf=$(cat <<CONF
# generated by lxr deploy/dev-cluster/slurm-up.sh
AuthType=auth/munge
DbdHost=$HOST
DbdPort=6819
SlurmUser=slurm
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=slurm_acct_db
CONF
)
dbd_changed=0
write_if_changed /etc/slurm/slurmdbd.conf "$dbd_conf" && dbd_changed=1
chown slurm:slurm /etc/slurm/slurmdbd.conf; chmod 0600 /etc/slurm/slurmdbd.conf
[ "$dbd_changed" = 1 ] && stop_pidfile /run/slurmdbd.pid slurmdbd
if ! alive /run/slurmdbd.pid; then
  rm -f /run/slurmdbd.pid
  /usr/sbin/slurmdbd
  log "slurmdbd started (pid $(cat /run/slurmdbd.pid 2>/dev/null || echo '?'))"
fi
# first start creates the tables (a few seconds)
wait_for 60 sacctmgr -n list cluster || { echo "slurmdbd not answering" >&2; tail -20 /var/log/slurm/slurmdbd.log >&2; exit 1; }
# the cluster must exist in the DB before slurmctld registers (else it adds itself late)
sacctmgr -n -P list cluster format=cluster | grep -qx lxr || sacctmgr -i add cluster lxr >/dev/null

# ---------------------------------------------------------------- slurmctld / slurmd
slurmd_pid() { echo "/run/slurmd-$1.pid"; }
if [ "$changed" = 1 ]; then
  stop_pidfile /run/slurmd.pid slurmd   # the single-node layout's pid file
  for pf in /run/slurmd-*.pid; do [ -e "$pf" ] && stop_pidfile "$pf" "slurmd ${pf#/run/slurmd-}"; done
  stop_pidfile /run/slurmctld.pid slurmctld
fi
[ "${SLURM_DEV_CLEAN:-0}" = 1 ] && stop_pidfile /run/slurmctld.pid slurmctld   # -c acts only on a start
if ! alive /run/slurmctld.pid; then
  extra=(); [ "${SLURM_DEV_CLEAN:-0}" = 1 ] && extra=(-c)
  rm -f /run/slurmctld.pid
  /usr/sbin/slurmctld "${extra[@]}" -i
  wait_for 10 test -s /run/slurmctld.pid
  log "slurmctld started (pid $(cat /run/slurmctld.pid))"
fi
ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
wait_for 20 ctld_up || { echo "slurmctld not answering" >&2; tail -20 /var/log/slurm/slurmctld.log >&2; exit 1; }
# The single-node layout kept the job steps' sockets (vm_JOB.STEP) in the spool dir itself: a
# link in the node's own spool dir lets the new slurmd find the steps still running there.
for sock in /var/lib/slurm/slurmd/"$HOST"_*; do
  if [ -S "$sock" ] && [ ! -e "/var/lib/slurm/slurmd/$HOST/${sock##*/}" ]; then
    ln -s "$sock" "/var/lib/slurm/slurmd/$HOST/"
  fi
done
for n in "${ALL_NODES[@]}"; do
  pf=$(slurmd_pid "$n")
  alive "$pf" && continue
  rm -f "$pf"
  /usr/sbin/slurmd -N "$n"
  wait_for 10 test -s "$pf"
  log "slurmd -N $n started (pid $(cat "$pf"))"
done

# wait for every node to be usable
node_ok() {
  local st; st=$(sinfo -h -n "$1" -o %T 2>/dev/null | head -1)
  case "$st" in
    idle*|mixed*|allocated*|completing*) return 0 ;;
    down*|drain*|fail*) scontrol update nodename="$1" state=resume >/dev/null 2>&1 || true ;;
  esac
  return 1
}
for n in "${ALL_NODES[@]}"; do
  wait_for 30 node_ok "$n" || { echo "node $n not usable" >&2; sinfo -R >&2; exit 1; }
done
sinfo
pids=""; for n in "${ALL_NODES[@]}"; do pids="$pids $n=$(cat "$(slurmd_pid "$n")")"; done
log "slurm up: munged $(cat /run/munge/munged.pid), mariadb $(cat /run/mysqld/mysqld.pid), slurmdbd $(cat /run/slurmdbd.pid), slurmctld $(cat /run/slurmctld.pid), slurmd$pids; nodes: $HOST ($CPUS CPUs)${NODES:+, ${NODES[*]} ($NODE_CPUS CPUs each)}"
