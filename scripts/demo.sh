#!/usr/bin/env bash
# The main job: installs what is missing, builds, then runs the whole system
# on this machine: an imgq-broker, one worker group (mpiexec, one rank per
# core) and `imgq submit` over OpenCV's sample photographs with an
# edge-detection pipeline, showing progress; results go to ./out/demo.
# Everything it starts is stopped when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh imgq-broker imgq-worker imgq

ranks="${IMGQ_RANKS:-$(nproc)}"
port="${IMGQ_PORT:-5555}"   # clients; workers and progress use the next two
samples=/usr/share/doc/opencv-doc/examples/data
out="${IMGQ_OUT:-out/demo}"
logs=out/logs
bin=build/bin
clients="tcp://127.0.0.1:$port"
workers="tcp://127.0.0.1:$((port + 1))"
progress="tcp://127.0.0.1:$((port + 2))"
rm -rf "$out"
mkdir -p "$logs"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# Durable: the journal keeps accepted jobs and unacknowledged results in
# out/broker-data across broker restarts (--memory-only turns it off).
setsid "$bin/imgq-broker" --clients "$clients" --workers "$workers" --progress "$progress" \
  --data-dir out/broker-data >"$logs/broker.log" 2>&1 &
pids+=($!)
setsid mpiexec -n "$ranks" "$bin/imgq-worker" --broker "$workers" --name demo-group \
  >"$logs/worker.log" 2>&1 &
pids+=($!)

echo "imgq demo: broker on $clients, one worker group of $ranks ranks (logs in $logs)"
for _ in $(seq 100); do
  if "$bin/imgq" ping --broker "$clients" --timeout 1 2>/dev/null | grep -q " 1 worker group"; then break; fi
  sleep 0.2
done
"$bin/imgq" ping --broker "$clients"

set +e
"$bin/imgq" submit --broker "$clients" --progress "$progress" \
  --op to_8bit --op gaussian_blur:ksize=5 --op canny:low=50,high=150 \
  --format png -o "$out" "$samples"
status=$?
set -e
echo "results: $(find "$out" -type f | wc -l) images in $out (imgq submit exit status $status)"

# A hot folder: imgq ingest takes every image put into out/demo-inbox (by cp
# here; any tool), writes its result to out/demo-ingested and moves the
# original to out/demo-inbox.done.
inbox=out/demo-inbox
rm -rf "$inbox" "$inbox.done" "$inbox.failed" out/demo-ingested
mkdir -p "$inbox"
setsid "$bin/imgq" ingest --broker "$clients" --progress "$progress" --inbox "$inbox" -o out/demo-ingested \
  --op grayscale --op gaussian_blur:ksize=5 >"$logs/ingest.log" 2>&1 &
pids+=($!)
cp "$samples"/*.jpg "$inbox"/
for _ in $(seq 300); do
  [ -z "$(find "$inbox" -type f -name '*.jpg' | head -1)" ] && break
  sleep 0.1
done
echo "imgq ingest: $(find out/demo-ingested -type f | wc -l) results in out/demo-ingested," \
  "$(find "$inbox.done" -type f | wc -l) originals in $inbox.done, inbox left: $(find "$inbox" -type f -name '*.jpg' | wc -l)"

# The Python client (clients/python), on Debian's python3.
/usr/bin/python3 clients/python/examples/quickstart.py "$samples/fruits.jpg" "$samples" out/demo-python \
  "$clients" "$progress" | tail -3
