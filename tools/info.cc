// shmlog info: the Redis INFO-style report of a log, as text or as one JSON object.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "cli.h"
#include "monitor.h"
#include "shmlog/shmlog.h"

namespace shmlog::cli {

namespace {

// One field of the report. Text and JSON are printed from the same list, so they cannot
// disagree about names or values.
struct field {
  std::string name;
  std::variant<std::uint64_t, std::int64_t, bool, std::string> value;
};

struct reader_row {
  std::vector<field> fields;
};

}  // namespace

std::string_view reader_state_name(reader_state s) {
  switch (s) {
    case reader_state::free:
      return "free";
    case reader_state::reading:
      return "reading";
    case reader_state::spinning:
      return "spinning";
    case reader_state::yielding:
      return "yielding";
    case reader_state::sleeping:
      return "sleeping";
  }
  return "unknown";
}

namespace {

std::string_view fence_name(fence_mode f) {
  switch (f) {
    case fence_mode::none:
      return "none";
    case fence_mode::membarrier:
      return "membarrier";
    case fence_mode::seq_cst:
      return "seq_cst";
  }
  return "unknown";
}

std::vector<field> log_fields(const log_info& i) {
  return {
      {"name", i.name},
      {"layout_version", std::uint64_t{i.layout_version}},
      {"mode", octal_mode(i.mode)},
      {"creation_time", iso_utc_time(i.creation_time_ns)},
      {"creation_time_ms", i.creation_time_ns / 1'000'000},
      {"segment_bytes", i.segment_bytes},
      {"max_payload", i.max_payload},
      {"intent_chunk", i.intent_chunk},
      {"reader_slots", std::uint64_t{i.reader_slot_count}},
      {"start_offset", i.start_offset},
  };
}

std::vector<field> writer_fields(const log_info& i) {
  return {
      {"writer_pid", std::uint64_t{i.writer_pid}},
      {"writer_alive", i.writer_alive},
      {"writer_generation", std::uint64_t{i.writer_generation}},
      {"writer_start_time", iso_utc_time(i.writer_start_time_ns)},
      {"writer_start_time_ms", i.writer_start_time_ns / 1'000'000},
      {"recovered_torn_bytes", i.recovered_torn_bytes},
      {"writer_fence", std::string(fence_name(i.writer_fence))},
      {"fence", std::string(fence_name(i.fence))},
  };
}

std::vector<field> replication_fields(const log_info& i) {
  const std::uint64_t second = i.history.second_repl_offset;
  return {
      {"replid", i.history.replid.str()},
      {"replid2", i.history.replid2.str()},
      {"master_repl_offset", i.window.master_offset},
      {"second_repl_offset", second == no_offset ? std::int64_t{-1} : std::int64_t(second)},
      {"repl_backlog_size", i.capacity},
      {"repl_backlog_first_byte_offset", i.window.first_byte_offset},
      {"repl_backlog_histlen", i.histlen()},
      {"write_intent", i.write_intent},
      {"sync_full", i.sync_full},
      {"sync_partial_ok", i.sync_partial_ok},
      {"sync_partial_err", i.sync_partial_err},
      {"lapped_total", i.lapped_total},
      {"backlog_too_small", i.backlog_too_small},
      {"gating_readers", std::uint64_t{i.gating_readers}},
      {"gating_waits", i.gating_waits},
      {"gating_laps", i.gating_laps},
      {"max_gating_wait_ms",
       (i.max_gating_wait_ns != 0
            ? i.max_gating_wait_ns
            : static_cast<std::uint64_t>(shmlog::default_max_gating_wait.count())) /
           1'000'000},
      {"history_epoch", i.history_epoch},
  };
}

// The newest snapshot the producer announced (none: generation 0, offsets and age -1).
std::vector<field> snapshot_fields(const log_info& i) {
  const auto& s = i.snapshot;
  const bool any = s.generation != 0;
  const std::int64_t age = !any ? -1 : std::int64_t(snapshot_age_ns(s) / 1'000'000);
  return {
      {"snapshot_generation", s.generation},
      {"snapshot_offset", any ? std::int64_t(s.offset) : std::int64_t{-1}},
      {"snapshot_replid", any ? s.replid.str() : std::string()},
      {"snapshot_path", s.path.string()},
      {"snapshot_bytes", any ? s.file_bytes() : std::uint64_t{0}},
      {"snapshot_time", iso_utc_time(any ? s.created_ns : 0)},
      {"snapshot_time_ms", s.created_ns / 1'000'000},
      {"snapshot_age_ms", age},
      {"snapshot_save_ms", s.save_ns / 1'000'000},
      {"snapshot_requests", i.snapshot_requests},
      {"snapshot_requests_served", s.requests_served},
  };
}

std::vector<field> reader_summary_fields(const log_info& i) {
  return {
      {"connected_readers", std::uint64_t{i.readers.size()}},
      {"stale_reader_slots", std::uint64_t{i.stale_slots}},
  };
}

std::vector<field> reader_fields(const reader_info& r) {
  return {
      {"slot", std::uint64_t{r.slot}},
      {"pid", std::uint64_t{r.pid}},
      {"offset", r.offset},
      {"lag_bytes", r.lag_bytes},
      {"lapped", r.lapped},
      {"bytes_lost", r.bytes_lost},
      {"last_lap_time", iso_utc_time(r.last_lap_time_ns)},
      {"state", std::string(reader_state_name(r.state))},
      {"records", r.records},
      {"heartbeat_age_ms", r.heartbeat_age_ns / 1'000'000},
      {"label", r.label},
      {"gating", r.gating},
  };
}

// The ship and mirror daemons serving this log: its writer (a mirror) and readers labelled
// "ship...", asked over their query sockets (shmlog::query_link). A process that runs no such
// daemon has no socket and is skipped; one that does not answer properly is reported.
struct link_row {
  std::uint32_t pid = 0;
  link_status status;
  std::string problem;  // the query failed: why
};

std::vector<link_row> query_links(const log_info& i) {
  std::vector<std::uint32_t> pids;
  if (i.writer_alive && i.writer_pid != 0) pids.push_back(i.writer_pid);
  for (const reader_info& r : i.readers)
    if (r.label.rfind("ship", 0) == 0 && std::find(pids.begin(), pids.end(), r.pid) == pids.end())
      pids.push_back(r.pid);
  std::vector<link_row> rows;
  for (std::uint32_t pid : pids) {
    link_row row;
    row.pid = pid;
    try {
      const std::optional<link_status> s = query_link(static_cast<pid_t>(pid), i.name);
      if (!s) continue;
      row.status = *s;
    } catch (const error& e) {
      row.problem = e.what();
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<field> link_fields(const link_row& l) {
  if (!l.problem.empty()) return {{"pid", std::uint64_t{l.pid}}, {"error", l.problem}};
  const link_status& s = l.status;
  return {
      {"role", s.role},
      {"pid", std::uint64_t{l.pid}},
      {"endpoint", s.endpoint},
      {"key", s.key},
      {"state", s.state},
      {"replid", s.replid.str()},
      {"offset", s.offset},
      {"source_offset", s.source_offset},
      {"lag_bytes", s.lag_bytes},
      {"lag_ms", s.lag_ms},
      {"records", s.records},
      {"entries", s.entries},
      {"snapshots", s.snapshots},
      {"full_resyncs", s.full_resyncs},
      {"last_error", s.last_error},
      {"last_error_age_ms", s.last_error_age_ms},
  };
}

// --- text -----------------------------------------------------------------------------------

// Text values may not break the line, and reader values may not break the key=value list:
// escape what would (the label is free text).
std::string text_escape(std::string_view s, bool in_list) {
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7F || c == '\\' || (in_list && (c == ',' || c == '='))) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

std::string text_value(const field& f, bool in_list) {
  return std::visit(
      [&](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>)
          return text_escape(v, in_list);
        else if constexpr (std::is_same_v<T, bool>)
          return v ? "1" : "0";
        else
          return std::to_string(v);
      },
      f.value);
}

void print_text_section(const char* title, const std::vector<field>& fields) {
  std::printf("# %s\n", title);
  for (const field& f : fields)
    std::printf("%s:%s\n", f.name.c_str(), text_value(f, false).c_str());
}

void print_list_line(const std::string& prefix, const std::vector<field>& fields) {
  std::string line = prefix + ":";
  bool first = true;
  for (const field& f : fields) {
    line += (first ? "" : ",") + f.name + "=" + text_value(f, true);
    first = false;
  }
  std::puts(line.c_str());
}

void print_text(const log_info& i, const std::vector<link_row>& links) {
  print_text_section("Log", log_fields(i));
  std::putchar('\n');
  print_text_section("Writer", writer_fields(i));
  std::putchar('\n');
  print_text_section("Replication", replication_fields(i));
  std::putchar('\n');
  print_text_section("Snapshot", snapshot_fields(i));
  std::putchar('\n');
  print_text_section("Readers", reader_summary_fields(i));
  for (std::size_t n = 0; n < i.readers.size(); ++n)
    print_list_line("reader" + std::to_string(n), reader_fields(i.readers[n]));
  if (links.empty()) return;
  std::puts("\n# Links");
  for (std::size_t n = 0; n < links.size(); ++n)
    print_list_line("link" + std::to_string(n), link_fields(links[n]));
}

// --- JSON -----------------------------------------------------------------------------------

std::string json_value(const field& f) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>)
          return json_string(v);
        else if constexpr (std::is_same_v<T, bool>)
          return v ? "true" : "false";
        else
          return std::to_string(v);
      },
      f.value);
}

void append_json_members(std::string& out, const std::vector<field>& fields) {
  for (const field& f : fields) {
    if (out.back() != '{') out += ',';
    out += json_string(f.name) + ":" + json_value(f);
  }
}

void print_json(const log_info& i, const std::vector<link_row>& links) {
  std::string out = "{";
  append_json_members(out, log_fields(i));
  append_json_members(out, writer_fields(i));
  append_json_members(out, replication_fields(i));
  append_json_members(out, snapshot_fields(i));
  append_json_members(out, reader_summary_fields(i));
  out += ",\"readers\":[";
  for (std::size_t n = 0; n < i.readers.size(); ++n) {
    out += n ? ",{" : "{";
    append_json_members(out, reader_fields(i.readers[n]));
    out += "}";
  }
  out += "],\"links\":[";
  for (std::size_t n = 0; n < links.size(); ++n) {
    out += n ? ",{" : "{";
    append_json_members(out, link_fields(links[n]));
    out += "}";
  }
  out += "]}";
  std::puts(out.c_str());
}

}  // namespace

int run_info(std::span<const std::string> argv) {
  const command_spec& spec = command_named("info");
  const std::string usage = usage_line(spec);
  const parsed_args args = parse_args(argv, spec);
  if (args.has("help")) return print_command_help(spec);
  const std::string& name = single_name(args, usage);
  if (args.has("json") + args.has("prometheus") + args.has("watch") > 1)
    throw usage_error("--json, --prometheus and --watch exclude each other");
  if (!args.has("watch") && (args.has("interval") || args.has("count")))
    throw usage_error("--interval and --count go with --watch");
  if (args.has("watch")) {
    const auto interval = args.value("interval");
    const double seconds = interval ? parse_seconds("interval", *interval, 86400) : 1.0;
    if (seconds < 0.01) throw usage_error("bad --interval: at least 0.01 seconds");
    const auto count = args.value("count");
    return watch_log(name, seconds,
                     count ? parse_unsigned("count", *count, 1, UINT64_MAX) : std::uint64_t{0});
  }
  const log_info info = inspect(name);
  if (args.has("prometheus")) {
    std::fputs(prometheus_text({info}).c_str(), stdout);
    if (std::fflush(stdout) != 0) return exit_failure;
    for (const std::string& problem : info.problems)
      std::fprintf(stderr, "shmlog info: %s\n", problem.c_str());
    return info.problems.empty() ? exit_ok : exit_failure;
  }
  const std::vector<link_row> links = query_links(info);
  if (args.has("json"))
    print_json(info, links);
  else
    print_text(info, links);
  if (std::fflush(stdout) != 0) return exit_failure;
  // A half-written header block: everything else is shown, the block's fields are empty.
  for (const std::string& problem : info.problems)
    std::fprintf(stderr, "shmlog info: %s\n", problem.c_str());
  return info.problems.empty() ? exit_ok : exit_failure;
}

}  // namespace shmlog::cli
