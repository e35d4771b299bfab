#!/usr/bin/env bash
# Regenerates the Python stubs beside every .proto (proto path = package = import path).
# Usage: scripts/genproto.sh [OUT_DIR]   (default: proto/, i.e. in place)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
out=${1:-proto}
mapfile -t protos < <(find proto/genai -name '*.proto' | sort)
"$py" -m grpc_tools.protoc -I proto \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" "${protos[@]}"
while read -r dir; do
  [ -f "$out/$dir/__init__.py" ] || : > "$out/$dir/__init__.py"
done < <(cd proto && find genai -type d | sort)
