#!/usr/bin/env bash
# Build the code package for Function Compute's python3.10 runtime (x86_64 Linux):
#   build/code/index.py, build/code/python/ (flink_alerts and its dependencies as cp310 wheels),
#   build/code/config.yaml (when a config file is given).
# Usage: scripts/build-fc.sh [CONFIG.yaml]      (OUT=dir overrides build/code)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build/code}
python=${PYTHON:-python3}

rm -rf "$out" && mkdir -p "$out"
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" .
"$python" -m pip install --quiet --target "$out/python" \
  --platform manylinux2014_x86_64 --python-version 3.10 --implementation cp --only-binary=:all: \
  "$wheels"/flink_alerts-*.whl
cp functions/index.py "$out/"
if [ $# -gt 0 ]; then
  cp "$1" "$out/config.yaml"
fi
echo "built $out ($(du -sh "$out" | cut -f1))"
