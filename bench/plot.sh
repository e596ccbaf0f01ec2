#!/usr/bin/env bash
# Draws the figures of docs/benchmarks.md from the harness's plot data, with gnuplot.
#
#   bench/plot.sh [RESULTS_DIR]      (default bench/results; reads RESULTS_DIR/plot-data/)
#
# Writes RESULTS_DIR/latency.png (one-way latency by percentile, HdrHistogram style: the x
# axis is 1/(1-p) on a log scale, so 99.99% sits as far right of 99.9% as 99.9% of 99%; µs on
# the y axis), RESULTS_DIR/throughput.png (bytes/s delivered to one reader against record size,
# with the share of records lost below for the lossy transports) and RESULTS_DIR/readers.png
# (the writer's rate against the number of readers). Every point is the median run; its error
# bar spans the lowest and highest of the runs (shmlog_bench suite --repeat N). Each caption
# names the machine and, on a VM, says that its cross-core figures move with the host's
# placement of the vCPUs.
set -euo pipefail
results=${1:-bench/results}
data=$results/plot-data
command -v gnuplot >/dev/null || { echo "bench/plot.sh: gnuplot is missing (tools/install-deps.sh bench)" >&2; exit 1; }
[[ -d $data ]] || { echo "bench/plot.sh: no plot data in $data (run bench/run.sh)" >&2; exit 1; }

json=$results/latest.json
field() { sed -n "s/.*\"$1\": *\"\\{0,1\\}\\([^\",}]*\\).*/\\1/p" "$json" | head -n 1; }
machine=$(field cpu_model)
stamp=$(field date)
cores=$(field cores)
repeat=$(field repeat)
virtualized=$(field virtualized)
subtitle="${machine:-unknown CPU}, ${cores:-?} CPUs, ${stamp:-unknown date}; bench/run.sh"
spread="points: the median of ${repeat:-1} run(s); bars: lowest to highest run"
if [[ $virtualized == true ]]; then
  caveat="Measured on a VM: every cross-core figure moves (by up to 3-4x) with where the host places the vCPUs,\\nwhich changes between runs; compare figures of the same run only."
else
  caveat="Cross-core figures depend on which two cores ran the writer and the reader;\\ncompare figures of the same run only."
fi
# The caption under each plot: what the bars are, and the caveat.
caption="set bmargin 7
set label 100 \"$spread.\\n$caveat\" at screen 0.01, screen 0.055 left font 'sans,9'"

# One latency series per file that exists, in a fixed order so colours stay put between runs.
# Columns: percentile, 1/(1-p), ns (median run), ns_min, ns_max (over the runs).
latency_series=()
for label in floor-pingpong shmlog-spin-100k shmlog-adaptive-100k shmlog-yield-100k \
  shmlog-sleep-100k shmlog-spin-1m boost-mq-100k pipe-100k unix-socket-100k; do
  [[ -f $data/latency_$label.tsv ]] &&
    latency_series+=("'$data/latency_$label.tsv' using 2:(\$3/1e3):(\$4/1e3):(\$5/1e3) with yerrorlines title '$label'")
done
if ((${#latency_series[@]})); then
  joined=$(IFS=,; echo "${latency_series[*]}")
  gnuplot <<EOF
set terminal pngcairo size 1000,660 font 'sans,10' noenhanced
set output '$results/latency.png'
set title "One-way latency, 64 B records paced (receive - due time)\n$subtitle"
$caption
set logscale x
set logscale y
# To 300000: the maximum is written at 262144 (shmlog_bench's plot data).
set xrange [1:300000]
# From 20 ns: below any cross-core transfer, so every series' minimum shows.
set yrange [0.02:*]
set format y '%g'
set xlabel 'percentile'
set ylabel 'latency (µs)'
set xtics ('0%%' 1, '50%%' 2, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000, '99.999%%' 100000)
set grid xtics ytics mytics
set key top left
plot $joined
EOF
fi

if [[ -f $data/throughput.tsv ]]; then
  # Columns: record_bytes transport wait grace_ns msgs_per_s bytes_per_s delivery
  # lost_fraction laps bytes_per_s_min bytes_per_s_max runs
  rows_of() {  # rows_of TRANSPORT WAIT GRACE: an awk filter for the rows of one series
    # Values go in as awk variables: a double quote inside the filter would end gnuplot's string.
    local vars="-v t=$1" filter="\$2==t"
    [[ $2 != - ]] && vars+=" -v w=$2" && filter+=" && \$3==w"
    [[ $3 != - ]] && vars+=" -v g=$3" && filter+=" && \$4==g"
    echo "< awk -F'\\t' $vars '!/^#/ && $filter' $data/throughput.tsv"
  }
  series() {  # series TRANSPORT WAIT GRACE TITLE: GB/s, bars from the lowest to the highest run
    echo "\"$(rows_of "$1" "$2" "$3")\" using 1:(\$6/1e9):(\$10/1e9):(\$11/1e9) with yerrorlines title '$4'"
  }
  loss() {  # loss TRANSPORT WAIT GRACE TITLE: the median run's records lost, % of those sent
    echo "\"$(rows_of "$1" "$2" "$3")\" using 1:(100*\$8) with linespoints title '$4'"
  }
  gnuplot <<EOF
set terminal pngcairo size 1000,860 font 'sans,10' noenhanced
set output '$results/throughput.png'
$caption
set multiplot
set logscale x 2
set xrange [6:90000]
set grid xtics ytics mytics
set lmargin 12
set size 1, 0.66
set origin 0, 0.34
set bmargin 1
set format x ''
set title "Throughput to one reader by record size, flat out\n$subtitle"
set logscale y
# From 5 MB/s: the slowest transport at the smallest record (a Unix socket at 8 B) still shows.
set yrange [0.005:*]
set ylabel 'GB/s delivered'
set key bottom right
plot $(series memcpy - - 'memcpy, one core, no reader'), \
     $(series spsc-ring - - 'spsc-ring: simple SPSC ring, copy (lossless)'), \
     $(series shmlog spin 250 'shmlog poll_copy, spin (lossy)'), \
     $(series shmlog spin 0 'shmlog poll_copy, spin, no catch-up grace (lossy)'), \
     $(series shmlog-view spin - 'shmlog view, spin (lossy)'), \
     $(series boost-mq - - 'boost message_queue (lossless)'), \
     $(series pipe - - 'pipe (lossless)'), \
     $(series unix-socket - - 'unix socket (lossless)')
unset title
unset logscale y
set size 1, 0.34
set origin 0, 0
set tmargin 0.5
set bmargin 7
set format x '%g'
# 0-100% with room above for the key, so that it never hides a point.
set yrange [0:135]
set ytics 0, 20, 100
set xlabel 'record payload (bytes)'
set ylabel 'records lost (%)'
set key top center horizontal
plot $(loss shmlog spin 250 'shmlog poll_copy, spin'), \
     $(loss shmlog spin 0 'shmlog poll_copy, spin, no catch-up grace'), \
     $(loss shmlog-view spin - 'shmlog view, spin')
unset multiplot
EOF
fi

if [[ -f $data/readers.tsv ]]; then
  # Columns: readers kind writer_msgs_per_s per_reader_msgs_per_s writer_min writer_max
  gnuplot <<EOF
set terminal pngcairo size 800,560 font 'sans,10' noenhanced
set output '$results/readers.png'
set title "Writer rate against attached readers, 32 B records (shmlog, lossy)\n$subtitle"
$caption
set logscale x 2
set xrange [0.5:128]
set xlabel 'readers (0 plotted at 0.5)'
set ylabel 'writer, M records/s'
set yrange [0:*]
set grid
set key top right
plot "< awk -F'\\t' -v k=yield '!/^#/ && \$2==k' $data/readers.tsv" using ((\$1==0)?0.5:\$1):(\$3/1e6):(\$5/1e6):(\$6/1e6) with yerrorlines title 'readers consuming (yield)', \
     "< awk -F'\\t' -v k=idle '!/^#/ && \$2==k' $data/readers.tsv" using ((\$1==0)?0.5:\$1):(\$3/1e6):(\$5/1e6):(\$6/1e6) with yerrorlines title 'readers attached, idle'
EOF
fi
ls "$results"/*.png 2>/dev/null || true
