#!/usr/bin/env bash
# Makes sure PostgreSQL, Redis and RabbitMQ answer on their default loopback ports, installing
# them from Debian/Ubuntu packages and starting them when they do not. Idempotent and quiet when
# everything already runs. Needs root (or sudo) only when something must be installed/started.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 120); do
    if port_open "$port"; then return 0; fi
    sleep 0.5
  done
  echo "ensure_services: $name did not come up on port $port" >&2
  return 1
}

apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_services: $* missing and apt-get is not available; install it yourself" >&2
    return 1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "$@" >/dev/null \
    || { $SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "$@" >/dev/null; }
}

# PostgreSQL (trust auth on loopback is what the test suite expects, as on CI)
if ! port_open 5432; then
  command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port 5432 PostgreSQL
fi

# Redis
if ! port_open 6379; then
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  $SUDO mkdir -p /var/lib/redis /var/log/redis
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 Redis
fi

# RabbitMQ
if ! port_open 5672; then
  command -v rabbitmq-server >/dev/null 2>&1 || apt_install rabbitmq-server
  $SUDO rabbitmq-server -detached || true
  wait_port 5672 RabbitMQ
fi

# PostGIS, for the spatial index of collection points
if [ -x scripts/ensure_postgis.sh ]; then scripts/ensure_postgis.sh; fi
