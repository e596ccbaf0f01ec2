#!/usr/bin/env bash
# Draws the figures of docs/benchmarks.md from the harness's plot data, with gnuplot.
#
#   bench/plot.sh [RESULTS_DIR]      (default bench/results; reads RESULTS_DIR/plot-data/)
#
# Writes RESULTS_DIR/latency.png (one-way latency by percentile, HdrHistogram style: the x
# axis is 1/(1-p) on a log scale, so 99.99% sits as far right of 99.9% as 99.9% of 99%),
# RESULTS_DIR/throughput.png (bytes/s delivered to one reader against record size, next to
# the single-core memcpy and the cross-core streaming floors) and RESULTS_DIR/readers.png (the
# writer's rate against the number of readers).
set -euo pipefail
results=${1:-bench/results}
data=$results/plot-data
command -v gnuplot >/dev/null || { echo "bench/plot.sh: gnuplot is missing (tools/install-deps.sh bench)" >&2; exit 1; }
[[ -d $data ]] || { echo "bench/plot.sh: no plot data in $data (run bench/run.sh)" >&2; exit 1; }

machine=$(sed -n 's/.*"cpu_model": *"\([^"]*\)".*/\1/p' "$results/latest.json" | head -n 1)
stamp=$(sed -n 's/.*"date": *"\([^"]*\)".*/\1/p' "$results/latest.json" | head -n 1)
subtitle="${machine:-unknown CPU}, ${stamp:-unknown date}; bench/run.sh"

# One latency series per file that exists, in a fixed order so colours stay put between runs.
latency_series=()
for label in floor-pingpong shmlog-spin-100k shmlog-adaptive-100k shmlog-yield-100k \
  shmlog-sleep-100k shmlog-spin-1m boost-mq-100k pipe-100k unix-socket-100k; do
  [[ -f $data/latency_$label.tsv ]] && latency_series+=("'$data/latency_$label.tsv' using 2:3 with linespoints title '$label'")
done
if ((${#latency_series[@]})); then
  joined=$(IFS=,; echo "${latency_series[*]}")
  gnuplot <<EOF
set terminal pngcairo size 1000,620 font 'sans,10' noenhanced
set output '$results/latency.png'
set title "One-way latency, 64 B records paced (receive - due time)\n$subtitle"
set logscale x
set logscale y
set xlabel 'percentile'
set ylabel 'latency (ns)'
set xtics ('0%%' 1, '50%%' 2, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000, '99.999%%' 100000)
set grid xtics ytics mytics
set key top left
plot $joined
EOF
fi

if [[ -f $data/throughput.tsv ]]; then
  # Columns: record_bytes transport wait grace_ns msgs_per_s bytes_per_s
  series() {  # series TRANSPORT WAIT GRACE TITLE
    # Values go in as awk variables: a double quote inside the filter would end gnuplot's string.
    local vars="-v t=$1" filter="\$2==t"
    [[ $2 != - ]] && vars+=" -v w=$2" && filter+=" && \$3==w"
    [[ $3 != - ]] && vars+=" -v g=$3" && filter+=" && \$4==g"
    echo "\"< awk -F'\\t' $vars '!/^#/ && $filter' $data/throughput.tsv\" using 1:(\$6/1e9) with linespoints title '$4'"
  }
  gnuplot <<EOF
set terminal pngcairo size 1000,620 font 'sans,10' noenhanced
set output '$results/throughput.png'
set title "Throughput to one reader by record size\n$subtitle"
set logscale x 2
set logscale y
set xlabel 'record payload (bytes)'
set ylabel 'GB/s delivered'
set grid xtics ytics mytics
set key bottom right
plot $(series memcpy - - 'memcpy, one core (floor)'), \
     $(series floor-stream - - 'floor-stream: cross-core SPSC copy (floor)'), \
     $(series shmlog spin 250 'shmlog poll_copy, spin'), \
     $(series shmlog spin 0 'shmlog poll_copy, spin, no catch-up grace'), \
     $(series shmlog-view spin - 'shmlog view, spin'), \
     $(series boost-mq - - 'boost message_queue'), \
     $(series pipe - - 'pipe'), \
     $(series unix-socket - - 'unix socket')
EOF
fi

if [[ -f $data/readers.tsv ]]; then
  # Columns: readers kind writer_msgs_per_s per_reader_msgs_per_s
  gnuplot <<EOF
set terminal pngcairo size 800,500 font 'sans,10' noenhanced
set output '$results/readers.png'
set title "Writer rate against attached readers, 32 B records\n$subtitle"
set logscale x 2
set xrange [0.5:128]
set xlabel 'readers (0 plotted at 0.5)'
set ylabel 'writer, M records/s'
set yrange [0:*]
set grid
set key top right
plot "< awk -F'\\t' -v k=yield '!/^#/ && \$2==k' $data/readers.tsv" using ((\$1==0)?0.5:\$1):(\$3/1e6) with linespoints title 'readers consuming (yield)', \
     "< awk -F'\\t' -v k=idle '!/^#/ && \$2==k' $data/readers.tsv" using ((\$1==0)?0.5:\$1):(\$3/1e6) with linespoints title 'readers attached, idle'
EOF
fi
ls "$results"/*.png 2>/dev/null || true
