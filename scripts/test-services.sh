#!/usr/bin/env bash
# Installs (if missing) and starts (if not listening) the servers the Kafka and SQS sink tests need:
#   - tansu, a Kafka-API broker, on 127.0.0.1:19092 (in-memory storage)
#   - moto, an SQS-API server, on 127.0.0.1:15000
# and installs (if missing) HAProxy from Debian's packages, which the fleet test starts itself in
# front of three replicas (with a redis-server of its own, from the machine's Redis package).
# Idempotent: run it before `cargo test` as often as you like. Logs go to $FACTORWATCH_SERVICES_DIR
# (default: target/test-services). It first runs scripts/local-services.sh, which starts any of the
# machine's own brokers (NATS, Redis, RabbitMQ, Mosquitto) that has stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
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

install_haproxy() {
    if command -v haproxy >/dev/null 2>&1; then
        return
    fi
    echo "test-services: installing haproxy (apt-get)"
    local sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get install -y -q haproxy >/dev/null \
        || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q haproxy >/dev/null; }
    command -v haproxy >/dev/null || { echo "test-services: haproxy did not install" >&2; exit 1; }
}

start_tansu
start_moto
install_haproxy
echo "test-services: Kafka API on 127.0.0.1:$KAFKA_PORT, SQS API on 127.0.0.1:$SQS_PORT, haproxy at $(command -v haproxy)"
