#!/usr/bin/env bash
# imgq benchmarks: one command, side by side in one run on this machine,
# writing bench/RESULTS.md. Installs what is missing (incl. libvips-tools),
# builds, and takes a few minutes on 2 cores.
#   bash bench/run.sh            (IMGQ_BENCH_PORT moves the broker's ports)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
dpkg-query -W -f='${Status}' libvips-tools 2>/dev/null | grep -q "install ok installed" \
  || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libvips-tools >/dev/null
bash scripts/build.sh imgq-broker imgq-worker imgq imgq-bench-baseline imgq-bench-make-images \
  imgq-bench-tiny-jobs imgq-bench-micro >/dev/null

bin=build/bin
cores=$(nproc)
port="${IMGQ_BENCH_PORT:-25555}"
clients="tcp://127.0.0.1:$port" workers="tcp://127.0.0.1:$((port + 1))" progress="tcp://127.0.0.1:$((port + 2))"
work=$(mktemp -d /tmp/imgq-bench.XXXXXX)
source bench/common.sh  # pids, cleanup on exit, now()

# ---- inputs ----
mkdir -p "$work/batch" "$work/large"
cp /usr/share/doc/opencv-doc/examples/data/*.{jpg,png} "$work/batch/"
"$bin/imgq-bench-make-images" 3840 2160 6 "$work/batch" png    # 4K frames
"$bin/imgq-bench-make-images" 8000 8000 1 "$work/large" ppm    # 64 megapixels
batch_files=("$work"/batch/*)
batch_n=${#batch_files[@]}
pipeline=(--op to_8bit --op gaussian_blur:ksize=5 --op canny:low=50,high=150)
blur=(--op gaussian_blur:ksize=5)

# ---- helpers ----
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.2f", (s > 0 ? n / s : 0) }'; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
mb() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }   # KiB -> MiB

start_broker() {  # durable, as by default (bench/journal.sh compares it with --memory-only)
  setsid "$bin/imgq-broker" --clients "$clients" --workers "$workers" --progress "$progress" --metrics "" \
    --data-dir "$work/broker-data" \
    >"$work/broker.log" 2>&1 &
  pids+=($!)
  broker_pid=$!
}
# start_group NAME RANKS [ARGS...]: one worker group; waits until the broker knows it.
start_group() {
  local before
  before=$("$bin/imgq" ping --broker "$clients" --json | sed -n 's/.*"groups":\([0-9]*\).*/\1/p')
  setsid mpiexec -n "$2" "$bin/imgq-worker" --broker "$workers" --name "$1" "${@:3}" >"$work/$1.log" 2>&1 &
  pids+=($!)
  group_pids["$1"]=$!
  for _ in $(seq 300); do
    [ "$("$bin/imgq" ping --broker "$clients" --json | sed -n 's/.*"groups":\([0-9]*\).*/\1/p')" -gt "$before" ] && return
    sleep 0.1
  done
  echo "group $1 did not connect" >&2; exit 1
}
stop_group() { kill -TERM -- "-${group_pids[$1]}"; wait "${group_pids[$1]}" 2>/dev/null || true; }
declare -A group_pids
# Peak resident memory (MiB) of the broker and of every rank of a group.
peak_system_mb() {
  local total=0 kb
  for pid in "$broker_pid" $(pgrep -f "imgq-worker --broker $workers --name $1" || true); do
    kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0}))
  done
  mb "$total"
}
# Peak resident memory (MiB) summed over every rank of a group.
peak_group_mb() {
  local total=0 kb
  for pid in $(pgrep -f "imgq-worker --broker $workers --name $1" || true); do
    kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0}))
  done
  mb "$total"
}
# system_run NAME OUT ARGS...: wall seconds of one imgq submit (results written).
system_run() {
  local out=$1; shift
  rm -rf "$out"
  local t0; t0=$(now)
  "$bin/imgq" submit --broker "$clients" --progress "$progress" --window 32 -o "$out" "$@" >/dev/null 2>"$work/submit.err" \
    || { cat "$work/submit.err" >&2; exit 1; }
  since "$t0"
}
# standalone_run OUT ARGS...: "seconds peak_mib" of one standalone run
# (mpiexec -n cores imgq-worker --input ...; no broker), MPI start-up
# included; the peak is summed over the ranks.
standalone_run() {
  local out=$1; shift
  rm -rf "$out" "$work/ranks_mem.txt"
  local t0; t0=$(now)
  mpiexec -n "$cores" /usr/bin/time -f "%M" -a -o "$work/ranks_mem.txt" "$bin/imgq-worker" --out "$out" \
    --log-level warn "$@" || exit 1
  echo "$(since "$t0") $(mb "$(awk '{ s += $1 } END { print s }' "$work/ranks_mem.txt")")"
}
# median3 CMD...: runs CMD three times and prints the output line with the
# median first number (a single run of a 192 MB file varies with the page
# cache and writeback by +-30% here).
median3() {
  local a b c
  a=$("$@"); b=$("$@"); c=$("$@")
  printf '%s\n' "$a" "$b" "$c" | sort -n | sed -n 2p
}
vips_run() {
  /usr/bin/time -f "%e %M" -o "$work/vips.txt" vips gaussblur "$work/large/gen0.ppm" "$work/vips.ppm" 1.1
  local s kb
  read -r s kb <"$work/vips.txt"
  echo "$s $(mb "$kb")"
}
# baseline_run THREADS ARGS...: prints "seconds peak_mib".
baseline_run() {
  local threads=$1; shift
  /usr/bin/time -f "%M" -o "$work/time.txt" "$bin/imgq-bench-baseline" --threads "$threads" "$@" >"$work/base.txt"
  echo "$(field seconds <"$work/base.txt") $(mb "$(cat "$work/time.txt")")"
}

start_broker
batch_mp=$("$bin/imgq-bench-baseline" --threads 0 --format bmp "${batch_files[@]}" | field megapixels)
echo "inputs: $batch_n batch images ($batch_mp megapixels), one 8000x8000 image; $cores cores"

# ---- batch throughput and scaling ----
declare -A batch_s large_s large_mem
for ranks in 1 2 4; do
  start_group "g$ranks" "$ranks"
  batch_s[$ranks]=$(median3 system_run "$work/out" "${pipeline[@]}" --format png "$work/batch")
  large_s[$ranks]=$(median3 system_run "$work/out" "${blur[@]}" --format ppm "$work/large")
  large_mem[$ranks]=$(peak_system_mb "g$ranks")
  echo "system, $ranks ranks: batch ${batch_s[$ranks]} s, large ${large_s[$ranks]} s"
  stop_group "g$ranks"
done
# Local files (imgq submit --local): the group reads and writes the files.
# A fresh group for the large image, so its peak memory is that job's; the
# broker holds no pixels of a local job, so only the ranks are counted.
start_group "localb$cores" "$cores" --allow-paths "$work"
batch_local_s=$(median3 system_run "$work/out" --local "${pipeline[@]}" --format png "$work/batch")
stop_group "localb$cores"
start_group "locall$cores" "$cores" --allow-paths "$work"
large_local_s=$(median3 system_run "$work/out" --local "${blur[@]}" --format ppm "$work/large")
large_local_mem=$(peak_group_mb "locall$cores")
echo "system, $cores ranks, local files: batch $batch_local_s s, large $large_local_s s"
stop_group "locall$cores"
# Standalone mode: the same group without a broker, reading and writing the files.
read -r batch_alone_s _ < <(median3 standalone_run "$work/out" "${pipeline[@]}" --format png --input "$work/batch")
read -r large_alone_s large_alone_mem < <(median3 standalone_run "$work/out" "${blur[@]}" --format ppm --input "$work/large")
echo "standalone, $cores ranks: batch $batch_alone_s s, large $large_alone_s s"
read -r seq_batch _ < <(median3 baseline_run 1 "${pipeline[@]}" --format png --out "$work/base" "${batch_files[@]}")
read -r thr_batch _ < <(median3 baseline_run 0 "${pipeline[@]}" --format png --out "$work/base" "${batch_files[@]}")
read -r seq_large seq_large_mem < <(median3 baseline_run 1 "${blur[@]}" --format ppm --out "$work/base" "$work/large/gen0.ppm")
read -r thr_large thr_large_mem < <(median3 baseline_run 0 "${blur[@]}" --format ppm --out "$work/base" "$work/large/gen0.ppm")
read -r vips_large vips_mem < <(median3 vips_run)
echo "baselines: batch ${seq_batch}/${thr_batch} s, large ${seq_large}/${thr_large} s, vips $vips_large s"

# ---- overhead: tiny jobs ----
start_group tiny1 1
read -r tiny_line < <("$bin/imgq-bench-tiny-jobs" --broker "$clients" --clients 1 --jobs 300)
start_group tiny2 1
read -r tiny8_line < <("$bin/imgq-bench-tiny-jobs" --broker "$clients" --clients 8 --jobs 100)
p50=$(field p50_ms <<<"$tiny_line") p99=$(field p99_ms <<<"$tiny_line")
tiny_rate=$(field jobs_per_second <<<"$tiny8_line")
stop_group tiny1
stop_group tiny2

"$bin/imgq-bench-micro" --benchmark_min_time=0.2 --benchmark_format=console 2>/dev/null \
  | sed -n '/^BM_/p' >"$work/micro.txt"

# ---- RESULTS.md ----
n=$cores
{
  echo "# imgq benchmark results"
  echo
  echo "Measured by \`bash bench/run.sh\` on $(date -u +%Y-%m-%d), $cores cores ($(lscpu | sed -n 's/^Model name: *//p')), $(free -g | awk '/Mem:/ {print $2}') GiB."
  echo "Everything below ran in one run, side by side; every time is the median of three runs. \"System\" is the whole path: \`imgq submit\` (client) -> \`imgq-broker\` -> one worker group of N ranks (\`mpiexec -n N\`) -> result written; N = $n (the core count) unless stated. \"Sequential\" is one process doing the same decode, pipeline and encode per file with \`cv::setNumThreads(1)\`; \"OpenCV threads\" the same loop with OpenCV's own threads (TBB). \"Local files\" is \`imgq submit --local\`: the client sends paths, and the group (started with \`--allow-paths\`) reads the images and writes the results itself, so no pixels cross a socket (same host or shared file system)."
  echo
  echo "## Batch throughput"
  echo
  echo "$batch_n images ($batch_mp megapixels): OpenCV's sample photographs plus 6 generated 3840x2160 frames; pipeline \`to_8bit, gaussian_blur:ksize=5, canny:low=50,high=150\`, PNG out."
  echo
  echo "| run | seconds | images/s | megapixels/s | vs sequential | vs OpenCV threads |"
  echo "|---|---|---|---|---|---|"
  echo "| sequential loop, 1 thread | $seq_batch | $(rate "$batch_n" "$seq_batch") | $(rate "$batch_mp" "$seq_batch") | 1.00 | $(ratio "$thr_batch" "$seq_batch") |"
  echo "| OpenCV threads loop | $thr_batch | $(rate "$batch_n" "$thr_batch") | $(rate "$batch_mp" "$thr_batch") | $(ratio "$seq_batch" "$thr_batch") | 1.00 |"
  echo "| imgq system, $n ranks | ${batch_s[$n]} | $(rate "$batch_n" "${batch_s[$n]}") | $(rate "$batch_mp" "${batch_s[$n]}") | $(ratio "$seq_batch" "${batch_s[$n]}") | $(ratio "$thr_batch" "${batch_s[$n]}") |"
  echo "| imgq system, $n ranks, local files (\`--local\`) | $batch_local_s | $(rate "$batch_n" "$batch_local_s") | $(rate "$batch_mp" "$batch_local_s") | $(ratio "$seq_batch" "$batch_local_s") | $(ratio "$thr_batch" "$batch_local_s") |"
  echo "| imgq-worker standalone, $n ranks (no broker; MPI start-up included) | $batch_alone_s | $(rate "$batch_n" "$batch_alone_s") | $(rate "$batch_mp" "$batch_alone_s") | $(ratio "$seq_batch" "$batch_alone_s") | $(ratio "$thr_batch" "$batch_alone_s") |"
  echo
  echo "## One large image"
  echo
  echo "8000x8000 8-bit BGR (64 megapixels), PPM in and out (uncompressed, so codec time does not hide the compute), \`gaussian_blur:ksize=5\`; libvips: \`vips gaussblur\` with sigma 1.1 (the sigma OpenCV derives for ksize 5). Peak memory is the largest resident set: of the one process for the baselines, summed over the broker and every rank of the group for the system (the client is not counted; with local files only the ranks, as the broker holds no pixels)."
  echo
  echo "| run | seconds | vs sequential | peak memory (MiB) |"
  echo "|---|---|---|---|"
  echo "| sequential OpenCV, 1 thread | $seq_large | 1.00 | $seq_large_mem |"
  echo "| OpenCV threads | $thr_large | $(ratio "$seq_large" "$thr_large") | $thr_large_mem |"
  echo "| libvips (\`vips gaussblur\`) | $vips_large | $(ratio "$seq_large" "$vips_large") | $vips_mem |"
  echo "| imgq system, $n ranks | ${large_s[$n]} | $(ratio "$seq_large" "${large_s[$n]}") | ${large_mem[$n]} |"
  echo "| imgq system, $n ranks, local files (\`--local\`) | $large_local_s | $(ratio "$seq_large" "$large_local_s") | $large_local_mem |"
  echo "| imgq-worker standalone, $n ranks (no broker; MPI start-up included) | $large_alone_s | $(ratio "$seq_large" "$large_alone_s") | $large_alone_mem |"
  echo
  echo "## Overhead"
  echo
  echo "| measure | value |"
  echo "|---|---|"
  echo "| tiny job round trip (identity on 64x64 PNG, one client, one group), p50 | $p50 ms |"
  echo "| same, p99 | $p99 ms |"
  echo "| tiny jobs per second, 8 clients, 2 groups of 1 rank | $tiny_rate |"
  echo
  echo "## Scaling (one group of N ranks)"
  echo
  echo "| ranks | batch seconds | batch vs sequential | large seconds | large vs sequential | large peak memory (MiB) |"
  echo "|---|---|---|---|---|---|"
  for r in 1 2 4; do
    echo "| $r$([ "$r" -gt "$cores" ] && echo " (oversubscribed: $cores cores)") | ${batch_s[$r]} | $(ratio "$seq_batch" "${batch_s[$r]}") | ${large_s[$r]} | $(ratio "$seq_large" "${large_s[$r]}") | ${large_mem[$r]} |"
  done
  echo
  echo "## Micro-benchmarks (Google Benchmark)"
  echo
  echo "| benchmark | time | CPU | iterations |"
  echo "|---|---|---|---|"
  awk '{ printf "| %s | %s %s | %s %s | %s |\n", $1, $2, $3, $4, $5, $6 }' "$work/micro.txt"
  # The sections of bench/journal.sh, bench/ingest.sh, bench/big.sh and bench/flood.sh are kept from
  # their last runs.
  for section in journal ingest big flood; do
    [ -f bench/RESULTS.md ] && sed -n "/^<!-- $section:begin -->/,/^<!-- $section:end -->/p" bench/RESULTS.md \
      | sed '1s/^/\n/'
  done
} >bench/RESULTS.md.new
mv bench/RESULTS.md.new bench/RESULTS.md
echo "wrote bench/RESULTS.md"
