// shmlog_bench: one case (`run`) or the standard matrix (`suite`), every transport measured by
// the same processes, the same clock and the same histogram. See docs/benchmarks.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "json.h"
#include "shmlog/reader.h"

namespace shmlog::bench {

// What one case measures. Field names match the command-line options and the JSON keys.
struct case_config {
  std::string transport = "shmlog";  // shmlog shmlog-view floor-pingpong spsc-ring
                                     // spsc-ring-view memcpy boost-mq pipe unix-socket
  std::string mode = "throughput";   // throughput | latency
  std::uint64_t record_bytes = 64;
  unsigned readers = 1;
  std::string wait;                  // "" = the transport's default (see default_wait)
  std::uint64_t rate = 100'000;      // latency mode: records per second
  double seconds = 2;                // measured time, after the warm-up
  std::uint64_t capacity = 1 << 20;  // shmlog ring; baselines get the same byte budget
  bool pin = false;
  // With `pin`: the writer's CPU, then the readers' (reader i on cpus[1 + i mod (n - 1)], all
  // on cpus[0] if n is 1). Empty: every online CPU in order, so the writer runs on CPU 0 and
  // reader i on CPU 1 + i mod (ncpu - 1). Only the parent uses it (each child gets its CPU).
  std::vector<int> cpus;
  unsigned idle_readers = 0;
  // Pinned cases with readers run a short floor ping-pong between the same CPUs right before
  // and after, because on a VM the cost of moving a line between two vCPUs changes with where
  // the host places them (measured here: ~40 ns or ~175 ns one way, switching between runs).
  bool floor_probe = true;
  // shmlog readers' wait_policy::catch_up_grace; unset: the library's default.
  std::optional<std::uint64_t> catch_up_grace_ns;
  // shmlog readers after a lap: oldest, oldest-safe or latest (reader::recover_from_lap);
  // "" = the harness's default, oldest-safe.
  std::string on_lap;
};

// Set by SIGINT / SIGTERM in the parent: the running case stops and cleans up.
extern std::atomic<bool> interrupted;

inline constexpr std::uint64_t end_flag = std::uint64_t{1} << 63;  // seq of the end marker
inline constexpr double warmup_fraction = 0.1;  // of `seconds`, run before measuring
inline constexpr std::uint64_t min_warmup_ns = 50'000'000;

std::uint64_t warmup_ns(const case_config& c);
std::string default_wait(const std::string& transport);
// "lossy" (readers can be lapped), "lossless" (back-pressure) or "" (not a stream): see table.h.
std::string delivery(const std::string& transport);
bool is_shmlog(const std::string& transport);
bool is_spsc_ring(const std::string& transport);
// The catch-up grace a shmlog reader of this case runs with: the option, or the library's
// default when the case does not set it.
std::uint64_t effective_grace_ns(const case_config& c);
// spsc-ring: the ring holds capacity / record_bytes slots, the same bytes as shmlog's ring.
std::uint64_t spsc_ring_slots(const case_config& c);
// --on-lap's names (oldest, oldest-safe, latest) as the library's policies; nullopt for another.
std::optional<lap_policy> to_lap_policy(const std::string& name);
// The lap policy a shmlog reader of this case runs with: --on-lap, or the harness's default
// (oldest-safe: docs/design.md, "Laps and policy").
lap_policy effective_lap_policy(const case_config& c);
const char* lap_policy_name(lap_policy p);
// Throws std::invalid_argument naming what is wrong.
void validate(case_config& c);

// The parent: runs one case and returns its JSON object (with "error" set if it failed).
json_object run_case(case_config config, double clock_overhead_ns);

// The child: `shmlog_bench bench-role key=value...` (process.h, child_command). Returns the exit
// code.
int child_main(const std::map<std::string, std::string>& args);
// child_main with the words after child_command ("key=value"; others are ignored). For the main
// of every program that links this library.
int child_main(const std::vector<std::string>& words);

// The CPU a child of a case runs on when pinned: index 0 is the writer, 1 + i reader i, then
// the idle readers (case_config::cpus says how).
int child_cpu(const case_config& c, unsigned index);

// SIGINT and SIGTERM set `interrupted` (the running case stops, kills its children and cleans
// up); SIGPIPE is ignored. For a program's main, in the parent only.
void catch_interrupts();

// Config <-> the child's key=value arguments.
std::map<std::string, std::string> to_args(const case_config& c);
case_config from_args(const std::map<std::string, std::string>& args);

json_object machine_info();

struct suite_options {
  bool quick = false;
  bool pin = true;
  // Rerun a case up to this many times while other processes took more than 10% of a CPU
  // during it, keeping the run with the least such time. The choice is made on the machine's
  // load, never on the case's result.
  unsigned retry_noisy = 0;
  // Run the whole matrix this many times (passes, one after the other, so that the runs of a
  // case are minutes apart and see the host's different vCPU placements); each case reports
  // its median run, with every run's figures beside it ("runs") for the spread.
  unsigned repeat = 1;
  std::string out;
  // Tab-separated files for gnuplot (latency_<label>.tsv, throughput.tsv, readers.tsv); empty:
  // none.
  std::string plot_dir;
  // Other results to embed in the output document: (top-level key, JSON file).
  std::vector<std::pair<std::string, std::string>> attach;
};
int run_suite(const suite_options& options);

}  // namespace shmlog::bench
