#!/usr/bin/env bash
# Counts instructions per append and per poll with callgrind (exact and repeatable, unlike
# timings on a shared machine, and available where perf has no hardware counters).
#
# usage: bench/perf/callgrind.sh [--build-dir DIR] [--count N] [--json] [--keep DIR]
#                                [--annotate CASE]
#
#   --build-dir DIR   where shmlog_instr was built (default: $SHMLOG_BUILD_DIR or <repo>/build)
#   --count N         operations per case (default: 100000)
#   --json            print only a JSON object {"append_64B": 61.0, ...} on stdout (the table
#                     goes to stderr); bench/run.sh merges it into results/latest.json
#   --keep DIR        keep the callgrind.out files in DIR (default: a temporary directory)
#   --annotate CASE   also print callgrind_annotate --inclusive=yes for one case (e.g.
#                     append_64B): which functions the instructions go to
#
# Each case runs shmlog_instr under valgrind --tool=callgrind with collection switched on only
# inside the measured loop (--toggle-collect on instr_*_loop), so creating the log and filling
# the ring for the polls are not counted. Two numbers per case:
#   Ir/op (loop)  every instruction executed inside the loop / N: includes the loop's own
#                 ~8 instructions per iteration (counter, branch, argument set-up, the call)
#   Ir/op (API)   inclusive instructions of the public call(s) alone / N, from
#                 callgrind_annotate (append: writer::append; claim: writer::claim +
#                 claimed_record::commit; poll: reader::poll / reader::poll_copy)
# poll_empty is a poll with nothing to read: one turn of a caught-up reader's spin loop.
# The JSON has the loop numbers (the conservative ones). Kernel work (page faults) is never
# counted by callgrind. glibc's memcpy is the variant valgrind's emulated CPU selects (AVX2,
# not the AVX-512 one the real CPU uses), so its share differs slightly from a native run.
set -euo pipefail
# shellcheck source=bench/perf/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

build_dir=$SHMLOG_DEFAULT_BUILD_DIR
count=100000
json=0
keep=
annotate=
while (($#)); do
  case $1 in
    --build-dir) build_dir=$2; shift 2 ;;
    --count) count=$2; shift 2 ;;
    --json) json=1; shift ;;
    --keep) keep=$2; shift 2 ;;
    --annotate) annotate=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
[[ $count =~ ^[1-9][0-9]*$ ]] || die "--count must be a positive integer, not '$count'"

require_tool valgrind valgrind
require_tool callgrind_annotate valgrind
instr="$(bench_binary "$build_dir" shmlog_instr)"
if [[ -n $keep ]]; then
  mkdir -p "$keep"
  out_dir=$keep
else
  out_dir="$(mktemp -d -t shmlog-callgrind.XXXXXX)"
  trap 'rm -rf "$out_dir"' EXIT
fi

# case name | --op | --size | loop function | public functions whose inclusive cost is the API
cases=(
  "append_64B|append|64|instr_append_loop|shmlog::writer::append("
  "append_32B|append|32|instr_append_loop|shmlog::writer::append("
  "append_1024B|append|1024|instr_append_loop|shmlog::writer::append("
  "batch16_64B|batch16|64|instr_batch_loop|shmlog::writer::append_batch("
  "claim_64B|claim|64|instr_claim_loop|shmlog::writer::claim(;shmlog::claimed_record::commit("
  "poll_copy_64B|poll_copy|64|instr_poll_copy_loop|shmlog::reader::poll_copy("
  "poll_view_64B|poll_view|64|instr_poll_view_loop|shmlog::reader::poll()"
  "poll_empty|poll_empty|64|instr_poll_empty_loop|shmlog::reader::poll()"
)

# Inclusive Ir of one function (its name up to the opening parenthesis, to tell overloads
# apart) from callgrind_annotate's inclusive listing; 0 if it does not appear.
inclusive_ir() {
  local file=$1 function=$2
  # awk reads to the end (no early exit): under pipefail, callgrind_annotate killed by
  # SIGPIPE would fail the script.
  callgrind_annotate --inclusive=yes --auto=no --threshold=100 "$file" |
    awk -v f="$function" '!found && index($0, f) && $1 ~ /^[0-9,]+$/ { gsub(",", "", $1); ir = $1; found = 1 }
      END { print found ? ir : 0 }'
}

declare -A loop_ir_per_op
printf '%-14s %8s %14s %14s\n' case ops "Ir/op (loop)" "Ir/op (API)" >&2
for spec in "${cases[@]}"; do
  IFS='|' read -r name op size loop_fn api_fns <<<"$spec"
  file="$out_dir/callgrind.$name.out"
  log="$out_dir/valgrind.$name.log"
  if ! valgrind --tool=callgrind --callgrind-out-file="$file" --collect-atstart=no \
    --toggle-collect="*${loop_fn}*" --log-file="$log" \
    "$instr" --op "$op" --size "$size" --count "$count" 2>"$out_dir/$name.stderr"; then
    cat "$out_dir/$name.stderr" "$log" >&2
    die "shmlog_instr failed under callgrind for $name"
  fi
  # The driver reports how many operations it did (batch16 rounds N down to whole batches).
  ops="$(sed -n 's/.* ops=\([0-9]*\) .*/\1/p' "$out_dir/$name.stderr")"
  [[ -n $ops && $ops -gt 0 ]] || die "could not read the operation count for $name"
  total="$(awk '/^totals:/ { print $2; exit }' "$file")"
  [[ -n $total ]] || total="$(awk '/^summary:/ { print $2; exit }' "$file")"
  [[ -n $total ]] || die "no totals in $file"
  api_total=0
  IFS=';' read -r -a fns <<<"$api_fns"
  for fn in "${fns[@]}"; do
    api_total=$((api_total + $(inclusive_ir "$file" "$fn")))
  done
  loop_ir_per_op[$name]="$(awk -v t="$total" -v n="$ops" 'BEGIN { printf "%.1f", t / n }')"
  api="$(awk -v t="$api_total" -v n="$ops" 'BEGIN { printf "%.1f", t / n }')"
  printf '%-14s %8s %14s %14s\n' "$name" "$ops" "${loop_ir_per_op[$name]}" "$api" >&2
done

if [[ -n $annotate ]]; then
  file="$out_dir/callgrind.$annotate.out"
  [[ -f $file ]] || die "--annotate: no case named '$annotate'"
  echo >&2
  echo "=== callgrind_annotate --inclusive=yes: $annotate ===" >&2
  callgrind_annotate --inclusive=yes --auto=no "$file" | sed -n '/^Ir /,$p' >&2
fi

if ((json)); then
  first=1
  printf '{'
  for spec in "${cases[@]}"; do
    name=${spec%%|*}
    ((first)) || printf ', '
    first=0
    printf '"%s": %s' "$name" "${loop_ir_per_op[$name]}"
  done
  printf '}\n'
else
  echo >&2
  echo "# $count operations per case; Ir = instructions executed (callgrind)." >&2
fi
