#!/usr/bin/env bash
# Runs a command under `perf stat` and prints the counters.
#
# usage: bench/perf/perf_stat.sh [--build-dir DIR] [--filter REGEX] [--min-time SECONDS]
#                                [--repeat N] [--software] [-- COMMAND [ARGS...]]
#
#   --build-dir DIR   where shmlog_micro was built (default: $SHMLOG_BUILD_DIR or <repo>/build)
#   --filter REGEX    benchmarks the default command runs (default: ^append/single/64$)
#   --min-time S      --benchmark_min_time of the default command (default: 1)
#   --repeat N        perf stat -r N: runs N times, prints means and their spread (default: 1)
#   --software        use software events even if hardware counters work
#   -- COMMAND...     measure this command instead of shmlog_micro
#
# Hardware events (cycles, instructions, cache-misses, branch-misses) when the machine has
# them; otherwise (most VMs, this one included) software events only: task-clock,
# context-switches, cpu-migrations, page-faults. For instruction counts without hardware
# counters use bench/perf/callgrind.sh.
set -euo pipefail
# shellcheck source=bench/perf/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

build_dir=$SHMLOG_DEFAULT_BUILD_DIR
filter='^append/single/64$'
min_time=1
repeat=1
force_software=0
command=()
while (($#)); do
  case $1 in
    --build-dir) build_dir=$2; shift 2 ;;
    --filter) filter=$2; shift 2 ;;
    --min-time) min_time=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --software) force_software=1; shift ;;
    --) shift; command=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

require_tool perf linux-perf
if ((${#command[@]} == 0)); then
  command=("$(bench_binary "$build_dir" shmlog_micro)" "--benchmark_filter=$filter"
    "--benchmark_min_time=$min_time")
fi

software_events=task-clock,context-switches,cpu-migrations,page-faults
if ((force_software == 0)) && perf_event_supported instructions; then
  events=cycles,instructions,cache-misses,branch-misses,$software_events
  kind=hardware
else
  events=$software_events
  kind="software only (no hardware counters here: perf stat -e instructions says <not supported>)"
fi

note_perf_version
echo "# events: $kind" >&2
echo "# command: ${command[*]}" >&2
perf stat -r "$repeat" -e "$events" -- "${command[@]}"
