// shmlog list, and the monitoring outputs of shmlog info: --prometheus and --watch.
#include "monitor.h"

#include <grp.h>
#include <pwd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "shmlog/shmlog.h"

namespace shmlog::cli {

std::uint64_t realtime_now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::uint64_t snapshot_age_ns(const snapshot_meta& s) {
  const std::uint64_t now = realtime_now_ns();
  return now > s.created_ns ? now - s.created_ns : 0;
}

namespace {

std::string user_name(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  char buf[1024];
  if (::getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found != nullptr)
    return found->pw_name;
  return std::to_string(uid);
}

std::string group_name(gid_t gid) {
  group gr{};
  group* found = nullptr;
  char buf[1024];
  if (::getgrgid_r(gid, &gr, buf, sizeof buf, &found) == 0 && found != nullptr)
    return found->gr_name;
  return std::to_string(gid);
}

// The reader furthest behind: its lag is what limits how far the log may run ahead.
std::optional<std::uint64_t> max_lag(const log_info& i) {
  std::optional<std::uint64_t> lag;
  for (const reader_info& r : i.readers)
    lag = std::max(lag.value_or(0), r.lag_bytes);
  return lag;
}

// --- Prometheus -----------------------------------------------------------------------------

// A label value: backslash, double quote and newline escaped as the format requires; bytes that
// are not UTF-8 (a label cut at 15 bytes may end in half a character) become U+FFFD.
std::string prometheus_label_value(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    const auto u = static_cast<unsigned char>(s[i]);
    if (u >= 0x80) {
      const std::size_t n = utf8_sequence(s, i);
      out += n ? std::string(s.substr(i, n)) : "\xEF\xBF\xBD";
      i += n ? n : 1;
      continue;
    }
    if (s[i] == '\\')
      out += "\\\\";
    else if (s[i] == '"')
      out += "\\\"";
    else if (s[i] == '\n')
      out += "\\n";
    else
      out += s[i];
    ++i;
  }
  return out;
}

struct sample {
  std::string labels;  // {a="b",...}
  std::string value;
};

struct family {
  const char* name;
  const char* type;  // counter or gauge
  const char* help;
  std::vector<sample> samples;
};

std::string number(std::uint64_t v) {
  return std::to_string(v);
}

std::string seconds(double s) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", s);
  return buf;
}

std::string log_labels(const log_info& i) {
  return "{log=\"" + prometheus_label_value(i.name) + "\"}";
}

std::string reader_labels(const log_info& i, const reader_info& r) {
  return "{log=\"" + prometheus_label_value(i.name) + "\",slot=\"" + std::to_string(r.slot) +
         "\",pid=\"" + std::to_string(r.pid) + "\",label=\"" + prometheus_label_value(r.label) +
         "\",gating=\"" + (r.gating ? "1" : "0") + "\"}";
}

}  // namespace

std::string prometheus_text(const std::vector<log_info>& logs) {
  // Families in output order; each gets its samples from every log, so that HELP and TYPE
  // appear once per family however many logs are listed (the format requires it).
  std::vector<family> fams;
  std::map<std::string, std::size_t> index;
  const auto add = [&](const char* name, const char* type, const char* help, std::string labels,
                       std::string value) {
    auto [it, fresh] = index.emplace(name, fams.size());
    if (fresh) fams.push_back({name, type, help, {}});
    fams[it->second].samples.push_back({std::move(labels), std::move(value)});
  };
  for (const log_info& i : logs) {
    const std::string l = log_labels(i);
    add("shmlog_info", "gauge", "Always 1; the labels describe the log and its history.",
        "{log=\"" + prometheus_label_value(i.name) + "\",replid=\"" + i.history.replid.str() +
            "\",layout_version=\"" + std::to_string(i.layout_version) + "\"}",
        "1");
    add("shmlog_capacity_bytes", "gauge", "Size of the ring (repl_backlog_size).", l,
        number(i.capacity));
    add("shmlog_master_offset_bytes", "gauge",
        "Master offset (master_repl_offset): bytes of the history written so far. Only grows, "
        "unless a new writer branches the history back.",
        l, number(i.window.master_offset));
    add("shmlog_backlog_histlen_bytes", "gauge",
        "Bytes of the history still held in the ring (repl_backlog_histlen).", l,
        number(i.histlen()));
    add("shmlog_writer_alive", "gauge", "1 while a process holds the writer role.", l,
        i.writer_alive ? "1" : "0");
    add("shmlog_writer_generation", "gauge", "Writers that have opened the log so far.", l,
        number(i.writer_generation));
    add("shmlog_history_epoch", "gauge", "History changes made by starting writers so far.", l,
        number(i.history_epoch));
    add("shmlog_sync_full_total", "counter", "Full resyncs (snapshot loads) by readers.", l,
        number(i.sync_full));
    add("shmlog_sync_partial_ok_total", "counter", "Partial resyncs accepted.", l,
        number(i.sync_partial_ok));
    add("shmlog_sync_partial_err_total", "counter",
        "Partial resyncs refused (a full resync was needed).", l, number(i.sync_partial_err));
    add("shmlog_laps_total", "counter", "Laps seen by all readers: data overwritten unread.", l,
        number(i.lapped_total));
    add("shmlog_backlog_too_small_total", "counter",
        "Full resyncs that failed because the ring had moved past the snapshot's offset.", l,
        number(i.backlog_too_small));
    add("shmlog_gating_readers", "gauge", "Reader slots marked gating.", l,
        number(i.gating_readers));
    add("shmlog_gating_waits_total", "counter",
        "Intent advances on which the writer waited for a gating reader.", l,
        number(i.gating_waits));
    add("shmlog_gating_laps_total", "counter",
        "Gating readers the writer lapped after waiting the bound.", l, number(i.gating_laps));
    add("shmlog_snapshot_requests_total", "counter", "Snapshots asked for by readers.", l,
        number(i.snapshot_requests));
    add("shmlog_snapshot_requests_served_total", "counter",
        "Snapshot requests the producer has answered.", l, number(i.snapshot.requests_served));
    if (i.snapshot.generation != 0) {
      add("shmlog_snapshot_age_seconds", "gauge", "Age of the newest snapshot announced.", l,
          seconds(static_cast<double>(snapshot_age_ns(i.snapshot)) / 1e9));
      add("shmlog_snapshot_offset_bytes", "gauge", "Offset the newest snapshot reflects.", l,
          number(i.snapshot.offset));
      add("shmlog_snapshot_size_bytes", "gauge", "Size of the newest snapshot file.", l,
          number(i.snapshot.file_bytes()));
    }
    add("shmlog_readers", "gauge", "Live readers attached.", l, number(i.readers.size()));
    add("shmlog_reader_slots", "gauge", "Reader slots in the log.", l, number(i.reader_slot_count));
    add("shmlog_stale_reader_slots", "gauge", "Slots of readers that died, not yet reused.", l,
        number(i.stale_slots));
    for (const reader_info& r : i.readers) {
      const std::string rl = reader_labels(i, r);
      add("shmlog_reader_offset_bytes", "gauge", "Next byte the reader will read.", rl,
          number(r.offset));
      add("shmlog_reader_lag_bytes", "gauge", "Master offset minus the reader's offset.", rl,
          number(r.lag_bytes));
      add("shmlog_reader_records_total", "counter", "Records delivered to the reader.", rl,
          number(r.records));
      add("shmlog_reader_laps_total", "counter", "Times the reader found its data overwritten.", rl,
          number(r.lapped));
      add("shmlog_reader_lost_bytes_total", "counter",
          "Bytes the reader skipped recovering from laps.", rl, number(r.bytes_lost));
      add("shmlog_reader_last_lap_timestamp_seconds", "gauge",
          "Unix time of the reader's newest lap; 0 if it was never lapped.", rl,
          seconds(static_cast<double>(r.last_lap_time_ns) / 1e9));
      add("shmlog_reader_heartbeat_age_seconds", "gauge",
          "Time since the reader's last poll or wait step.", rl,
          seconds(static_cast<double>(r.heartbeat_age_ns) / 1e9));
    }
  }
  std::string out;
  for (const family& f : fams) {
    out += std::string("# HELP ") + f.name + " " + f.help + "\n";
    out += std::string("# TYPE ") + f.name + " " + f.type + "\n";
    for (const sample& s : f.samples)
      out += std::string(f.name) + s.labels + " " + s.value + "\n";
  }
  return out;
}

// --- watch ----------------------------------------------------------------------------------

namespace {

struct snapshot_of_log {
  std::chrono::steady_clock::time_point at;
  log_info info;
};

const reader_info* same_reader(const log_info& before, const reader_info& now) {
  for (const reader_info& r : before.readers)
    if (r.slot == now.slot && r.pid == now.pid && r.attach_time_ns == now.attach_time_ns) return &r;
  return nullptr;
}

std::string rate_text(double per_second, bool bytes) {
  return bytes ? human_bytes(per_second) + "/s" : human_count(per_second) + "/s";
}

// "+1.2 KiB/s" or "-512 B/s": how fast the lag grows or shrinks.
std::string trend_text(double per_second) {
  return (per_second < 0 ? "-" : "+") + human_bytes(per_second < 0 ? -per_second : per_second) +
         "/s";
}

std::string delta(std::uint64_t now, std::uint64_t before) {
  return "+" + std::to_string(now >= before ? now - before : 0);
}

void print_sample(const std::string& name, const snapshot_of_log& now,
                  const std::optional<snapshot_of_log>& before, double interval_s, bool screen) {
  const log_info& i = now.info;
  const log_info* b = before ? &before->info : nullptr;
  const double dt =
      before ? std::chrono::duration<double>(now.at - before->at).count() : interval_s;
  const auto per_s = [&](std::uint64_t x, std::uint64_t y) {
    return dt > 0 && x >= y ? static_cast<double>(x - y) / dt : 0.0;
  };
  const std::string time = iso_utc_time(realtime_now_ns());
  if (screen) std::fputs("\x1b[H\x1b[2J", stdout);
  std::printf("%s  %s  every %gs%s\n", time.c_str(), name.c_str(), interval_s,
              screen ? "  (Ctrl-C to stop)" : "");
  std::printf(
      "  master_offset %s  write %s  histlen %s  writer %s\n",
      grouped(i.window.master_offset).c_str(),
      b ? rate_text(per_s(i.window.master_offset, b->window.master_offset), true).c_str() : "-",
      human_bytes(static_cast<double>(i.histlen())).c_str(),
      i.writer_pid == 0
          ? "none"
          : (std::to_string(i.writer_pid) + (i.writer_alive ? " alive" : " dead")).c_str());
  std::string snapshot = "none";
  if (i.snapshot.generation != 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "gen %llu, age %.1fs",
                  static_cast<unsigned long long>(i.snapshot.generation),
                  static_cast<double>(snapshot_age_ns(i.snapshot)) / 1e9);
    snapshot = buf;
  }
  std::printf(
      "  resyncs full %llu (%s) partial %llu (%s)  laps %llu (%s)  snapshot %s\n",
      static_cast<unsigned long long>(i.sync_full),
      b ? delta(i.sync_full, b->sync_full).c_str() : "-",
      static_cast<unsigned long long>(i.sync_partial_ok + i.sync_partial_err),
      b ? delta(i.sync_partial_ok + i.sync_partial_err, b->sync_partial_ok + b->sync_partial_err)
              .c_str()
        : "-",
      static_cast<unsigned long long>(i.lapped_total),
      b ? delta(i.lapped_total, b->lapped_total).c_str() : "-", snapshot.c_str());
  if (i.readers.empty()) {
    std::puts("  no readers");
  } else {
    std::printf("  %-5s %-8s %-15s %-11s %-13s %-10s %-6s %-11s %s\n", "SLOT", "PID", "LABEL",
                "LAG", "LAG TREND", "RECORDS/S", "LAPS+", "LOST+", "STATE");
  }
  for (const reader_info& r : i.readers) {
    const reader_info* p = b ? same_reader(*b, r) : nullptr;
    std::string trend = "-";
    if (p != nullptr && dt > 0)
      trend =
          trend_text((static_cast<double>(r.lag_bytes) - static_cast<double>(p->lag_bytes)) / dt);
    std::printf("  %-5u %-8u %-15s %-11s %-13s %-10s %-6s %-11s %s\n", r.slot, r.pid,
                one_line(r.label).c_str(), human_bytes(static_cast<double>(r.lag_bytes)).c_str(),
                trend.c_str(), p ? rate_text(per_s(r.records, p->records), false).c_str() : "-",
                p ? delta(r.lapped, p->lapped).c_str() : "-",
                p ? ("+" + human_bytes(static_cast<double>(
                               r.bytes_lost >= p->bytes_lost ? r.bytes_lost - p->bytes_lost : 0)))
                        .c_str()
                  : "-",
                std::string(reader_state_name(r.state)).c_str());
  }
  if (!screen) std::putchar('\n');
  std::fflush(stdout);
}

// Sleeps until `deadline`, or less if a stop signal arrives (it interrupts nanosleep).
void sleep_until(std::chrono::steady_clock::time_point deadline) {
  while (!stop_requested()) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) return;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    ::nanosleep(&ts, nullptr);
  }
}

}  // namespace

int watch_log(const std::string& name, double interval_s, std::uint64_t count) {
  catch_stop_signals();
  const bool screen = ::isatty(STDOUT_FILENO) == 1;
  const auto interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(interval_s));
  std::optional<snapshot_of_log> before;
  auto next = std::chrono::steady_clock::now();
  for (std::uint64_t n = 0; !stop_requested() && (count == 0 || n < count); ++n) {
    if (n != 0) sleep_until(next);
    if (stop_requested()) break;
    next += interval;
    snapshot_of_log now{std::chrono::steady_clock::now(), inspect(name)};
    print_sample(name, now, before, interval_s, screen);
    before = std::move(now);
  }
  return exit_ok;
}

// --- list -----------------------------------------------------------------------------------

int run_list(std::span<const std::string> argv) {
  const command_spec& spec = command_named("list");
  const std::string usage = usage_line(spec);
  const parsed_args args = parse_args(argv, spec);
  if (args.has("help")) return print_command_help(spec);
  if (!args.positionals.empty())
    throw usage_error("unexpected argument '" + one_line(args.positionals.front()) +
                      "' (usage: " + usage + ")");
  if (args.has("json") && args.has("prometheus"))
    throw usage_error("--json and --prometheus exclude each other");
  const std::vector<log_listing> logs = list_logs();

  if (args.has("prometheus")) {
    std::vector<log_info> infos;
    for (const log_listing& l : logs)
      if (l.info) infos.push_back(*l.info);
    std::fputs(prometheus_text(infos).c_str(), stdout);
  } else if (args.has("json")) {
    std::string out = "{\"logs\":[";
    for (std::size_t n = 0; n < logs.size(); ++n) {
      const log_listing& l = logs[n];
      out += n ? ",{" : "{";
      out += "\"name\":" + json_string(l.name);
      if (!l.info) {
        out += ",\"error_code\":" + json_string(to_string(l.problem_code)) +
               ",\"error\":" + json_string(l.problem) + "}";
        continue;
      }
      const log_info& i = *l.info;
      const std::optional<std::uint64_t> lag = max_lag(i);
      out += ",\"capacity\":" + std::to_string(i.capacity) +
             ",\"writer_pid\":" + std::to_string(i.writer_pid) +
             ",\"writer_alive\":" + (i.writer_alive ? "true" : "false") +
             ",\"master_offset\":" + std::to_string(i.window.master_offset) +
             ",\"readers\":" + std::to_string(i.readers.size()) +
             ",\"max_lag_bytes\":" + (lag ? std::to_string(*lag) : "null") +
             ",\"mode\":" + json_string(octal_mode(i.mode)) +
             ",\"owner\":" + json_string(user_name(i.owner_uid)) +
             ",\"group\":" + json_string(group_name(i.owner_gid)) + "}";
    }
    out += "]}";
    std::puts(out.c_str());
  } else {
    // The name column fits the longest name (at least 24), so that columns stay aligned.
    int width = 24;
    for (const log_listing& l : logs)
      width = std::max(width, static_cast<int>(l.name.size()));
    std::printf("%-*s %-10s %-13s %-16s %-8s %-10s %-5s %s\n", width, "NAME", "CAPACITY", "WRITER",
                "MASTER_OFFSET", "READERS", "MAX_LAG", "MODE", "OWNER");
    for (const log_listing& l : logs) {
      if (!l.info) {
        std::printf("%-*s (%s)\n", width, l.name.c_str(), one_line(l.problem).c_str());
        continue;
      }
      const log_info& i = *l.info;
      const std::optional<std::uint64_t> lag = max_lag(i);
      const std::string writer =
          i.writer_pid == 0 ? "none"
                            : std::to_string(i.writer_pid) + (i.writer_alive ? " alive" : " dead");
      std::printf("%-*s %-10s %-13s %-16s %-8zu %-10s %-5s %s:%s\n", width, l.name.c_str(),
                  human_bytes(static_cast<double>(i.capacity)).c_str(), writer.c_str(),
                  grouped(i.window.master_offset).c_str(), i.readers.size(),
                  lag ? human_bytes(static_cast<double>(*lag)).c_str() : "-",
                  octal_mode(i.mode).c_str(), user_name(i.owner_uid).c_str(),
                  group_name(i.owner_gid).c_str());
    }
  }
  return std::fflush(stdout) == 0 ? exit_ok : exit_failure;
}

}  // namespace shmlog::cli
