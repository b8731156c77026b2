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
#   KAFKA_SSL_PORT         adds an SSL listener on 127.0.0.1 (TLS, no client certificate)  [none]
#   KAFKA_MTLS_PORT        adds an SSL listener on 127.0.0.1 that requires a client
#                          certificate signed by the CA below (mutual TLS)           [none]
#   KAFKA_TLS_DIR          the CA, broker and client certificates made for them, once
#                          (ca.pem, client.pem + client.key for mutual TLS)          [$KAFKA_HOME_DIR/tls]
#   KAFKA_TLS_DAYS         validity of the certificates made there                   [365]
#
# A KRaft cluster of N combined broker+controller nodes beside the single node (own dirs, ports):
#   bash cluster/kafka/kafka.sh cluster-start [N]   # N brokers [3], a quorum of N voters; waits for all
#   bash cluster/kafka/kafka.sh cluster-status      # one line per broker; prints the bootstrap list
#   bash cluster/kafka/kafka.sh cluster-stop        # SIGTERM every broker at once, SIGKILL after the timeout
#   bash cluster/kafka/kafka.sh cluster-clean       # stop and delete the cluster's data and logs
#   bash cluster/kafka/kafka.sh broker-stop ID | broker-kill ID | broker-start ID   # one broker (kill: SIGKILL)
# Cluster environment (read by cluster-start, remembered in <cluster dir>/cluster.env for the rest):
#   KAFKA_CLUSTER_DIR      broker-<id>/ with data, config, pid and log per broker  [$KAFKA_HOME_DIR/cluster]
#   KAFKA_CLUSTER_PORTS    PLAINTEXT ports, one per broker, comma separated   [39091,39092,...]
#   KAFKA_CLUSTER_CONTROLLER_PORTS  controller ports, one per broker          [39191,39192,...]
#   KAFKA_CLUSTER_HEAP_OPTS         heap of each broker                       [-Xms96m -Xmx384m]
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
SSL_PORT="${KAFKA_SSL_PORT:-}"
MTLS_PORT="${KAFKA_MTLS_PORT:-}"
TLS_DIR="${KAFKA_TLS_DIR:-$HOME_DIR/tls}"
TLS_DAYS="${KAFKA_TLS_DAYS:-365}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
NODE_ID=1
PROBE_NODE=""  # a cluster broker: ready once the metadata lists this node id

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
# With a node id, that node must be among the live brokers as well (a cluster broker is ready
# only once the controller has registered and unfenced it).
probe_metadata() {
    "$PYTHON" - "$HOST" "$PORT" "${1:-1}" "${2:-}" <<'PY'
import socket, struct, sys

host, port, min_brokers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
node_id = int(sys.argv[4]) if sys.argv[4] else None

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
    nodes, at = set(), 8
    for _ in range(brokers):  # node_id, host (string), port, rack (nullable string)
        node, host_len = struct.unpack(">ih", body[at:at + 6])
        at += 6 + host_len + 4
        (rack_len,) = struct.unpack(">h", body[at:at + 2])
        at += 2 + max(rack_len, 0)
        nodes.add(node)
    sys.exit(0 if len(nodes) >= min_brokers and node_id in (None, *nodes) else 1)
PY
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# The listeners clients may use: PLAINTEXT always (the inter-broker listener, which the
# readiness probe uses too), SASL_PLAINTEXT as well when KAFKA_SASL_USERS is set, SSL with
# KAFKA_SSL_PORT, MTLS (protocol SSL, client certificate required) with KAFKA_MTLS_PORT.
client_listeners() {
    local listeners="PLAINTEXT://$HOST:$PORT"
    [[ -z "$SASL_USERS" ]] || listeners+=",SASL_PLAINTEXT://$HOST:$SASL_PORT"
    [[ -z "$SSL_PORT" ]] || listeners+=",SSL://$HOST:$SSL_PORT"
    [[ -z "$MTLS_PORT" ]] || listeners+=",MTLS://$HOST:$MTLS_PORT"
    echo "$listeners"
}

tls_enabled() { [[ -n "$SSL_PORT" || -n "$MTLS_PORT" ]]; }

# --- TLS: a CA of this broker's own, a broker certificate for 127.0.0.1 and localhost, and a
# client certificate for mutual TLS; made once with openssl (idempotent), kept in TLS_DIR ----

tls_ready() {
    local f
    for f in ca.pem broker.p12 store.pass client.pem client.key; do [[ -s "$TLS_DIR/$f" ]] || return 1; done
}

# openssl ARGS..., its chatter kept in TLS_DIR/openssl.log and shown only when it fails.
tls_openssl() {
    openssl "$@" >>"$TLS_DIR/openssl.log" 2>&1 || { tail -n 20 "$TLS_DIR/openssl.log" >&2; die "openssl $1 failed"; }
}

# tls_leaf NAME SUBJECT EXTENSION...: an EC P-256 key and a certificate signed by the CA.
tls_leaf() {
    local name="$1" subject="$2"
    shift 2
    tls_openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$TLS_DIR/$name.key" -out "$TLS_DIR/$name.csr" -subj "$subject"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid,issuer" "$@" >"$TLS_DIR/$name.ext"
    tls_openssl x509 -req -in "$TLS_DIR/$name.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days "$TLS_DAYS" -sha256 -extfile "$TLS_DIR/$name.ext" \
        -out "$TLS_DIR/$name.pem"
    rm -f "$TLS_DIR/$name.csr" "$TLS_DIR/$name.ext"
}

make_tls() {
    tls_ready && return 0
    command -v openssl >/dev/null || die "KAFKA_SSL_PORT/KAFKA_MTLS_PORT need openssl to make the certificates"
    local old_umask
    old_umask="$(umask)"
    umask 077  # private keys and the key store password: this user only
    mkdir -p "$TLS_DIR"
    rm -f "$TLS_DIR"/{ca,broker,client}.{pem,key} "$TLS_DIR/broker.p12" "$TLS_DIR/store.pass" "$TLS_DIR/openssl.log"
    log "making a CA and broker/client certificates in $TLS_DIR"
    tls_openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days "$TLS_DAYS" \
        -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.pem" -subj "/CN=s2s kafka.sh test CA $(new_cluster_id)" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    tls_leaf broker "/CN=localhost" "subjectAltName=DNS:localhost,IP:$HOST" "extendedKeyUsage=serverAuth"
    tls_leaf client "/CN=s2s-client" "extendedKeyUsage=clientAuth"
    # The broker's key store: PKCS12 (key + chain) under a random password only server.properties holds.
    head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$TLS_DIR/store.pass"
    tls_openssl pkcs12 -export -in "$TLS_DIR/broker.pem" -inkey "$TLS_DIR/broker.key" -certfile "$TLS_DIR/ca.pem" \
        -name broker -out "$TLS_DIR/broker.p12" -passout "file:$TLS_DIR/store.pass"
    chmod 644 "$TLS_DIR/ca.pem" "$TLS_DIR/broker.pem" "$TLS_DIR/client.pem"  # certificates are public
    umask "$old_umask"
}

# The TLS listeners' settings: one key store for both, and for MTLS a trust store (the CA) and
# ssl.client.auth=required. Makes the certificates first if they are not there.
tls_config() {
    tls_enabled || return 0
    make_tls
    local pass
    pass="$(cat "$TLS_DIR/store.pass")"
    echo "ssl.keystore.type=PKCS12"
    echo "ssl.keystore.location=$TLS_DIR/broker.p12"
    echo "ssl.keystore.password=$pass"
    echo "ssl.key.password=$pass"
    echo "ssl.truststore.type=PEM"
    echo "ssl.truststore.location=$TLS_DIR/ca.pem"
    echo "listener.name.mtls.ssl.client.auth=required"
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
    local sasl tls old_umask
    sasl="$(sasl_config)" || exit 1
    tls="$(tls_config)" || exit 1
    old_umask="$(umask)"
    umask 077  # the file may hold SASL passwords: readable by this user only
    rm -f "$PROPS"
    cat >"$PROPS" <<EOF
# Written by cluster/kafka/kafka.sh on every start; edit KAFKA_EXTRA_CONFIG instead.
process.roles=broker,controller
node.id=$NODE_ID
controller.quorum.voters=${VOTERS:-1@$HOST:$CONTROLLER_PORT}
listeners=$(client_listeners),CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=$(client_listeners),CONTROLLER://$HOST:$CONTROLLER_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,MTLS:SSL
$sasl
$tls
log.dirs=$DATA_DIR
num.partitions=1
auto.create.topics.enable=true
delete.topic.enable=true
$(replication_config)
offsets.topic.num.partitions=8
transaction.state.log.num.partitions=8
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

# Copies of every topic: one on a single node; on a cluster 3 (or its size, if smaller), of
# which 2 must have a write before acks=all answers, so one broker may die without a loss.
replication_config() {
    local rf="${REPLICAS:-1}" isr=$(( ${REPLICAS:-1} >= 3 ? 2 : 1 ))
    if [[ -z "${REPLICAS:-}" ]]; then
        echo "# one node: every internal topic has one replica"
    else
        echo "# a cluster: $rf copies of every topic, $isr in sync for acks=all"
        echo "default.replication.factor=$rf"
    fi
    echo "offsets.topic.replication.factor=$rf"
    echo "transaction.state.log.replication.factor=$rf"
    echo "transaction.state.log.min.isr=$isr"
    echo "share.coordinator.state.topic.replication.factor=$rf"
    echo "share.coordinator.state.topic.min.isr=$isr"
    echo "min.insync.replicas=$isr"
}

# Static quorum (controller.quorum.voters): the storage can be formatted once and the broker
# restarted later on other ports; `--standalone` would pin the controller endpoint in the log.
format_storage() {
    [[ -f "$DATA_DIR/meta.properties" ]] && return 0
    local cluster_id="${CLUSTER_ID:-}"
    [[ -n "$cluster_id" ]] || cluster_id="$(new_cluster_id)"
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
    setsid nohup "$JAVA" $HEAP_OPTS \
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
        if port_open "$PORT" && probe_metadata 1 "$PROBE_NODE" 2>/dev/null && extra_ports_ready; then
            return 0
        fi
        sleep 0.5
    done
    tail -n 40 "$LOG_FILE" >&2 || true
    die "broker did not answer on $BOOTSTRAP within ${KAFKA_START_TIMEOUT:-60}s (log: $LOG_FILE)"
}

# The SASL and TLS listeners answer too (they open after the PLAINTEXT one).
extra_ports_ready() {
    [[ -z "$SASL_USERS" ]] || port_open "$SASL_PORT" || return 1
    [[ -z "$SSL_PORT" ]] || port_open "$SSL_PORT" || return 1
    [[ -z "$MTLS_PORT" ]] || port_open "$MTLS_PORT"
}

lock_home() {
    mkdir -p "$HOME_DIR"
    exec 9>"$HOME_DIR/.lock"
    flock 9
}

# boot WHAT PORT...: refuse taken ports, write the config, format once, launch, wait until it
# answers; sets BOOT_S to the seconds the broker took to start.
boot() {
    local what="$1"
    shift
    for p in "$@"; do
        port_open "$p" && die "port $p on $HOST ($what) is taken by another process"
    done
    write_config
    format_storage
    local t0=$SECONDS
    launch
    wait_ready
    BOOT_S=$((SECONDS - t0))
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
    [[ -z "$SSL_PORT" ]] || ports+=("$SSL_PORT")
    [[ -z "$MTLS_PORT" ]] || ports+=("$MTLS_PORT")
    boot "the broker" "${ports[@]}"
    log "Apache Kafka $KAFKA_VERSION up on $(client_listeners) (pid $(cat "$PID_FILE"), ${SECONDS}s total, ${BOOT_S}s broker start; log $LOG_FILE)"
    ! tls_enabled || log "TLS: CA $TLS_DIR/ca.pem; mutual TLS client certificate $TLS_DIR/client.pem, key $TLS_DIR/client.key"
}

cmd_stop() {
    lock_home
    stop_broker TERM
}

# Stops this broker with SIGTERM (SIGKILL after KAFKA_STOP_TIMEOUT) or at once with SIGKILL.
stop_broker() {
    local pid
    if ! pid="$(broker_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    kill "-$1" "$pid"
    wait_gone "$pid"
    rm -f "$PID_FILE"
    log "stopped (pid $pid, SIG$1)"
}

# Waits until every pid has exited; SIGKILLs those still there after KAFKA_STOP_TIMEOUT.
wait_gone() {
    local deadline=$((SECONDS + ${KAFKA_STOP_TIMEOUT:-30})) pid
    for pid in "$@"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "no exit after SIGTERM; sending SIGKILL to $pid"
            kill -KILL "$pid" 2>/dev/null || true
            while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
        fi
    done
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
        "$HOME_DIR/tools-log4j2.properties" "$HOME_DIR/tls"
    log "removed data, logs and certificates under $HOME_DIR"
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

# --- a cluster: N combined broker+controller nodes, one quorum, one cluster id ----------------

CLUSTER_DIR="${KAFKA_CLUSTER_DIR:-$HOME_DIR/cluster}"
CLUSTER_ENV="$CLUSTER_DIR/cluster.env"

# The cluster's shape: cluster.env (written by cluster-start) overridden by the environment,
# else the defaults. A formatted cluster keeps its size and id; its ports may change (the
# quorum is static, as on the single node).
cluster_load() {
    local key value size_arg="${1:-}"
    CLUSTER_SIZE="" CLUSTER_PORTS="" CLUSTER_CONTROLLER_PORTS="" CLUSTER_ID="" CLUSTER_HEAP_OPTS=""
    if [[ -f "$CLUSTER_ENV" ]]; then
        while IFS='=' read -r key value; do
            case "$key" in
                CLUSTER_SIZE | CLUSTER_PORTS | CLUSTER_CONTROLLER_PORTS | CLUSTER_ID | CLUSTER_HEAP_OPTS)
                    printf -v "$key" '%s' "$value" ;;
            esac
        done <"$CLUSTER_ENV"
    fi
    if [[ -n "$size_arg" && -n "$CLUSTER_SIZE" && "$size_arg" != "$CLUSTER_SIZE" ]]; then
        die "the cluster in $CLUSTER_DIR has $CLUSTER_SIZE brokers, not $size_arg (cluster-clean first)"
    fi
    CLUSTER_SIZE="${size_arg:-${CLUSTER_SIZE:-3}}"
    [[ "$CLUSTER_SIZE" =~ ^[1-9]$ ]] || die "cluster size must be 1..9, got $CLUSTER_SIZE"
    CLUSTER_PORTS="${KAFKA_CLUSTER_PORTS:-${CLUSTER_PORTS:-$(port_list 39090)}}"
    CLUSTER_CONTROLLER_PORTS="${KAFKA_CLUSTER_CONTROLLER_PORTS:-${CLUSTER_CONTROLLER_PORTS:-$(port_list 39190)}}"
    CLUSTER_HEAP_OPTS="${KAFKA_CLUSTER_HEAP_OPTS:-${CLUSTER_HEAP_OPTS:--Xms96m -Xmx384m}}"
    local list
    for list in "$CLUSTER_PORTS" "$CLUSTER_CONTROLLER_PORTS"; do
        [[ "$list" =~ ^[0-9]+(,[0-9]+)*$ && "$(tr ',' '\n' <<<"$list" | wc -l)" == "$CLUSTER_SIZE" ]] \
            || die "want $CLUSTER_SIZE comma-separated ports, got '$list'"
    done
}

port_list() {
    local i ports=()
    for ((i = 1; i <= CLUSTER_SIZE; i++)); do ports+=($(($1 + i))); done
    (IFS=,; echo "${ports[*]}")
}

cluster_save() {
    mkdir -p "$CLUSTER_DIR"
    [[ -n "$CLUSTER_ID" ]] || CLUSTER_ID="$(new_cluster_id)"
    printf '%s\n' "CLUSTER_SIZE=$CLUSTER_SIZE" "CLUSTER_PORTS=$CLUSTER_PORTS" \
        "CLUSTER_CONTROLLER_PORTS=$CLUSTER_CONTROLLER_PORTS" "CLUSTER_ID=$CLUSTER_ID" \
        "CLUSTER_HEAP_OPTS=$CLUSTER_HEAP_OPTS" >"$CLUSTER_ENV"
}

cluster_bootstrap() { sed "s/\([0-9]\+\)/$HOST:\1/g" <<<"$CLUSTER_PORTS"; }

cluster_ids() { seq 1 "$CLUSTER_SIZE"; }

# Points the single-broker globals (ports, files, config) at broker ID of the cluster, so
# every single-broker function then acts on that broker.
use_broker() {
    local id="$1" ports controllers voters="" i
    [[ "$id" =~ ^[1-9]$ ]] && ((id <= CLUSTER_SIZE)) || die "no broker '$id' in a cluster of $CLUSTER_SIZE"
    IFS=, read -ra ports <<<"$CLUSTER_PORTS"
    IFS=, read -ra controllers <<<"$CLUSTER_CONTROLLER_PORTS"
    for ((i = 1; i <= CLUSTER_SIZE; i++)); do voters+="${voters:+,}$i@$HOST:${controllers[i - 1]}"; done
    NODE_ID="$id" PROBE_NODE="$id" VOTERS="$voters" REPLICAS=$((CLUSTER_SIZE < 3 ? CLUSTER_SIZE : 3))
    PORT="${ports[id - 1]}" CONTROLLER_PORT="${controllers[id - 1]}" BOOTSTRAP="$HOST:${ports[id - 1]}"
    HOME_DIR="$CLUSTER_DIR/broker-$id" DATA_DIR="$CLUSTER_DIR/broker-$id/data"
    PROPS="$HOME_DIR/server.properties" LOG_FILE="$HOME_DIR/server.log" PID_FILE="$HOME_DIR/kafka.pid"
    SASL_USERS="" SSL_PORT="" MTLS_PORT="" HEAP_OPTS="$CLUSTER_HEAP_OPTS"
}

lock_cluster() {
    mkdir -p "$CLUSTER_DIR"
    exec 9>"$CLUSTER_DIR/.lock"
    flock 9
}

# Writes the config and formats the storage of each broker not running (formats in parallel:
# each is a JVM start), then launches them all before waiting for any: a broker answers only
# once a majority of the quorum is up.
cmd_cluster_start() {
    cmd_fetch
    cluster_load "${1:-}"
    lock_cluster
    cluster_save
    local id pid pids=() down=()
    for id in $(cluster_ids); do
        use_broker "$id"
        broker_pid >/dev/null && continue
        for p in "$PORT" "$CONTROLLER_PORT"; do
            port_open "$p" && die "port $p on $HOST (broker $id) is taken by another process"
        done
        down+=("$id")
        (write_config && format_storage) &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || die "could not format a broker's storage"; done
    local t0=$SECONDS
    for id in "${down[@]}"; do use_broker "$id"; launch; done
    for id in "${down[@]}"; do use_broker "$id"; wait_ready; done
    log "Apache Kafka $KAFKA_VERSION cluster of $CLUSTER_SIZE up on $(cluster_bootstrap) (${#down[@]} started, $((SECONDS - t0))s; logs $CLUSTER_DIR/broker-*/server.log)"
}

# SIGTERM to every broker at once (one by one, the last ones would wait for a quorum that
# is gone), then SIGKILL to any still there after KAFKA_STOP_TIMEOUT.
cmd_cluster_stop() {
    [[ -f "$CLUSTER_ENV" ]] || { log "no cluster in $CLUSTER_DIR"; return 0; }
    cluster_load
    lock_cluster
    local id pid pids=()
    for id in $(cluster_ids); do
        use_broker "$id"
        if pid="$(broker_pid)"; then
            kill -TERM "$pid"
            pids+=("$pid")
        fi
    done
    wait_gone "${pids[@]}"
    for id in $(cluster_ids); do rm -f "$CLUSTER_DIR/broker-$id/kafka.pid"; done
    log "cluster stopped (${#pids[@]} brokers were running)"
}

# One line per broker on stderr; the bootstrap list of the brokers that answer on stdout.
# Exit 0: all answer; 3: none runs; 4: some do not answer.
cmd_cluster_status() {
    [[ -f "$CLUSTER_ENV" ]] || { echo "no cluster in $CLUSTER_DIR" >&2; return 3; }
    cluster_load
    local id pid up=() running=0
    for id in $(cluster_ids); do
        use_broker "$id"
        if ! pid="$(broker_pid)"; then
            echo "broker $id $BOOTSTRAP not running" >&2
            continue
        fi
        running=$((running + 1))
        if probe_metadata 1 "$id" 2>/dev/null; then
            echo "broker $id $BOOTSTRAP up (pid $pid)" >&2
            up+=("$BOOTSTRAP")
        else
            echo "broker $id $BOOTSTRAP pid $pid alive but not answering" >&2
        fi
    done
    ((running > 0)) || return 3
    (IFS=,; echo "${up[*]}")
    ((${#up[@]} == CLUSTER_SIZE)) || return 4
}

cmd_cluster_clean() {
    cmd_cluster_stop
    rm -rf "$CLUSTER_DIR"
    log "removed $CLUSTER_DIR"
}

# broker-start ID | broker-stop ID | broker-kill ID: one broker of the cluster.
cmd_broker() {
    local action="$1" id="${2:-}"
    [[ -f "$CLUSTER_ENV" ]] || die "no cluster in $CLUSTER_DIR (cluster-start first)"
    cluster_load
    lock_cluster
    use_broker "$id"
    case "$action" in
        stop) stop_broker TERM ;;
        kill) stop_broker KILL ;;
        start)
            if broker_pid >/dev/null; then
                log "broker $id already running (pid $(broker_pid)) on $BOOTSTRAP"
                return 0
            fi
            boot "broker $id" "$PORT" "$CONTROLLER_PORT"
            log "broker $id up on $BOOTSTRAP (pid $(cat "$PID_FILE"), ${BOOT_S}s)" ;;
    esac
}

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
    echo "commands: start stop status fetch logs [N|-f] clean topics console-producer console-consumer version"
    echo "          cluster-start [N] cluster-stop cluster-status cluster-clean broker-start|broker-stop|broker-kill ID"
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
        cluster-start) cmd_cluster_start "$@" ;;
        cluster-stop) cmd_cluster_stop ;;
        cluster-status) cmd_cluster_status ;;
        cluster-clean) cmd_cluster_clean ;;
        broker-start | broker-stop | broker-kill) cmd_broker "${cmd#broker-}" "$@" ;;
        topics) run_tool org.apache.kafka.tools.TopicCommand "$@" ;;
        console-producer) run_tool org.apache.kafka.tools.ConsoleProducer "$@" ;;
        console-consumer) run_tool org.apache.kafka.tools.consumer.ConsoleConsumer "$@" ;;
        -h | --help | help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
