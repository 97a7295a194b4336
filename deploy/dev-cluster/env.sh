# env.sh -- source me: connection settings of the lxr dev cluster (see up.sh).
# shellcheck shell=bash
export LXR_DEV_SSH_HOST=127.0.0.1
export LXR_DEV_SSH_PORT=2222
export LXR_DEV_SSH_USER=lxr
export LXR_DEV_SSH_KEY=/var/lib/lxr-dev/id_ed25519
export LXR_DEV_SSH_KNOWN_HOSTS=/var/lib/lxr-dev/known_hosts
export LXR_DEV_SSH_CONFIG=/var/lib/lxr-dev/ssh_config   # Host alias: lxr-dev
export LXR_TEST_POSTGRES_URL=postgresql+psycopg://lxr:lxr@127.0.0.1:5432/lxr
