#!/usr/bin/env bash
# Fair admission, side by side in one run: one client floods the broker with
# 50,000 tiny jobs (identity on a 64x64 PNG) while, once it has been refused
# (it holds all it may), ten other clients submit 20 each (bench/flood.cc). The broker
# runs with --max-queued 10000, so the flood alone could fill the queue;
# 2 worker groups of 1 rank. Measured: the ten clients' admission latency
# (p50, p99: first submit to `accepted`, waits after refusals included),
# their refusals, when their last job finished and when the flood's did.
# Writes its section of bench/RESULTS.md (between the flood markers).
#   bash bench/flood.sh
#   IMGQ_BENCH_BASE=/path/to/older/imgq-broker bash bench/flood.sh
#                      also runs that broker (one from before fair
#                      admission shows what it fixes) in the same run
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh imgq-broker imgq-worker imgq imgq-bench-flood >/dev/null

bin=build/bin
port="${IMGQ_BENCH_PORT:-27555}"
clients="tcp://127.0.0.1:$port" workers="tcp://127.0.0.1:$((port + 1))" progress="tcp://127.0.0.1:$((port + 2))"
work=$(mktemp -d /tmp/imgq-flood-bench.XXXXXX)
source bench/common.sh  # pids, cleanup on exit, now(), start_groups
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }

run() {  # run NAME BROKER: one measurement, its line in $work/NAME
  local name=$1 program=$2
  rm -rf "$work/data"
  setsid "$program" --clients "$clients" --workers "$workers" --progress "$progress" --metrics '' \
    --data-dir "$work/data" --max-queued 10000 >"$work/broker-$name.log" 2>&1 &
  pids+=($!)
  start_groups 2 g
  "$bin/imgq-bench-flood" --broker "$clients" --flood 50000 --clients 10 --jobs 20 | tee "$work/$name"
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}

run now "$bin/imgq-broker"
[ -n "${IMGQ_BENCH_BASE:-}" ] && run base "$IMGQ_BENCH_BASE"

row() {  # row NAME LABEL
  local l; l=$(cat "$work/$1")
  printf '| %s | %s | %s | %s | %s s | %s s | %s |\n' "$2" \
    "$(field admission_p50_ms <<<"$l" | awk '{ printf "%.1f", $1 }')" \
    "$(field admission_p99_ms <<<"$l" | awk '{ printf "%.1f", $1 }')" \
    "$(field small_refusals <<<"$l")" \
    "$(field small_done_s <<<"$l" | awk '{ printf "%.2f", $1 }')" \
    "$(field flood_done_s <<<"$l" | awk '{ printf "%.1f", $1 }')" \
    "$(field flood_refusals <<<"$l")"
}
section=$(
  echo "<!-- flood:begin -->"
  echo "## Fair admission under a flood (bench/flood.sh, $(date +%Y-%m-%d), $(nproc) cores)"
  echo
  echo "One client floods 50,000 tiny jobs (up to 2,000 in flight, again after each"
  echo "refusal's hint); once it has been refused (it holds all it may: the whole"
  echo "queue, or its share), ten other clients submit 20 jobs each."
  echo "\`--max-queued 10000\`, durable, 2 groups of 1 rank. Admission: a small"
  echo "client's first submit of a job to its \`accepted\`, waits after refusals included."
  echo
  echo "| broker | small clients' admission p50 (ms) | p99 (ms) | their refusals | their last job done | the flood's last job done | the flood's refusals |"
  echo "|---|---|---|---|---|---|---|"
  row now "this one (shares: --max-queued / (active clients + 1), at least a tenth)"
  [ -f "$work/base" ] && row base "$(git -C "$(dirname "$IMGQ_BENCH_BASE")" rev-parse --short HEAD 2>/dev/null || echo older), before fair admission (one global bound)"
  echo
  echo "Times are from the small clients' start."
  echo "<!-- flood:end -->"
)
results=bench/RESULTS.md
if grep -q '<!-- flood:begin -->' "$results"; then
  awk -v section="$section" '
    /<!-- flood:begin -->/ { print section; skip = 1; next }
    /<!-- flood:end -->/ { skip = 0; next }
    !skip { print }' "$results" >"$results.new" && mv "$results.new" "$results"
else
  printf '\n%s\n' "$section" >>"$results"
fi
echo "wrote the flood section of $results"
