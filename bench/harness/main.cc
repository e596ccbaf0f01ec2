// shmlog_bench: the multi-process benchmark harness. See harness.h and docs/benchmarks.md.
//
//   shmlog_bench run --transport T --mode M --record-bytes B [--readers N] [--wait W]
//                    [--rate R] [--seconds S] [--capacity SIZE] [--pin] [--cpus LIST]
//                    [--idle-readers K] [--catch-up-grace NS] [--on-lap P] [--no-floor-probe]
//   shmlog_bench suite [--quick] [--no-pin] [--retry-noisy N] [--repeat N] [--plot-dir DIR]
//                      [--attach KEY=FILE]... --out FILE
//   shmlog_bench selftest
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "baselines.h"
#include "clock.h"
#include "harness.h"
#include "histogram.h"
#include "process.h"

namespace shmlog::bench {

namespace {

constexpr const char* usage =
    "usage:\n"
    "  shmlog_bench run --transport T --mode M --record-bytes B [--readers N] [--wait W]\n"
    "                   [--rate R] [--seconds S] [--capacity SIZE] [--pin] [--cpus LIST]\n"
    "                   [--idle-readers K] [--catch-up-grace NS] [--on-lap P] [--no-floor-probe]\n"
    "      T: shmlog shmlog-view shmlog-gating floor-pingpong spsc-ring spsc-ring-view memcpy\n"
    "         boost-mq pipe unix-socket\n"
    "      M: throughput latency     W (shmlog): spin yield sleep adaptive\n"
    "         spin-master (spin on the master offset, as readers did before layout 4)\n"
    "      --catch-up-grace (shmlog): the readers' wait_policy::catch_up_grace in ns\n"
    "      (0: off); without it, the library's default\n"
    "      --on-lap P (shmlog): where a lapped reader resumes: oldest, oldest-safe (default)\n"
    "      or latest (reader::recover_from_lap)\n"
    "      --cpus LIST (implies --pin): the writer's CPU, then the readers' (comma-separated)\n"
    "      prints one JSON object (the case) on stdout\n"
    "  shmlog_bench suite [--quick] [--no-pin] [--retry-noisy N] [--repeat N]\n"
    "                     [--plot-dir DIR] [--attach KEY=FILE]... --out FILE\n"
    "      runs the standard matrix, prints a table, writes every case to FILE as JSON;\n"
    "      --retry-noisy N reruns a case up to N times while other processes loaded the CPUs;\n"
    "      --repeat N runs the whole matrix N times (1-20): each case reports its median run\n"
    "      and every run's figures (the spread);\n"
    "      --plot-dir DIR also writes tab-separated data for gnuplot into DIR;\n"
    "      --attach KEY=FILE embeds FILE (JSON) under KEY in FILE's document (repeatable)\n"
    "  shmlog_bench selftest\n"
    "      checks the latency histogram against data with known percentiles\n";

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// "123", "4k", "1M", "1e6" (counts, decimal) or "64KiB"-style sizes with K/M/G (binary).
double parse_number(const std::string& option, const std::string& text, bool binary) {
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || !std::isfinite(v) || v < 0)
    throw usage_error(option + ": '" + text + "' is not a number");
  std::string suffix(end);
  if (suffix == "iB" || suffix == "B") suffix.clear();
  if (!suffix.empty() &&
      (suffix.size() == 1 || suffix.substr(1) == "iB" || suffix.substr(1) == "B")) {
    const double k = binary ? 1024.0 : 1000.0;
    switch (suffix[0]) {
      case 'k':
      case 'K':
        v *= k;
        break;
      case 'm':
      case 'M':
        v *= k * k;
        break;
      case 'g':
      case 'G':
        v *= k * k * k;
        break;
      default:
        throw usage_error(option + ": unknown suffix in '" + text + "'");
    }
  } else if (!suffix.empty()) {
    throw usage_error(option + ": unknown suffix in '" + text + "'");
  }
  return v;
}

std::uint64_t parse_u64(const std::string& option, const std::string& text, bool binary = false) {
  const double v = parse_number(option, text, binary);
  if (v != std::floor(v) || v > 1.8e19)
    throw usage_error(option + ": '" + text + "' is not a whole number");
  return static_cast<std::uint64_t>(v);
}

int cmd_run(const std::vector<std::string>& a) {
  case_config c;
  bool have_transport = false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const std::string& o = a[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= a.size()) throw usage_error(o + " needs a value");
      return a[++i];
    };
    if (o == "--transport") {
      c.transport = value();
      have_transport = true;
    } else if (o == "--mode") {
      c.mode = value();
    } else if (o == "--record-bytes") {
      c.record_bytes = parse_u64(o, value(), true);
    } else if (o == "--readers") {
      c.readers = static_cast<unsigned>(parse_u64(o, value()));
    } else if (o == "--wait") {
      c.wait = value();
    } else if (o == "--rate") {
      c.rate = parse_u64(o, value());
    } else if (o == "--seconds") {
      c.seconds = parse_number(o, value(), false);
    } else if (o == "--capacity") {
      c.capacity = parse_u64(o, value(), true);
    } else if (o == "--pin") {
      c.pin = true;
    } else if (o == "--cpus") {
      const std::string& list = value();
      c.cpus.clear();
      std::size_t at = 0;
      while (at <= list.size()) {
        const std::size_t comma = std::min(list.find(',', at), list.size());
        c.cpus.push_back(static_cast<int>(parse_u64(o, list.substr(at, comma - at))));
        at = comma + 1;
      }
      c.pin = true;
    } else if (o == "--no-floor-probe") {
      c.floor_probe = false;
    } else if (o == "--idle-readers") {
      c.idle_readers = static_cast<unsigned>(parse_u64(o, value()));
    } else if (o == "--on-lap") {
      c.on_lap = value();
    } else if (o == "--catch-up-grace") {
      c.catch_up_grace_ns = parse_u64(o, value());
    } else {
      throw usage_error("unknown option '" + o + "'");
    }
  }
  if (!have_transport) throw usage_error("run needs --transport");
  try {
    case_config check = c;
    validate(check);
  } catch (const std::invalid_argument& e) {
    throw usage_error(e.what());
  }
  const double overhead = measure_clock_overhead_ns();
  const json_object j = run_case(c, overhead);
  std::printf("%s\n", j.dump().c_str());
  if (j.has("error")) {
    std::fprintf(stderr, "shmlog_bench: %s\n", j.text("error").c_str());
    return 1;
  }
  return j.number("errors").value_or(0) == 0 ? 0 : 1;
}

int cmd_suite(const std::vector<std::string>& a) {
  suite_options o;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] == "--quick") {
      o.quick = true;
    } else if (a[i] == "--no-pin") {
      o.pin = false;
    } else if (a[i] == "--retry-noisy" && i + 1 < a.size()) {
      o.retry_noisy = static_cast<unsigned>(parse_u64("--retry-noisy", a[++i]));
    } else if (a[i] == "--repeat" && i + 1 < a.size()) {
      o.repeat = static_cast<unsigned>(parse_u64("--repeat", a[++i]));
      if (o.repeat < 1 || o.repeat > 20)
        throw usage_error("--repeat must be between 1 and 20, not " + a[i]);
    } else if (a[i] == "--out" && i + 1 < a.size()) {
      o.out = a[++i];
    } else if (a[i] == "--plot-dir" && i + 1 < a.size()) {
      o.plot_dir = a[++i];
      if (o.plot_dir.empty()) throw usage_error("--plot-dir needs a directory");
    } else if (a[i] == "--attach" && i + 1 < a.size()) {
      const std::string& spec = a[++i];
      const auto eq = spec.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
        throw usage_error("--attach needs KEY=FILE, not '" + spec + "'");
      o.attach.emplace_back(spec.substr(0, eq), spec.substr(eq + 1));
    } else {
      throw usage_error("unknown suite option '" + a[i] + "'");
    }
  }
  if (o.out.empty()) throw usage_error("suite needs --out FILE");
  return run_suite(o);
}

}  // namespace
}  // namespace shmlog::bench

int main(int argc, char** argv) {
  using namespace shmlog::bench;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fputs(usage, stderr);
    return 2;
  }
  const std::string command = args.front();
  args.erase(args.begin());
  try {
    // Before anything looks a transport up, in the children too.
    add_baselines();
    if (command == child_command) return child_main(args);
    catch_interrupts();
    if (command == "run") return cmd_run(args);
    if (command == "suite") return cmd_suite(args);
    if (command == "selftest") {
      const int failures = histogram_selftest();
      std::printf("histogram selftest: %s\n", failures ? "FAILED" : "ok");
      return failures ? 1 : 0;
    }
    if (command == "--help" || command == "-h" || command == "help") {
      std::fputs(usage, stdout);
      return 0;
    }
    throw usage_error("unknown command '" + command + "'");
  } catch (const usage_error& e) {
    std::fprintf(stderr, "shmlog_bench: %s\n%s", e.what(), usage);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shmlog_bench: %s\n", e.what());
    return 1;
  }
}
