#!/usr/bin/env bash
# Reproduces every figure in docs/benchmarks.md with one command.
#
#   bench/run.sh [--quick] [--publish] [--repeat N] [--build-dir DIR] [--no-plots]
#
# Builds the benchmarks (Release), then runs, in this order:
#   1. the multi-process harness with its baselines (bench/harness: shmlog_bench suite), which
#      also probes the cross-core floor around every pinned case;
#   2. the Google Benchmark micro-benchmarks (bench/micro: shmlog_micro);
#   3. instruction counts per append and per poll under callgrind (bench/perf/callgrind.sh);
#   4. remote replication through Redis on loopback, beside Redis's own replication
#      (bench/remote: shmlog_remote_bench; about 1 minute, 30 s with --quick);
# and writes, into OUT (bench/results/scratch/, which git ignores; bench/results/ itself with
# --publish, overwriting the committed results the docs show):
#   OUT/latest.json   every result: "machine", "results" (harness cases), "micro"
#                     (Google Benchmark's JSON), "instructions" (callgrind) and
#                     "remote" (shmlog_remote_bench)
#   OUT/latest.txt    the printed tables
#   OUT/plot-data/    tab-separated data for the plots
#   OUT/*.png         the plots (bench/plot.sh), unless --no-plots
#
# --repeat N runs the harness's matrix N times and reports each case's median run with the
# spread of all of them (default 3, 2 with --quick). --quick runs a reduced matrix with short
# cases (a few minutes on 2 cores, build included); the full run takes about a quarter of an
# hour. --publish is for a quiet machine and a full run whose figures go into
# docs/benchmarks.md. Installs missing Debian packages first (apt-get).
# Results depend on what else the machine is doing: run it on a quiet machine; the harness
# flags cases that another process disturbed.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
publish=0
repeat=
build=build-bench
plots=1
while (($#)); do
  case $1 in
    --quick) quick=1; shift ;;
    --publish) publish=1; shift ;;
    --repeat)
      [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "bench/run.sh: --repeat needs a count of runs (1-20), not '${2:-}'" >&2; exit 2; }
      repeat=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    --no-plots) plots=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

# The committed figures come from the full matrix only: a quick run is for checking.
((publish && quick)) && { echo "bench/run.sh: --publish needs the full run (drop --quick)" >&2; exit 2; }

tools/install-deps.sh bench

echo "== build ($build, Release)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSHMLOG_SANITIZE= \
  -DSHMLOG_BUILD_TESTS=OFF -DSHMLOG_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --target shmlog_bench shmlog_micro shmlog_instr shmlog_remote_bench

# Only --publish touches the committed results; a plain run cannot overwrite them by mistake.
if ((publish)); then
  results=bench/results
else
  results=bench/results/scratch
fi
mkdir -p "$results"
if ((publish)); then
  echo "== results go to $results/ (published: the committed results)"
else
  echo "== results go to $results/ (scratch, ignored by git; bench/run.sh --publish writes bench/results/)"
fi
: "${repeat:=$( ((quick)) && echo 2 || echo 3)}"
scratch=$(mktemp -d -t shmlog-bench.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

quick_flag=()
((quick)) && quick_flag=(--quick)

# The micro-benchmarks and the instruction counts go first into scratch files, so that the
# harness can embed them in the one JSON document it writes.
echo "== micro-benchmarks (bench/micro)"
"$build/bench/micro/shmlog_micro" "${quick_flag[@]}" --benchmark_out="$scratch/micro.json" \
  --benchmark_out_format=json >"$scratch/micro.txt"
echo "== instructions per operation (callgrind)"
bench/perf/callgrind.sh --build-dir "$build" --json >"$scratch/instructions.json" \
  2>"$scratch/instructions.txt"
cat "$scratch/instructions.txt"

echo "== remote replication through Redis (bench/remote)"
"$build/bench/remote/shmlog_remote_bench" "${quick_flag[@]}" --out "$scratch/remote.json" \
  >"$scratch/remote.txt"
cat "$scratch/remote.txt"

echo "== multi-process harness and baselines (bench/harness)"
# --retry-noisy: a case that other processes disturbed, or that ran while the host had placed
# the two vCPUs differently from the reference floor, is run again (up to 3 times) and the least
# disturbed run is kept. The choice looks at the machine, never at the result.
"$build/bench/harness/shmlog_bench" suite "${quick_flag[@]}" --retry-noisy 3 --repeat "$repeat" \
  --out "$results/latest.json" \
  --plot-dir "$results/plot-data" \
  --attach micro="$scratch/micro.json" --attach instructions="$scratch/instructions.json" \
  --attach remote="$scratch/remote.json" |
  tee "$scratch/harness.txt"

{
  cat "$scratch/harness.txt"
  echo
  echo "INSTRUCTIONS PER OPERATION (callgrind)"
  cat "$scratch/instructions.txt"
  echo
  echo "MICRO-BENCHMARKS (Google Benchmark)"
  cat "$scratch/micro.txt"
  echo
  cat "$scratch/remote.txt"
} >"$results/latest.txt"

if ((plots)); then
  echo "== plots"
  bench/plot.sh "$results"
fi
echo "wrote $results/latest.json and $results/latest.txt"
