# lib.sh -- helpers shared by the lxr dev-cluster scripts (sourced, not run).
# shellcheck shell=bash disable=SC2034
# Conventions: everything runs as root, is idempotent and non-interactive; daemons
# are started directly (there is no systemd) and tracked by pid file only.

export DEBIAN_FRONTEND=noninteractive
LXR_USER=${LXR_DEV_USER:-lxr}          # non-root submit user
LXR_KEYDIR=/var/lib/lxr-dev            # ssh key, known_hosts, ssh_config
LXR_HOST=$(hostname -s)

# PID 1 here is not an init that reaps promptly: a stopped daemon lingers as a
# zombie for ~2 s and `kill -0` still succeeds. Treat state Z as "not running".
running() {
  local s
  s=$(sed -E 's/^.*\) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
  [ -n "$s" ] && [ "$s" != Z ]
}
alive() { [ -s "$1" ] && running "$(cat "$1" 2>/dev/null)"; }

_lxr_t0=${_lxr_t0:-$EPOCHREALTIME}
_lxr_step="start"
log() { _lxr_step="$*"; awk -v a="$_lxr_t0" -v b="$EPOCHREALTIME" -v n="${LOGNAME_TAG:-dev}" -v m="$*" \
        'BEGIN{printf "[%s %6.1fs] %s\n", n, b-a, m}'; }

# On error: name the script, the line, the command, its exit status and the last step logged,
# so a failure on a new machine is never a silent exit 1. -E: functions inherit the trap. A
# command substitution's own failures are reported by the command that uses its value.
_lxr_on_err() {
  local rc=$?
  [ "$BASH_SUBSHELL" = 0 ] || return "$rc"
  printf '[%s] FAILED (exit %s) at %s line %s: %s\n[%s] last step: %s\n' \
    "${LOGNAME_TAG:-dev}" "$rc" "${BASH_SOURCE[1]:-$0}" "${BASH_LINENO[0]}" "$BASH_COMMAND" \
    "${LOGNAME_TAG:-dev}" "$_lxr_step" >&2
  return "$rc"
}
set -E
trap _lxr_on_err ERR

# apt_need PKG... : install the packages that are not installed yet.
# policy-rc.d (exit 101) stops postinst scripts from trying to start services.
apt_need() {
  local p missing=() installed
  # dpkg-query exits 1 when it has never heard of a package (a fresh machine): that only
  # means "not installed", so its status must not stop the script under pipefail.
  installed=" $( { dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "$@" 2>/dev/null || true; } | awk '$2=="ii"{printf "%s ", $1}')"
  for p in "$@"; do
    [[ "$installed" == *" $p "* ]] || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  fi
  local aptlog=${TMPDIR:-/tmp}/lxr-dev-apt.log
  log "apt install ${missing[*]}"
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$aptlog" 2>&1; then
    apt-get update -qq
    apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$aptlog" 2>&1 \
      || { echo "apt-get install failed, see $aptlog" >&2; tail -20 "$aptlog" >&2; return 1; }
  fi
}

# ensure_user: the non-root submit user. A locked password ("!" from useradd)
# makes sshd with UsePAM=no refuse even key logins, so set "*" instead.
ensure_user() {
  id "$LXR_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$LXR_USER"
  case "$(getent shadow "$LXR_USER" | cut -d: -f2)" in '!'*) usermod -p '*' "$LXR_USER" ;; esac
}

# stop_pidfile PIDFILE NAME : TERM, wait up to 15 s, then KILL. Never by name.
stop_pidfile() {
  local pf=$1 name=$2 pid
  [ -s "$pf" ] || { rm -f "$pf"; return 0; }
  pid=$(cat "$pf")
  if running "$pid"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 150); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then log "$name ($pid) ignored TERM, sending KILL"; kill -9 "$pid" 2>/dev/null || true; fi
    log "stopped $name ($pid)"
  fi
  rm -f "$pf"
}

# wait_for SECONDS CMD... : poll CMD every 0.2 s until it succeeds, for SECONDS at most (of
# wall time: a CMD that itself takes long, like sacctmgr retrying a dead slurmdbd, counts too)
wait_for() {
  local end=$(( SECONDS + $1 )); shift
  while :; do
    "$@" >/dev/null 2>&1 && return 0
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.2
  done
}

# sge_preseed: answers for the gridengine postinst (creates the cell, no questions)
sge_preseed() {
  local pkg
  for pkg in gridengine-common gridengine-master gridengine-client gridengine-exec; do
    printf '%s\n' "$pkg shared/gridengineconfig boolean true" \
                  "$pkg shared/gridenginecell string default" \
                  "$pkg shared/gridenginemaster string $LXR_HOST"
  done | debconf-set-selections
}

# every Debian package the dev cluster uses (up.sh installs them in one apt run)
LXR_DEV_PACKAGES=(openssh-server openssh-client rsync
  munge slurm-wlm slurmctld slurmd slurm-client slurmdbd mariadb-server
  gridengine-master gridengine-exec gridengine-client
  postgresql prometheus
  podman runc uidmap slirp4netns debootstrap)
