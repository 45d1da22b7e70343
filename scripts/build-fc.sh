#!/usr/bin/env bash
# Build the code package for Function Compute's python3.10 runtime (x86_64 Linux):
#   build/code/index.py, build/code/python/ (flink_alerts and its dependencies as cp310 wheels),
#   build/code/config.yaml (when a config file is given).
# Usage: scripts/build-fc.sh [CONFIG.yaml]      (OUT=dir overrides build/code)
#   PYTHON310=path: the Python 3.10 that compiles the bytecode (default: python3.10 on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build/code}
python=${PYTHON:-python3}

rm -rf "$out" && mkdir -p "$out"
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" .
"$python" -m pip install --quiet --no-compile --target "$out/python" \
  --platform manylinux2014_x86_64 --python-version 3.10 --implementation cp --only-binary=:all: \
  "$wheels"/flink_alerts-*.whl
cp functions/index.py "$out/"
if [ $# -gt 0 ]; then
  cp "$1" "$out/config.yaml"
fi
# /code is read-only on FC: without bytecode made by the runtime's own Python (3.10), every cold
# start compiles all modules again (~0.5 s of CPU). unchecked-hash: the package never changes, so
# the source need not be compared (its mtime may change on upload).
py310=${PYTHON310:-$(command -v python3.10 || true)}
if [ -n "$py310" ]; then
  "$py310" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$out" >/dev/null
else
  echo "warning: no python3.10 (set PYTHON310): no bytecode in the package, slower cold starts" >&2
fi
echo "built $out ($(du -sh "$out" | cut -f1))"
