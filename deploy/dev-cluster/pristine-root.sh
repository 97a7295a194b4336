#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# pristine-root.sh [--keep] [ROOT] -- prove that a fresh clone works on a pristine Debian 12:
#   1. debootstrap a minimal bookworm into ROOT (default /var/tmp/lxr-pristine; wiped first)
#   2. git clone this repository's HEAD (committed work only) into ROOT/src/lxr
#   3. prepare, with the network (apt, a Debian mirror and PyPI are all it reaches): apt-get
#      install what .ci/run and the dev cluster install (lib.sh's package list, busybox, curl),
#      deploy/dev-cluster/python-up.sh (python3-venv, uv from PyPI), the test image's root
#      filesystem (podman-up.sh --rootfs-only: debootstrap), `uv sync --frozen`
#   4. enter ROOT with its own network (loopback only, brought up inside), PID, mount, UTS
#      and IPC namespaces, so its sshd, Slurm, Grid Engine, PostgreSQL and MariaDB never meet
#      the host's dev cluster; everything they started dies with the namespace, and run:
#        uv run lxr apply -f examples/quickstart.yaml --wait    (README, no daemons yet)
#        uv run pytest                                          (README, daemons not up: skips)
#        bash .ci/run                                           (CI=true: up.sh, lint, all tests)
# The isolated namespace has no route to the package registries, which is why step 3 installs
# the packages first (with UV_OFFLINE=1 inside; .ci/run's `apt-get update` only warns there).
# Needs root, debootstrap (installed if missing) and util-linux's unshare. Prints the time of
# each phase; the last line is "pristine-root: PASSED in N s" or names the failed phase.
# --keep: leave ROOT in place afterwards (it is ~3 GiB), for a look inside (chroot ROOT).
# Knobs: LXR_PRISTINE_MIRROR (default http://deb.debian.org/debian);
#        LXR_PRISTINE_SKIP="readme-pytest ..." skips those of the three isolated phases
#        (readme-apply readme-pytest ci-run), e.g. to prove .ci/run alone; the last line says so.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LOGNAME_TAG=pristine; . "$here/lib.sh"
KEEP=0
if [ "${1:-}" = --keep ]; then KEEP=1; shift; fi
ROOT=${1:-/var/tmp/lxr-pristine}
MIRROR=${LXR_PRISTINE_MIRROR:-http://deb.debian.org/debian}
REPO=$(git -C "$here" rev-parse --show-toplevel)
NAME=lxr-pristine   # host name inside (UTS namespace): Slurm's node, Grid Engine's host
[ "$(id -u)" = 0 ] || { echo "pristine-root.sh: run as root" >&2; exit 2; }
case "$ROOT" in /|/usr|/var|/tmp|/root|"$REPO") echo "refusing ROOT=$ROOT" >&2; exit 2 ;; esac

declare -A took
phase_t0=$SECONDS
phase() { # phase NAME: end the current phase (its time is kept), start the next
  [ -n "${cur_phase:-}" ] && took[$cur_phase]=$((SECONDS - phase_t0))
  cur_phase=$1; phase_t0=$SECONDS; log "== $1"
}
total_t0=$SECONDS
report() {
  local rc=$? p
  [ -n "${cur_phase:-}" ] && took[$cur_phase]=$((SECONDS - phase_t0))
  for p in debootstrap clone prepare readme-apply readme-pytest ci-run; do
    [ -n "${took[$p]:-}" ] && printf '  %-14s %5ss\n' "$p" "${took[$p]}"
  done
  if [ "$rc" = 0 ]; then
    echo "pristine-root: PASSED in $((SECONDS - total_t0)) s${LXR_PRISTINE_SKIP:+ (skipped: $LXR_PRISTINE_SKIP)}"
  else
    echo "pristine-root: FAILED in phase ${cur_phase:-?} after $((SECONDS - total_t0)) s (exit $rc)"
  fi
  [ "$KEEP" = 1 ] || { [ -d "$ROOT" ] && rm -rf --one-file-system "$ROOT"; }
}
trap report EXIT

# ---------------------------------------------------------------- 1. debootstrap
phase debootstrap
apt_need debootstrap git
rm -rf --one-file-system "$ROOT"
mkdir -p "$ROOT"
debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" > "$ROOT.debootstrap.log" 2>&1 \
  || { tail -20 "$ROOT.debootstrap.log" >&2; exit 1; }
echo "$NAME" > "$ROOT/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$NAME" > "$ROOT/etc/hosts"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"   # for step 3 only: inside there is no network
# the certificate authorities this host added itself (a TLS-intercepting proxy on the way to
# PyPI, say): trusted in the root too once its ca-certificates package is installed
if compgen -G '/usr/local/share/ca-certificates/*' >/dev/null; then
  mkdir -p "$ROOT/usr/local/share/ca-certificates"
  cp -r /usr/local/share/ca-certificates/. "$ROOT/usr/local/share/ca-certificates/"
fi

# ---------------------------------------------------------------- 2. clone
phase clone
git clone -q --no-local "$REPO" "$ROOT/src/lxr"
git -C "$ROOT/src/lxr" checkout -q "$(git -C "$REPO" rev-parse HEAD)"
log "clone of $(git -C "$ROOT/src/lxr" log -1 --format='%h %s')"

# in_root NET CMD: run CMD (a bash script) in ROOT as PID 1 of new PID, mount, UTS and IPC
# namespaces; NET=isolated adds a network namespace of its own (loopback only).
in_root() {
  local net=() env
  [ "$1" = isolated ] && net=(--net)
  env=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
       LANG=C.UTF-8 TERM=dumb PYTHONDONTWRITEBYTECODE="${PYTHONDONTWRITEBYTECODE:-}"
       PYTHONUNBUFFERED=1)
  # where this host's clients find the CA bundle (the same path inside, see above)
  local v
  for v in SSL_CERT_FILE SSL_CERT_DIR PIP_CERT REQUESTS_CA_BUNDLE CURL_CA_BUNDLE; do
    [ -n "${!v:-}" ] && env+=("$v=${!v}")
  done
  [ "$1" = isolated ] && env+=(UV_OFFLINE=1)
  unshare --pid --fork --mount --uts --ipc "${net[@]}" -- /bin/bash -euo pipefail -c '
    root=$1; name=$2; shift 2
    mount --make-rprivate /
    mount --bind "$root" "$root"   # a mount point of its own, for pivot_root below
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs -o mode=1777 shm "$root/dev/shm"   # PostgreSQL: not the host shm
    if mount -t sysfs sysfs "$root/sys" 2>/dev/null; then
      # a fresh sysfs has no cgroup hierarchy mounted in it: runc (podman) needs them
      mount --rbind /sys/fs/cgroup "$root/sys/fs/cgroup"
    else
      mount --rbind /sys "$root/sys"
    fi
    hostname "$name"
    # pivot_root, not chroot: the kernel refuses new user namespaces to a chrooted process,
    # and rootless podman (containers of the cluster user) needs them
    cd "$root"
    mkdir -p .host
    pivot_root . .host
    cd /
    umount -l /.host
    exec /usr/bin/env -i "$@"
  ' in_root "$ROOT" "$NAME" "${env[@]}" /bin/bash -Eeuo pipefail -c "$2"
}

# ---------------------------------------------------------------- 3. prepare (network)
phase prepare
in_root shared '
  cd /src/lxr
  apt-get update -qq
  . deploy/dev-cluster/lib.sh
  apt_need ca-certificates   # its postinst adds the host CAs copied above
  sge_preseed
  apt_need "${LXR_DEV_PACKAGES[@]}" busybox curl
  bash deploy/dev-cluster/python-up.sh
  # the test image'"'"'s root filesystem comes from a Debian mirror: built (and cached) now
  LXR_DEV_IMAGE_MIRROR='"$MIRROR"' bash deploy/dev-cluster/podman-up.sh --rootfs-only
  uv sync --frozen --compile-bytecode
  # The tests package the example projects (pip --target through uv, with build isolation):
  # offline inside, uv finds their build backends (pdm-backend, setuptools...) only in its
  # cache, so fetch them now, by the same command
  for p in $(find tests/fixtures examples -name pyproject.toml | sort); do
    d=$(dirname "$p")
    uv pip install -q --python .venv/bin/python --no-deps --target "/tmp/warm/${d//\//_}" "$d"
  done
  # and the temporary projects tests write (setuptools>=61, as tests/test_artifacts.py does)
  mkdir -p /tmp/warm/st/src/warm
  printf "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n[project]\nname = \"warm\"\nversion = \"0\"\n" > /tmp/warm/st/pyproject.toml
  : > /tmp/warm/st/src/warm/__init__.py
  uv pip install -q --python .venv/bin/python --no-deps --target /tmp/warm/st-site /tmp/warm/st
  rm -rf /tmp/warm /etc/resolv.conf
'

# ---------------------------------------------------------------- 4. isolated
# The README's commands first, on a machine without the daemons, then .ci/run (each phase a
# namespace of its own; whatever a phase started ends with it). Inside: loopback up, plus
# 192.0.2.1 (TEST-NET-1, never routed) on it, because a real machine has an address besides
# 127.0.0.1: without one, getaddrinfo(AI_ADDRCONFIG) finds no IPv4 and slurmdbd cannot listen.
net_up='busybox ip link set lo up; busybox ip addr add 192.0.2.1/32 dev lo; cd /src/lxr'
skip() { # skip PHASE: true (and says so) when LXR_PRISTINE_SKIP names it
  case " ${LXR_PRISTINE_SKIP:-} " in *" $1 "*) log "skipped (LXR_PRISTINE_SKIP)"; return 0 ;; esac
  return 1
}
phase readme-apply
skip readme-apply || in_root isolated "$net_up"'
  timeout 600 uv run lxr apply -f examples/quickstart.yaml --wait'
phase readme-pytest
skip readme-pytest || in_root isolated "$net_up"'
  timeout 2400 uv run pytest > /tmp/readme-pytest.log 2>&1 || {
    sed -n "/^=* FAILURES =*\$/,\$p" /tmp/readme-pytest.log | grep -v "^SKIPPED" | tail -300
    exit 1; }
  tail -3 /tmp/readme-pytest.log'
phase ci-run
skip ci-run || in_root isolated "$net_up"'
  timeout 3600 bash .ci/run'
