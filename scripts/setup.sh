#!/usr/bin/env bash
# Installs what imgq needs on Debian 12 (bookworm), as root. Idempotent: a
# package already installed is not fetched again, and apt-get update runs only
# when something is missing.
#
#   setup.sh                  build + test (what scripts/test.sh and demo.sh need)
#   setup.sh GROUP...         only these groups (build, test, compose, monitoring)
#   setup.sh --print GROUP    print a group's packages, one a line, and exit
#
# This file is the one list of packages: compose/Dockerfile installs the
# `build` group by running `setup.sh build`, and its runtime stage installs
# the packages that provide the shared libraries the built programs link
# (scripts/runtime-packages.sh), plus `runtime_tools`. The suite's
# compose_packages test fails when the image, this list and CMakeLists.txt
# drift apart.
set -euo pipefail

# What compiling imgq-broker, imgq-worker and imgq needs: every find_package
# and pkg_check_modules of CMakeLists.txt is satisfied by these.
build=(
  build-essential cmake pkg-config
  libopencv-dev
  mpich libmpich-dev
  libzmq3-dev cppzmq-dev
  libmsgpack-cxx-dev
  prometheus-cpp-dev libcivetweb-dev
  libcli11-dev libspdlog-dev
  libsqlite3-dev zlib1g-dev libpng-dev libjpeg-dev libtiff-dev libisal-dev
)

# What the test suite, the demo and the benchmarks add: GoogleTest and Google
# Benchmark, OpenCV's sample photographs, the Python client's libraries and
# test tools, Prometheus (promtool and a real server), docker-compose (only
# to validate the compose files), curl, iproute2 (network namespaces), clang
# (libFuzzer and the sanitizers) and git (the commit in --version).
test=(
  git
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  opencv-doc
  python3 python3-zmq python3-msgpack python3-pytest python3-pip python3-setuptools python3-wheel
  prometheus docker-compose curl
  iproute2
  clang libclang-rt-14-dev
  zsh groff-base
)

# What scripts/compose-check.sh adds to build and run the compose stack
# without a Docker engine: Debian's podman and podman-compose, runc, CNI's
# dnsname plugin (services find each other by name: tcp://broker:5556), and
# debootstrap for the bookworm base image.
compose=(podman podman-compose runc debootstrap uidmap slirp4netns golang-github-containernetworking-plugin-dnsname)

# The compose stack's Prometheus image (compose/Dockerfile, stage prometheus).
monitoring=(prometheus)

# Not libraries, so runtime-packages.sh cannot find them: the runtime image
# also needs MPICH's launcher (mpiexec) and pgrep for the workers' health check.
runtime_tools=(mpich procps)

usage() {
  echo "usage: setup.sh [GROUP...] | setup.sh --print GROUP   (groups: build, test, compose, monitoring, runtime_tools)" >&2
  exit 2
}

# Checks that every argument names a group.
check_groups() {
  for g in "$@"; do
    case "$g" in
      build | test | compose | monitoring | runtime_tools) ;;
      *) echo "setup.sh: unknown group \"$g\" (groups: build, test, compose, monitoring, runtime_tools)" >&2; exit 2 ;;
    esac
  done
}

# Prints the packages of the groups named, one a line.
print_groups() {
  for g in "$@"; do
    local -n list="$g"
    printf '%s\n' "${list[@]}"
  done
}

case "${1:-}" in
  -h | --help) usage ;;
  --print)
    [ $# -eq 2 ] || usage
    check_groups "$2"
    print_groups "$2"
    exit 0
    ;;
esac

groups=("$@")
((${#groups[@]})) || groups=(build test)
check_groups "${groups[@]}"
mapfile -t packages < <(print_groups "${groups[@]}")

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
