// The transports every program that measures has, one row each: the parent's set-up and
// teardown, the writer and reader sides the children run, and the figures the parent reports
// (table.h). shmlog_bench adds the baselines' rows (baselines.cc).
#include "table.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <stdexcept>

#include "histogram.h"
#include "roles.h"
#include "shmlog/segment.h"
#include "transports.h"

namespace shmlog::bench {

result_map parse_lines(const std::vector<std::string>& lines) {
  result_map m;
  for (const std::string& line : lines) {
    const auto space = line.find(' ');
    if (space == std::string::npos) {
      m[line] = "";
    } else {
      m[line.substr(0, space)] = line.substr(space + 1);
    }
  }
  return m;
}

std::uint64_t u64(const result_map& m, const std::string& key) {
  const auto it = m.find(key);
  return it == m.end() ? 0 : std::strtoull(it->second.c_str(), nullptr, 10);
}

case_resources::~case_resources() {
  children.clear();  // each killed (unless it exited) and reaped
  close_fds();
  for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
    try {
      (*it)();
    } catch (...) {
    }
  }
}

void case_resources::close_fds() {
  for (const int fd : fds)
    ::close(fd);
  fds.clear();
}

// --- set-up -----------------------------------------------------------------------------------

std::vector<endpoint> readers_with(const case_config& c, const std::string& key,
                                   const std::vector<std::string>& values,
                                   const std::vector<int>& fds) {
  std::vector<endpoint> readers;
  for (unsigned i = 0; i < c.readers; ++i) {
    endpoint e{
        .role = "reader", .label = "reader " + std::to_string(i), .args = {{key, values[i]}}};
    if (!fds.empty()) e.fds = {fds[i]};
    readers.push_back(std::move(e));
  }
  return readers;
}

std::string joined(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& p : parts)
    out += (out.empty() ? "" : ",") + p;
  return out;
}

std::vector<int> fd_list(const child_context& x) {
  std::vector<int> fds;
  for (const std::string& f : x.arg_list("fds"))
    fds.push_back(std::atoi(f.c_str()));
  return fds;
}

namespace {

channel set_up_shmlog(const case_config& c, const std::string& base, case_resources& res,
                      json_object& j) {
  create(base, {.capacity = c.capacity, .reader_slots = std::max(1u, c.readers + c.idle_readers)});
  res.undo.push_back([base] { destroy(base); });
  j.set_u64("capacity", c.capacity);
  j.set_string("resync",
               std::string("recover_from_lap ") + lap_policy_name(effective_lap_policy(c)));
  channel ch{.writer = {.role = "writer", .args = {{"name", base}}},
             .readers = readers_with(c, "name", std::vector<std::string>(c.readers, base))};
  for (unsigned i = 0; i < c.idle_readers; ++i)
    ch.idle.push_back(
        {.role = "idle", .label = "idle reader " + std::to_string(i), .args = {{"name", base}}});
  return ch;
}

channel set_up_memcpy(const case_config&, const std::string&, case_resources&, json_object&) {
  return {.writer = {.role = "memcpy"}};
}

channel set_up_floor_pingpong(const case_config&, const std::string&, case_resources& res,
                              json_object&) {
  const int fd = ::memfd_create("shmlog-bench-floor", MFD_CLOEXEC);
  if (fd < 0 || ::ftruncate(fd, 4096) != 0) throw std::runtime_error("memfd failed");
  res.fds.push_back(fd);
  const std::string f = std::to_string(fd);
  return {.writer = {.role = "pinger", .args = {{"fd", f}}, .fds = {fd}},
          .readers = {{.role = "ponger", .args = {{"fd", f}}, .fds = {fd}}}};
}

// --- reports ----------------------------------------------------------------------------------

void set_latency_fields(json_object& j, const histogram& h) {
  j.set_u64("p50_ns", h.percentile(50));
  j.set_u64("p90_ns", h.percentile(90));
  j.set_u64("p99_ns", h.percentile(99));
  j.set_u64("p999_ns", h.percentile(99.9));
  j.set_u64("p9999_ns", h.percentile(99.99));
  j.set_u64("max_ns", h.max());
  j.set_u64("min_ns", h.min());
  j.set_f64("mean_ns", h.mean());
  j.set_u64("count", h.count());
  j.set_raw("percentiles", spectrum_json(percentile_spectrum(h)));
}

void report_memcpy(const case_config& c, const std::vector<result_map>& results, json_object& j,
                   std::uint64_t&) {
  const result_map& m = results[0];
  const double rate = double(u64(m, "copies")) / (double(u64(m, "window_ns")) / 1e9);
  j.set_f64("msgs_per_s", rate);
  j.set_f64("bytes_per_s", rate * double(c.record_bytes));
  j.set_string("buffers", "one source and one destination buffer, reused (cache-hot)");
}

void report_floor_pingpong(const case_config&, const std::vector<result_map>& results,
                           json_object& j, std::uint64_t& errors) {
  const result_map& m = results[0];
  const auto h = histogram::parse(m.count("hist") ? m.at("hist") : "");
  if (!h) throw std::runtime_error("pinger sent no histogram");
  const double trips = double(u64(m, "trips"));
  const double rate = 2 * trips / (double(u64(m, "sample_ns")) / 1e9);
  j.set_u64("rate", 0);
  j.set_f64("msgs_per_s", rate);
  j.set_f64("bytes_per_s", rate * 8);
  set_latency_fields(j, *h);
  j.set_f64("mean_oneway_batch_ns", double(u64(m, "batch_ns")) / double(u64(m, "batch_trips")) / 2);
  j.set_u64("batch_round_trips", u64(m, "batch_trips"));
  // Every round trip the pinger counted was answered once by the ponger.
  if (u64(results[1], "answered") != u64(m, "total_trips")) ++errors;
}

void shmlog_figures(const case_config&, const std::vector<result_map>&, const reader_totals& t,
                    json_object& j) {
  // Summed over readers, over the whole case (warm-up included): what each reader was sent is
  // either delivered or lost (report_stream checks it), so lost / (delivered + lost) is the
  // share of the records the readers never saw.
  j.set_u64("laps", t.laps);
  j.set_u64("lost_msgs", t.lost);
  const double seen = double(t.delivered + t.lost);
  j.set_f64("lost_fraction", seen > 0 ? double(t.lost) / seen : 0);
  j.set_u64("max_lag_bytes", t.max_lag);
  if (t.corrupt) j.set_u64("corrupt", t.corrupt);
}

void shmlog_view_figures(const case_config& c, const std::vector<result_map>& results,
                         const reader_totals& t, json_object& j) {
  shmlog_figures(c, results, t, j);
  j.set_u64("torn_views", t.torn);
}

}  // namespace

void report_stream(const case_config& c, const std::vector<result_map>& results, json_object& j,
                   std::uint64_t& errors, stream_figures figures) {
  const bool latency = c.mode == "latency";
  const double seconds = c.seconds;
  const result_map& w = results[0];
  const std::uint64_t sent = u64(w, "sent");
  errors += u64(w, "errors");
  double writer_rate = 0;
  if (latency) {
    writer_rate = double(sent - u64(w, "warm_seq")) / seconds;
    j.set_u64("writer_max_behind_ns", u64(w, "behind_max_ns"));
  } else {
    writer_rate =
        double(sent - u64(w, "warm_seq")) / (double(u64(w, "end_ns") - u64(w, "warm_ns")) / 1e9);
  }
  double sum = 0;
  double slowest = 0;
  reader_totals t;
  std::string first_error;
  histogram merged;
  for (unsigned i = 0; i < c.readers; ++i) {
    const result_map& m = results[1 + i];
    errors += u64(m, "errors");
    if (m.count("first_error") && first_error.empty())
      first_error = "reader " + std::to_string(i) + ": " + m.at("first_error");
    // Every record the writer sent is either delivered or counted lost.
    if (u64(m, "total") + u64(m, "lost") != sent) {
      ++errors;
      if (first_error.empty())
        first_error = "reader " + std::to_string(i) + ": delivered " +
                      std::to_string(u64(m, "total")) + " + lost " +
                      std::to_string(u64(m, "lost")) + " != sent " + std::to_string(sent);
    }
    double rate = 0;
    if (latency) {
      rate = double(u64(m, "measured")) / seconds;
      const auto h = histogram::parse(m.count("hist") ? m.at("hist") : "");
      if (!h) throw std::runtime_error("reader " + std::to_string(i) + " sent no histogram");
      merged.merge(*h);
    } else {
      const std::uint64_t start = u64(m, "window_start_ns");
      const std::uint64_t end = u64(m, "window_end_ns");
      rate = end > start ? double(u64(m, "measured")) / (double(end - start) / 1e9) : 0;
    }
    sum += rate;
    slowest = i == 0 ? rate : std::min(slowest, rate);
    t.delivered += u64(m, "total");
    t.laps += u64(m, "laps");
    t.lost += u64(m, "lost");
    t.max_lag = std::max(t.max_lag, u64(m, "max_lag_bytes"));
    t.corrupt += u64(m, "corrupt");
    t.torn += u64(m, "torn_views");
  }
  // msgs_per_s: records delivered per second to a reader, the mean over readers; with no
  // reader, the writer's rate.
  const double per_reader = c.readers ? sum / c.readers : writer_rate;
  j.set_f64("msgs_per_s", per_reader);
  j.set_f64("bytes_per_s", per_reader * double(c.record_bytes));
  j.set_f64("writer_msgs_per_s", writer_rate);
  if (c.readers > 1) {
    j.set_f64("slowest_reader_msgs_per_s", slowest);
    j.set_f64("aggregate_msgs_per_s", sum);
  }
  j.set_u64("delivered_msgs", t.delivered);
  if (figures != nullptr) figures(c, results, t, j);
  j.set_u64("sent", sent);
  if (latency) set_latency_fields(j, merged);
  if (!first_error.empty()) j.set_string("first_error", first_error);
}

namespace {

// --- the children's sides -------------------------------------------------------------------

template <bool view, bool gating = false>
int shmlog_reader(const child_context& x) {
  shmlog_receiver rx(x.arg("name"), to_wait_mode(x.config.wait), x.config.catch_up_grace_ns,
                     effective_lap_policy(x.config), view, gating, x.config.wait == "spin-master");
  return run_reader(rx, x);
}

int shmlog_writer(const child_context& x) {
  shmlog_sender tx(x.arg("name"));
  return run_writer(tx, x);
}

// --- the table ----------------------------------------------------------------------------------

// In the order --transport's error message names them.
const transport rows[] = {
    {.name = "shmlog",
     .default_wait = "adaptive",
     .delivery = "lossy",
     .set_up = set_up_shmlog,
     .report = [](const case_config& c, const std::vector<result_map>& results, json_object& j,
                  std::uint64_t& errors) { report_stream(c, results, j, errors, shmlog_figures); },
     .writer = shmlog_writer,
     .reader = shmlog_reader<false>,
     .idle = run_idle_reader},
    {.name = "shmlog-view",
     .default_wait = "adaptive",
     .delivery = "lossy",
     .set_up = set_up_shmlog,
     .report =
         [](const case_config& c, const std::vector<result_map>& results, json_object& j,
            std::uint64_t& errors) { report_stream(c, results, j, errors, shmlog_view_figures); },
     .writer = shmlog_writer,
     .reader = shmlog_reader<true>,
     .idle = run_idle_reader},
    // A gating reader (docs/design.md, "Gating readers"): the writer waits for it, so nothing
    // is lost while it keeps up within the library's default bound (100 ms per stall).
    {.name = "shmlog-gating",
     .default_wait = "adaptive",
     .delivery = "lossless",
     .set_up = set_up_shmlog,
     .report = [](const case_config& c, const std::vector<result_map>& results, json_object& j,
                  std::uint64_t& errors) { report_stream(c, results, j, errors, shmlog_figures); },
     .writer = shmlog_writer,
     .reader = shmlog_reader<false, true>,
     .idle = run_idle_reader},
    {.name = "floor-pingpong",
     .default_wait = "spin",
     .set_up = set_up_floor_pingpong,
     .report = report_floor_pingpong,
     .writer = run_pinger,
     .reader = run_ponger},
    {.name = "memcpy",
     .default_wait = "none",
     .set_up = set_up_memcpy,
     .report = report_memcpy,
     .writer = run_memcpy,
     .reader = nullptr},
};

}  // namespace

namespace {

// Built in once, then what add_transports adds, in that order (--transport's error message
// names them so).
std::vector<transport>& registry() {
  static std::vector<transport> all(std::begin(rows), std::end(rows));
  return all;
}

}  // namespace

void add_transports(std::span<const transport> more) {
  for (const transport& row : more)
    if (find_transport(row.name) == nullptr) registry().push_back(row);
}

std::span<const transport> transports() {
  return registry();
}

const transport* find_transport(std::string_view name) {
  for (const transport& t : registry())
    if (t.name == name) return &t;
  return nullptr;
}

}  // namespace shmlog::bench
