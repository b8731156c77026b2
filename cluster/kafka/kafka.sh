#!/usr/bin/env bash
# A single-node Apache Kafka 4.x broker (KRaft, broker + controller in one JVM) on loopback.
#
#   bash cluster/kafka/kafka.sh start        # fetch jars if needed, format storage once, start, wait
#   bash cluster/kafka/kafka.sh status       # exit 0 and print the bootstrap address if it answers
#   bash cluster/kafka/kafka.sh stop         # SIGTERM, then SIGKILL after KAFKA_STOP_TIMEOUT
#   bash cluster/kafka/kafka.sh topics --list
#   bash cluster/kafka/kafka.sh console-producer --topic t
#   bash cluster/kafka/kafka.sh console-consumer --topic t --from-beginning
#
# Also: fetch (jars only), logs [N|-f], clean (stop + delete data and logs), version.
# Every command is idempotent. Environment (defaults in brackets):
#   KAFKA_HOME_DIR         data, config, pid and log of this broker   [<repo>/.kafka]
#   KAFKA_PORT             PLAINTEXT listener on 127.0.0.1            [19092]
#   KAFKA_CONTROLLER_PORT  KRaft controller listener on 127.0.0.1     [19093]
#   KAFKA_LIBS_DIR         jars fetched by Maven (shared by brokers)  [<repo>/.kafka/libs]
#   KAFKA_HEAP_OPTS        broker heap                                [-Xms128m -Xmx512m]
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to answer   [60]
#   KAFKA_STOP_TIMEOUT     seconds between SIGTERM and SIGKILL        [30]
#   KAFKA_EXTRA_CONFIG     extra server.properties lines (key=value, newline separated)
#   KAFKA_SASL_USERS       "user:password[,user:password...]": adds a SASL_PLAINTEXT listener
#                          (mechanism PLAIN) that accepts these users               [none]
#   KAFKA_SASL_PORT        that SASL_PLAINTEXT listener on 127.0.0.1                 [19094]
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"
POM="$SCRIPT_DIR/pom.xml"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")"

HOME_DIR="${KAFKA_HOME_DIR:-$REPO_DIR/.kafka}"
LIBS_DIR="${KAFKA_LIBS_DIR:-$REPO_DIR/.kafka/libs}"
PORT="${KAFKA_PORT:-19092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
HOST=127.0.0.1
BOOTSTRAP="$HOST:$PORT"
DATA_DIR="$HOME_DIR/data"
PROPS="$HOME_DIR/server.properties"
LOG_FILE="$HOME_DIR/server.log"
PID_FILE="$HOME_DIR/kafka.pid"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
PYTHON="${KAFKA_PYTHON:-python3}"
SASL_USERS="${KAFKA_SASL_USERS:-}"
SASL_PORT="${KAFKA_SASL_PORT:-19094}"

die() { echo "kafka.sh: $*" >&2; exit 1; }
log() { echo "kafka.sh: $*" >&2; }

# --- fetch: jars from Maven Central, once per pom.xml content ------------------------------

# The stamp holds the pom's hash, so bumping kafka.version (or any dependency) re-fetches.
pom_stamp() { echo "kafka $KAFKA_VERSION $(sha256sum "$POM" | cut -d' ' -f1)"; }

libs_ready() {
    [[ -f "$LIBS_DIR/.stamp" && "$(cat "$LIBS_DIR/.stamp")" == "$(pom_stamp)" ]]
}

cmd_fetch() {
    libs_ready && return 0
    mkdir -p "$(dirname "$LIBS_DIR")"
    # One fetch at a time, even when several brokers (demo + test sessions) start together.
    exec 8>"$LIBS_DIR.lock"
    flock 8
    if ! libs_ready; then
        log "fetching Apache Kafka $KAFKA_VERSION jars into $LIBS_DIR (Maven Central)"
        local tmp="$LIBS_DIR.tmp.$$"
        rm -rf "$tmp"
        # Fetch into a fresh folder so jars of an older version never stay on the classpath.
        if ! mvn -B -q -Dstyle.color=never -f "$POM" package -Dkafka.libs.dir="$tmp" >"$tmp.log" 2>&1; then
            cat "$tmp.log" >&2
            rm -rf "$tmp" "$tmp.log"
            die "mvn failed"
        fi
        rm -f "$tmp.log"
        pom_stamp >"$tmp/.stamp"
        rm -rf "$LIBS_DIR"
        mv "$tmp" "$LIBS_DIR"
    fi
    flock -u 8
}

java_cp() { "$JAVA" -cp "$LIBS_DIR/*" "$@"; }

# --- broker process --------------------------------------------------------------------------

# Our broker's pid, only if that process is alive and really is the broker of this HOME_DIR
# (a stale pid file may name a recycled pid).
broker_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $PROPS" || return 1
    echo "$pid"
}

# Asks the broker for cluster metadata over the Kafka protocol (Python stdlib only, so this
# works before any virtualenv exists). Succeeds only when the broker lists itself as live.
probe_metadata() {
    "$PYTHON" - "$HOST" "$PORT" <<'PY'
import socket, struct, sys

host, port = sys.argv[1], int(sys.argv[2])

def call(sock, api_key, version, body, corr):
    client = b"kafka.sh"
    header = struct.pack(">hhih", api_key, version, corr, len(client)) + client
    msg = header + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", recv(sock, 4))[0]
    data = recv(sock, size)
    assert struct.unpack(">i", data[:4])[0] == corr
    return data[4:]

def recv(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf

with socket.create_connection((host, port), timeout=5) as sock:
    # ApiVersions v0 is answered by every broker; it tells which Metadata versions exist.
    body = call(sock, 18, 0, b"", 1)
    error, count = struct.unpack(">hi", body[:6])
    ranges = {}
    for i in range(count):
        key, lo, hi = struct.unpack(">hhh", body[6 + 6 * i: 12 + 6 * i])
        ranges[key] = (lo, hi)
    lo, hi = ranges[3]
    version = max(lo, 4)
    if error or version > 8:  # v9+ is a flexible encoding this probe does not speak
        sys.exit(1)
    # Metadata v4..v8: topics = [] (none), allow_auto_topic_creation = false, (v8: 2 bools)
    request = struct.pack(">i", 0) + b"\x00" + (b"\x00\x00" if version >= 8 else b"")
    body = call(sock, 3, version, request, 2)
    (brokers,) = struct.unpack(">i", body[4:8])  # after throttle_time_ms
    sys.exit(0 if brokers >= 1 else 1)
PY
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# The listeners clients may use: PLAINTEXT always (the inter-broker listener, which the
# readiness probe uses too), SASL_PLAINTEXT as well when KAFKA_SASL_USERS is set.
client_listeners() {
    local listeners="PLAINTEXT://$HOST:$PORT"
    [[ -z "$SASL_USERS" ]] || listeners+=",SASL_PLAINTEXT://$HOST:$SASL_PORT"
    echo "$listeners"
}

# PlainLoginModule's JAAS line, one user_NAME="PASSWORD" option per KAFKA_SASL_USERS entry.
# Characters that would end the quoted JAAS value are refused rather than escaped.
sasl_jaas_config() {
    local entry user password options=""
    local IFS=','
    for entry in $SASL_USERS; do
        [[ "$entry" == *:* ]] || die "KAFKA_SASL_USERS: an entry has no ':' (want user:password)"
        user="${entry%%:*}"
        password="${entry#*:}"
        [[ "$user" =~ ^[A-Za-z0-9._-]+$ ]] \
            || die "KAFKA_SASL_USERS: user names may hold only letters, digits, '.', '_' and '-'"
        [[ -n "$password" && "$password" != *[\\\"\;]* && "$password" != *$'\n'* ]] \
            || die "KAFKA_SASL_USERS: the password of $user must be non-empty, without \\ \" ; or newlines"
        options+=" user_$user=\"$password\""
    done
    echo "org.apache.kafka.common.security.plain.PlainLoginModule required$options;"
}

sasl_config() {
    [[ -n "$SASL_USERS" ]] || return 0
    local jaas
    jaas="$(sasl_jaas_config)" || exit 1
    echo "sasl.enabled.mechanisms=PLAIN"
    echo "listener.name.sasl_plaintext.plain.sasl.jaas.config=$jaas"
}

write_config() {
    mkdir -p "$DATA_DIR"
    local sasl old_umask
    sasl="$(sasl_config)" || exit 1
    old_umask="$(umask)"
    umask 077  # the file may hold SASL passwords: readable by this user only
    rm -f "$PROPS"
    cat >"$PROPS" <<EOF
# Written by cluster/kafka/kafka.sh on every start; edit KAFKA_EXTRA_CONFIG instead.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=$(client_listeners),CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=$(client_listeners),CONTROLLER://$HOST:$CONTROLLER_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
$sasl
log.dirs=$DATA_DIR
num.partitions=1
auto.create.topics.enable=true
delete.topic.enable=true
# one node: every internal topic has one replica
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
# a small machine: few threads
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4
log.retention.hours=24
${KAFKA_EXTRA_CONFIG:-}
EOF
    umask "$old_umask"
    cat >"$HOME_DIR/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
EOF
}

# Static quorum (controller.quorum.voters): the storage can be formatted once and the broker
# restarted later on other ports; `--standalone` would pin the controller endpoint in the log.
format_storage() {
    [[ -f "$DATA_DIR/meta.properties" ]] && return 0
    local cluster_id
    cluster_id="$(new_cluster_id)"
    log "formatting $DATA_DIR (cluster id $cluster_id)"
    java_cp -Xmx256m -Dlog4j2.configurationFile="$HOME_DIR/log4j2.properties" \
        kafka.tools.StorageTool format --config "$PROPS" --cluster-id "$cluster_id" \
        --ignore-formatted >>"$LOG_FILE" 2>&1 || { tail -n 30 "$LOG_FILE" >&2; die "format failed"; }
}

# A Kafka Uuid: 16 random bytes, URL-safe base64 without padding, not starting with '-'.
new_cluster_id() {
    local id="-"
    while [[ "$id" == -* ]]; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    done
    echo "$id"
}

launch() {
    [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
    # setsid: the broker outlives this shell and ignores a Ctrl-C sent to the caller's group;
    # 8>&- 9>&-: it must not inherit (and so hold) the fetch and home-dir locks.
    # shellcheck disable=SC2086
    setsid nohup "$JAVA" ${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m} \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent \
        -Djava.awt.headless=true -Dlog4j2.configurationFile="$HOME_DIR/log4j2.properties" \
        -cp "$LIBS_DIR/*" kafka.Kafka "$PROPS" >>"$LOG_FILE" 2>&1 </dev/null 8>&- 9>&- &
    echo $! >"$PID_FILE"
}

# Whether the process launch() started is still there. Not broker_pid: its cmdline check fails
# for a moment after launch, until setsid has exec'ed java, which on a busy machine read as
# "exited" while the broker went on starting (and was then left running).
launched_alive() {
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null)" || return 1
    [[ -n "$pid" && -r "/proc/$pid/stat" ]] || return 1
    [[ "$(cut -d' ' -f3 "/proc/$pid/stat")" != Z ]]  # a zombie: exited, not yet reaped
}

wait_ready() {
    local deadline=$((SECONDS + ${KAFKA_START_TIMEOUT:-60}))
    while ((SECONDS < deadline)); do
        if ! launched_alive; then
            tail -n 40 "$LOG_FILE" >&2 || true
            die "broker exited during startup (log: $LOG_FILE)"
        fi
        if port_open "$PORT" && probe_metadata 2>/dev/null && sasl_port_ready; then
            return 0
        fi
        sleep 0.5
    done
    tail -n 40 "$LOG_FILE" >&2 || true
    die "broker did not answer on $BOOTSTRAP within ${KAFKA_START_TIMEOUT:-60}s (log: $LOG_FILE)"
}

sasl_port_ready() { [[ -z "$SASL_USERS" ]] || port_open "$SASL_PORT"; }

lock_home() {
    mkdir -p "$HOME_DIR"
    exec 9>"$HOME_DIR/.lock"
    flock 9
}

cmd_start() {
    cmd_fetch
    lock_home
    if broker_pid >/dev/null; then
        log "already running (pid $(broker_pid)) on $BOOTSTRAP"
        return 0
    fi
    local ports=("$PORT" "$CONTROLLER_PORT")
    [[ -z "$SASL_USERS" ]] || ports+=("$SASL_PORT")
    for p in "${ports[@]}"; do
        port_open "$p" && die "port $p on $HOST is taken by another process"
    done
    write_config
    format_storage
    local t0=$SECONDS
    launch
    wait_ready
    log "Apache Kafka $KAFKA_VERSION up on $(client_listeners) (pid $(cat "$PID_FILE"), ${SECONDS}s total, $((SECONDS - t0))s broker start; log $LOG_FILE)"
}

cmd_stop() {
    lock_home
    local pid
    if ! pid="$(broker_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    kill -TERM "$pid"
    local deadline=$((SECONDS + ${KAFKA_STOP_TIMEOUT:-30}))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "no exit after SIGTERM; sending SIGKILL to $pid"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    fi
    rm -f "$PID_FILE"
    log "stopped (pid $pid)"
}

cmd_status() {
    local pid
    pid="$(broker_pid)" || { echo "not running" >&2; return 3; }
    probe_metadata 2>/dev/null || { echo "pid $pid alive but $BOOTSTRAP does not answer" >&2; return 4; }
    echo "$BOOTSTRAP"
}

# Removes this broker's data, config and logs (never the shared jars).
cmd_clean() {
    cmd_stop
    rm -rf "$DATA_DIR" "$PROPS" "$HOME_DIR/log4j2.properties" "$LOG_FILE" "$LOG_FILE.1" \
        "$HOME_DIR/tools-log4j2.properties"
    log "removed data and logs under $HOME_DIR"
}

cmd_logs() {
    [[ -f "$LOG_FILE" ]] || die "no log at $LOG_FILE"
    if [[ "${1:-}" == "-f" ]]; then tail -n 100 -f "$LOG_FILE"; else tail -n "${1:-100}" "$LOG_FILE"; fi
}

# Runs one of Kafka's command-line tools against this broker; adds --bootstrap-server unless
# the caller gave one. Tool logs go to stderr at WARN so stdout carries only the tool's output.
run_tool() {
    local main="$1"
    shift
    cmd_fetch
    mkdir -p "$HOME_DIR"
    local cfg="$HOME_DIR/tools-log4j2.properties"
    printf '%s\n' 'status = warn' 'appender.err.type = Console' 'appender.err.name = ERR' \
        'appender.err.target = SYSTEM_ERR' 'appender.err.layout.type = PatternLayout' \
        'appender.err.layout.pattern = %p %m (%c)%n' 'rootLogger.level = WARN' \
        'rootLogger.appenderRef.err.ref = ERR' >"$cfg"
    local args=("$@")
    [[ " $* " == *" --bootstrap-server "* ]] || args=(--bootstrap-server "$BOOTSTRAP" "$@")
    exec "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dlog4j2.configurationFile="$cfg" -cp "$LIBS_DIR/*" "$main" "${args[@]}"
}

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
    echo "commands: start stop status fetch logs [N|-f] clean topics console-producer console-consumer version"
}

main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        fetch) cmd_fetch ;;
        logs) cmd_logs "$@" ;;
        clean) cmd_clean ;;
        version) echo "$KAFKA_VERSION" ;;
        topics) run_tool org.apache.kafka.tools.TopicCommand "$@" ;;
        console-producer) run_tool org.apache.kafka.tools.ConsoleProducer "$@" ;;
        console-consumer) run_tool org.apache.kafka.tools.consumer.ConsoleConsumer "$@" ;;
        -h | --help | help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
