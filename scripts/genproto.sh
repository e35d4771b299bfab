#!/usr/bin/env bash
# Regenerates the Python stubs beside every .proto (proto path = package = import path):
# messages (*_pb2.py, *_pb2.pyi) for every file, gRPC stubs (*_pb2_grpc.py) only for the files
# that declare a service (an event-only file would get an empty module).
# Usage: scripts/genproto.sh [OUT_DIR]   (default: proto/, i.e. in place)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
out=${1:-proto}
mapfile -t protos < <(find proto/genai -name '*.proto' | sort)
mapfile -t with_services < <(grep -l '^service ' "${protos[@]}" | sort)
"$py" -m grpc_tools.protoc -I proto --python_out="$out" --pyi_out="$out" "${protos[@]}"
if [ "${#with_services[@]}" -gt 0 ]; then
  "$py" -m grpc_tools.protoc -I proto --grpc_python_out="$out" "${with_services[@]}"
fi
while read -r dir; do
  [ -f "$out/$dir/__init__.py" ] || : > "$out/$dir/__init__.py"
done < <(cd proto && find genai -type d | sort)
