#!/usr/bin/env bash
# Samples a command with `perf record -g` and prints where the time goes.
#
# usage: bench/perf/perf_record.sh [--build-dir DIR] [--filter REGEX] [--min-time SECONDS]
#                                  [--call-graph fp|dwarf] [--out FILE] [--top N]
#                                  [--no-annotate] [-- COMMAND [ARGS...]]
#
#   --build-dir DIR    where shmlog_micro was built (default: $SHMLOG_BUILD_DIR or <repo>/build)
#   --filter REGEX     benchmarks the default command runs
#                      (default: ^concurrent/reader/64/, append with a reader on the other CPU)
#   --min-time S       --benchmark_min_time of the default command (default: 2)
#   --call-graph MODE  fp (perf record -g; the default) or dwarf. A Release build has no frame
#                      pointers, so fp call chains stop after one frame; dwarf unwinds them
#                      properly at the cost of a much larger perf.data.
#   --out FILE         where to keep perf.data (default: a temporary file, removed at the end)
#   --top N            entries of the flat profile to print (default: 25)
#   --no-annotate      skip `perf annotate` of the hottest shmlog function
#   -- COMMAND...      profile this command instead of shmlog_micro
#
# Samples `cycles` if the machine has hardware counters, else `cpu-clock` (a timer: on a VM
# without a PMU, this one included, that is the only sampling event). Prints the flat profile
# (perf report --stdio --no-children) by thread, then the callers of the top entries, then the
# disassembly of the hottest shmlog:: function with the share of samples per instruction.
# Threads are told apart by name: shmlog_micro names its reader thread "micro-reader".
set -euo pipefail
# shellcheck source=bench/perf/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

build_dir=$SHMLOG_DEFAULT_BUILD_DIR
filter='^concurrent/reader/64/'
min_time=2
call_graph=fp
out=
top=25
annotate=1
command=()
while (($#)); do
  case $1 in
    --build-dir) build_dir=$2; shift 2 ;;
    --filter) filter=$2; shift 2 ;;
    --min-time) min_time=$2; shift 2 ;;
    --call-graph) call_graph=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --top) top=$2; shift 2 ;;
    --no-annotate) annotate=0; shift ;;
    --) shift; command=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
case $call_graph in
  fp) call_graph_args=(-g) ;;
  dwarf) call_graph_args=(--call-graph 'dwarf,16384') ;;
  *) die "--call-graph must be fp or dwarf, not '$call_graph'" ;;
esac

require_tool perf linux-perf
if ((${#command[@]} == 0)); then
  command=("$(bench_binary "$build_dir" shmlog_micro)" "--benchmark_filter=$filter"
    "--benchmark_min_time=$min_time")
fi

if [[ -z $out ]]; then
  out="$(mktemp -t shmlog-perf.XXXXXX.data)"
  trap 'rm -f "$out" "$out.old"' EXIT
fi

if perf_event_supported cycles; then
  event=cycles
else
  event=cpu-clock
  echo "# no hardware counters here (perf stat -e cycles: <not supported>): sampling cpu-clock" >&2
fi
note_perf_version
echo "# command: ${command[*]}" >&2

# The command's own output (the benchmark table) goes to stderr, so that stdout is the profile.
if ! perf record -e "$event" "${call_graph_args[@]}" -o "$out" -- "${command[@]}" >&2; then
  die "perf record failed: this machine may not allow sampling (see /proc/sys/kernel/perf_event_paranoid)"
fi
[[ -s $out ]] || die "perf record wrote no samples: perf cannot sample in this environment"

report=(perf report -i "$out" --stdio --no-children)
# perf 6.1 appends "IPC [IPC Coverage]" columns to symbol reports, "-  -" without hardware
# counters; drop them and the padding before them.
strip_ipc() { sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//; s/[[:space:]]+$//'; }

echo "=== flat profile: event $event, top $top entries by thread name, DSO and symbol ==="
"${report[@]}" -g none --sort comm,dso,symbol --percent-limit 0.1 \
  2>/dev/null | grep -v -e '^#' -e '^$' | strip_ipc | sed -n "1,${top}p"

echo
echo "=== callers of the top entries (call chains: $call_graph) ==="
"${report[@]}" -g caller,0.5,callee,function,percent --sort comm,symbol \
  --percent-limit 3 2>/dev/null | grep -v -e '^#' -e '^$' | strip_ipc | sed -n 1,80p

if ((annotate)); then
  # The hottest symbol from the library (namespace shmlog, not the benchmark's own code).
  hottest="$("${report[@]}" -g none --sort symbol --percent-limit 0.1 2>/dev/null |
    grep -v '^#' | grep -E '\[\.\] shmlog::' | sed -n 1p | strip_ipc | sed -E 's/.*\[\.\] //')" || true
  if [[ -n $hottest ]]; then
    echo
    echo "=== perf annotate: $hottest (instructions with samples) ==="
    perf annotate -i "$out" --stdio -s "$hottest" 2>/dev/null |
      grep -v -E '^[[:space:]]+0\.00 :|^[[:space:]]+:[[:space:]]*$' | sed -n 1,90p || true
  else
    echo "# no shmlog:: symbol among the samples; nothing to annotate" >&2
  fi
fi
