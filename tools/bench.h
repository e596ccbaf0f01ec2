// shmlog bench: the latency and throughput benchmark of an installed shmlog (bench.cc), run with
// the multi-process harness's own code (bench/harness, the shmlog_bench_core library).
#pragma once

#include <span>
#include <string>

namespace shmlog::cli {

// `shmlog bench [options]`: a writer and reader processes pinned to CPUs, the ping-pong floor
// measured before and after them, a report for people or --json. For main()'s command table.
int run_bench(std::span<const std::string> args);
// Hidden: `shmlog bench-role key=value...`, one child of a bench case (the harness's
// child_main). Only run_bench's parent starts it, through /proc/self/exe.
int run_bench_role(std::span<const std::string> args);

}  // namespace shmlog::cli
