#!/usr/bin/env bash
# Configures and builds imgq into ./build (Release flags with debug info).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DIMGQ_BUILD_TESTS="${IMGQ_BUILD_TESTS:-ON}" >/dev/null
cmake --build build -j"$(nproc)"
