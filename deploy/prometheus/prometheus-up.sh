#!/usr/bin/env bash
# Start a real Prometheus in the background on a loopback port and wait until it is ready.
#
# Usage: prometheus-up.sh PORT CONFIG DATA_DIR
#   PORT      loopback port to listen on (127.0.0.1:PORT)
#   CONFIG    prometheus.yml to load (e.g. deploy/prometheus/prometheus.yml)
#   DATA_DIR  TSDB directory (created if missing); also gets prometheus.log and prometheus.pid
#
# Prints the pid on stdout once http://127.0.0.1:PORT/-/ready answers, exits non-zero (after
# killing Prometheus and showing its log on stderr) otherwise. Stop it with:
#   kill "$(cat DATA_DIR/prometheus.pid)"        or   curl -X POST http://127.0.0.1:PORT/-/quit
#
# Environment:
#   PROMETHEUS_BIN        binary to run (default: /usr/bin/prometheus, else `prometheus` on PATH)
#   PROMETHEUS_TIMEOUT    seconds to wait for readiness (default: 30)
#   PROMETHEUS_ARGS       extra arguments, word-split (e.g. "--storage.tsdb.retention.time=1d")
set -euo pipefail

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[[ $# -eq 3 ]] || usage
port=$1
config=$2
data_dir=$3

if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    echo "prometheus-up.sh: invalid port: $port" >&2
    exit 2
fi
if [[ ! -r $config ]]; then
    echo "prometheus-up.sh: cannot read config: $config" >&2
    exit 2
fi

bin=${PROMETHEUS_BIN:-}
if [[ -z $bin ]]; then
    if [[ -x /usr/bin/prometheus ]]; then
        bin=/usr/bin/prometheus
    else
        bin=$(command -v prometheus) || {
            echo "prometheus-up.sh: prometheus not found (apt-get install prometheus)" >&2
            exit 127
        }
    fi
fi
timeout=${PROMETHEUS_TIMEOUT:-30}

mkdir -p "$data_dir"
config=$(realpath "$config")
data_dir=$(realpath "$data_dir")
log=$data_dir/prometheus.log
url=http://127.0.0.1:$port

# Fail fast instead of waiting on somebody else's server.
if curl -fsS -o /dev/null --max-time 1 "$url/-/ready" 2>/dev/null; then
    echo "prometheus-up.sh: something already answers on $url" >&2
    exit 1
fi

# shellcheck disable=SC2086  # PROMETHEUS_ARGS is meant to be word-split
nohup "$bin" \
    --config.file="$config" \
    --storage.tsdb.path="$data_dir" \
    --web.listen-address="127.0.0.1:$port" \
    --web.enable-lifecycle \
    ${PROMETHEUS_ARGS:-} \
    >"$log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$data_dir/prometheus.pid"

fail() {
    echo "prometheus-up.sh: $1; log ($log):" >&2
    tail -n 30 "$log" >&2 || true
    kill "$pid" 2>/dev/null || true
    exit 1
}

deadline=$((SECONDS + timeout))
until curl -fsS -o /dev/null --max-time 2 "$url/-/ready" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || fail "prometheus (pid $pid) exited"
    ((SECONDS < deadline)) || fail "not ready after ${timeout}s"
    sleep 0.2
done
echo "$pid"
