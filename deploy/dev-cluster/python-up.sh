#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# python-up.sh -- what the README's two commands need on a fresh Debian 12: python3 (3.11)
# with venv support, git, and uv. uv comes from PyPI into its own venv /opt/lxr-uv (Debian's
# python refuses `pip install` into the system interpreter, PEP 668), linked as
# /usr/local/bin/uv. Nothing happens when uv is already on PATH. Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LOGNAME_TAG=python-up; . "$here/lib.sh"

apt_need python3 python3-venv git ca-certificates
if command -v uv >/dev/null 2>&1; then
  log "uv already there: $(command -v uv) ($(uv --version))"
  exit 0
fi
log "uv from PyPI into /opt/lxr-uv"
[ -x /opt/lxr-uv/bin/pip ] || python3 -m venv /opt/lxr-uv
/opt/lxr-uv/bin/pip install --quiet --disable-pip-version-check uv
ln -sf /opt/lxr-uv/bin/uv /usr/local/bin/uv
log "uv installed: $(uv --version)"
