#!/usr/bin/env bash
# The journal's cost, side by side in one run: the broker with a data dir
# (durable, the default) and with --memory-only, on
#   - tiny jobs: 8 clients x 4 in flight, identity on a 64x64 PNG, against
#     2 worker groups of 1 rank: jobs/s, the CPU per job of the broker, the
#     groups (their mpiexec and proxies too) and the clients (from /proc),
#     and fsyncs (journal commits) per second;
#   - a 64-megapixel PPM (192 MB) blurred through the sockets: seconds, and
#     the journal's cost per MB;
#   - the floor under the broker's cost per tiny job: the same clients and
#     groups through imgq-bench-relay (bench/relay.cc), which carries the
#     same messages with the same codec and does nothing else.
# Writes its section of bench/RESULTS.md (between the journal markers; the
# rest is bench/run.sh's). A few minutes on 2 cores.
#   bash bench/journal.sh            (IMGQ_BENCH_PORT moves the broker's ports)
#   IMGQ_BENCH_BASE=/path/to/older/imgq-broker bash bench/journal.sh
#                                    also runs that broker, durable, in the same
#                                    run, for a change's before and after
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh imgq-broker imgq-worker imgq imgq-bench-make-images imgq-bench-tiny-jobs imgq-bench-relay >/dev/null

bin=build/bin
cores=$(nproc)
port="${IMGQ_BENCH_PORT:-26555}"
clients="tcp://127.0.0.1:$port" workers="tcp://127.0.0.1:$((port + 1))" progress="tcp://127.0.0.1:$((port + 2))"
metrics_port=$((port + 3))
work=$(mktemp -d /tmp/imgq-journal-bench.XXXXXX)
source bench/common.sh  # pids, cleanup on exit, now(), start_groups

mkdir -p "$work/large"
"$bin/imgq-bench-make-images" 8000 8000 1 "$work/large" ppm >/dev/null
large_mb=$(awk -v b="$(stat -c %s "$work/large/gen0.ppm")" 'BEGIN { printf "%.0f", b / 1048576 }')
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# The groups' processes together: ranks, hydra's proxies, mpiexec.
groups_ticks() {
  local t=0 p
  for p in $(pgrep -x 'imgq-worker|hydra_pmi_proxy|mpiexec'); do t=$((t + $(cpu_ticks "$p" 2>/dev/null || echo 0))); done
  echo "$t"
}
commits() {
  curl -sf "http://127.0.0.1:$metrics_port/metrics" | awk '/^imgq_journal_commit_seconds_count/ { print $2 }' || true
}

start_system() {  # start_system memory|durable|relay
  local mode=$1 broker
  if [ "$mode" = relay ]; then
    broker=("$bin/imgq-bench-relay" --clients "$clients" --workers "$workers")
  else
    local program="$bin/imgq-broker"
    [ "$mode" = base ] && program=$IMGQ_BENCH_BASE
    broker=("$program" --clients "$clients" --workers "$workers" --progress "$progress"
      --metrics "127.0.0.1:$metrics_port")
    if [ "$mode" = memory ]; then broker+=(--memory-only); else rm -rf "$work/data"; broker+=(--data-dir "$work/data"); fi
    broker+=("${broker_flags[@]}")
  fi
  setsid "${broker[@]}" >"$work/broker-$mode.log" 2>&1 &
  pids+=($!)
  broker_pid=$!
  start_groups 2 tiny
}
stop_system() {
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}

declare -A rate cpu_us groups_us clients_us fsyncs large_s
broker_flags=()
hz=$(getconf CLK_TCK)
# tiny_jobs MODE: jobs/s and the broker's CPU per job (and commits/s).
tiny_jobs() {
  local mode=$1 c0 c1 t0 t1 g0 g1 s0 s1 line jobs
  "$bin/imgq-bench-tiny-jobs" --broker "$clients" --clients 8 --jobs 50 --window 4 >/dev/null  # warm-up
  # 20,000 jobs: runs of 4,000 moved by 15% from one to the next.
  c0=$(commits); t0=$(cpu_ticks "$broker_pid"); g0=$(groups_ticks); s0=$(now)
  line=$("$bin/imgq-bench-tiny-jobs" --broker "$clients" --clients 8 --jobs 2500 --window 4)
  s1=$(now); t1=$(cpu_ticks "$broker_pid"); g1=$(groups_ticks); c1=$(commits)
  jobs=$(field jobs <<<"$line")
  rate[$mode]=$(field jobs_per_second <<<"$line" | awk '{ printf "%.0f", $1 }')
  cpu_us[$mode]=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v n="$jobs" 'BEGIN { printf "%.0f", (b - a) / hz * 1e6 / n }')
  groups_us[$mode]=$(awk -v a="$g0" -v b="$g1" -v hz="$hz" -v n="$jobs" 'BEGIN { printf "%.0f", (b - a) / hz * 1e6 / n }')
  clients_us[$mode]=$(field clients_cpu_us_per_job <<<"$line" | awk '{ printf "%.0f", $1 }')
  fsyncs[$mode]=$(awk -v a="${c0:-0}" -v b="${c1:-0}" -v s0="$s0" -v s1="$s1" 'BEGIN { printf "%.0f", (b - a) / (s1 - s0) }')
}
# The floor: the same clients and groups through a bare relay of the same
# messages (bench/relay.cc).
start_system relay
tiny_jobs relay
echo "relay: ${rate[relay]} tiny jobs/s, ${cpu_us[relay]} us CPU per job (groups ${groups_us[relay]}, clients ${clients_us[relay]})"
stop_system
base_mode=${IMGQ_BENCH_BASE:+base}
for mode in memory durable $base_mode; do
  start_system "$mode"
  tiny_jobs "$mode"
  runs=()
  for _ in 1 2 3; do
    rm -rf "$work/out"
    t=$(now)
    "$bin/imgq" submit --broker "$clients" --progress "$progress" --op gaussian_blur:ksize=5 -o "$work/out" \
      "$work/large/gen0.ppm" >/dev/null 2>&1
    runs+=("$(awk -v a="$t" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')")
  done
  large_s[$mode]=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p)
  echo "$mode: ${rate[$mode]} tiny jobs/s, ${cpu_us[$mode]} us broker CPU per job (groups ${groups_us[$mode]}, clients ${clients_us[$mode]}), ${fsyncs[$mode]} commits/s; large ${large_s[$mode]} s"
  stop_system
done

# The journal's size: 3 x 50,000 tiny jobs, acknowledged, through a broker
# whose results and tombstones expire after 2 s; the data dir's database
# and log before, at the end of each run, and once they are forgotten and
# the broker has had quiet moments to give the space back.
data_mb() { du -sb "$work/data" | awk '{ printf "%.1f", $1 / 1e6 }'; }
broker_flags=(--result-ttl 2)
start_system durable
size_before=$(data_mb)
size_peaks=()
for _ in 1 2 3; do
  "$bin/imgq-bench-tiny-jobs" --broker "$clients" --clients 8 --jobs 6250 --window 4 >/dev/null
  size_peaks+=("$(data_mb)")
done
sleep 8  # 2 TTLs, then quiet seconds
size_after=$(data_mb)
stop_system
broker_flags=()
echo "journal size: ${size_before} MB before, ${size_peaks[*]} MB after each 50,000 jobs, ${size_after} MB once forgotten"

cost=$(awk -v a="${large_s[memory]}" -v b="${large_s[durable]}" -v mb="$large_mb" 'BEGIN { printf "%.1f", (b - a) * 1000 / mb }')
share=$(awk -v a="${rate[memory]}" -v b="${rate[durable]}" 'BEGIN { printf "%.0f", (a - b) * 100 / a }')
base_line=
if [ -n "$base_mode" ]; then
  base_line="Against \`$IMGQ_BENCH_BASE\` (durable), in the same run: ${rate[base]} tiny jobs/s, ${cpu_us[base]} us of broker CPU per job, ${fsyncs[base]} commits/s, the large image ${large_s[base]} s.

"
fi
section=$(cat <<MD
<!-- journal:begin -->
## The journal's cost (bench/journal.sh)

Written by \`bash bench/journal.sh\` on $(date -u +%Y-%m-%d), $cores cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)),
one run, side by side: the same broker with a data dir (durable, the default:
every accepted job fsynced before \`accepted\`, results kept until
acknowledged) and with \`--memory-only\`.

| work | memory only | journal on | |
|---|---|---|---|
| tiny jobs/s (8 clients x 4 in flight, 2 groups of 1 rank) | ${rate[memory]} | ${rate[durable]} | journal costs ${share}% of throughput |
| broker CPU per tiny job (us, /proc) | ${cpu_us[memory]} | ${cpu_us[durable]} | |
| the 2 groups' CPU per tiny job (us: ranks, hydra's proxies, mpiexec) | ${groups_us[memory]} | ${groups_us[durable]} | |
| the 8 clients' CPU per tiny job (us) | ${clients_us[memory]} | ${clients_us[durable]} | |
| all three, per tiny job (us) | $((cpu_us[memory] + groups_us[memory] + clients_us[memory])) | $((cpu_us[durable] + groups_us[durable] + clients_us[durable])) | $cores cores allow at most $(awk -v t="$((cpu_us[memory] + groups_us[memory] + clients_us[memory]))" -v c="$cores" 'BEGIN { printf "%.0f", c * 1e6 / t }') jobs/s memory-only |
| journal commits per second | - | ${fsyncs[durable]} | group commit: one commit (and one fsync) takes every change made while the previous one was being synced, not one per job |
| 64 MP PPM (${large_mb} MB) blurred through the sockets, s (median of 3) | ${large_s[memory]} | ${large_s[durable]} | ${cost} ms per MB journaled |

Each client submits as \`imgq submit\` does: its result stands for
\`accepted\` when it comes within the submit's \`accept_hold_ms\` (200), and
results are acknowledged together, so a tiny job is four messages through
the broker (submit, job, done, result) and a share of one \`result_ack\`.
The floor: the same 8 clients and 2 groups through \`imgq-bench-relay\`
(bench/relay.cc), a bare relay of those messages over the same ROUTER
sockets and codec, with no checks, queue policy, journal, metrics or
events: ${rate[relay]} jobs/s, ${cpu_us[relay]} us of CPU per job. The
memory-only broker costs $(awk -v a="${cpu_us[memory]}" -v b="${cpu_us[relay]}" 'BEGIN { printf "%.2f", a / b }')x the relay's CPU per job.

The large image is written once to a payload file of its own (fsynced before
the commit that names it) and its result once more; small images and
results live in the database's log. Per tiny job the journal writes its
row when the job is stored and once more: a dispatch, an end and an
acknowledgement that come within 50 ms of each other are one row update.

The journal's size, with \`--result-ttl 2\`: ${size_before} MB before,
${size_peaks[*]} MB after each of 3 runs of 50,000 tiny jobs, ${size_after} MB
once they were forgotten (database and log: the space of forgotten jobs
is given back at quiet moments, 4 MB a step, and the log cut back).

${base_line}<!-- journal:end -->
MD
)
if grep -q '^<!-- journal:begin -->' bench/RESULTS.md; then
  awk -v s="$section" '/^<!-- journal:begin -->/ { print s; skip = 1 } !skip { print } /^<!-- journal:end -->/ { skip = 0 }' \
    bench/RESULTS.md >bench/RESULTS.md.new
else
  { cat bench/RESULTS.md; echo; echo "$section"; } >bench/RESULTS.md.new
fi
mv bench/RESULTS.md.new bench/RESULTS.md
echo "$section"
