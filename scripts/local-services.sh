#!/usr/bin/env bash
# Makes sure the brokers the integration tests talk to are up on loopback: NATS with JetStream
# (4222), Redis (6379), RabbitMQ (5672) and Mosquitto (1883). It starts any that is not listening,
# from the distribution's packages (scripts/test-services.sh installs those that are missing), and
# fails with a clear message if one does not come up. Idempotent.
set -euo pipefail
# The servers live in /usr/sbin, which a user's PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

# The servers write under /var: a user other than root starts them with sudo.
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # name port seconds
  local name=$1 port=$2 deadline=$((SECONDS + $3))
  until port_open "$port"; do
    if ((SECONDS > deadline)); then
      echo "error: $name did not open 127.0.0.1:$port; see its log and start it by hand" >&2
      exit 1
    fi
    sleep 1
  done
  echo "$name is up on 127.0.0.1:$port"
}

ensure() { # name port seconds command...
  local name=$1 port=$2 wait=$3
  shift 3
  if port_open "$port"; then
    echo "$name is up on 127.0.0.1:$port"
    return
  fi
  echo "starting $name"
  command -v "$1" >/dev/null || { echo "error: $1 not found; install $name" >&2; exit 1; }
  $sudo "$@"
  wait_port "$name" "$port" "$wait"
}

ensure "NATS (JetStream)" 4222 20 start-stop-daemon --start --oknodo --background \
  --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
ensure Redis 6379 20 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
  --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
ensure RabbitMQ 5672 90 rabbitmq-server -detached
ensure Mosquitto 1883 20 mosquitto -d -c /etc/mosquitto/mosquitto.conf

# A NATS without JetStream (such as the distribution's own service) would fail every JetStream
# test: its greeting says whether JetStream is on.
nats_info=$(timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4222; IFS= read -r line <&3; echo "$line"' || true)
if [[ $nats_info != *'"jetstream":true'* ]]; then
  echo "error: the NATS on 127.0.0.1:4222 runs without JetStream; stop it" \
    "(systemctl disable --now nats-server) and run this script again" >&2
  exit 1
fi
