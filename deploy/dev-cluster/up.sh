#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# up.sh -- bring up the whole lxr dev cluster (idempotent, non-interactive, as root):
#   sshd (127.0.0.1:2222, user lxr), Slurm 22.05 + slurmdbd/MariaDB, Grid Engine 8.1.9,
#   PostgreSQL (127.0.0.1:5432, db/role lxr), podman (rootless for lxr) with the test image
#   localhost/lxr-test-python, and the `prometheus` package (installed, NOT started:
#   prometheus-up.sh does that).
# Each part runs alone too: sshd-up.sh, slurm-up.sh, sge-up.sh, postgres-up.sh, podman-up.sh.
# Then: . deploy/dev-cluster/env.sh ; deploy/dev-cluster/check.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LOGNAME_TAG=up; . "$here/lib.sh"
export _lxr_t0

# package lists: update once if there are none yet (fresh machine)
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
  apt-get update -qq
fi
# one apt run for everything is much faster than one per part
dpkg-query -W -f='${Status}' gridengine-master 2>/dev/null | grep -q 'install ok installed' || sge_preseed
apt_need "${LXR_DEV_PACKAGES[@]}"

for part in sshd slurm sge postgres podman; do
  log "$part ($part-up.sh)"
  "$here/$part-up.sh"
done
LOGNAME_TAG=up log "all up"
