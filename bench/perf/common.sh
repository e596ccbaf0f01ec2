# shellcheck shell=bash
# Shared by the scripts in bench/perf (sourced, not run): where the repository and the build
# are, and whether this machine has hardware performance counters.

# The repository root, found from this file's own location so that the scripts work from any
# working directory.
SHMLOG_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Default build directory: $SHMLOG_BUILD_DIR if set, else <repo>/build (what bench/run.sh
# builds); every script takes --build-dir DIR to choose another.
# shellcheck disable=SC2034  # used by the scripts that source this file
SHMLOG_DEFAULT_BUILD_DIR="${SHMLOG_BUILD_DIR:-$SHMLOG_REPO_ROOT/build}"

die() {
  echo "${0##*/}: $*" >&2
  exit 1
}

# Prints the path of a benchmark binary in the build directory, or dies saying how to build it.
bench_binary() {
  local build_dir=$1 name=$2
  local path="$build_dir/bench/micro/$name"
  [[ -x $path ]] || die "$path not found; build it first:
  cmake -S $SHMLOG_REPO_ROOT -B $build_dir -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build $build_dir --target $name"
  printf '%s\n' "$path"
}

require_tool() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed (Debian: apt-get install $2)"
}

# True if perf can count the hardware event $1 here. Many VMs expose no PMU to the guest: perf
# then prints "<not supported>" for the event (and still exits 0), so look at what it printed.
perf_event_supported() {
  local out
  out="$(perf stat -x, -e "$1" true 2>&1)" || return 1
  [[ $out != *"<not supported>"* && $out != *"<not counted>"* && $out == *"$1"* ]]
}

# perf 6.1 against a newer kernel warns that the versions differ; it still works, but say so
# once so that a reader of the output knows the warning was seen and is harmless.
note_perf_version() {
  local perf_version kernel
  perf_version="$(perf version 2>/dev/null | awk '{print $3}')"
  kernel="$(uname -r)"
  echo "# perf ${perf_version:-?} on kernel $kernel (a version mismatch warning from perf is expected and harmless)" >&2
}
