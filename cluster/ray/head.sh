#!/usr/bin/env bash
# A private local Ray head for the demo: start | stop | status | address.
#   bash cluster/ray/head.sh start    # Jobs API on http://127.0.0.1:${RAY_DASHBOARD_PORT:-8265}
#   bash cluster/ray/head.sh stop
# Everything listens on 127.0.0.1 and lives under .ray/ (pid, log, temp dir), so
# stopping it never touches another Ray cluster on the machine: `ray start --block`
# stops its own processes on SIGTERM.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
HOME_DIR="${RAY_HEAD_DIR:-$REPO/.ray}"
PORT="${RAY_HEAD_PORT:-6390}"
DASHBOARD_PORT="${RAY_DASHBOARD_PORT:-8265}"
NUM_CPUS="${RAY_NUM_CPUS:-4}"
PID_FILE="$HOME_DIR/head.pid"
LOG_FILE="$HOME_DIR/head.log"
# Ray's socket paths must stay short: the temp dir goes under /tmp, named per checkout.
TEMP_DIR="/tmp/s2s-ray-$(echo "$REPO" | md5sum | cut -c1-8)"
export PATH="$REPO/.venv/bin:$PATH"   # job drivers run the venv's python
export RAY_AUTH_MODE=disabled         # loopback-only cluster; the Jobs client needs no token
# Ray starts workers at nice 15; here the replicas and trainers are the work (s2s/stream/local.py).
export RAY_worker_niceness="${RAY_worker_niceness:-0}"

running() { [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }

jobs_api_up() {
    python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$DASHBOARD_PORT/api/version', timeout=2)" 2>/dev/null
}

# Ready = `ray start` says it is up and the Jobs API answers (the dashboard comes up last).
wait_ready() {
    local deadline=$((SECONDS + 120))
    until grep -q "block forever" "$LOG_FILE" 2>/dev/null && jobs_api_up; do
        if ! running || ((SECONDS > deadline)); then
            echo "ray head failed to start; log tail:" >&2; tail -30 "$LOG_FILE" >&2; return 1
        fi
        sleep 1
    done
}

# Ray's other default ports (the dashboard agent's 52365 among them) collide with any
# other Ray on the machine, and a head whose job agent cannot bind never accepts jobs:
# every auxiliary port is one the OS hands out free right now.
free_port_options() {
    python3 - <<'PY'
import socket
options = ["--ray-client-server-port", "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
           "--runtime-env-agent-port", "--metrics-export-port", "--node-manager-port",
           "--object-manager-port"]
socks = [socket.socket() for _ in options]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(f"{o} {s.getsockname()[1]}" for o, s in zip(options, socks)))
PY
}

start() {
    if running; then echo "ray head already running (dashboard http://127.0.0.1:$DASHBOARD_PORT)"; return; fi
    mkdir -p "$HOME_DIR" "$TEMP_DIR"
    # Truncated here, not by the background job's redirection: that one may run after
    # wait_ready has already read the last run's "block forever".
    : >"$LOG_FILE"
    # shellcheck disable=SC2046  # the options are meant to split into words
    RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0 setsid ray start --head --block \
        --port "$PORT" --node-ip-address 127.0.0.1 --num-cpus "$NUM_CPUS" $(free_port_options) \
        --include-dashboard true --dashboard-host 127.0.0.1 --dashboard-port "$DASHBOARD_PORT" \
        --object-store-memory $((300 * 1024 * 1024)) --temp-dir "$TEMP_DIR" \
        --disable-usage-stats >"$LOG_FILE" 2>&1 &
    echo $! >"$PID_FILE"
    wait_ready
    echo "ray head up: address 127.0.0.1:$PORT, jobs http://127.0.0.1:$DASHBOARD_PORT"
}

stop() {
    running || { rm -f "$PID_FILE"; echo "ray head not running"; return; }
    local pid; pid="$(cat "$PID_FILE")"
    kill -TERM "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    echo "ray head stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) if running; then echo "127.0.0.1:$PORT"; else echo "not running"; exit 3; fi ;;
    address) echo "http://127.0.0.1:$DASHBOARD_PORT" ;;
    *) echo "usage: $0 start|stop|status|address" >&2; exit 2 ;;
esac
