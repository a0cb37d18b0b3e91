#!/usr/bin/env bash
# Makes the README's test command work on a fresh Debian or Ubuntu machine. It installs (if missing)
# from the distribution's packages NATS, Redis, RabbitMQ and Mosquitto (which
# scripts/local-services.sh then starts if they are not listening) and HAProxy (which the fleet test
# starts itself in front of three replicas, with a redis-server of its own), Prometheus (whose
# promtool checks deploy/monitoring/, and whose server the monitoring test starts itself, scraping
# a factorwatch) and Alertmanager (which the alertmanager sink's tests start); then it installs (if
# missing) and starts (if not listening) the servers the Kafka and SQS sink tests need:
#   - tansu, a Kafka-API broker, on 127.0.0.1:19092 (in-memory storage)
#   - moto, an SQS-API server, on 127.0.0.1:15000
# Idempotent: run it before `cargo test` as often as you like. Logs go to $FACTORWATCH_SERVICES_DIR
# (default: target/test-services).
set -euo pipefail
cd "$(dirname "$0")/.."
# The servers live in /usr/sbin, which a user's PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi

# Installs, in one apt-get call, the package of each command that is missing; pairs of arguments:
# command package.
install_packages() {
    local missing=()
    while (($# >= 2)); do
        command -v "$1" >/dev/null 2>&1 || missing+=("$2")
        shift 2
    done
    ((${#missing[@]})) || return 0
    echo "test-services: installing ${missing[*]} (apt-get)"
    # Without an index (a fresh image), or with a stale one, install fails: update and retry once.
    $sudo apt-get install -y -q "${missing[@]}" >/dev/null \
        || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q "${missing[@]}" >/dev/null; }
    if [[ " ${missing[*]} " == *" nats-server "* ]] && command -v systemctl >/dev/null 2>&1; then
        # Debian's nats-server service runs without JetStream, which the tests need:
        # scripts/local-services.sh starts one with it in its place.
        $sudo systemctl disable --now nats-server >/dev/null 2>&1 || true
    fi
}

install_packages nats-server nats-server redis-server redis-server rabbitmq-server rabbitmq-server \
    mosquitto mosquitto haproxy haproxy promtool prometheus \
    prometheus-alertmanager prometheus-alertmanager
scripts/local-services.sh

KAFKA_PORT=19092
SQS_PORT=15000
WAIT_SECONDS=${FACTORWATCH_SERVICES_WAIT:-60}
STATE_DIR=${FACTORWATCH_SERVICES_DIR:-$PWD/target/test-services}
mkdir -p "$STATE_DIR"
export PATH="$HOME/.cargo/bin:$PATH"

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_for_port() {
    local name=$1 port=$2 log=$3 waited=0
    until port_open "$port"; do
        if (( waited >= WAIT_SECONDS * 10 )); then
            echo "test-services: $name did not open 127.0.0.1:$port within ${WAIT_SECONDS}s; its log ($log) ends with:" >&2
            tail -n 20 "$log" >&2 || true
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

install_tansu() {
    if ! command -v tansu >/dev/null 2>&1; then
        echo "test-services: installing tansu (cargo install, about 10 minutes)"
        local started=$SECONDS
        # The dynostore feature brings the memory:// storage engine.
        cargo install tansu --locked --features dynostore
        echo "test-services: tansu installed in $((SECONDS - started))s"
    fi
}

install_moto() {
    # A pyenv shim can exist for a Python that lacks moto: ask the command itself.
    if ! moto_server --help >/dev/null 2>&1; then
        echo "test-services: installing moto[server] (pip)"
        python3 -m pip install --quiet 'moto[server]'
        hash -r
    fi
}

start_tansu() {
    if port_open "$KAFKA_PORT"; then
        echo "test-services: Kafka API already listening on 127.0.0.1:$KAFKA_PORT"
        return
    fi
    install_tansu
    local log="$STATE_DIR/tansu.log"
    echo "test-services: starting tansu on 127.0.0.1:$KAFKA_PORT (log: $log)"
    nohup tansu broker \
        --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --storage-engine memory://tansu/ \
        >"$log" 2>&1 </dev/null &
    echo $! >"$STATE_DIR/tansu.pid"
    wait_for_port tansu "$KAFKA_PORT" "$log"
}

start_moto() {
    if port_open "$SQS_PORT"; then
        echo "test-services: SQS API already listening on 127.0.0.1:$SQS_PORT"
        return
    fi
    install_moto
    local log="$STATE_DIR/moto.log"
    echo "test-services: starting moto_server on 127.0.0.1:$SQS_PORT (log: $log)"
    nohup moto_server -H 127.0.0.1 -p "$SQS_PORT" >"$log" 2>&1 </dev/null &
    echo $! >"$STATE_DIR/moto.pid"
    wait_for_port moto_server "$SQS_PORT" "$log"
}

start_tansu
start_moto
echo "test-services: Kafka API on 127.0.0.1:$KAFKA_PORT, SQS API on 127.0.0.1:$SQS_PORT, haproxy at $(command -v haproxy)"
