#!/usr/bin/env bash
# Reproduces every figure in docs/benchmarks.md with one command.
#
#   bench/run.sh [--quick] [--build-dir DIR] [--no-plots]
#
# Builds the benchmarks (Release), then runs, in this order:
#   1. the multi-process harness with its baselines (bench/harness: shmlog_bench suite), which
#      also probes the cross-core floor around every pinned case;
#   2. the Google Benchmark micro-benchmarks (bench/micro: shmlog_micro);
#   3. instruction counts per append and per poll under callgrind (bench/perf/callgrind.sh);
#   4. remote replication through Redis on loopback, beside Redis's own replication
#      (bench/remote: shmlog_remote_bench; about 1 minute, 30 s with --quick);
# and writes
#   bench/results/latest.json   every result: "machine", "results" (harness cases), "micro"
#                               (Google Benchmark's JSON), "instructions" (callgrind) and
#                               "remote" (shmlog_remote_bench)
#   bench/results/latest.txt    the printed tables
#   bench/results/plot-data/    tab-separated data for the plots
#   bench/results/*.png         the plots (bench/plot.sh), unless --no-plots
#
# --quick runs a reduced matrix with short cases (under 3 minutes on 2 cores, build included);
# the full run takes several minutes. Installs missing Debian packages first (apt-get).
# Results depend on what else the machine is doing: run it on a quiet machine; the harness
# flags cases that another process disturbed.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
build=build-bench
plots=1
while (($#)); do
  case $1 in
    --quick) quick=1; shift ;;
    --build-dir) build=$2; shift 2 ;;
    --no-plots) plots=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

tools/install-deps.sh bench

echo "== build ($build, Release)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSHMLOG_SANITIZE= \
  -DSHMLOG_BUILD_TESTS=OFF -DSHMLOG_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --target shmlog_bench shmlog_micro shmlog_instr shmlog_remote_bench

results=bench/results
mkdir -p "$results"
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
"$build/bench/harness/shmlog_bench" suite "${quick_flag[@]}" --retry-noisy 3 --out "$results/latest.json" \
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
