#!/usr/bin/env bash
# Builds and installs the package with pip, offline, from a copy of the
# source, into a folder of its own, and imports it from there: what
# `pip install clients/python` does, minus the download of its dependencies.
set -euo pipefail
python=${1:-python3}
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$src" "$work/src"
rm -rf "$work/src/tests"
"$python" -m pip install -q --no-deps --no-build-isolation --no-index --target "$work/site" "$work/src" 2>&1 |
  grep -v "Running pip as the 'root' user" || true
cd "$work"
PYTHONPATH="$work/site" "$python" -c "
import imgq
assert imgq.__file__.startswith('$work/site/'), imgq.__file__
assert imgq.Client and imgq.JobFailed
print('installed imgq', imgq.__version__)"
