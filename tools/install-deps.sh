#!/usr/bin/env bash
# Installs the Debian 12 packages shmlog needs to build and test, if any are missing; with the
# argument "bench", also what bench/run.sh needs to measure and plot. Runs apt-get only when
# something is missing, so it is cheap to call before every build.
#   tools/install-deps.sh [bench]
set -euo pipefail

packages=(
  g++ cmake ninja-build     # compiler and build
  pkg-config                # finds hiredis (Debian ships no CMake config for it); tests shmlog.pc
  libboost-dev              # Boost.Interprocess (header-only), used inside the library
  libhiredis-dev            # hiredis 0.14, the Redis client of remote replication (ship, mirror)
  redis-server              # tests and bench: a real server is started, never a mock
  libgtest-dev              # GoogleTest, for tests/
  nlohmann-json3-dev        # JSON parser (header-only), for tests/ only: checks `info --json`
  libbenchmark-dev          # Google Benchmark, for bench/
  python3-dev               # Python 3.11 and its headers: the shmlog Python module (bindings/python)
  pybind11-dev              # pybind11 (header-only, with its CMake config): that module's C++ glue
)
if [ "${1:-}" = "bench" ]; then
  packages+=(
    gnuplot-nox             # bench/plot.sh draws the figures in docs/benchmarks.md
    valgrind                # callgrind: instructions per append and per read
    linux-perf              # bench/perf/: perf stat and perf record
  )
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: missing ${missing[*]}; run as root or install sudo" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
