#!/usr/bin/env bash
# Builds and runs the whole test suite three times: under AddressSanitizer+UndefinedBehavior-
# Sanitizer, under ThreadSanitizer, and as the normal Release build, whose ctest summary is the
# last thing printed. Installs missing Debian packages first. Used by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh

jobs=$(nproc)
run_suite() {  # run_suite BUILD_DIR SANITIZE
  local dir=$1 sanitize=$2
  echo "=== ${sanitize:-release} build in $dir ==="
  cmake -S . -B "$dir" -G Ninja -DSHMLOG_SANITIZE="$sanitize" \
    -DSHMLOG_BUILD_BENCH="$([ -z "$sanitize" ] && echo ON || echo OFF)" >/dev/null
  cmake --build "$dir" -j "$jobs"
  ctest --test-dir "$dir" --output-on-failure -j "$jobs"
}

run_suite build-asan address
run_suite build-tsan thread
run_suite build ""
