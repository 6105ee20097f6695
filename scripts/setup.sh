#!/usr/bin/env bash
# Installs what imgq needs on Debian 12 (bookworm), as root. Idempotent: a
# package already installed is not fetched again, and apt-get update runs only
# when something is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libopencv-dev opencv-doc
  mpich libmpich-dev
  libzmq3-dev cppzmq-dev
  libmsgpack-cxx-dev
  prometheus-cpp-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libspdlog-dev
  libsqlite3-dev zlib1g-dev libpng-dev libjpeg-dev libtiff-dev libisal-dev
  python3 python3-zmq python3-msgpack python3-pytest python3-pip python3-setuptools python3-wheel
  prometheus docker-compose curl
  iproute2
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages: ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
