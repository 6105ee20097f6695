#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in build-fuzz/ and
# runs each for SECONDS (default 30), seeded from the protocol's golden
# vectors and small images of every format. Exits non-zero on any crash,
# leak or sanitizer report; the input that found it is left in build-fuzz/.
#   bash fuzz/run.sh [SECONDS]
# A longer run for developers: bash fuzz/run.sh 3600 (see fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
build="${IMGQ_FUZZ_BUILD:-build-fuzz}"

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMGQ_BUILD_TESTS=OFF -DIMGQ_FUZZ=ON \
  -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fsanitize=fuzzer-no-link -fno-omit-frame-pointer" \
  >/dev/null
cmake --build "$build" -j "$(nproc)" --target message_fuzzer image_header_fuzzer >/dev/null

# Seeds: every golden vector of tests/schemas/protocol_test.cc, and the
# committed image seeds (fuzz/seeds/images).
corpus="$build/corpus"
rm -rf "$corpus"
mkdir -p "$corpus/messages" "$corpus/images"
n=0
while read -r hex; do
  perl -e 'print pack("H*", $ARGV[0])' "$hex" >"$corpus/messages/golden$n"
  n=$((n + 1))
done < <(grep -oE '"[0-9a-f]{40,}"' tests/schemas/protocol_test.cc | tr -d '"')
cp fuzz/seeds/images/* "$corpus/images/"
echo "fuzz: $n golden messages, $(ls "$corpus/images" | wc -l) image seeds; ${seconds}s per target"

run() {
  local target="$1" dir="$2"
  (cd "$build" && "./bin/$target" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
     -print_final_stats=1 "corpus/$dir" 2>&1 | tail -n 12)
}
run message_fuzzer messages
run image_header_fuzzer images
echo "fuzz: no crash"
