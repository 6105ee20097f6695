#!/usr/bin/env bash
# Configures and builds imgq into ./build: everything, or the targets named
# (e.g. `scripts/build.sh imgq-broker imgq-worker imgq`).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build >/dev/null
if (($#)); then
  cmake --build build -j"$(nproc)" --target "$@"
else
  cmake --build build -j"$(nproc)"
fi
