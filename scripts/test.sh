#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite with ctest
# (unit tests, MPI exactness tests on 1-4 ranks, end-to-end tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd build
ctest --output-on-failure --timeout 900 -j"$(nproc)"
