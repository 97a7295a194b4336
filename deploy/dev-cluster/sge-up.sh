#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# sge-up.sh -- single-host Grid Engine 8.1.9 (Debian 12 gridengine-* packages) for the
# lxr dev cluster. This host is qmaster + exec + submit + admin host. No systemd.
#
# Idempotent: preseeds debconf, installs missing packages, initialises the cell if
# missing, fixes host name resolution (host_aliases), starts sge_qmaster and
# sge_execd directly, (re)applies the config every run:
#   all.q     @allhosts, SGE_DEV_SLOTS slots (default 4), /bin/bash, unix_behavior
#   urgent.q  only for jobs with `-l urgent` (FORCED bool complex `urgent`),
#             subordinate_list all.q=1: a job there SUSPENDS all.q jobs (state S)
#   PE smp ($pe_slots: all slots on one host) and PE mpi ($fill_up: slots over the hosts,
#   here the one host), both in every queue's pe_list, so `qsub -pe mpi 4` gets 4 slots
#   and $PE_HOSTFILE; scheduler interval 1 s; load_report_time 2 s;
#   min_uid/min_gid 0; accounting flushed at once; errors cleared (qmod -c '*').
# Knobs: SGE_DEV_SLOTS (default 4).
# Clients need no environment: /usr/bin/q* read SGE_ROOT/SGE_CELL from /etc/default/gridengine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LOGNAME_TAG=sge-up; . "$here/lib.sh"

export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
HOST=$LXR_HOST
SLOTS=${SGE_DEV_SLOTS:-4}
COMMON=$SGE_ROOT/$SGE_CELL/common
SPOOL=/var/spool/gridengine
QM_PID=$SPOOL/qmaster/qmaster.pid
# execd spools under its *resolved* host name (here "localhost")
ex_pidfile() { ls $SPOOL/execd/*/execd.pid 2>/dev/null | head -1; }
# qconf prints success messages on stderr: stay quiet unless it fails
q() { local out; out=$("$@" 2>&1) || { echo "FAILED: $* -> $out" >&2; return 1; }; }

getent hosts "$HOST" >/dev/null || echo "127.0.0.1 $HOST" >> /etc/hosts
dpkg-query -W -f='${Status}' gridengine-master 2>/dev/null | grep -q 'install ok installed' || sge_preseed
apt_need gridengine-master gridengine-exec gridengine-client
ensure_user

# ---------------------------------------------------------------- cell
# the postinst runs init_cluster when preseeded; redo it if missing (or after --wipe)
if [ ! -s "$COMMON/bootstrap" ] || [ ! -e $SPOOL/spooldb/sge ]; then
  install -d -o sgeadmin -g sgeadmin -m 0755 "$SGE_ROOT" "$SGE_ROOT/$SGE_CELL" "$COMMON" \
    $SPOOL/qmaster $SPOOL/qmaster/job_scripts $SPOOL/spooldb $SPOOL/execd
  install -m 0644 -o sgeadmin -g sgeadmin /usr/share/gridengine/default-bootstrap "$COMMON/bootstrap"
  su -s /bin/sh -c "/usr/share/gridengine/scripts/init_cluster $SGE_ROOT $SGE_CELL $SPOOL/spooldb sgeadmin" sgeadmin >/dev/null
  log "cell initialised"
fi
install -d -o sgeadmin -g sgeadmin -m 0755 $SPOOL/execd /run/gridengine

# GOTCHA: `vm` resolves to 127.0.0.1 whose reverse name is `localhost`; commlib then
# rejects every client ("client IP resolved to host name localhost. This is not
# identical to clients host name vm"). host_aliases makes them one host. Debian's own
# /etc/hosts has `127.0.1.1 <host>` instead: the host name then resolves to itself, but a
# client's connection over loopback comes from 127.0.0.1 (`localhost`), so that name is an
# alias too.
aliases=()
for ip in "$(getent ahostsv4 "$HOST" | awk 'NR==1{print $1}')" 127.0.0.1; do
  rname=$(getent hosts "$ip" | awk 'NR==1{print $2}')
  if [ -n "$rname" ] && [ "$rname" != "$HOST" ] && [[ " ${aliases[*]} " != *" $rname "* ]]; then
    aliases+=("$rname")
  fi
done
if [ ${#aliases[@]} -gt 0 ]; then
  want="$HOST ${aliases[*]}"
  if [ "$(cat $COMMON/host_aliases 2>/dev/null)" != "$want" ]; then
    echo "$want" > $COMMON/host_aliases; chown sgeadmin:sgeadmin $COMMON/host_aliases
  fi
fi

# ---------------------------------------------------------------- qmaster
qm_ok() { qconf -sh >/dev/null 2>&1; }
if ! alive $QM_PID || ! qm_ok; then
  alive $QM_PID && stop_pidfile $QM_PID sge_qmaster
  # a start with bad name resolution rewrites act_qmaster to "localhost": reset it
  echo "$HOST" > $COMMON/act_qmaster; chown sgeadmin:sgeadmin $COMMON/act_qmaster
  /usr/sbin/sge_qmaster
  wait_for 30 qm_ok || { echo "sge_qmaster not answering" >&2; tail $SPOOL/qmaster/messages >&2; exit 1; }
  log "sge_qmaster started (pid $(cat $QM_PID))"
fi

# ---------------------------------------------------------------- config
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# apply FILE-based change only when it differs (keeps a no-op re-run cheap and quiet)
# global config: -Mconf takes the config NAME from the FILE NAME, hence "global"
# (qconf wraps long values with a trailing backslash: join those lines first)
qconf -sconf global | sed -e ':a' -e '/\\$/{N;s/ *\\\n */ /;ba' -e '}' > $tmp/global.cur
sed -E -e 's/^min_uid .*/min_uid                      0/' \
       -e 's/^min_gid .*/min_gid                      0/' \
       -e 's/^load_report_time .*/load_report_time             00:00:02/' \
       -e 's/^max_unheard .*/max_unheard                  00:01:00/' \
       -e 's/^(reporting_params +).*/\1accounting=true reporting=false flush_time=00:00:01 joblog=false sharelog=00:00:00 accounting_flush_time=00:00:00/' \
       -e '/^sharelog=/d' $tmp/global.cur > $tmp/global
cmp -s $tmp/global $tmp/global.cur || q qconf -Mconf $tmp/global

qconf -ssconf > $tmp/sched.cur
sed -E -e 's/^schedule_interval .*/schedule_interval                 0:0:1/' \
       -e 's/^flush_submit_sec .*/flush_submit_sec                  1/' \
       -e 's/^flush_finish_sec .*/flush_finish_sec                  1/' $tmp/sched.cur > $tmp/sched
cmp -s $tmp/sched $tmp/sched.cur || q qconf -Msconf $tmp/sched

qconf -sh 2>/dev/null | grep -qx "$HOST" || q qconf -ah "$HOST"
qconf -ss 2>/dev/null | grep -qx "$HOST" || q qconf -as "$HOST"
if ! qconf -se "$HOST" >/dev/null 2>&1; then
  printf '%s\n' "hostname $HOST" "load_scaling NONE" "complex_values NONE" "user_lists NONE" \
    "xuser_lists NONE" "projects NONE" "xprojects NONE" "usage_scaling NONE" "report_variables NONE" > $tmp/exechost
  q qconf -Ae $tmp/exechost
fi
printf 'group_name @allhosts\nhostlist %s\n' "$HOST" > $tmp/hgrp
if ! qconf -shgrp @allhosts >/dev/null 2>&1; then q qconf -Ahgrp $tmp/hgrp
elif ! qconf -shgrp @allhosts | grep -qE "^hostlist +$HOST\$"; then q qconf -Mhgrp $tmp/hgrp; fi

mkpe() {  # name allocation_rule
  cat > $tmp/pe.$1 <<PE
pe_name            $1
slots              999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    $2
control_slaves     TRUE
job_is_first_task  TRUE
urgency_slots      min
accounting_summary TRUE
qsort_args         NONE
PE
  if ! qconf -sp "$1" >/dev/null 2>&1; then q qconf -Ap $tmp/pe.$1
  elif ! diff -q <(qconf -sp "$1" | awk '{$1=$1; print}') <(awk '{$1=$1; print}' $tmp/pe.$1) >/dev/null; then
    q qconf -Mp $tmp/pe.$1
  fi
}
mkpe smp '$pe_slots'
mkpe mpi '$fill_up'

# FORCED boolean complex: only jobs submitted with `-l urgent` may use urgent.q
if ! qconf -sc | grep -q '^urgent '; then
  qconf -sc > $tmp/complex
  echo 'urgent              urg        BOOL      ==    FORCED      NO         FALSE    0' >> $tmp/complex
  q qconf -Mc $tmp/complex
fi

mkqueue() {  # name seq_no subordinate_list complex_values
  cat > $tmp/$1 <<Q
qname                 $1
hostlist              @allhosts
seq_no                $2
load_thresholds       NONE
suspend_thresholds    NONE
nsuspend              1
suspend_interval      00:05:00
priority              0
min_cpu_interval      00:05:00
processors            UNDEFINED
qtype                 BATCH INTERACTIVE
ckpt_list             NONE
pe_list               smp mpi
rerun                 FALSE
slots                 $SLOTS
tmpdir                /tmp
shell                 /bin/bash
prolog                NONE
epilog                NONE
shell_start_mode      unix_behavior
starter_method        NONE
suspend_method        NONE
resume_method         NONE
terminate_method      NONE
notify                00:00:60
owner_list            NONE
user_lists            NONE
xuser_lists           NONE
subordinate_list      $3
complex_values        $4
projects              NONE
xprojects             NONE
calendar              NONE
initial_state         default
s_rt                  INFINITY
h_rt                  INFINITY
s_cpu                 INFINITY
h_cpu                 INFINITY
s_fsize               INFINITY
h_fsize               INFINITY
s_data                INFINITY
h_data                INFINITY
s_stack               INFINITY
h_stack               INFINITY
s_core                INFINITY
h_core                INFINITY
s_rss                 INFINITY
h_rss                 INFINITY
s_vmem                INFINITY
h_vmem                INFINITY
Q
  if ! qconf -sq "$1" >/dev/null 2>&1; then q qconf -Aq $tmp/$1
  elif ! diff -q <(qconf -sq "$1" | awk '{$1=$1; print}') <(awk '{$1=$1; print}' $tmp/$1) >/dev/null; then
    q qconf -Mq $tmp/$1
  fi
}
mkqueue all.q 0 NONE NONE
mkqueue urgent.q 1 all.q=1 urgent=TRUE

# ---------------------------------------------------------------- execd
if ! alive "$(ex_pidfile)"; then
  rm -f $SPOOL/execd/*/execd.pid
  /usr/sbin/sge_execd
  for _ in $(seq 50); do [ -n "$(ex_pidfile)" ] && break; sleep 0.2; done
  log "sge_execd started (pid $(cat "$(ex_pidfile)"))"
fi
# wait until the queue instance reports load and has no a(larm)/u(nknown) state
qi_ok() {
  local line; line=$(qstat -f -q "all.q@$HOST" 2>/dev/null | awk -v q="all.q@$HOST" '$1==q')
  [ -n "$line" ] && [ "$(echo "$line" | awk '{print $4}')" != "-NA-" ] && [ -z "$(echo "$line" | awk '{print $6}')" ]
}
wait_for 30 qi_ok || { qmod -c '*' >/dev/null 2>&1 || true; }
# clear an E(rror) state left over from an earlier run (e.g. a min_uid change race)
qmod -c '*' >/dev/null 2>&1 || true
qstat -f
log "sge up: sge_qmaster $(cat $QM_PID), sge_execd $(cat "$(ex_pidfile)"), $SLOTS slots in all.q"
