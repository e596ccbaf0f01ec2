// The standard matrix: every transport at the same sizes, by the same harness, in one run;
// a table with shmlog's ratios to each baseline; every case in a JSON file.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "clock.h"
#include "harness.h"

namespace shmlog::bench {

namespace {

struct entry {
  std::string section;  // floor, throughput, laps, latency, readers, idle
  case_config config;
  json_object result;             // the median run (or the first that failed)
  std::vector<json_object> runs;  // one per pass (--repeat), in the order they ran
  // One of a pair run with the library's catch-up grace and with none: the label says which.
  bool show_grace = false;
};

std::string si(double v, const char* unit) {
  if (v == 0) return std::string("0 ") + unit;
  const char* prefix[] = {"", "k", "M", "G", "T"};
  int i = 0;
  while (std::fabs(v) >= 1000 && i < 4) {
    v /= 1000;
    ++i;
  }
  char buf[48];
  std::snprintf(buf, sizeof buf,
                v < 10    ? "%.2f %s%s"
                : v < 100 ? "%.1f %s%s"
                          : "%.0f %s%s",
                v, prefix[i], unit);
  return buf;
}

// 1.23 M, 456 k, 12: a count, without a unit.
std::string count_text(double v) {
  std::string s = si(v, "");
  while (!s.empty() && s.back() == ' ')
    s.pop_back();
  return s;
}

std::string ns_text(double ns) {
  if (!std::isfinite(ns)) return "?";  // a figure that was not measured (e.g. a discarded probe)
  char buf[32];
  if (ns < 1000) {
    std::snprintf(buf, sizeof buf, "%.0f ns", ns);
  } else if (ns < 1e6) {
    std::snprintf(buf, sizeof buf, "%.1f us", ns / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f ms", ns / 1e6);
  }
  return buf;
}

std::string times(double r) {
  char buf[32];
  std::snprintf(buf, sizeof buf, r < 10 ? "%.2fx" : "%.0fx", r);
  return buf;
}

std::string size_text(std::uint64_t b) {
  if (b >= 1024 && b % 1024 == 0) return std::to_string(b / 1024) + " KiB";
  return std::to_string(b) + " B";
}

double num(const json_object& j, const char* key) {
  return j.number(key).value_or(std::nan(""));
}

bool failed(const json_object& j) {
  return j.has("error") || num(j, "errors") != 0;
}

std::string grace_text(std::uint64_t ns) {
  return ns == 0 ? "grace 0" : "grace " + ns_text(double(ns));
}

std::string label(const entry& e) {
  const case_config& c = e.config;
  std::string s = c.transport;
  if (is_shmlog(c.transport) || is_spsc_ring(c.transport) || c.transport == "floor-pingpong")
    s += " " + c.wait;
  if (e.show_grace) s += " " + grace_text(effective_grace_ns(c));
  if (!c.on_lap.empty()) s += " on-lap " + c.on_lap;
  return s;
}

// "100k", "1m", "2500": the rate in a file name (lower case, as bench/plot.sh expects).
std::string rate_tag(std::uint64_t rate) {
  if (rate >= 1'000'000 && rate % 1'000'000 == 0) return std::to_string(rate / 1'000'000) + "m";
  if (rate >= 1'000 && rate % 1'000 == 0) return std::to_string(rate / 1'000) + "k";
  return std::to_string(rate);
}

// The name of a latency case's plot file: latency_<this>.tsv, e.g. shmlog-spin-100k,
// shmlog-spin-1m-grace0, boost-mq-100k, floor-pingpong.
std::string plot_label(const case_config& c) {
  if (c.transport == "floor-pingpong") return c.transport;
  std::string s = c.transport;
  if (is_shmlog(c.transport)) s += "-" + c.wait;
  s += "-" + rate_tag(c.rate);
  if (c.record_bytes != 64) s += "-" + std::to_string(c.record_bytes) + "b";
  if (c.catch_up_grace_ns) s += "-grace" + std::to_string(*c.catch_up_grace_ns);
  return s;
}

// Reads every number of a JSON text in order ([[0, 45], [50, 62]] -> 0 45 50 62): enough for
// the percentile arrays this program writes itself.
std::vector<double> numbers_in(const std::string& json) {
  std::vector<double> out;
  const char* p = json.c_str();
  while (*p) {
    if (std::isdigit(static_cast<unsigned char>(*p)) || *p == '-' || *p == '.') {
      char* end = nullptr;
      out.push_back(std::strtod(p, &end));
      p = end > p ? end : p + 1;
    } else {
      ++p;
    }
  }
  return out;
}

// The keys of the output document's own fields, which --attach may not take.
bool reserved_key(const std::string& k) {
  return k == "schema" || k == "suite" || k == "repeat" || k == "renamed_transports" ||
         k == "machine" || k == "clock_overhead_ns" || k == "wall_seconds" || k == "results";
}

// --attach KEY=FILE: FILE's text, checked just enough to catch a wrong or empty file (it must
// start with { or [ after white space); the text goes into the document as it is.
std::vector<std::pair<std::string, std::string>> load_attachments(
    const std::vector<std::pair<std::string, std::string>>& specs) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [key, path] : specs) {
    const std::string what = "--attach " + key + "=" + path;
    if (reserved_key(key))
      throw std::runtime_error(what + ": '" + key + "' is the suite's own key");
    for (const auto& [k, text] : out)
      if (k == key) throw std::runtime_error(what + ": key '" + key + "' given twice");
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error(what + ": cannot read " + path);
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (f.bad()) throw std::runtime_error(what + ": cannot read " + path);
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) throw std::runtime_error(what + ": " + path + " is empty");
    if (text[first] != '{' && text[first] != '[')
      throw std::runtime_error(what + ": " + path + " is not JSON (it does not start with { or [)");
    text.erase(text.find_last_not_of(" \t\r\n") + 1);
    text.erase(0, first);
    out.emplace_back(key, std::move(text));
  }
  return out;
}

// "9.81%": a share of 1 as a percentage.
std::string percent_text(double share) {
  if (!std::isfinite(share)) return "?";
  char buf[32];
  std::snprintf(buf, sizeof buf, share > 0 && share < 0.0001 ? "%.4f%%" : "%.2f%%", 100 * share);
  return buf;
}

// The figure a case's runs are ranked by to pick the median: p50 for latency, the writer's rate
// where the writer is what is measured (readers, idle), else the rate delivered to a reader.
const char* rank_key(const entry& e) {
  if (e.config.mode == "latency") return "p50_ns";
  if (e.section == "readers" || e.section == "idle") return "writer_msgs_per_s";
  return "msgs_per_s";
}

// The smallest and largest value of `key` over a case's runs (NaN, NaN if no run has it).
std::pair<double, double> spread(const entry& e, const char* key) {
  double lo = std::nan("");
  double hi = std::nan("");
  for (const json_object& r : e.runs) {
    const double v = num(r, key);
    if (!std::isfinite(v)) continue;
    lo = std::isfinite(lo) ? std::min(lo, v) : v;
    hi = std::isfinite(hi) ? std::max(hi, v) : v;
  }
  return {lo, hi};
}

// Each run's figures, kept in the median's JSON as "runs" so that the spread is in the file.
constexpr const char* run_keys[] = {"msgs_per_s",
                                    "bytes_per_s",
                                    "writer_msgs_per_s",
                                    "lost_fraction",
                                    "lost_msgs",
                                    "laps",
                                    "p50_ns",
                                    "p99_ns",
                                    "p999_ns",
                                    "max_ns",
                                    "floor_before_p50_ns",
                                    "floor_after_p50_ns",
                                    "foreign_cpu_seconds"};

// The latency spectrum of every run, point by point: [[p, lowest ns], ...] and [[p, highest
// ns], ...]; empty strings if the runs' spectra do not share their percentiles.
std::pair<std::string, std::string> spectrum_spread(const entry& e) {
  std::vector<double> lo;
  std::vector<double> hi;
  for (const json_object& r : e.runs) {
    const std::vector<double> v = numbers_in(r.raw("percentiles"));
    if (lo.empty()) {
      lo = hi = v;
      continue;
    }
    if (v.size() != lo.size()) return {};
    for (std::size_t i = 0; i + 1 < v.size(); i += 2) {
      if (v[i] != lo[i]) return {};
      lo[i + 1] = std::min(lo[i + 1], v[i + 1]);
      hi[i + 1] = std::max(hi[i + 1], v[i + 1]);
    }
  }
  auto text = [](const std::vector<double>& v) {
    std::string s = "[";
    char buf[64];
    for (std::size_t i = 0; i + 1 < v.size(); i += 2) {
      std::snprintf(buf, sizeof buf, "%s[%.17g, %.0f]", i ? ", " : "", v[i], v[i + 1]);
      s += buf;
    }
    return s + "]";
  };
  return {text(lo), text(hi)};
}

// Sets e.result from e.runs: the first failed run if one failed (a failure is never hidden by
// better runs), else the median by rank_key (for an even count, the less flattering of the two
// middle ones), with "repetitions", every run's figures ("runs") and, for latency, the spectrum's
// spread ("percentiles_min", "percentiles_max").
void keep_median(entry& e) {
  if (e.runs.empty()) return;  // interrupted before it ran
  for (const json_object& r : e.runs) {
    if (failed(r)) {
      e.result = r;
      return;
    }
  }
  std::vector<std::size_t> order(e.runs.size());
  for (std::size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  const char* key = rank_key(e);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return num(e.runs[a], key) < num(e.runs[b], key);
  });
  // With an even count the less flattering of the two middle runs: the lower rate, the higher
  // latency.
  const bool latency = e.config.mode == "latency";
  const std::size_t median = order[latency ? order.size() / 2 : (order.size() - 1) / 2];
  e.result = e.runs[median];
  e.result.set_u64("repetitions", e.runs.size());
  if (e.runs.size() < 2) return;
  e.result.set_u64("median_run", median);
  std::string runs = "[";
  for (const json_object& r : e.runs) {
    json_object f;
    for (const char* k : run_keys)
      if (r.number(k)) f.set_f64(k, num(r, k));
    runs += (runs.size() > 1 ? ", " : "") + f.dump();
  }
  e.result.set_raw("runs", runs + "]");
  if (e.result.has("percentiles")) {
    const auto [lo, hi] = spectrum_spread(e);
    if (!lo.empty()) {
      e.result.set_raw("percentiles_min", lo);
      e.result.set_raw("percentiles_max", hi);
    }
  }
}

class suite_runner {
 public:
  explicit suite_runner(const suite_options& o) : o_(o) {}

  void plan() {
    const double s = o_.quick ? 0.5 : 2.0;
    const std::vector<std::uint64_t> sizes =
        o_.quick ? std::vector<std::uint64_t>{32, 1024, 65536}
                 : std::vector<std::uint64_t>{8, 32, 64, 256, 1024, 4096, 16384, 65536};
    auto add = [&](const std::string& section, case_config c) {
      c.seconds = s;
      c.pin = o_.pin;
      // Filled in as the case will run (the transport's default wait, floor-pingpong's fixed
      // size), so labels and plot data say what ran; a case that does not validate keeps its
      // config and fails with the reason when it runs.
      try {
        validate(c);
      } catch (const std::exception&) {
      }
      entries_.push_back({section, c, {}});
    };
    // The case with no catch-up grace, then the same with the library's, back to back (the
    // host moves the two vCPUs every few seconds: neighbours are the likeliest to share a
    // placement), labelled with their grace; the second row shows the ratio.
    auto add_grace_pair = [&](const std::string& section, case_config c) {
      c.catch_up_grace_ns = 0;
      add(section, c);
      entries_.back().show_grace = true;
      c.catch_up_grace_ns.reset();
      add(section, c);
      entries_.back().show_grace = true;
    };
    // The floor first: its p50 is the reference placement every later case's own floor probes
    // are compared with (see noise()).
    add("floor", {.transport = "floor-pingpong", .mode = "latency", .record_bytes = 8});
    // Throughput: 1 writer -> 1 reader; shmlog readers spin (1 reader, 2 cores: one each).
    // spsc-ring is the same move of B-byte blocks between the two cores without shmlog;
    // each floor runs next to the shmlog case it is compared with, for the same reason.
    for (const std::uint64_t b : sizes) {
      const case_config copying{.transport = "shmlog", .record_bytes = b, .wait = "spin"};
      if (b == 32 || b == 1024) {
        add_grace_pair("throughput", copying);
      } else {
        add("throughput", copying);
      }
      add("throughput", {.transport = "spsc-ring", .record_bytes = b});
      add("throughput", {.transport = "spsc-ring-view", .record_bytes = b});
      // Lossless shmlog: a gating reader, beside the lossless simple SPSC ring (issue 11).
      if (b == 32 || b == 64 || b == 1024)
        add("throughput", {.transport = "shmlog-gating", .record_bytes = b, .wait = "spin"});
      add("throughput", {.transport = "shmlog-view", .record_bytes = b, .wait = "spin"});
      add("throughput", {.transport = "memcpy", .record_bytes = b, .readers = 0});
      add("throughput", {.transport = "boost-mq", .record_bytes = b});
      add("throughput", {.transport = "pipe", .record_bytes = b});
      add("throughput", {.transport = "unix-socket", .record_bytes = b});
    }
    // Lap recovery with the default 1 MiB ring: the reader as it resumed before (oldest) and
    // with the harness's default policy, back to back at each size (docs/design.md, "Laps and
    // policy"). The throughput rows above run with the default.
    for (const std::uint64_t b : {32u, 64u, 1024u, 65536u})
      for (const char* p : {"oldest", "oldest-safe"})
        add("laps", {.transport = "shmlog", .record_bytes = b, .wait = "spin", .on_lap = p});
    // Latency at 64 B, paced; the spinning reader with and without the catch-up grace at
    // 100 k/s and (where the grace could matter more: records closer together) 1 M/s.
    const case_config spin_latency{
        .transport = "shmlog", .mode = "latency", .record_bytes = 64, .wait = "spin"};
    add_grace_pair("latency", spin_latency);
    // The same reader waiting on the master offset, as every reader did before the
    // one-transfer read (layout 4): the before of that change, in the same run.
    case_config on_master = spin_latency;
    on_master.wait = "spin-master";
    add("latency", on_master);
    for (const char* w : {"yield", "sleep", "adaptive"})
      add("latency", {.transport = "shmlog", .mode = "latency", .record_bytes = 64, .wait = w});
    case_config fast = spin_latency;
    fast.rate = 1'000'000;
    add_grace_pair("latency", fast);
    for (const char* t : {"boost-mq", "pipe", "unix-socket"})
      add("latency", {.transport = t, .mode = "latency", .record_bytes = 64});
    // Many readers, 32 B, flat out. On 2 CPUs every reader but none can have a core of its
    // own, so all of them wait with `yield` (a spinner would starve the others).
    const std::vector<unsigned> counts =
        o_.quick ? std::vector<unsigned>{0, 1, 4, 64} : std::vector<unsigned>{0, 1, 4, 16, 64};
    for (const unsigned n : counts)
      add("readers", {.transport = "shmlog", .record_bytes = 32, .readers = n, .wait = "yield"});
    // Attached readers that never poll: the writer's rate must not depend on them.
    for (const unsigned k : {0u, 64u})
      add("idle", {.transport = "shmlog", .record_bytes = 32, .readers = 0, .idle_readers = k});
  }

  void run() {
    clock_overhead_ = measure_clock_overhead_ns();
    std::fprintf(
        stderr,
        "shmlog_bench suite (%s, %s): %zu cases, %u pass(es); clock_gettime costs %.1f ns\n",
        o_.quick ? "quick" : "full", o_.pin ? "pinned" : "not pinned", entries_.size(), o_.repeat,
        clock_overhead_);
    const std::uint64_t start = now_ns();
    for (unsigned pass = 0; pass < o_.repeat && !interrupted.load(); ++pass) {
      for (std::size_t i = 0; i < entries_.size(); ++i) {
        entry& e = entries_[i];
        // A failed case is not run again: its failure is its result.
        if (!e.runs.empty() && failed(e.runs.back())) continue;
        const std::uint64_t t = now_ns();
        json_object r = run_case(e.config, clock_overhead_);
        // The first pass's floor is the reference placement for every run of every case.
        if (e.section == "floor" && !r.has("error") && reference_floor_ == 0)
          reference_floor_ = num(r, "p50_ns");
        unsigned attempts = 1;
        while (attempts <= o_.retry_noisy && is_noisy(r) && !interrupted.load()) {
          json_object again = run_case(e.config, clock_overhead_);
          ++attempts;
          if (!again.has("error") && disturbance(again) < disturbance(r)) r = std::move(again);
        }
        if (attempts > 1) r.set_u64("attempts", attempts);
        const entry shown{e.section, e.config, r, {}, e.show_grace};
        std::fprintf(
            stderr, "[%u/%u %2zu/%zu] %-10s %-8s %-27s %s (%.1f s)\n", pass + 1, o_.repeat, i + 1,
            entries_.size(), e.section.c_str(), size_text(e.config.record_bytes).c_str(),
            (label(e) + " " + std::to_string(e.config.readers) + "r").c_str(),
            r.has("error") ? ("FAILED: " + r.text("error")).c_str() : main_figure(shown).c_str(),
            double(now_ns() - t) / 1e9);
        e.runs.push_back(std::move(r));
        if (interrupted.load()) break;
      }
    }
    for (entry& e : entries_)
      keep_median(e);
    wall_seconds_ = double(now_ns() - start) / 1e9;
  }

  void print_table() const {
    std::printf("\nshmlog_bench suite (%s), %s, clock_gettime %.1f ns, wall time %.1f s\n",
                o_.quick ? "quick" : "full",
                o_.pin ? "pinned (writer CPU 0, readers CPU 1+)" : "not pinned", clock_overhead_,
                wall_seconds_);
    std::string section;
    for (const entry& e : entries_) {
      if (e.section != section) {
        section = e.section;
        std::printf("\n%s\n", heading(section));
      }
      std::string line = row_label(e);
      line += "  " + (e.result.has("error") ? "FAILED: " + e.result.text("error") : main_figure(e));
      const std::string r = ratios(e);
      if (!r.empty()) line += "  | " + r;
      const std::string n = noise(e.result);
      if (!n.empty()) line += "  [" + n + "]";
      if (!e.result.has("error") && num(e.result, "errors") != 0)
        line += "  ERRORS: " + std::to_string(static_cast<std::uint64_t>(num(e.result, "errors"))) +
                " " + e.result.text("first_error");
      std::printf("%s\n", line.c_str());
    }
  }

  bool write_file(const json_object& machine,
                  const std::vector<std::pair<std::string, std::string>>& attachments) const {
    std::ofstream f(o_.out);
    if (!f) return false;
    // Schema 2 (issue 11): "delivery" and the loss figures in every stream case, "repetitions"
    // and "runs" (each run's figures) per case, and the spsc-ring transports, which schema 1
    // called floor-stream and floor-stream-view: "renamed_transports" maps the old names to the
    // new, so that a reader of both schemas can line their results up.
    f << "{\"schema\": 2,\n \"suite\": " << json_quote(o_.quick ? "quick" : "full")
      << ",\n \"repeat\": " << o_.repeat
      << ",\n \"renamed_transports\": {\"floor-stream\": \"spsc-ring\", "
         "\"floor-stream-view\": \"spsc-ring-view\"}"
      << ",\n \"machine\": " << machine.dump()
      << ",\n \"clock_overhead_ns\": " << json_number(clock_overhead_)
      << ",\n \"wall_seconds\": " << json_number(wall_seconds_) << ",\n \"results\": [\n";
    for (std::size_t i = 0; i < entries_.size(); ++i)
      f << "  " << entries_[i].result.dump() << (i + 1 < entries_.size() ? ",\n" : "\n");
    f << " ]";
    for (const auto& [key, text] : attachments)
      f << ",\n " << json_quote(key) << ": " << text;
    f << "}\n";
    return static_cast<bool>(f);
  }

  // Tab-separated files for gnuplot in `dir` (see README.md, "Plot data"). Failed cases are
  // left out. Throws naming the file it cannot write.
  void write_plot_data(const std::string& dir) const {
    namespace fs = std::filesystem;
    auto open = [&](const std::string& name) {
      const std::string path = (fs::path(dir) / name).string();
      auto f = std::make_unique<std::ofstream>(path);
      if (!*f) throw std::runtime_error("cannot write " + path);
      return std::make_pair(std::move(f), path);
    };
    auto close = [](std::pair<std::unique_ptr<std::ofstream>, std::string>& f) {
      f.first->flush();
      if (!*f.first) throw std::runtime_error("cannot write " + f.second);
    };
    char buf[256];
    for (const entry& e : entries_) {
      if ((e.section != "latency" && e.section != "floor") || failed(e.result)) continue;
      const std::vector<double> v = numbers_in(e.result.raw("percentiles"));
      // The spread over the runs, point by point; the median run's own value where there is
      // one run (or the runs' spectra do not line up).
      std::vector<double> lo = numbers_in(e.result.raw("percentiles_min"));
      std::vector<double> hi = numbers_in(e.result.raw("percentiles_max"));
      if (lo.size() != v.size() || hi.size() != v.size()) lo = hi = v;
      auto f = open("latency_" + plot_label(e.config) + ".tsv");
      std::string what = label(e) + ", " + size_text(e.config.record_bytes);
      if (e.config.transport != "floor-pingpong") what += ", " + si(double(e.config.rate), "/s");
      *f.first
          << "# " << what << ": one-way latency by percentile\n"
          << "# p = 100 (the maximum) has no finite 1/(1-p): it is written at twice the x of "
             "the row before it\n"
          << "# ns: the median run (by p50) of " << e.runs.size()
          << "; ns_min, ns_max: the lowest and highest value at that percentile over the runs\n"
          << "# percentile\tone_over_one_minus_p\tns\tns_min\tns_max\n";
      double last_x = 1;
      for (std::size_t i = 0; i + 1 < v.size(); i += 2) {
        const double p = v[i];
        // 100 / (100 - p) rather than 1 / (1 - p/100): 100 - p is exact for every p_k, so the
        // x values come out as exact powers of two.
        const double x = p < 100 ? 100 / (100 - p) : 2 * last_x;
        last_x = x;
        std::snprintf(buf, sizeof buf, "%.12g\t%.12g\t%.0f\t%.0f\t%.0f\n", p, x, v[i + 1],
                      lo[i + 1], hi[i + 1]);
        *f.first << buf;
      }
      close(f);
    }
    {
      auto f = open("throughput.tsv");
      *f.first << "# one row per throughput case with one reader (memcpy: none); grace_ns is the "
                  "shmlog reader's catch-up grace, - for the others\n"
               << "# msgs_per_s, bytes_per_s: the median run; *_min, *_max: over the runs; "
                  "delivery: lossy (readers can be lapped), lossless (back-pressure), - (memcpy);\n"
               << "# lost_fraction, laps: the median run's (- where the transport cannot lose)\n"
               << "# record_bytes\ttransport\twait\tgrace_ns\tmsgs_per_s\tbytes_per_s\tdelivery\t"
                  "lost_fraction\tlaps\tbytes_per_s_min\tbytes_per_s_max\truns\n";
      for (const entry& e : entries_) {
        const case_config& c = e.config;
        if (e.section != "throughput" || failed(e.result)) continue;
        if (c.readers != 1 && c.transport != "memcpy") continue;
        const std::string grace =
            is_shmlog(c.transport) ? std::to_string(effective_grace_ns(c)) : "-";
        const std::string d = delivery(c.transport);
        char lost[32] = "-";
        char laps[32] = "-";
        if (e.result.has("laps")) {
          std::snprintf(lost, sizeof lost, "%.6g", num(e.result, "lost_fraction"));
          std::snprintf(laps, sizeof laps, "%.0f", num(e.result, "laps"));
        }
        const auto [lo, hi] = spread(e, "bytes_per_s");
        std::snprintf(
            buf, sizeof buf, "%llu\t%s\t%s\t%s\t%.6g\t%.6g\t%s\t%s\t%s\t%.6g\t%.6g\t%zu\n",
            static_cast<unsigned long long>(c.record_bytes), c.transport.c_str(), c.wait.c_str(),
            grace.c_str(), num(e.result, "msgs_per_s"), num(e.result, "bytes_per_s"),
            d.empty() ? "-" : d.c_str(), lost, laps, lo, hi, e.runs.size());
        *f.first << buf;
      }
      close(f);
    }
    {
      auto f = open("readers.tsv");
      *f.first << "# shmlog, 32 B, flat out: yield = readers consuming (wait yield), idle = "
                  "readers attached, never polling; per_reader is - where none reads\n"
               << "# writer_msgs_per_s: the median run; writer_min, writer_max: over the runs\n"
               << "# readers\tkind\twriter_msgs_per_s\tper_reader_msgs_per_s\twriter_min\t"
                  "writer_max\n";
      for (const entry& e : entries_) {
        if ((e.section != "readers" && e.section != "idle") || failed(e.result)) continue;
        const bool idle = e.section == "idle";
        const unsigned n = idle ? e.config.idle_readers : e.config.readers;
        char per_reader[32] = "-";
        if (!idle && n > 0)
          std::snprintf(per_reader, sizeof per_reader, "%.6g", num(e.result, "msgs_per_s"));
        const auto [lo, hi] = spread(e, "writer_msgs_per_s");
        std::snprintf(buf, sizeof buf, "%u\t%s\t%.6g\t%s\t%.6g\t%.6g\n", n, idle ? "idle" : "yield",
                      num(e.result, "writer_msgs_per_s"), per_reader, lo, hi);
        *f.first << buf;
      }
      close(f);
    }
  }

  bool any_failed() const {
    return std::any_of(entries_.begin(), entries_.end(),
                       [](const entry& e) { return failed(e.result); });
  }

 private:
  static const char* heading(const std::string& s) {
    if (s == "throughput")
      return "THROUGHPUT  1 writer -> 1 reader, flat out; msgs/s delivered to the reader, and "
             "what it lost.\n"
             "  lossy: the writer never waits, a reader that falls a ring behind is lapped "
             "(shmlog: it resumes with recover_from_lap(oldest_safe))\n"
             "  and loses records; lossless: the writer waits for the reader (back-pressure).\n"
             "  spsc-ring: the same blocks through a simple SPSC ring of the same bytes "
             "(lossless), copied out (-view: read in place)";
    if (s == "laps")
      return "LAPS  shmlog, 1 MiB ring, flat out, the reader spins; where a lapped reader "
             "resumes: oldest record held (before) or oldest-safe (a quarter ring ahead)";
    if (s == "floor")
      return "FLOOR  one counter bounced between the writer's and the reader's CPUs; RTT / 2 "
             "(the reference placement for every later case)";
    if (s == "latency")
      return "LATENCY  64 B paced at the rate shown (due time in the record); one-way, "
             "receive - due; floor = one-way ping-pong p50 measured just before the case";
    if (s == "readers")
      return "MANY READERS  shmlog (lossy), 32 B, flat out, readers wait with yield; msgs/s is "
             "the mean per reader, lost and laps summed over readers";
    return "IDLE READERS  shmlog, 32 B, no reader polling; K processes attached, blocked on a pipe";
  }

  static bool busy(const json_object& j) {
    return num(j, "foreign_cpu_seconds") > 0.1 * num(j, "case_wall_seconds");
  }
  static bool differ(double a, double b) {
    return a > 0 && b > 0 && std::max(a, b) > 1.5 * std::min(a, b);
  }
  // The case's floor probes disagree with each other or with the suite's reference floor: the
  // host moved or placed the two vCPUs differently (on this VM: ~40-65 ns near, ~175-200 ns far).
  bool misplaced(const json_object& j) const {
    const double before = num(j, "floor_before_p50_ns");
    const double after = num(j, "floor_after_p50_ns");
    return differ(before, after) || differ(before, reference_floor_) ||
           differ(after, reference_floor_);
  }
  bool is_noisy(const json_object& j) const { return !j.has("error") && (busy(j) || misplaced(j)); }
  // What --retry-noisy minimises: a wrong placement first, then other processes' CPU time.
  double disturbance(const json_object& j) const {
    return (misplaced(j) ? 1e6 : 0) + num(j, "foreign_cpu_seconds");
  }

  // Why a row's numbers may not be the machine's own: other processes took CPU time during the
  // case, or the cost of moving a cache line between the two CPUs was not the reference one.
  // Every probed case shows its floor (before / after), since on this kind of VM the placement
  // of the two vCPUs, and with it every cross-core figure, changes every few seconds.
  std::string noise(const json_object& j) const {
    if (j.has("error")) return "";
    std::string out;
    if (j.has("floor_before_p50_ns") || j.has("floor_after_p50_ns"))
      out = "floor " + ns_text(num(j, "floor_before_p50_ns")) + " / " +
            ns_text(num(j, "floor_after_p50_ns"));
    const double foreign = num(j, "foreign_cpu_seconds");
    const double wall = num(j, "case_wall_seconds");
    if (busy(j)) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "noisy: other processes used %.2f CPU-s of %.2f s", foreign,
                    wall);
      out += std::string(out.empty() ? "" : "; ") + buf;
    }
    if (misplaced(j))
      out += std::string(out.empty() ? "" : "; ") + "PLACEMENT differs from the reference " +
             ns_text(reference_floor_);
    if (num(j, "attempts") > 1)
      out += std::string(out.empty() ? "" : "; ") + "best of " +
             std::to_string(static_cast<unsigned>(num(j, "attempts"))) + " runs";
    return out;
  }

  static std::string row_label(const entry& e) {
    const case_config& c = e.config;
    // "lossy" / "lossless" beside every stream's name, so that no rate is read without it.
    const std::string name =
        label(e) +
        (delivery(c.transport).empty() ? std::string() : " (" + delivery(c.transport) + ")");
    char buf[160];
    if (e.section == "latency" || e.section == "floor") {
      std::snprintf(
          buf, sizeof buf, "%-7s %-35s %-9s", size_text(c.record_bytes).c_str(), name.c_str(),
          c.transport == "floor-pingpong" ? "unpaced" : (si(double(c.rate), "/s")).c_str());
    } else if (e.section == "readers") {
      std::snprintf(buf, sizeof buf, "%-7s %-35s %3u readers", size_text(c.record_bytes).c_str(),
                    name.c_str(), c.readers);
    } else if (e.section == "idle") {
      std::snprintf(buf, sizeof buf, "%-7s %-35s %3u idle   ", size_text(c.record_bytes).c_str(),
                    name.c_str(), c.idle_readers);
    } else {
      std::snprintf(buf, sizeof buf, "%-7s %-35s", size_text(c.record_bytes).c_str(), name.c_str());
    }
    return buf;
  }

  // What the readers lost, next to what they were delivered: "lost 9.81% (1.23 M msg) in 340
  // laps" for a transport that laps its readers, "lossless" for one that holds its writer back.
  static std::string loss_text(const json_object& j) {
    if (j.has("laps"))
      return "lost " + percent_text(num(j, "lost_fraction")) + " (" +
             si(num(j, "lost_msgs"), "msg") + ") in " +
             std::to_string(static_cast<std::uint64_t>(num(j, "laps"))) + " laps";
    if (j.text("delivery") == "lossless") return "lossless";
    return "";
  }

  // "[3 runs: 14.9 M .. 15.6 M msg/s]": the spread of the figure the median was picked by.
  static std::string spread_text(const entry& e) {
    if (e.runs.size() < 2 || e.result.has("error")) return "";
    const char* key = rank_key(e);
    const auto [lo, hi] = spread(e, key);
    const bool ns = e.config.mode == "latency";
    return "[" + std::to_string(e.runs.size()) + " runs: " +
           (ns ? "p50 " + ns_text(lo) + " .. " + ns_text(hi)
               : count_text(lo) + " .. " + count_text(hi) + " msg/s") +
           "]";
  }

  static std::string main_figure(const entry& e) {
    const json_object& j = e.result;
    if (j.has("error")) return "";
    std::string s;
    if (e.config.mode == "latency") {
      s = "p50 " + ns_text(num(j, "p50_ns")) + ", p99 " + ns_text(num(j, "p99_ns")) + ", p99.9 " +
          ns_text(num(j, "p999_ns")) + ", max " + ns_text(num(j, "max_ns"));
    } else if (e.section == "readers" || e.section == "idle") {
      s = "writer " + si(num(j, "writer_msgs_per_s"), "msg/s") + ", per reader " +
          (e.config.readers ? si(num(j, "msgs_per_s"), "msg/s") + " delivered" : std::string("-"));
      if (e.config.readers) s += ", " + loss_text(j);
    } else {
      s = si(num(j, "msgs_per_s"), "msg/s") + " " + si(num(j, "bytes_per_s"), "B/s");
      if (e.config.readers) s += " delivered, " + loss_text(j);
    }
    const std::string sp = spread_text(e);
    return sp.empty() ? s : s + " " + sp;
  }

  const json_object* find(const std::function<bool(const entry&)>& pred) const {
    for (const entry& e : entries_)
      if (pred(e) && !e.result.has("error")) return &e.result;
    return nullptr;
  }

  // Whether two cases ran with the two vCPUs placed alike: all their floor probes within 1.5x
  // of each other. A ratio between cases that did not means little on this kind of VM (a far
  // placement costs every cross-core figure a factor of 3-4).
  static bool alike(const json_object& a, const json_object& b) {
    double lo = 0;
    double hi = 0;
    for (const json_object* j : {&a, &b})
      for (const char* key : {"floor_before_p50_ns", "floor_after_p50_ns"}) {
        const double v = num(*j, key);
        if (!(v > 0)) continue;
        lo = lo > 0 ? std::min(lo, v) : v;
        hi = std::max(hi, v);
      }
    return !differ(lo, hi);
  }
  static std::string unless_alike(const json_object& a, const json_object& b) {
    return alike(a, b) ? "" : " (FLOORS DIFFER)";
  }

  // For a case of a grace pair run with the library's default grace: its twin with no grace
  // (same section, transport, size, wait, rate and readers), if it ran.
  const json_object* no_grace_twin(const entry& e) const {
    if (!e.show_grace || e.config.catch_up_grace_ns) return nullptr;
    const case_config& c = e.config;
    return find([&](const entry& x) {
      const case_config& y = x.config;
      return x.section == e.section && y.catch_up_grace_ns == 0u && y.transport == c.transport &&
             y.record_bytes == c.record_bytes && y.wait == c.wait && y.rate == c.rate &&
             y.readers == c.readers;
    });
  }

  // "61.2% of spsc-ring B/s": this case's bytes/s against another throughput case of the
  // same record size.
  std::string share_of(const json_object& j, std::uint64_t record_bytes,
                       const std::string& transport) const {
    const json_object* b = find([&](const entry& x) {
      return x.section == "throughput" && x.config.transport == transport &&
             x.config.record_bytes == record_bytes;
    });
    if (!b) return "";
    char buf[64];
    const std::string d = delivery(transport);
    std::snprintf(buf, sizeof buf, "%.1f%% of %s%s B/s",
                  100 * num(j, "bytes_per_s") / num(*b, "bytes_per_s"), transport.c_str(),
                  d.empty() ? "" : (" (" + d + ")").c_str());
    return buf + unless_alike(j, *b);
  }

  std::string ratios(const entry& e) const {
    const json_object& j = e.result;
    if (j.has("error")) return "";
    const case_config& c = e.config;
    std::string out;
    auto add = [&out](const std::string& s) {
      if (!s.empty()) out += (out.empty() ? "" : ", ") + s;
    };
    // A grace pair's ratio (on the default row): this row / the grace-0 row.
    const json_object* twin = no_grace_twin(e);
    const std::string pair = grace_text(effective_grace_ns(c)) + " / grace 0: ";
    // The grace-0 row would only repeat its twin's comparisons with the other transports.
    const bool repeat = c.catch_up_grace_ns.has_value();
    if (e.section == "throughput") {
      if (is_shmlog(c.transport)) {
        if (twin)
          add(pair + times(num(j, "msgs_per_s") / num(*twin, "msgs_per_s")) + " msg/s" +
              unless_alike(j, *twin));
        // Like for like: the copying reader against the copying floor, the view against the
        // floor that reads in place.
        add(share_of(j, c.record_bytes,
                     c.transport == "shmlog-view" ? "spsc-ring-view" : "spsc-ring"));
        add(share_of(j, c.record_bytes, "memcpy"));
        if (!repeat) {
          for (const char* base : {"boost-mq", "pipe", "unix-socket"}) {
            const json_object* b = find([&](const entry& x) {
              return x.section == "throughput" && x.config.transport == base &&
                     x.config.record_bytes == c.record_bytes;
            });
            if (b) add(times(num(j, "msgs_per_s") / num(*b, "msgs_per_s")) + " " + base);
          }
        }
        add("writer " + si(num(j, "writer_msgs_per_s"), "msg/s"));
      } else if (is_spsc_ring(c.transport)) {
        add(share_of(j, c.record_bytes, "memcpy"));
        // How the two sides met: the writer found the ring full (back-pressure) or the reader
        // found it empty (it had caught up and looked at the writer's count).
        const double sent = num(j, "sent");
        const double catch_ups = num(j, "reader_catch_ups");
        char buf[128];
        std::snprintf(buf, sizeof buf,
                      "ring full %s times, reader caught up %s times (%.1f per catch-up)",
                      count_text(num(j, "writer_full_waits")).c_str(),
                      count_text(catch_ups).c_str(), catch_ups > 0 ? sent / catch_ups : 0.0);
        add(buf);
      }
      return out;
    }
    if (e.section == "latency" || e.section == "floor") {
      if (twin)
        add(pair + "p50 " + times(num(j, "p50_ns") / num(*twin, "p50_ns")) + ", p99 " +
            times(num(j, "p99_ns") / num(*twin, "p99_ns")) + ", p99.9 " +
            times(num(j, "p999_ns") / num(*twin, "p999_ns")) + unless_alike(j, *twin));
      const json_object* floor =
          find([](const entry& x) { return x.config.transport == "floor-pingpong"; });
      if (c.transport == "floor-pingpong") {
        add("mean one-way without per-trip clock " + ns_text(num(j, "mean_oneway_batch_ns")) +
            " (clock " + ns_text(clock_overhead_) + ")");
        return out;
      }
      // The floor measured right before this case, between the same two CPUs, if there is
      // one (see case_config::floor_probe); else the suite's floor-pingpong case.
      double f = num(j, "floor_before_p50_ns");
      if (!(f > 0) && floor) f = num(*floor, "p50_ns");
      if (f > 0)
        add("p50 " + times(num(j, "p50_ns") / f) + ", p99 " + times(num(j, "p99_ns") / f) +
            " floor p50 (" + ns_text(f) + ")");
      if (is_shmlog(c.transport) && !repeat) {
        for (const char* base : {"boost-mq", "pipe", "unix-socket"}) {
          const json_object* b = find(
              [&](const entry& x) { return x.section == "latency" && x.config.transport == base; });
          if (!b) continue;
          const double r = num(*b, "p50_ns") / num(j, "p50_ns");
          add(r >= 1 ? times(r) + " better p50 than " + base
                     : times(1 / r) + " WORSE p50 than " + base);
        }
      }
      if (num(j, "writer_max_behind_ns") > 10'000)
        add("writer fell behind by up to " + ns_text(num(j, "writer_max_behind_ns")));
      return out;
    }
    if (e.section == "laps") {
      const double sent = num(j, "sent");
      char buf[96];
      std::snprintf(buf, sizeof buf, "lost %.1f%% of %s sent, laps %llu",
                    sent > 0 ? 100 * num(j, "lost_msgs") / sent : 0.0, count_text(sent).c_str(),
                    static_cast<unsigned long long>(num(j, "laps")));
      add(buf);
      add("writer " + si(num(j, "writer_msgs_per_s"), "msg/s"));
      return out;
    }
    // readers / idle: the writer's rate against the same case with nobody attached.
    const json_object* none = find([&](const entry& x) {
      return x.section == e.section && x.config.readers == 0 && x.config.idle_readers == 0;
    });
    if (none && (c.readers || c.idle_readers))
      add("writer at " + times(num(j, "writer_msgs_per_s") / num(*none, "writer_msgs_per_s")) +
          " its rate alone");
    if (c.readers > 1)
      add("slowest " + si(num(j, "slowest_reader_msgs_per_s"), "msg/s") + ", all readers " +
          si(num(j, "aggregate_msgs_per_s"), "msg/s"));
    return out;
  }

  suite_options o_;
  std::vector<entry> entries_;
  double clock_overhead_ = 0;
  double wall_seconds_ = 0;
  double reference_floor_ = 0;  // p50 of the suite's floor case, one way
};

}  // namespace

int run_suite(const suite_options& options) {
  // Everything that can fail before the cases run is checked first, so a wrong file name does
  // not cost a full suite.
  const auto attachments = load_attachments(options.attach);
  if (!options.plot_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.plot_dir, ec);
    if (ec || !std::filesystem::is_directory(options.plot_dir))
      throw std::runtime_error("--plot-dir " + options.plot_dir + ": cannot create it" +
                               (ec ? ": " + ec.message() : std::string()));
  }
  suite_runner s(options);
  s.plan();
  const json_object machine = machine_info();
  s.run();
  s.print_table();
  if (!s.write_file(machine, attachments)) {
    std::fprintf(stderr, "shmlog_bench: cannot write %s\n", options.out.c_str());
    return 1;
  }
  std::printf("\nwrote %s\n", options.out.c_str());
  if (!options.plot_dir.empty()) {
    s.write_plot_data(options.plot_dir);
    std::printf("wrote plot data in %s\n", options.plot_dir.c_str());
  }
  return s.any_failed() || interrupted.load() ? 1 : 0;
}

}  // namespace shmlog::bench
