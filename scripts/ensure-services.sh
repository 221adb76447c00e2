#!/usr/bin/env bash
# Makes PostgreSQL, Redis and RabbitMQ reachable on 127.0.0.1 with the settings SutazAI's defaults
# and tests expect: start each one that is installed but stopped, install from Debian packages what
# is missing, bind everything to loopback. Safe to run again: a reachable server is left alone.
set -euo pipefail

log() { printf 'ensure-services: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; return 1
  fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # name port seconds
  local waited=0
  until port_open "$2"; do
    if [ "$waited" -ge "$3" ]; then log "$1 did not open port $2 within $3 s"; return 1; fi
    sleep 1; waited=$((waited + 1))
  done
}

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  log "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_postgres() {
  if port_open 5432; then return; fi
  command -v pg_ctlcluster >/dev/null || apt_install postgresql postgresql-client
  local version
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$version" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    as_root pg_createcluster "$version" main >/dev/null
  fi
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  # Local development and CI trust loopback connections (the defaults carry no password).
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
  fi
  log "starting postgresql $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_port postgresql 5432 30
}

ensure_redis() {
  if port_open 6379; then return; fi
  command -v redis-server >/dev/null || apt_install redis-server
  log "starting redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/sutazai.log
  wait_port redis 6379 15
}

ensure_rabbitmq() {
  if port_open 5672; then return; fi
  if ! command -v rabbitmq-server >/dev/null; then
    as_root mkdir -p /etc/rabbitmq
    echo 'listeners.tcp.default = 127.0.0.1:5672' | as_root tee /etc/rabbitmq/rabbitmq.conf >/dev/null
    printf 'NODE_IP_ADDRESS=127.0.0.1\nexport ERL_EPMD_ADDRESS=127.0.0.1\n' | as_root tee /etc/rabbitmq/rabbitmq-env.conf >/dev/null
    apt_install rabbitmq-server
  fi
  log "starting rabbitmq"
  as_root rabbitmq-server -detached
  wait_port rabbitmq 5672 90
  # The port opens before the node finishes booting its applications.
  local waited=0
  until as_root rabbitmqctl -q await_startup >/dev/null 2>&1; do
    if [ "$waited" -ge 60 ]; then log "rabbitmq did not finish starting"; return 1; fi
    sleep 1; waited=$((waited + 1))
  done
}

ensure_database() { # name
  local exists
  exists=$(psql -h 127.0.0.1 -U postgres -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '$1'" 2>/dev/null || true)
  if [ "$exists" != "1" ]; then
    psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE \"$1\"" >/dev/null
    log "created database $1"
  fi
}

ensure_postgres
ensure_redis
ensure_rabbitmq
ensure_database sutazai
log "postgresql :5432, redis :6379, rabbitmq :5672 reachable on 127.0.0.1"
