#!/usr/bin/env bash
# Builds and runs the compose stack (compose/docker-compose.yml) with Debian's
# podman and podman-compose, as a user would, and checks it:
#   - the images build from this checkout (imgq, and Prometheus from Debian's
#     package); `imgq-broker --version` answers in the image;
#   - the broker, two worker groups and Prometheus start; every health check
#     passes;
#   - OpenCV's sample photographs and a 20-megapixel image (run in strips over
#     a group's ranks) go through the published port, and every result decodes
#     to the same pixels as single-process OpenCV on the whole image;
#   - Prometheus scrapes the broker and counts the jobs;
#   - scaled to three groups, the broker sees three;
#   - the broker's process killed (kill -9) in the middle of a run: its
#     container restarts by policy, the client resubmits under its keys, and
#     every result is there and exact.
# Then it removes everything it created: containers, volumes, network and
# images live in a podman store of its own under a temporary folder. The
# bookworm base (debootstrap, about 90 s) is cached as a tarball in
# ${XDG_CACHE_HOME:-~/.cache}/imgq/ for the next run.
#
# Run it as root whenever compose/, scripts/setup.sh or a CMakeLists.txt
# changes. No Docker engine and no registry needed; Grafana (no Debian
# package) is not started. About 15 minutes on 2 cores, most of it the build.
#   bash scripts/compose-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
t_start=$(date +%s)
say() { echo "compose-check [$(($(date +%s) - t_start)) s]: $*"; }
fail() { echo "compose-check: FAILED: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root (podman's store and the network need it)"
bash scripts/setup.sh build test compose
# The host side: the client, and the single-process OpenCV reference.
bash scripts/build.sh imgq imgq-bench-baseline imgq-bench-make-images >/dev/null

work="$(mktemp -d /tmp/imgq-compose-check.XXXXXX)"
# Copies, so a build during the run changes nothing here.
bin="$work/bin"
mkdir -p "$bin"
cp build/bin/imgq build/bin/imgq-bench-baseline build/bin/imgq-bench-make-images "$bin/"
project="imgqcheck$$"
# A store, a configuration and a network of its own: nothing of the host's
# podman is touched, and removing $work removes what the run made.
export CONTAINERS_CONF="$work/containers.conf"
export CONTAINERS_STORAGE_CONF="$work/storage.conf"
cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=20000:20000"]
[network]
network_backend = "cni"
[engine]
runtime = "runc"
EOF
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
graphroot = "$work/storage"
runroot = "$work/run"
EOF

# Host ports: free ones, not the defaults, so a stack already running here is
# left alone.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export IMGQ_CLIENT_PORT="$(free_port)" IMGQ_PROGRESS_PORT="$(free_port)" IMGQ_PROMETHEUS_PORT="$(free_port)"
export IMGQ_GROUPS=2 IMGQ_RANKS=2
IMGQ_COMMIT="$(git describe --always --dirty --abbrev=10 2>/dev/null || echo unknown)"
export IMGQ_COMMIT
compose() { podman-compose -p "$project" -f "$root/compose/docker-compose.yml" "$@"; }
broker_url="tcp://127.0.0.1:$IMGQ_CLIENT_PORT"
progress_url="tcp://127.0.0.1:$IMGQ_PROGRESS_PORT"

cleanup() {
  local rc=$?
  set +e
  if [ $rc -ne 0 ] && [ -n "${keep_logs:-}" ]; then
    for c in $(podman ps -a --format '{{.Names}}' 2>/dev/null); do
      echo "--- podman logs $c (last 20 lines)"; podman logs --tail 20 "$c" 2>&1
    done
  fi
  compose down -v >/dev/null 2>&1
  podman rm -af -t 0 >/dev/null 2>&1
  podman volume prune -f >/dev/null 2>&1
  podman network rm -f "${project}_default" >/dev/null 2>&1
  podman rmi -af >/dev/null 2>&1
  grep -o " $work/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
  [ $rc -eq 0 ] || echo "compose-check: removed what it created (after a failure, exit $rc)" >&2
}
trap cleanup EXIT

# The base image: Debian bookworm minbase, as debian:bookworm.
cache="${XDG_CACHE_HOME:-$HOME/.cache}/imgq"
base_tar="$cache/bookworm-minbase.tar"
if [ ! -s "$base_tar" ]; then
  say "no cached base: debootstrap --variant=minbase bookworm (about 90 s)"
  mkdir -p "$cache"
  debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 ||
    { tail -5 "$work/debootstrap.log"; fail "debootstrap"; }
  tar -C "$work/rootfs" -cf "$base_tar.part" . && mv "$base_tar.part" "$base_tar"
  rm -rf "$work/rootfs"
fi
podman import -q "$base_tar" docker.io/library/debian:bookworm >/dev/null

say "building the images (imgq, imgq-prometheus)"
export BUILDAH_FORMAT=docker  # keeps the images' HEALTHCHECK (OCI images have none)
compose build >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; fail "podman-compose build"; }
say "built; $(podman run --rm imgq:latest imgq-broker --version)"
podman run --rm imgq:latest imgq-broker --version | grep -q "^imgq-broker .*(protocol [0-9]*, commit $IMGQ_COMMIT)$" ||
  fail "imgq-broker --version in the image does not name commit $IMGQ_COMMIT"

keep_logs=1
say "starting the broker, $IMGQ_GROUPS groups of $IMGQ_RANKS ranks and Prometheus"
compose up -d broker worker prometheus >"$work/up.log" 2>&1 || { tail -30 "$work/up.log"; fail "podman-compose up"; }

# wait_for SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds.
wait_for() {
  local deadline=$(($(date +%s) + $1)) what="$2"
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "$what (waited $((deadline - t_start)) s into the run)"
    sleep 0.5
  done
}
groups_seen() { "$bin/imgq" ping --broker "$broker_url" --timeout 2 --json | grep -q "\"groups\":$1,"; }
wait_for 60 "the broker answers with $IMGQ_GROUPS groups" groups_seen "$IMGQ_GROUPS"
say "$("$bin/imgq" ping --broker "$broker_url" --timeout 2)"

health() {
  for c in "${project}_broker_1" "${project}_worker_1" "${project}_worker_2" "${project}_prometheus_1"; do
    podman healthcheck run "$c" >/dev/null || return 1
  done
}
wait_for 60 "every health check passes" health
say "health checks pass: broker (imgq ping), workers (a live rank), prometheus (a query)"

# The inputs: every sample photograph, and one image big enough for strips.
samples=/usr/share/doc/opencv-doc/examples/data
mkdir -p "$work/in"
find "$samples" -maxdepth 1 -type f \( -name '*.jpg' -o -name '*.png' \) -exec cp {} "$work/in/" \;
"$bin/imgq-bench-make-images" 5000 4000 1 "$work/in" png
inputs=$(find "$work/in" -type f | wc -l)
ops=(--op to_8bit --op gaussian_blur:ksize=5 --op canny:low=50,high=150)

# check_exact OUT: every input's result in OUT decodes to the pixels of
# single-process OpenCV on the whole image (both decoded and written as PNM
# by the same OpenCV, then compared byte for byte).
check_exact() {
  local out="$1" n=0 f name
  rm -rf "$work/ref" "$work/pnm_a" "$work/pnm_b"
  mkdir -p "$work/pnm_a" "$work/pnm_b"
  "$bin/imgq-bench-baseline" --threads 1 "${ops[@]}" --format png --out "$work/ref" "$work"/in/* >/dev/null
  for f in "$work"/ref/*.png; do
    name="$(basename "$f")"
    [ -f "$out/$name" ] || fail "no result $out/$name"
    "$bin/imgq-bench-baseline" --threads 1 --format pnm --out "$work/pnm_a" "$f" >/dev/null
    "$bin/imgq-bench-baseline" --threads 1 --format pnm --out "$work/pnm_b" "$out/$name" >/dev/null
    [ -s "$work/pnm_a/${name%.png}.pnm" ] || fail "could not decode the reference of $name"
    cmp -s "$work/pnm_a/${name%.png}.pnm" "$work/pnm_b/${name%.png}.pnm" || fail "$out/$name differs from OpenCV's"
    n=$((n + 1))
  done
  [ "$n" -eq "$inputs" ] || fail "$n results checked, $inputs inputs"
  # Only the results (and the folder's marker, from imgq's newer clients).
  [ "$(find "$out" -type f ! -name .imgq-results | wc -l)" -eq "$inputs" ] || fail "$out holds other files than the $inputs results"
  say "$n of $inputs results exact"
}

say "submitting $inputs images through $broker_url"
"$bin/imgq" submit --broker "$broker_url" --progress "$progress_url" "${ops[@]}" --format png \
  -o "$work/out1" "$work/in" >"$work/submit1.log" 2>&1 || { tail "$work/submit1.log"; fail "imgq submit"; }
check_exact "$work/out1"

prom_query() { curl -sf "http://127.0.0.1:$IMGQ_PROMETHEUS_PORT/api/v1/query" --data-urlencode "query=$1"; }
scraped() { prom_query 'imgq_jobs_submitted_total' | grep -q "\"value\":\[[0-9.]*,\"$inputs\"\]"; }
wait_for 60 "Prometheus reports imgq_jobs_submitted_total = $inputs" scraped
say "Prometheus scraped the broker: imgq_jobs_submitted_total = $inputs"

say "scaling to three groups"
IMGQ_GROUPS=3 compose up -d worker >"$work/scale.log" 2>&1 || { tail "$work/scale.log"; fail "scale to 3"; }
wait_for 60 "the broker answers with 3 groups" groups_seen 3
say "$("$bin/imgq" ping --broker "$broker_url" --timeout 2)"

broker="${project}_broker_1"
started_before="$(podman inspect -f '{{.State.StartedAt}}' "$broker")"
say "a second run; kill -9 of the broker's process once its first result is written"
"$bin/imgq" submit --broker "$broker_url" --progress "$progress_url" "${ops[@]}" --format png --window 4 \
  -o "$work/out2" "$work/in" >"$work/submit2.log" 2>&1 &
client=$!
first_result() { [ -n "$(find "$work/out2" -type f 2>/dev/null | head -1)" ]; }
wait_for 60 "the second run's first result" first_result
kill -9 "$(podman inspect -f '{{.State.Pid}}' "$broker")"
restarted() { [ "$(podman inspect -f '{{.State.StartedAt}}' "$broker")" != "$started_before" ] &&
  [ "$(podman inspect -f '{{.State.Running}}' "$broker")" = true ]; }
wait_for 60 "the broker's container restarted by its policy" restarted
say "broker restarted by policy ($(find "$work/out2" -type f | wc -l) results were written before)"
wait "$client" || { tail "$work/submit2.log"; fail "imgq submit across the broker's restart"; }
check_exact "$work/out2"
wait_for 60 "the broker healthy after its restart" podman healthcheck run "$broker"

keep_logs=
say "passed in $(($(date +%s) - t_start)) s; removing what it created"
