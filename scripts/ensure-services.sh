#!/usr/bin/env bash
# Makes sure what the platform and its tests use on this machine is installed and answering:
#   RabbitMQ on 127.0.0.1:5672, with its Prometheus plugin on 127.0.0.1:15692 (the ops check scrapes it);
#   Prometheus and promtool (Debian's package; the ops check starts its own server, nothing runs here);
#   Chromium, for the web console's browser tests;
#   Redis on 127.0.0.1:6379 (the gateway's per-key limits shared by replicas; their tests skip without it).
# PostgreSQL is optional: its tests skip when none answers.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Installs Debian packages without letting them start their services (Prometheus's would listen on
# every address): what runs here is started on 127.0.0.1 by this script or by the tests.
install() {
  export DEBIAN_FRONTEND=noninteractive
  local policy=/usr/sbin/policy-rc.d ours=""
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && ours=1; fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null; } \
    || { [ -z "$ours" ] || rm -f "$policy"; return 1; }
  [ -z "$ours" ] || rm -f "$policy"
}

# The Prometheus plugin listens on loopback too, whenever the broker starts.
loopback_plugin_conf() {
  mkdir -p /etc/rabbitmq
  grep -q '^prometheus.tcp.ip' /etc/rabbitmq/rabbitmq.conf 2>/dev/null \
    || echo "prometheus.tcp.ip = 127.0.0.1" >> /etc/rabbitmq/rabbitmq.conf
}

if ! command -v chromium >/dev/null 2>&1; then
  echo "Chromium is not installed; installing it from Debian's packages (console browser tests)" >&2
  install chromium fonts-dejavu-core
fi

if ! command -v promtool >/dev/null 2>&1; then
  echo "Prometheus is not installed; installing it from Debian's packages" >&2
  install prometheus
fi

if ! port_open 5672; then
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    echo "RabbitMQ is not installed; installing it from Debian's packages" >&2
    mkdir -p /etc/rabbitmq
    [ -f /etc/rabbitmq/rabbitmq.conf ] || echo "listeners.tcp.default = 127.0.0.1:5672" > /etc/rabbitmq/rabbitmq.conf
    install rabbitmq-server
  fi
  loopback_plugin_conf
  echo "starting RabbitMQ" >&2
  rabbitmq-server -detached
  started=""
  for _ in $(seq 1 60); do
    if port_open 5672 && rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1; then started=1; break; fi
    sleep 1
  done
  [ -n "$started" ] || { echo "RabbitMQ did not start within 60 s" >&2; exit 1; }
fi

# A broker that raised a resource alarm blocks every publisher until it clears: put the memory
# watermark and disk limit back to RabbitMQ's defaults (an experiment may have lowered them).
rabbitmqctl -q set_vm_memory_high_watermark 0.4 >/dev/null 2>&1 || true
rabbitmqctl -q set_disk_free_limit 50MB >/dev/null 2>&1 || true

if ! port_open 6379; then
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "Redis is not installed; installing it from Debian's packages" >&2
    install redis-server || echo "Redis could not be installed: the tests that need it skip" >&2
  fi
  if command -v redis-server >/dev/null 2>&1; then
    echo "starting Redis on 127.0.0.1:6379" >&2
    redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save "" --appendonly no >/dev/null
    for _ in $(seq 1 20); do port_open 6379 && break; sleep 0.5; done
  fi
fi

loopback_plugin_conf
if ! port_open 15692; then
  echo "enabling RabbitMQ's Prometheus plugin on 127.0.0.1:15692" >&2
  # On a running broker: bind the listener to loopback before the plugin starts it.
  rabbitmqctl -q eval 'application:load(rabbitmq_prometheus),
    application:set_env(rabbitmq_prometheus, tcp_config, [{ip, "127.0.0.1"}, {port, 15692}]).' >/dev/null
  rabbitmq-plugins -q enable rabbitmq_prometheus >/dev/null
  for _ in $(seq 1 30); do
    if port_open 15692; then exit 0; fi
    sleep 1
  done
  echo "RabbitMQ's Prometheus plugin did not start within 30 s" >&2
  exit 1
fi
