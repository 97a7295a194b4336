#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# down.sh [--wipe] -- stop everything up.sh started, by pid file (never by name).
#   --wipe  also forget all state: Slurm jobs + accounting DB + jobcomp log, the SGE
#           cell (re-initialised by sge-up.sh) and its accounting, and the lxr
#           PostgreSQL database. Packages, the user, keys and configs stay.
# Note: the daemons serve the whole machine; don't --wipe while others use them.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LOGNAME_TAG=down; . "$here/lib.sh"
WIPE=0; [ "${1:-}" = --wipe ] && WIPE=1

# --- Grid Engine: execd first, then qmaster (qmaster takes ~7 s to exit)
for pf in /var/spool/gridengine/execd/*/execd.pid; do [ -e "$pf" ] && stop_pidfile "$pf" sge_execd; done
stop_pidfile /var/spool/gridengine/qmaster/qmaster.pid sge_qmaster

# --- Slurm
for pf in /run/slurmd-*.pid /run/slurmd.pid; do   # one per node (slurmd -N NODE); the old single one
  [ -e "$pf" ] && stop_pidfile "$pf" "slurmd $(basename "$pf" .pid)"
done
stop_pidfile /run/slurmctld.pid slurmctld
if [ "$WIPE" = 1 ] && mariadb -uroot -e 'select 1' >/dev/null 2>&1; then
  mariadb -uroot -e 'DROP DATABASE IF EXISTS slurm_acct_db' && log "dropped slurm_acct_db"
fi
stop_pidfile /run/slurmdbd.pid slurmdbd
if alive /run/mysqld/mysqld.pid; then
  # mysqld_safe restarts a killed mariadbd: ask the server itself to shut down
  mariadb-admin -uroot shutdown 2>/dev/null || stop_pidfile /run/mysqld/mysqld.pid mariadbd
  for _ in $(seq 100); do [ -e /run/mysqld/mysqld.pid ] || break; sleep 0.1; done
  log "stopped mariadb"
fi
stop_pidfile /run/munge/munged.pid munged

# --- PostgreSQL (only the cluster postgres-up.sh uses)
if command -v pg_lsclusters >/dev/null; then
  pg_lsclusters -h | while read -r ver cl port st _; do
    [ "$cl" = main ] || continue
    if [ "$WIPE" = 1 ] && [ "$st" = online ]; then
      runuser -u postgres -- psql -X -q -p "$port" -c 'DROP DATABASE IF EXISTS lxr' -c 'DROP ROLE IF EXISTS lxr' \
        && log "dropped database and role lxr"
    fi
    if [ "$st" = online ]; then pg_ctlcluster "$ver" "$cl" stop -m fast && log "stopped postgres $ver/$cl"; fi
  done
fi

# --- sshd (ours only)
stop_pidfile /run/sshd-lxr.pid sshd-lxr

if [ "$WIPE" = 1 ]; then
  rm -rf /var/lib/slurm/slurmctld/* /var/lib/slurm/slurmd/*
  : > /var/log/slurm/jobcomp.log 2>/dev/null || true
  rm -rf /var/spool/gridengine/spooldb/* /var/spool/gridengine/qmaster/* /var/spool/gridengine/execd/*
  rm -f /var/lib/gridengine/default/common/accounting
  log "state wiped"
fi
log "down"
