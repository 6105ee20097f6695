#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs an imgq worker
# group of N ranks (default: the core count) over OpenCV's sample photographs
# with an edge-detection pipeline, writing the results to ./out/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
IMGQ_BUILD_TESTS=OFF bash scripts/build.sh

ranks="${IMGQ_RANKS:-$(nproc)}"
samples=/usr/share/doc/opencv-doc/examples/data
out="${IMGQ_OUT:-out/demo}"
rm -rf "$out"
echo "imgq demo: $ranks ranks, sample photographs from $samples -> $out"
set +e
mpiexec -n "$ranks" build/bin/imgq-worker --input "$samples" \
  --op to_8bit --op gaussian_blur:ksize=5 --op canny:low=50,high=150 \
  --out "$out" --format png
status=$?
set -e
echo "results: $(find "$out" -type f | wc -l) images in $out (exit status $status;" \
     "files OpenCV cannot decode are listed above with the reason)"
