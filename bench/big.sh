#!/usr/bin/env bash
# Big compressed images, side by side in one run: one 8000x8000 (64
# megapixel) 8-bit BGR image as PNG and as JPEG -> gaussian_blur:ksize=5 ->
# PNG, and as a deflate TIFF in strips and in tiles -> the same -> TIFF,
# through
#   - sequential OpenCV (imgq-bench-baseline --threads 1: decode, blur, encode);
#   - libvips (`vips gaussblur` sigma 1.1, PNG out at compression 1, as OpenCV's);
#   - the system: a durable broker and one group of one rank per core, the
#     image sent by `imgq submit` (the client's time, file in to file out).
# Every system result is checked against the sequential one: both decoded
# to PPM by the baseline tool and compared byte for byte. The group's log
# gives the leader's stage breakdown. Baselines get our glibc malloc tuning.
# Writes its section of bench/RESULTS.md (between the big markers).
#   bash bench/big.sh            (IMGQ_BENCH_PORT moves the ports)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
dpkg-query -W -f='${Status}' libvips-tools 2>/dev/null | grep -q "install ok installed" \
  || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libvips-tools >/dev/null
bash scripts/build.sh imgq-broker imgq-worker imgq imgq-bench-baseline imgq-bench-make-images >/dev/null

bin=build/bin
cores=$(nproc)
port="${IMGQ_BENCH_PORT:-28555}"
clients="tcp://127.0.0.1:$port" workers="tcp://127.0.0.1:$((port + 1))" progress="tcp://127.0.0.1:$((port + 2))"
work=$(mktemp -d /tmp/imgq-big-bench.XXXXXX)
export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=268435456
source bench/common.sh  # pids, cleanup on exit, now()
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
median3() {
  local a b c
  a=$("$@"); b=$("$@"); c=$("$@")
  printf '%s\n' "$a" "$b" "$c" | sort -n | sed -n 2p
}

mkdir -p "$work/in"
"$bin/imgq-bench-make-images" 8000 8000 1 "$work/in" png
"$bin/imgq-bench-make-images" 8000 8000 1 "$work/in" jpg
"$bin/imgq-bench-make-images" 8000 8000 1 "$work/in" tif deflate
"$bin/imgq-bench-make-images" 8000 8000 1 "$work/tiled" tif tiled
png_in="$work/in/gen0.png" jpg_in="$work/in/gen0.jpg" tif_in="$work/in/gen0.tif" tiled_in="$work/tiled/gen0.tif"

setsid "$bin/imgq-broker" --clients "$clients" --workers "$workers" --progress "$progress" --metrics "" \
  --data-dir "$work/data" >"$work/broker.log" 2>&1 &
pids+=($!)
# start_group RANKS NAME LOG: a group, awaited until the broker has it.
start_group() {
  setsid mpiexec -n "$1" "$bin/imgq-worker" --broker "$workers" --name "$2" --allow-paths "$work" >"$3" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do
    "$bin/imgq" ping --broker "$clients" --json 2>/dev/null | grep -q '"groups":1' && return
    sleep 0.1
  done
}
start_group "$cores" big "$work/group.log"

out_format=png  # what the runs below write
baseline() {  # baseline IN OUTDIR: seconds of sequential OpenCV
  "$bin/imgq-bench-baseline" --threads 1 --op gaussian_blur:ksize=5 --format "$out_format" --out "$2" "$1" \
    | field seconds
}
vips_out() {  # vips_out IN: seconds (OpenCV's settings: PNG level 1; TIFF LZW with the predictor)
  local t0 out="$work/vips.png[compression=1]"
  [ "$out_format" = tif ] && out="$work/vips.tif[compression=lzw,predictor=horizontal]"
  t0=$(now)
  vips gaussblur "$1" "$out" 1.1
  since "$t0"
}
system() {  # system IN OUTDIR [--local]: seconds of one imgq submit
  rm -rf "$2"
  local t0; t0=$(now)
  "$bin/imgq" submit --broker "$clients" --progress "$progress" -o "$2" --op gaussian_blur:ksize=5 \
    --format "$out_format" "${@:3}" "$1" >/dev/null
  since "$t0"
}
# exact A B: "yes" when the two images decode to the same pixels.
exact() {
  rm -rf "$work/ppm_a" "$work/ppm_b"
  "$bin/imgq-bench-baseline" --threads 1 --format ppm --out "$work/ppm_a" "$1" >/dev/null
  "$bin/imgq-bench-baseline" --threads 1 --format ppm --out "$work/ppm_b" "$2" >/dev/null
  cmp -s "$work"/ppm_a/*.ppm "$work"/ppm_b/*.ppm && echo yes || echo NO
}
# The leader's breakdown of the last job, from the group's log (without
# the ranks' compute and the peak memory, reported apart).
# (A job of a second or more has its line at info; big images are.)
last_job() { grep ': done in ' "$1" | tail -1; }
stages() {
  last_job "${1:-$work/group.log}" | sed -n 's/.*(\(strips\|whole\); \(.*\))$/\1: \2/p' | sed 's/; ranks.*//; s/; peak.*//'
}
ranks_compute() { last_job "$1" | sed -n "s/.*ranks' compute \([0-9. ]*\);.*/\1/p"; }
peak_mb() { last_job "$1" | sed -n 's/.*peak \([0-9]*\) MB.*/\1/p'; }

rows=()
for kind in png jpg tif tiled; do
  input=$png_in out_format=png label=${kind^^}
  [ "$kind" = jpg ] && input=$jpg_in
  [ "$kind" = tif ] && input=$tif_in out_format=tif
  [ "$kind" = tiled ] && input=$tiled_in out_format=tif label="TIF (256x256 tiles)"
  seq_s=$(median3 baseline "$input" "$work/base_$kind")
  seq_s=$(printf '%.2f' "$seq_s")
  [ "$kind" = png ] && seq_png=$seq_s
  sys_s=$(median3 system "$input" "$work/sys_$kind")
  ok=$(exact "$work/base_$kind/gen0.$out_format" "$work/sys_$kind/gen0.$out_format")
  local_s=$(median3 system "$input" "$work/local_$kind" --local)
  breakdown=$(stages)
  ok_local=$(exact "$work/base_$kind/gen0.$out_format" "$work/local_$kind/gen0.$out_format")
  [ "$ok_local" = yes ] || ok=NO
  vips_s="-"
  vips_ratio="-"
  if [ "$kind" != jpg ]; then
    vips_s=$(median3 vips_out "$input")
    vips_ratio="$(ratio "$vips_s" "$sys_s")x / $(ratio "$vips_s" "$local_s")x"
  fi
  rows+=("| $label $(du -m "$input" | cut -f1) MB -> blur -> ${out_format^^} | $seq_s s | $vips_s s | $sys_s s | $local_s s | $(ratio "$seq_s" "$sys_s")x / $(ratio "$seq_s" "$local_s")x | $vips_ratio | $ok | $breakdown |")
  echo "${rows[-1]}"
done
out_format=png

# Scaling: the PNG as a local-files job on groups of 1, 2 and 4 ranks (4 is
# more ranks than this machine's cores when it has 2), one group at a time;
# each rank's compute and the leader's peak memory from the group's log.
kill -TERM -- "-${pids[1]}" 2>/dev/null || true
wait "${pids[1]}" 2>/dev/null || true
raw_mb=$((8000 * 8000 * 3 / 1048576))
scaling_rows=()
for n in 1 2 4; do
  start_group "$n" "big$n" "$work/group$n.log"
  scale_s=$(median3 system "$png_in" "$work/scale_$n" --local)
  ok=$(exact "$work/base_png/gen0.png" "$work/scale_$n/gen0.png")
  peak=$(peak_mb "$work/group$n.log")
  scaling_rows+=("| $n | $scale_s s | $(ratio "$seq_png" "$scale_s")x | $(stages "$work/group$n.log") | $(ranks_compute "$work/group$n.log") | $peak MB ($(ratio "$peak" "$raw_mb")x) | $ok |")
  echo "${scaling_rows[-1]}"
  kill -TERM -- "-${pids[-1]}" 2>/dev/null || true
  wait "${pids[-1]}" 2>/dev/null || true
  for _ in $(seq 100); do
    "$bin/imgq" ping --broker "$clients" --json 2>/dev/null | grep -q '"groups":0' && break
    sleep 0.1
  done
done

section="$work/section.md"
{
  echo "<!-- big:begin -->"
  echo "### Big compressed images ($(date -u +%Y-%m-%d), $cores cores, \`bash bench/big.sh\`)"
  echo
  echo "One 8000x8000 8-bit BGR image (64 megapixels) as PNG, JPEG, deflate TIFF in strips (OpenCV's) and deflate TIFF in 256x256 tiles (libtiff's), \`gaussian_blur:ksize=5\`, PNG out (TIFF out for the TIFFs, OpenCV's LZW); median of 3 runs each. The system is a durable broker and one group of $cores ranks, timed by the client from file in to file written: the image sent through the broker (bytes), or as a local-files job (\`--local\`: the group reads and writes the files). Its PNG or TIFF is encoded on every rank (each its own rows) and laid out by the leader. Speedup = baseline seconds / system seconds (bytes / local). Exact = both system outputs decode to the same pixels as sequential OpenCV's. The stages are the leader's, of the last local run: the leader decodes the one PNG or JPEG stream band by band, sending the other ranks their rows first, which they blur and deflate as they arrive, its own rows last (compute: its blur and deflate; encode: stitching the segments); a TIFF's strips or rows of tiles are decoded by every rank, its own (scatter: the bytes broadcast and the leader's strips decoded)."
  echo
  echo "| work | sequential OpenCV | libvips | system, bytes | system, local | vs OpenCV | vs libvips | exact | leader's stages |"
  echo "|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Scaling, the PNG as a local-files job (median of 3) on a group of 1, 2 and 4 ranks on $cores cores. One rank decodes and encodes whole, as sequential OpenCV does; from 2 ranks on, the leader decodes while the others compute their rows as they arrive, and every rank deflates its own. Stages are the leader's; each rank's compute (its rows' blur and deflate, leader first) and the leader's peak resident memory (the raw image is $raw_mb MB) are from the group's log."
  echo
  echo "| ranks | system, local | vs OpenCV | leader's stages | each rank's compute (s) | leader's peak memory | exact |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${scaling_rows[@]}"
  echo "<!-- big:end -->"
} >"$section"
results=bench/RESULTS.md
if grep -q "<!-- big:begin -->" "$results"; then
  awk -v f="$section" '
    /<!-- big:begin -->/ { while ((getline line < f) > 0) print line; skip = 1; next }
    /<!-- big:end -->/ { skip = 0; next }
    !skip { print }' "$results" >"$work/results.md"
  cp "$work/results.md" "$results"
else
  { echo; cat "$section"; } >>"$results"
fi
cat "$section"
