#!/usr/bin/env bash
# `make faults`: the fault-injection suite (tests/faults) in two pytest processes at once, each with
# its own private RabbitMQ node and retriever, so the scenarios' waits (outages of 30-60 s, back-off,
# worker restarts) overlap and the suite fits CI's budget. Each group's output is printed when it
# ends; the exit status is the worst of the two.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
FAULT_GROUPS=(
  "tests/faults/test_broker_faults.py tests/faults/test_database_faults.py tests/faults/test_process_faults.py"
  "tests/faults/test_worker_faults.py"
)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
pids=()
for i in "${!FAULT_GROUPS[@]}"; do
  # shellcheck disable=SC2086  # a group is a list of paths
  $PY -m pytest ${FAULT_GROUPS[$i]} -m faults -q -s -p no:cacheprovider --durations=0 >"$logs/$i.log" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}"; code=$?
  echo "== fault group $((i + 1)): ${FAULT_GROUPS[$i]} (exit $code)"
  cat "$logs/$i.log"
  [ "$code" -gt "$status" ] && status=$code
done
exit "$status"
