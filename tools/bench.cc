// shmlog bench: one shmlog case of the multi-process harness (bench/harness), with the cache-line
// ping-pong floor measured between the same CPUs right before and right after it, reported for
// people (like redis-benchmark) or as one JSON object. Every figure comes from the harness's
// code (run_case, its children's loops, its histogram), the code bench/run.sh's figures come
// from; this file only chooses the case and presents what it returns.
#include "bench.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cli.h"
#include "clock.h"
#include "harness.h"
#include "json.h"
#include "process.h"
#include "shmlog/segment.h"
#include "shmlog/version.h"

namespace shmlog::cli {

static_assert(std::string_view(shmlog::bench::child_command) == "bench-role",
              "tools/main.cc's command table names the harness's child command");

namespace {

namespace sb = shmlog::bench;

struct bench_options {
  sb::case_config config;
  double floor_seconds = 0;
  bool json = false;
};

// "100000", "100k", "1M": records per second (decimal multipliers, as rates are usually written).
std::uint64_t parse_rate(const std::string& text) {
  const auto bad = [&](const std::string& why) {
    return usage_error("bad --rate '" + one_line(text) + "': " + why);
  };
  std::string digits = text;
  std::uint64_t multiplier = 1;
  if (!digits.empty() && (digits.back() == 'k' || digits.back() == 'K')) {
    multiplier = 1000;
    digits.pop_back();
  } else if (!digits.empty() && (digits.back() == 'm' || digits.back() == 'M')) {
    multiplier = 1'000'000;
    digits.pop_back();
  }
  if (digits.empty() || digits.size() > 10 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    throw bad("expected max or records per second, e.g. 100000, 100k or 1M");
  const std::uint64_t n = std::stoull(digits) * multiplier;
  if (n < 1 || n > 1'000'000'000) throw bad("must be between 1 and 1G records per second");
  return n;
}

// "0,1", "2-5", "0,2-3": CPU numbers in the order given.
std::vector<int> parse_cpus(const std::string& text) {
  std::vector<int> cpus;
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    const std::string part = text.substr(at, comma - at);
    const std::size_t dash = part.find('-');
    const auto number = [&](const std::string& n) {
      return static_cast<int>(parse_unsigned("cpus", n, 0, CPU_SETSIZE - 1));
    };
    if (part.empty())
      throw usage_error("bad --cpus '" + one_line(text) +
                        "': expected CPU numbers, e.g. 0,1 or 2-5");
    if (dash == std::string::npos) {
      cpus.push_back(number(part));
    } else {
      const int first = number(part.substr(0, dash));
      const int last = number(part.substr(dash + 1));
      if (last < first)
        throw usage_error("bad --cpus '" + one_line(text) + "': range " + part + " goes down");
      for (int cpu = first; cpu <= last; ++cpu)
        cpus.push_back(cpu);
    }
    at = comma + 1;
  }
  return cpus;
}

bench_options options_from(const parsed_args& args) {
  if (!args.positionals.empty())
    throw usage_error("unexpected argument '" + one_line(args.positionals.front()) +
                      "' (usage: shmlog bench [options]; shmlog bench --help)");
  bench_options o;
  sb::case_config& c = o.config;
  c.transport = args.has("gating") ? "shmlog-gating" : "shmlog";
  c.pin = true;
  // This command measures the floor itself, between the same two CPUs, as a full case.
  c.floor_probe = false;
  c.mode = "latency";
  if (const auto rate = args.value("rate")) {
    if (*rate == "max") {
      c.mode = "throughput";
    } else {
      c.rate = parse_rate(*rate);
    }
  }
  const bool paced = c.mode == "latency";
  if (const auto capacity = args.value("capacity")) c.capacity = parse_size("capacity", *capacity);
  // The library's own check: a power of two in its range, its message naming the limits.
  validate_create_options({.capacity = c.capacity});
  if (const auto size = args.value("size")) {
    c.record_bytes = parse_size("size", *size);
    const std::uint64_t least = paced ? 16 : 8;
    if (c.record_bytes < least)
      throw usage_error(
          "bad --size '" + one_line(*size) + "': at least " + std::to_string(least) + " bytes " +
          (paced ? "when paced (a sequence number and the due time)" : "(the sequence number)"));
    if (c.record_bytes > max_payload_for(c.capacity))
      throw usage_error("bad --size '" + one_line(*size) + "': a " +
                        human_bytes(double(c.capacity)) + " ring holds records of at most " +
                        grouped(max_payload_for(c.capacity)) + " bytes; raise --capacity");
  }
  if (const auto readers = args.value("readers"))
    c.readers = static_cast<unsigned>(parse_unsigned("readers", *readers, 1, 1000));
  c.wait = args.value("wait").value_or("adaptive");
  if (c.wait != "spin" && c.wait != "yield" && c.wait != "adaptive" && c.wait != "sleep")
    throw usage_error("bad --wait '" + one_line(c.wait) +
                      "': expected spin, yield, adaptive or sleep");
  if (const auto seconds = args.value("seconds"))
    c.seconds = parse_seconds("seconds", *seconds, 3600);
  const std::vector<int> allowed = sb::allowed_cpus();
  if (const auto cpus = args.value("cpus")) {
    c.cpus = parse_cpus(*cpus);
    // The list's own mistakes first: they are wrong on any machine.
    std::set<int> seen;
    for (const int cpu : c.cpus)
      if (!seen.insert(cpu).second)
        throw usage_error("bad --cpus '" + one_line(*cpus) + "': CPU " + std::to_string(cpu) +
                          " is named twice");
    for (const int cpu : c.cpus) {
      if (std::find(allowed.begin(), allowed.end(), cpu) == allowed.end()) {
        std::string list;
        for (const int a : allowed)
          list += (list.empty() ? "" : ",") + std::to_string(a);
        throw usage_error("bad --cpus '" + one_line(*cpus) + "': this process may not run on CPU " +
                          std::to_string(cpu) + " (it may on " + list + ")");
      }
    }
  } else {
    c.cpus = allowed.empty() ? std::vector<int>{0} : allowed;
  }
  // The harness's own checks, which the ones above make redundant; a usage error all the same.
  try {
    sb::case_config check = c;
    sb::validate(check);
  } catch (const std::invalid_argument& e) {
    throw usage_error(e.what());
  }
  // Long enough for thousands of round trips even on a busy machine, short beside the case.
  o.floor_seconds = std::clamp(c.seconds / 10, 0.05, 0.5);
  o.json = args.has("json");
  return o;
}

// --- presentation -----------------------------------------------------------------------------

std::string ns_text(double ns) {
  char buf[32];
  if (!std::isfinite(ns)) return "?";
  if (ns < 1e3) {
    std::snprintf(buf, sizeof buf, "%.0f ns", ns);
  } else if (ns < 1e6) {
    std::snprintf(buf, sizeof buf, ns < 1e4 ? "%.2f us" : "%.1f us", ns / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, ns < 1e7 ? "%.2f ms" : "%.1f ms", ns / 1e6);
  }
  return buf;
}

std::string fixed(double v, int decimals) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// "6.40", "173.8", "12,727": decimal megabytes per second.
std::string mb_text(double bytes_per_s) {
  const double mb = bytes_per_s / 1e6;
  if (!std::isfinite(mb)) return "?";
  if (mb >= 1000) return grouped(static_cast<std::uint64_t>(std::llround(mb)));
  return fixed(mb, mb < 100 ? 2 : 1);
}

// "0", "0.0412", "12.5": a share of 1 as a percentage, to three significant digits.
std::string percent(double share) {
  if (!(share > 0)) return "0";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", 100 * share);
  return buf;
}

std::string cpu_list(const std::vector<int>& cpus) {
  std::string s;
  for (const int cpu : cpus)
    s += (s.empty() ? "" : ",") + std::to_string(cpu);
  return s;
}

double num(const sb::json_object& j, std::string_view key) {
  return j.number(key).value_or(std::nan(""));
}

// A count or a rate of a case object, rounded; 0 for a key it does not have (a NaN must not
// reach an integer conversion).
std::uint64_t whole(const sb::json_object& j, std::string_view key) {
  const double v = num(j, key);
  return std::isfinite(v) && v > 0 ? static_cast<std::uint64_t>(std::llround(v)) : 0;
}

struct percentile_row {
  const char* label;  // for people
  const char* key;    // the harness's JSON key
  const char* short_key;
};
constexpr percentile_row percentile_rows[] = {
    {"p50", "p50_ns", "p50"},     {"p90", "p90_ns", "p90"},        {"p99", "p99_ns", "p99"},
    {"p99.9", "p999_ns", "p999"}, {"p99.99", "p9999_ns", "p9999"}, {"max", "max_ns", "max"},
};

// The percentiles of a latency case (the harness's keys), as a JSON object.
sb::json_object percentiles(const sb::json_object& j) {
  sb::json_object out;
  out.set_u64("count", whole(j, "count"));
  for (const percentile_row& r : percentile_rows)
    out.set_u64(r.key, whole(j, r.key));
  out.set_f64("mean_ns", num(j, "mean_ns"));
  return out;
}

// What the run found, for both outputs.
struct bench_result {
  sb::json_object doc;  // the --json object
  // The harness's case objects: the floor before and after (none if it was not measured) and
  // the shmlog case.
  std::optional<sb::json_object> floor_before;
  std::optional<sb::json_object> floor_after;
  sb::json_object result;
  sb::json_object machine;
  std::optional<double> floor;  // the floor's p50 before the case, one way
  double foreign_cpu_seconds = 0;
  double wall_seconds = 0;
  std::string failure;  // why the run failed ("" if it did not)
};

bench_result run_all(const bench_options& o) {
  const sb::case_config& c = o.config;
  const bool paced = c.mode == "latency";
  const int writer_cpu = sb::child_cpu(c, 0);
  std::vector<int> reader_cpus;
  for (unsigned i = 0; i < c.readers; ++i)
    reader_cpus.push_back(sb::child_cpu(c, 1 + i));

  bench_result r;
  sb::json_object& doc = r.doc;
  doc.set_u64("schema", 1);
  doc.set_string("shmlog_version", SHMLOG_VERSION);

  sb::json_object config;
  config.set_u64("record_bytes", c.record_bytes);
  config.set_bool("paced", paced);
  if (paced) {
    config.set_u64("rate", c.rate);
  } else {
    config.set_raw("rate", "null");
  }
  config.set_u64("readers", c.readers);
  config.set_string("wait", c.wait);
  config.set_f64("seconds", c.seconds);
  config.set_f64("warmup_seconds", double(sb::warmup_ns(c)) / 1e9);
  config.set_u64("capacity", c.capacity);
  config.set_bool("gating", c.transport == "shmlog-gating");
  config.set_u64("writer_cpu", static_cast<std::uint64_t>(writer_cpu));
  config.set_raw("reader_cpus", "[" + cpu_list(reader_cpus) + "]");
  doc.set_raw("config", config.dump());
  r.machine = sb::machine_info();
  doc.set_raw("machine", r.machine.dump());
  const double clock_ns = sb::measure_clock_overhead_ns();
  doc.set_f64("clock_overhead_ns", clock_ns);

  // The floor, as a full floor-pingpong case between the writer's CPU and the first reader's,
  // before and after: the host may move the vCPUs during the run (docs/benchmarks.md).
  sb::case_config f;
  f.transport = "floor-pingpong";
  f.mode = "latency";
  f.seconds = o.floor_seconds;
  f.pin = true;
  f.cpus = {writer_cpu, reader_cpus.front()};
  const bool floor_possible = writer_cpu != reader_cpus.front();
  const auto run = [&](const sb::case_config& k) {
    sb::json_object j = sb::run_case(k, clock_ns);
    if (const auto v = j.number("foreign_cpu_seconds")) r.foreign_cpu_seconds += *v;
    if (const auto v = j.number("case_wall_seconds")) r.wall_seconds += *v;
    if (j.has("error") && r.failure.empty())
      r.failure = (k.transport == "floor-pingpong" ? "the floor: " : "") + j.text("error");
    return j;
  };
  std::optional<sb::json_object>& floor_before = r.floor_before;
  std::optional<sb::json_object>& floor_after = r.floor_after;
  if (floor_possible) floor_before = run(f);
  if (r.failure.empty()) r.result = run(c);
  const sb::json_object& result = r.result;
  if (floor_possible && r.failure.empty()) floor_after = run(f);

  if (floor_before && !floor_before->has("error") && num(*floor_before, "p50_ns") > 0)
    r.floor = num(*floor_before, "p50_ns");
  if (r.floor) {
    sb::json_object floor = percentiles(*floor_before);
    floor.set_raw("cpus", "[" + cpu_list(f.cpus) + "]");
    floor.set_f64("seconds", f.seconds);
    if (floor_after && !floor_after->has("error"))
      floor.set_f64("after_p50_ns", num(*floor_after, "p50_ns"));
    doc.set_raw("floor", floor.dump());
  } else {
    doc.set_raw("floor", "null");
    doc.set_string("floor_not_measured",
                   floor_possible
                       ? "the floor's run failed"
                       : "the writer and the first reader share CPU " + std::to_string(writer_cpu));
  }

  if (r.failure.empty()) {
    sb::json_object throughput;
    throughput.set_f64("records_per_s", num(result, "msgs_per_s"));
    throughput.set_f64("bytes_per_s", num(result, "bytes_per_s"));
    throughput.set_f64("writer_records_per_s", num(result, "writer_msgs_per_s"));
    if (c.readers > 1)
      throughput.set_f64("slowest_reader_records_per_s", num(result, "slowest_reader_msgs_per_s"));
    throughput.set_u64("sent", whole(result, "sent"));
    throughput.set_u64("delivered", whole(result, "delivered_msgs"));
    doc.set_raw("throughput", throughput.dump());

    sb::json_object loss;
    loss.set_u64("lost_records", whole(result, "lost_msgs"));
    loss.set_f64("lost_fraction", num(result, "lost_fraction"));
    loss.set_u64("laps", whole(result, "laps"));
    doc.set_raw("loss", loss.dump());

    if (paced) {
      sb::json_object latency = percentiles(result);
      if (r.floor) {
        sb::json_object ratios;
        for (const percentile_row& row : percentile_rows)
          ratios.set_f64(row.short_key, num(result, row.key) / *r.floor);
        latency.set_raw("ratio_to_floor", ratios.dump());
      } else {
        latency.set_raw("ratio_to_floor", "null");
      }
      doc.set_raw("latency", latency.dump());
    } else {
      doc.set_raw("latency", "null");
    }
    doc.set_bool("pinned", result.raw("pinned") == "true");
    const auto errors = whole(result, "errors");
    doc.set_u64("errors", errors);
    if (errors != 0)
      r.failure = std::to_string(errors) + " error(s) in the records the readers checked" +
                  (result.has("first_error") ? ": " + result.text("first_error") : "");
  }
  doc.set_f64("foreign_cpu_seconds", r.foreign_cpu_seconds);
  doc.set_f64("wall_seconds", r.wall_seconds);
  if (!r.failure.empty()) doc.set_string("error", r.failure);
  doc.set_raw("case", result.dump());
  return r;
}

void print_report(const bench_options& o, const bench_result& r) {
  const sb::case_config& c = o.config;
  const sb::json_object& d = r.doc;
  const sb::json_object& k = r.result;
  const bool paced = c.mode == "latency";
  std::string what = std::to_string(c.record_bytes) + "-byte records";
  what += paced ? ", paced at " + grouped(c.rate) + "/s" : ", flat out";
  what += ", " + std::to_string(c.readers) + (c.readers == 1 ? " reader" : " readers");
  what += " (wait " + c.wait + (c.transport == "shmlog-gating" ? ", gating" : "") + ")";
  std::printf("shmlog bench: %s, %s s after a %s s warm-up, %s ring\n", what.c_str(),
              fixed(c.seconds, c.seconds < 1 ? 2 : 1).c_str(),
              fixed(double(sb::warmup_ns(c)) / 1e9, 2).c_str(),
              human_bytes(double(c.capacity)).c_str());
  const sb::json_object& machine = r.machine;
  std::printf("machine:    %s, %s CPUs%s, Linux %s, shmlog %s (%s build)\n",
              machine.text("cpu_model").c_str(), fixed(num(machine, "cores"), 0).c_str(),
              machine.raw("virtualized") == "true" ? " (virtualized)" : "",
              machine.text("kernel").c_str(), SHMLOG_VERSION, machine.text("build_type").c_str());
  std::vector<int> reader_cpus;
  std::map<int, unsigned> per_cpu{{sb::child_cpu(c, 0), 1}};
  for (unsigned i = 0; i < c.readers; ++i) {
    reader_cpus.push_back(sb::child_cpu(c, 1 + i));
    ++per_cpu[reader_cpus.back()];
  }
  std::printf("CPUs:       writer on %d, %s on %s%s\n", sb::child_cpu(c, 0),
              c.readers == 1 ? "reader" : "readers", cpu_list(reader_cpus).c_str(),
              k.raw("pinned") == "false" ? " (not every process could pin itself)" : "");
  for (const auto& [cpu, n] : per_cpu)
    if (n > 1)
      std::printf(
          "            %u processes share CPU %d: they take turns at the scheduler's\n"
          "            time slices, and the latency shows it\n",
          n, cpu);
  if (r.floor) {
    std::printf(
        "floor:      cache-line ping-pong between CPUs %d and %d, one way: p50 %s, "
        "p99 %s",
        sb::child_cpu(c, 0), reader_cpus.front(), ns_text(*r.floor).c_str(),
        ns_text(num(*r.floor_before, "p99_ns")).c_str());
    if (r.floor_after && !r.floor_after->has("error"))
      std::printf("; after the run: p50 %s", ns_text(num(*r.floor_after, "p50_ns")).c_str());
    std::printf("\n");
  } else {
    std::printf("floor:      not measured: %s\n", d.text("floor_not_measured").c_str());
  }
  std::printf("clock:      %s per clock read (each latency includes one on each side)\n",
              ns_text(num(d, "clock_overhead_ns")).c_str());
  if (!r.failure.empty() && !k.has("msgs_per_s")) return;
  std::printf("throughput: %s records/s per reader, %s MB/s; the writer sent %s records/s\n",
              grouped(whole(k, "msgs_per_s")).c_str(), mb_text(num(k, "bytes_per_s")).c_str(),
              grouped(whole(k, "writer_msgs_per_s")).c_str());
  if (c.readers > 1)
    std::printf("            slowest reader: %s records/s\n",
                grouped(whole(k, "slowest_reader_msgs_per_s")).c_str());
  const auto lost = whole(k, "lost_msgs");
  const auto delivered = whole(k, "delivered_msgs");
  const std::uint64_t laps = whole(k, "laps");
  std::printf("loss:       %s of %s records lost (%s%%) in %s %s%s\n", grouped(lost).c_str(),
              grouped(lost + delivered).c_str(), percent(num(k, "lost_fraction")).c_str(),
              grouped(laps).c_str(), laps == 1 ? "lap" : "laps",
              c.readers > 1 ? " (summed over readers)" : "");
  if (paced) {
    std::printf(
        "latency:    from the time each record was due to its reader's receipt, %s "
        "records:\n",
        grouped(whole(k, "count")).c_str());
    for (const percentile_row& row : percentile_rows) {
      const double v = num(k, row.key);
      std::printf("            %-7s %10s", row.label, ns_text(v).c_str());
      if (r.floor)
        std::printf("  %8sx floor", fixed(v / *r.floor, v / *r.floor < 10 ? 2 : 0).c_str());
      std::printf("\n");
    }
    // A writer held up makes every record behind it late: say how late it got, and why.
    std::printf(
        "            the writer fell up to %s behind its schedule; preempted %s times "
        "(writer), %s (readers)\n",
        ns_text(num(k, "writer_max_behind_ns")).c_str(),
        grouped(whole(k, "writer_involuntary_switches")).c_str(),
        grouped(whole(k, "reader_involuntary_switches")).c_str());
  } else {
    std::printf(
        "latency:    not measured flat out (records carry no due time); pace with "
        "--rate R\n");
  }
  std::printf("other load: %s s of CPU time went to other processes during the %s s run%s\n",
              fixed(r.foreign_cpu_seconds, 2).c_str(), fixed(r.wall_seconds, 2).c_str(),
              r.foreign_cpu_seconds > 0.1 * r.wall_seconds ? ": the figures are disturbed" : "");
}

}  // namespace

int run_bench(std::span<const std::string> argv) {
  const command_spec& spec = command_named("bench");
  const parsed_args args = parse_args(argv, spec);
  if (args.has("help")) return print_command_help(spec);
  const bench_options o = options_from(args);
  sb::catch_interrupts();
  const bench_result r = run_all(o);
  if (o.json) {
    std::printf("%s\n", r.doc.dump().c_str());
  } else {
    print_report(o, r);
  }
  std::fflush(stdout);
  if (!r.failure.empty()) throw command_failure(exit_failure, r.failure);
  return exit_ok;
}

int run_bench_role(std::span<const std::string> args) {
  return sb::child_main(std::vector<std::string>(args.begin(), args.end()));
}

}  // namespace shmlog::cli
