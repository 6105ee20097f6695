#!/usr/bin/env bash
# Ingestion side by side in one run, on a backlog of N small photographs
# (copies of one of Debian's samples, 259x194 JPEG -> grayscale, blur -> PNG)
# against one worker group of one rank per core and a durable broker:
#   - `imgq submit` on the folder (the baseline: the same jobs, no hot folder);
#   - `imgq ingest` with the same files already in its inbox, until the inbox
#     is empty: images/s, and the client's peak memory (VmHWM) for N and for
#     N/10, to show the backlog does not grow it.
# Writes its section of bench/RESULTS.md (between the ingest markers).
#   bash bench/ingest.sh [N]         (default 20000; IMGQ_BENCH_PORT moves the ports)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh imgq-broker imgq-worker imgq >/dev/null

n="${1:-20000}"
small=$((n / 10))
bin=build/bin
cores=$(nproc)
port="${IMGQ_BENCH_PORT:-27555}"
clients="tcp://127.0.0.1:$port" workers="tcp://127.0.0.1:$((port + 1))" progress="tcp://127.0.0.1:$((port + 2))"
sample=/usr/share/doc/opencv-doc/examples/data/HappyFish.jpg
ops=(--op grayscale --op gaussian_blur:ksize=5 --format png)
work=$(mktemp -d /tmp/imgq-ingest-bench.XXXXXX)
source bench/common.sh  # pids, cleanup on exit, now()
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

fill() {  # fill DIR COUNT: COUNT copies of the sample, 1,000 per subfolder
  local dir=$1 count=$2 i
  for ((i = 0; i < count; i += 1000)); do
    mkdir -p "$dir/d$((i / 1000))"
    seq "$i" "$((i + 999 < count - 1 ? i + 999 : count - 1))" |
      xargs -I{} cp "$sample" "$dir/d$((i / 1000))/img{}.jpg"
  done
}

setsid "$bin/imgq-broker" --clients "$clients" --workers "$workers" --progress "$progress" --metrics "" \
  --data-dir "$work/data" --max-queued 200000 >"$work/broker.log" 2>&1 &
pids+=($!)
setsid mpiexec -n "$cores" "$bin/imgq-worker" --broker "$workers" --name bench >"$work/group.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
  "$bin/imgq" ping --broker "$clients" --json 2>/dev/null | grep -q '"groups":1' && break
  sleep 0.1
done

echo "ingest bench: $n images, $cores cores"
fill "$work/list" "$n"
t=$(now)
"$bin/imgq" submit --broker "$clients" --progress "$progress" "${ops[@]}" -o "$work/submitted" "$work/list" \
  >/dev/null 2>"$work/submit.err"
submit_s=$(since "$t")
echo "imgq submit: $submit_s s"

declare -A ingest_s peak_kb
for count in "$small" "$n"; do
  rm -rf "$work/inbox" "$work/inbox.done" "$work/out"
  fill "$work/inbox" "$count"
  t=$(now)
  setsid "$bin/imgq" ingest --broker "$clients" --progress "$progress" "${ops[@]}" --inbox "$work/inbox" \
    -o "$work/out" >/dev/null 2>"$work/ingest-$count.err" &
  pid=$!
  pids+=($pid)
  while [ -n "$(find "$work/inbox" -name '*.jpg' -print -quit)" ]; do sleep 0.2; done
  ingest_s[$count]=$(since "$t")
  peak_kb[$count]=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")
  kill -TERM "$pid"
  wait "$pid" || true
  results=$(find "$work/out" -name '*.png' | wc -l)
  echo "imgq ingest, $count files: ${ingest_s[$count]} s, peak ${peak_kb[$count]} kB, $results results"
  [ "$results" -eq "$count" ] || { echo "expected $count results" >&2; exit 1; }
done
# The same pixels as imgq submit's (byte for byte: both are the system's result).
cmp -s "$work/submitted/d0/img0.png" "$work/out/d0/img0.png" || { echo "results differ" >&2; exit 1; }

rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
section=$(cat <<END
<!-- ingest:begin -->
## Hot-folder ingestion (bench/ingest.sh, $(date -u +%Y-%m-%d), $cores cores)

$n copies of HappyFish.jpg (259x194) in folders of 1,000, grayscale and
blur to PNG, one worker group of $cores ranks, durable broker. \`imgq ingest\`
found them all in its inbox at start; it writes each result, syncs it
(one syncfs per batch of results), moves the original to done/ and
acknowledges.

| client | images | seconds | images/s | peak memory |
|---|---|---|---|---|
| \`imgq submit\` on the folder | $n | $submit_s | $(rate "$n" "$submit_s") | |
| \`imgq ingest\` | $small | ${ingest_s[$small]} | $(rate "$small" "${ingest_s[$small]}") | $((peak_kb[$small] / 1024)) MiB |
| \`imgq ingest\` | $n | ${ingest_s[$n]} | $(rate "$n" "${ingest_s[$n]}") | $((peak_kb[$n] / 1024)) MiB |

Ingest over submit: $(awk -v a="$submit_s" -v b="${ingest_s[$n]}" 'BEGIN { printf "%.2f", a / b }')x the
rate. Peak memory with $n files over $small: $(awk -v a="${peak_kb[$small]}" -v b="${peak_kb[$n]}" 'BEGIN { printf "%.2f", b / a }')x.
<!-- ingest:end -->
END
)
if grep -q '^<!-- ingest:begin -->' bench/RESULTS.md; then
  awk -v s="$section" '/^<!-- ingest:begin -->/ { print s; skip = 1 } !skip { print } /^<!-- ingest:end -->/ { skip = 0 }' \
    bench/RESULTS.md >bench/RESULTS.md.new
else
  { cat bench/RESULTS.md; echo; echo "$section"; } >bench/RESULTS.md.new
fi
mv bench/RESULTS.md.new bench/RESULTS.md
echo "wrote the ingest section of bench/RESULTS.md"
