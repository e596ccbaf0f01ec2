// `shmlog bench`, run as a user runs it (a child process, no shell): short runs, paced and flat
// out, whose --json object is checked for its structure and for figures that must hold on any
// machine however loaded (counts above zero, percentiles in order, every record sent either
// delivered or counted lost, the ratios to the floor matching the floor). Never a performance
// figure: these run beside other tests and under the sanitizers.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "shmlog/segment.h"
#include "subprocess/subprocess.h"

namespace {

using json = nlohmann::json;

struct run_result {
  std::string out;
  std::string err;
  int status = -1;  // exit status, or 128 + signal number
  pid_t pid = -1;
};

std::string describe(const run_result& r) {
  return "status " + std::to_string(r.status) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

// The logs a run of `shmlog bench` with this pid left in /dev/shm (the harness names them
// shmlog-bench-<pid>-<n>); removes them, so that a failed run leaves nothing behind either.
std::vector<std::string> take_leftovers(pid_t pid) {
  const std::string prefix = "shmlog-bench-" + std::to_string(pid) + "-";
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm")) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    found.push_back(name);
    std::error_code ignored;
    std::filesystem::remove(entry.path(), ignored);
  }
  return found;
}

// Runs the tool to its end. A guard against a hung child (killed after 5 minutes, far beyond
// what a sanitizer build on a loaded machine needs), not a synchronisation.
run_result run(std::vector<std::string> args) {
  ::signal(SIGPIPE, SIG_IGN);
  args.insert(args.begin(), SHMLOG_CLI);
  shmlog::subprocess::child child(
      {.argv = std::move(args), .stderr_mode = shmlog::subprocess::stream_mode::pipe});
  run_result r;
  r.pid = child.pid();
  if (!child.communicate({}, shmlog::subprocess::clock::now() + std::chrono::minutes(5)))
    child.kill_and_reap();
  r.out = child.out().unread();
  r.err = child.err().transcript();
  const int status = child.status();
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  EXPECT_EQ(take_leftovers(r.pid), std::vector<std::string>{})
      << "shmlog bench left logs in /dev/shm";
  return r;
}

json run_json(std::vector<std::string> args) {
  args.insert(args.begin(), "bench");
  args.push_back("--json");
  const run_result r = run(args);
  EXPECT_EQ(r.status, 0) << describe(r);
  try {
    return json::parse(r.out);
  } catch (const json::exception& e) {
    ADD_FAILURE() << "not one JSON object: " << e.what() << "\n" << describe(r);
    return json::object();
  }
}

// How many CPUs this test (and so the tool it starts) may run on.
unsigned allowed_cpu_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return static_cast<unsigned>(CPU_COUNT(&set));
}

// The lowest CPU this test may run on (a cgroup's cpuset or taskset may leave out CPU 0).
int first_allowed_cpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0)
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
      if (CPU_ISSET(cpu, &set)) return cpu;
  return 0;
}

constexpr const char* percentile_keys[] = {"p50_ns",  "p90_ns",   "p99_ns",
                                           "p999_ns", "p9999_ns", "max_ns"};
constexpr const char* ratio_keys[] = {"p50", "p90", "p99", "p999", "p9999", "max"};

// A latency object: a count, and percentiles that never go down, the max last.
void expect_percentiles(const json& p, const std::string& what) {
  ASSERT_TRUE(p.is_object()) << what;
  EXPECT_GT(p.at("count").get<std::uint64_t>(), 0u) << what;
  std::uint64_t previous = 0;
  for (const char* key : percentile_keys) {
    ASSERT_TRUE(p.contains(key)) << what << " has no " << key;
    const auto v = p.at(key).get<std::uint64_t>();
    EXPECT_GE(v, previous) << what << ": " << key << " below the percentile before it";
    previous = v;
  }
  EXPECT_GT(p.at("p50_ns").get<std::uint64_t>(), 0u) << what;
}

void expect_machine(const json& m) {
  ASSERT_TRUE(m.is_object());
  EXPECT_FALSE(m.at("cpu_model").get<std::string>().empty());
  EXPECT_GE(m.at("cores").get<unsigned>(), 1u);
  EXPECT_TRUE(m.at("virtualized").is_boolean());
  EXPECT_FALSE(m.at("kernel").get<std::string>().empty());
}

// Every record the writer sent reached each reader or was counted lost by it.
void expect_accounted(const json& d, unsigned readers) {
  const json& t = d.at("throughput");
  const json& l = d.at("loss");
  const auto sent = t.at("sent").get<std::uint64_t>();
  EXPECT_GT(sent, 0u);
  EXPECT_GT(t.at("delivered").get<std::uint64_t>(), 0u);
  EXPECT_EQ(t.at("delivered").get<std::uint64_t>() + l.at("lost_records").get<std::uint64_t>(),
            sent * readers);
  EXPECT_GT(t.at("records_per_s").get<double>(), 0);
  EXPECT_GT(t.at("writer_records_per_s").get<double>(), 0);
  // The JSON writer keeps 12 significant digits.
  const double bytes =
      t.at("records_per_s").get<double>() * d.at("config").at("record_bytes").get<double>();
  EXPECT_NEAR(t.at("bytes_per_s").get<double>(), bytes, bytes * 1e-9);
  EXPECT_GE(l.at("lost_fraction").get<double>(), 0);
  EXPECT_LE(l.at("lost_fraction").get<double>(), 1);
  EXPECT_TRUE(l.at("laps").is_number_unsigned());
}

TEST(bench_cli, PacedRunReportsTheFloorThroughputLossAndOrderedPercentilesWithRatios) {
  const json d = run_json({"--seconds", "0.05", "--size", "64", "--rate", "20k"});
  ASSERT_TRUE(d.is_object());
  EXPECT_EQ(d.at("schema"), 1);
  EXPECT_EQ(d.at("errors"), 0);
  EXPECT_FALSE(d.contains("error"));
  const json& c = d.at("config");
  EXPECT_EQ(c.at("record_bytes"), 64);
  EXPECT_EQ(c.at("paced"), true);
  EXPECT_EQ(c.at("rate"), 20000);
  EXPECT_EQ(c.at("readers"), 1);
  EXPECT_EQ(c.at("wait"), "adaptive");
  EXPECT_EQ(c.at("capacity"), 1 << 20);
  EXPECT_EQ(c.at("gating"), false);
  EXPECT_EQ(c.at("reader_cpus").size(), 1u);
  expect_machine(d.at("machine"));
  EXPECT_GT(d.at("clock_overhead_ns").get<double>(), 0);
  expect_accounted(d, 1);
  EXPECT_EQ(d.at("pinned"), true);
  const json& latency = d.at("latency");
  expect_percentiles(latency, "latency");
  if (allowed_cpu_count() < 2) {
    EXPECT_TRUE(d.at("floor").is_null());
    EXPECT_TRUE(latency.at("ratio_to_floor").is_null());
    return;
  }
  const json& floor = d.at("floor");
  expect_percentiles(floor, "floor");
  EXPECT_EQ(floor.at("cpus"), json::array({c.at("writer_cpu"), c.at("reader_cpus")[0]}));
  EXPECT_GT(floor.at("after_p50_ns").get<double>(), 0);
  // Each ratio is its percentile over the floor's p50.
  const double floor_p50 = floor.at("p50_ns").get<double>();
  for (std::size_t i = 0; i < std::size(ratio_keys); ++i)
    EXPECT_NEAR(latency.at("ratio_to_floor").at(ratio_keys[i]).get<double>(),
                latency.at(percentile_keys[i]).get<double>() / floor_p50,
                latency.at(percentile_keys[i]).get<double>() / floor_p50 * 1e-9)
        << ratio_keys[i];
  // The harness's own case object rides along.
  EXPECT_EQ(d.at("case").at("transport"), "shmlog");
  EXPECT_EQ(d.at("case").at("mode"), "latency");
}

TEST(bench_cli, FlatOutGatingRunWithTwoReadersAccountsForEveryRecordAndHasNoLatency) {
  const json d = run_json(
      {"--rate", "max", "--readers", "2", "--gating", "--size", "32", "--seconds", "0.05"});
  ASSERT_TRUE(d.is_object());
  EXPECT_EQ(d.at("errors"), 0);
  const json& c = d.at("config");
  EXPECT_EQ(c.at("paced"), false);
  EXPECT_TRUE(c.at("rate").is_null());
  EXPECT_EQ(c.at("gating"), true);
  EXPECT_EQ(c.at("readers"), 2);
  EXPECT_EQ(c.at("reader_cpus").size(), 2u);
  expect_accounted(d, 2);
  EXPECT_GT(d.at("throughput").at("slowest_reader_records_per_s").get<double>(), 0);
  EXPECT_TRUE(d.at("latency").is_null());
  EXPECT_EQ(d.at("case").at("transport"), "shmlog-gating");
  EXPECT_EQ(d.at("case").at("mode"), "throughput");
}

TEST(bench_cli, OneCpuForEverythingMeasuresNoFloorAndSaysWhy) {
  const std::string cpu = std::to_string(first_allowed_cpu());
  const json d = run_json({"--cpus", cpu, "--seconds", "0.05", "--rate", "10k"});
  ASSERT_TRUE(d.is_object());
  EXPECT_TRUE(d.at("floor").is_null());
  EXPECT_NE(d.at("floor_not_measured").get<std::string>().find("share CPU " + cpu),
            std::string::npos);
  EXPECT_EQ(d.at("config").at("writer_cpu"), first_allowed_cpu());
  EXPECT_EQ(d.at("config").at("reader_cpus"), json::array({first_allowed_cpu()}));
  expect_percentiles(d.at("latency"), "latency");
  EXPECT_TRUE(d.at("latency").at("ratio_to_floor").is_null());
}

TEST(bench_cli, ReportForPeopleNamesTheRunTheMachineAndEveryPercentileInOrder) {
  const run_result r = run({"bench", "--seconds", "0.05", "--size", "128", "--rate", "50k"});
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out.rfind("shmlog bench: 128-byte records, paced at 50,000/s, 1 reader", 0), 0u)
      << r.out;
  std::size_t at = 0;
  for (const char* label :
       {"\nmachine:", "\nCPUs:", "\nfloor:", "\nclock:", "\nthroughput:", "\nloss:", "\nlatency:",
        " p50 ", " p90 ", " p99 ", " p99.9 ", " p99.99 ", " max ", "\nother load:"}) {
    const std::size_t found = r.out.find(label, at);
    ASSERT_NE(found, std::string::npos) << "no '" << label << "' after offset " << at << ":\n"
                                        << r.out;
    at = found;
  }
  if (allowed_cpu_count() >= 2) {
    EXPECT_NE(r.out.find("x floor"), std::string::npos) << r.out;
  }
}

TEST(bench_cli, BadOptionsAreUsageErrorsNamingTheReason) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--size", "8"}, "at least 16 bytes when paced"},
      {{"--size", "4", "--rate", "max"}, "at least 8 bytes"},
      {{"--size", "2M"}, "raise --capacity"},
      {{"--size", "64KB"}, "power of 1000 or of 1024"},
      {{"--rate", "0"}, "--rate"},
      {{"--rate", "fast"}, "expected max or records per second"},
      {{"--rate", "2000M"}, "between 1 and 1G records per second"},
      {{"--readers", "0"}, "--readers"},
      {{"--wait", "busy"}, "spin, yield, adaptive or sleep"},
      {{"--seconds", "0"}, "--seconds"},
      {{"--capacity", "1000"}, "capacity"},
      {{"--cpus", "0,0"}, "named twice"},
      {{"--cpus", "3-1"}, "goes down"},
      {{"--cpus", "1023"}, "may not run on CPU 1023"},
      {{"--cpus", ","}, "expected CPU numbers"},
      {{"--frobnicate"}, "unknown option"},
      {{"extra"}, "unexpected argument"},
  };
  for (const auto& [args, reason] : cases) {
    std::vector<std::string> full = {"bench"};
    full.insert(full.end(), args.begin(), args.end());
    const run_result r = run(full);
    EXPECT_EQ(r.status, 2) << args.front() << ": " << describe(r);
    EXPECT_EQ(r.err.rfind("shmlog bench: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(reason), std::string::npos) << args.front() << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.out, "");
  }
}

TEST(bench_cli, HelpListsEveryOption) {
  const run_result r = run({"bench", "--help"});
  ASSERT_EQ(r.status, 0) << describe(r);
  for (const char* option : {"--size", "--rate", "--readers", "--wait", "--seconds", "--capacity",
                             "--cpus", "--gating", "--json"})
    EXPECT_NE(r.out.find(option), std::string::npos) << option;
}

}  // namespace
