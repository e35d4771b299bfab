#!/usr/bin/env bash
# Makes sure what the platform and its tests need on this machine is there: the local RabbitMQ,
# installed and answering on 127.0.0.1:5672, and Chromium for the web console's browser tests
# (PostgreSQL is optional: its tests skip when none answers).
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! command -v chromium >/dev/null 2>&1; then
  echo "Chromium is not installed; installing it from Debian's packages (console browser tests)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

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
