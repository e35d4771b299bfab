#!/usr/bin/env bash
# Makes sure the local RabbitMQ the platform and its tests use is installed and answering on
# 127.0.0.1:5672 (PostgreSQL is optional: its tests skip when none answers).
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if port_open 5672; then exit 0; fi

if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "RabbitMQ is not installed; installing it from Debian's packages" >&2
  mkdir -p /etc/rabbitmq
  [ -f /etc/rabbitmq/rabbitmq.conf ] || echo "listeners.tcp.default = 127.0.0.1:5672" > /etc/rabbitmq/rabbitmq.conf
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq rabbitmq-server >/dev/null
fi

echo "starting RabbitMQ" >&2
rabbitmq-server -detached
for _ in $(seq 1 60); do
  if port_open 5672 && rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1; then exit 0; fi
  sleep 1
done
echo "RabbitMQ did not start within 60 s" >&2
exit 1
