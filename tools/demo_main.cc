// shmlog demo: the main job, end to end. A key-value producer process appends commands at a set
// rate to a small log and serves snapshots; N replica processes (shmlog::replica with kv_state)
// apply the records, the last one throttled and paused until the producer has overwritten its
// offset, so that it is lapped and must reload its state from a snapshot (a full resync) however
// fast or slow the machine is. A status line each second; at the end every replica's state is
// compared with the producer's at the same offset.
//
// This file is the parent: it starts the producer (demo_producer.cc) and the replicas
// (demo_replica.cc) as this binary re-executed, follows them by the line protocol of
// demo_protocol.h, prints what happens and gives the verdict.
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cli.h"
#include "demo_protocol.h"
#include "shmlog/shmlog.h"
#include "subprocess/subprocess.h"

namespace shmlog::cli {

namespace {

using steady_clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// The throttled replica's delay per MiB of snapshot it loads: it keeps its snapshot loads on
// screen long enough to show the progress bar.
constexpr std::uint64_t default_load_delay_ms_per_mib = 200;

double seconds_since(steady_clock::time_point t) {
  return std::chrono::duration<double>(steady_clock::now() - t).count();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// demo: the parent

namespace {

struct demo_config {
  double seconds = 8;
  std::uint64_t rate = 50'000;       // commands per second; 0: flat out
  std::uint64_t capacity = 4 << 20;  // the backlog: a small ring, ~1.7 s of this write rate
  unsigned replicas = 3;             // the last one is throttled (unless slow_every is 0)
  std::uint64_t keys = 50'000;       // key space of the command mix
  std::uint64_t slow_every = 16;     // the throttled replica sleeps 1 ms every this many
  std::uint64_t load_delay_ms = default_load_delay_ms_per_mib;
  std::uint64_t seed = 1;
};

demo_config demo_config_from(const parsed_args& args) {
  demo_config c;
  if (!args.positionals.empty())
    throw usage_error("unexpected argument '" + one_line(args.positionals.front()) + "'");
  if (const auto s = args.value("seconds")) c.seconds = parse_seconds("seconds", *s, 86400);
  if (const auto r = args.value("rate")) c.rate = parse_unsigned("rate", *r, 0, 1'000'000'000);
  if (const auto s = args.value("capacity")) c.capacity = parse_size("capacity", *s);
  if (const auto n = args.value("readers"))
    c.replicas = static_cast<unsigned>(parse_unsigned("readers", *n, 1, demo::max_replicas));
  if (const auto k = args.value("keys")) c.keys = parse_unsigned("keys", *k, 1, 100'000'000);
  if (const auto n = args.value("slow-every"))
    c.slow_every = parse_unsigned("slow-every", *n, 0, 1'000'000);
  if (const auto n = args.value("seed"))
    c.seed = parse_unsigned("seed", *n, 0, std::numeric_limits<std::uint64_t>::max());
  if (c.slow_every == 0) c.load_delay_ms = 0;
  validate_create_options({.capacity = c.capacity});
  return c;
}

// The parent's SIGINT/SIGTERM: the first finishes the run early (the producer stops, the
// replicas catch up and are checked), the second abandons it.
volatile sig_atomic_t interrupts = 0;
void on_interrupt(int) {
  interrupts = interrupts + 1;
}

// One child process, as the parent sees it.
using process = subprocess::child;

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by ") + strsignal(WTERMSIG(status));
  return "ended";
}

// Starts this binary with `args` in a process group of its own (so the terminal's ^C reaches
// only the parent, which then finishes the run in order, and so that killing the group also
// kills a snapshot child the producer forked), dying if the parent dies first.
process spawn_self(std::vector<std::string> args) {
  args.insert(args.begin(), "shmlog");
  try {
    return process({.program = "/proc/self/exe",
                    .argv = std::move(args),
                    .own_process_group = true,
                    .parent_death_signal = SIGTERM,
                    .keep_transcript = false});  // a demo may run for a day
  } catch (const subprocess::spawn_error& e) {
    throw command_failure(exit_failure, e.what());
  }
}

void send(process& p, const std::string& line) {
  // A child that died has closed its end: EPIPE (SIGPIPE is ignored), noticed when it is reaped.
  p.write_stdin(line + "\n");
}

// Kills whatever still runs and removes the log and the snapshot directory, however run_demo
// ends (a verdict, an error, a second ^C).
class demo_cleanup {
 public:
  demo_cleanup(std::string log, std::vector<process*>& processes)
      : log_(std::move(log)), processes_(processes) {}
  ~demo_cleanup() {
    for (process* p : processes_)
      p->kill_and_reap();  // its whole process group: a snapshot child too
    try {
      destroy(log_);
    } catch (...) {
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }
  void set_dir(std::filesystem::path dir) { dir_ = std::move(dir); }
  demo_cleanup(const demo_cleanup&) = delete;
  demo_cleanup& operator=(const demo_cleanup&) = delete;

 private:
  std::string log_;
  std::filesystem::path dir_;
  std::vector<process*>& processes_;
};

std::vector<std::string> words_of(const std::string& line, std::size_t max_words) {
  std::vector<std::string> words;
  std::size_t at = 0;
  while (at < line.size() && words.size() + 1 < max_words) {
    const std::size_t space = line.find(' ', at);
    if (space == std::string::npos) break;
    words.push_back(line.substr(at, space - at));
    at = space + 1;
  }
  words.push_back(line.substr(at));
  return words;
}

std::uint64_t number(const std::vector<std::string>& words, std::size_t i) {
  return i < words.size() ? std::strtoull(words[i].c_str(), nullptr, 10) : 0;
}

struct producer_view {
  process proc;
  std::uint64_t count = 0;  // from its last progress line
  std::uint64_t ns = 0;
  std::uint64_t keys = 0;
  std::uint64_t shown_count = 0;  // at the previous status line
  std::uint64_t shown_ns = 0;
  std::optional<std::uint64_t> held_at;  // its offset when --seconds was up but it was held
  bool final = false;
  std::uint64_t final_offset = 0;
  std::string final_checksum;
  std::uint64_t final_keys = 0;
  std::uint64_t final_count = 0;
  std::uint64_t final_ns = 0;
};

struct replica_view {
  process proc;
  unsigned index = 0;
  bool throttled = false;
  enum class phase { syncing, loading, streaming } now = phase::syncing;
  std::uint64_t load_done = 0;
  std::uint64_t load_total = 0;
  std::uint64_t full = 0;
  std::uint64_t partial = 0;
  std::uint64_t laps = 0;
  std::uint64_t shown_records = 0;  // at the previous status line
  bool final = false;
  std::uint64_t final_offset = 0;
  std::string final_checksum;
  std::uint64_t final_keys = 0;
  std::uint64_t applied = 0;
  std::uint64_t final_full = 0;
  std::uint64_t final_partial = 0;
  std::uint64_t final_laps = 0;
  std::uint64_t full_after_lap = 0;
  std::uint64_t backlog_too_small = 0;
  std::uint64_t rejected = 0;
  // The throttled replica is paused at its first state and resumed once the producer has
  // overwritten that offset: a lap by construction, not by a race between two speeds.
  enum class pause_step { none, asked, paused, resumed } pause = pause_step::none;
  std::uint64_t paused_at = 0;

  std::string tag() const { return "r" + std::to_string(index) + (throttled ? " (slow)" : ""); }
};

std::string progress_bar(std::uint64_t done, std::uint64_t total) {
  constexpr int cells = 20;
  const double f = total == 0 ? 1.0 : std::min(1.0, double(done) / double(total));
  const int full = static_cast<int>(f * cells);  // full only when done
  char pct[16];
  std::snprintf(pct, sizeof pct, "%3.0f%%", f * 100);
  return "[" + std::string(static_cast<std::size_t>(full), '#') +
         std::string(static_cast<std::size_t>(cells - full), '.') + "] " + pct + " of " +
         human_bytes(double(total));
}

// What the parent prints. Every line is permanent (one per event, one status line a second),
// so that the output reads the same in a terminal and in a file. On a terminal, one transient
// line more shows a snapshot load's progress bar as it moves; it is redrawn in place and
// cleared before each permanent line.
class demo_run {
 public:
  explicit demo_run(std::string log) : log_(std::move(log)), tty_(::isatty(STDOUT_FILENO) == 1) {}

  producer_view producer;
  std::vector<replica_view> replicas;
  std::string no_lap_because;  // why the throttled replica could not be lapped, if it was not

  void on_producer_line(const std::string& line) {
    const auto w = words_of(line, 2);
    if (w[0] == "progress") {
      const auto v = words_of(line, 5);
      producer.count = number(v, 1);
      producer.ns = number(v, 2);
      producer.keys = number(v, 3);
    } else if (w[0] == "snapshot") {
      const auto v = words_of(line, 6);
      say("producer: saved snapshot " + std::to_string(number(v, 1)) + " at offset " +
          std::to_string(number(v, 2)) + " (" + human_bytes(double(number(v, 3))) + ") in " +
          std::to_string(number(v, 4) / 1'000'000) + " ms, in a forked child");
    } else if (w[0] == "held") {
      producer.held_at = number(words_of(line, 3), 1);
    } else if (w[0] == "note") {
      say("producer: " + (w.size() > 1 ? w[1] : ""));
    } else if (w[0] == "final") {
      const auto v = words_of(line, 7);
      producer.final = true;
      producer.final_offset = number(v, 1);
      producer.final_checksum = v.size() > 2 ? v[2] : "";
      producer.final_keys = number(v, 3);
      producer.final_count = number(v, 4);
      producer.final_ns = number(v, 5);
    }
  }

  void on_replica_line(replica_view& r, const std::string& line) {
    const auto w = words_of(line, 2);
    if (w[0] == "load") {
      const auto v = words_of(line, 4);
      r.load_done = number(v, 1);
      r.load_total = number(v, 2);
      r.now = r.load_done < r.load_total ? replica_view::phase::loading : r.now;
      redraw_progress();
    } else if (w[0] == "event") {
      const auto v = words_of(line, 4);
      on_event(r, v.size() > 1 ? v[1] : "", v.size() > 3 ? v[3] : "");
    } else if (w[0] == "paused") {
      r.pause = replica_view::pause_step::paused;
      r.paused_at = number(words_of(line, 3), 1);
      say("replica " + std::to_string(r.index) + ": paused at offset " +
          std::to_string(r.paused_at) +
          " until the producer has written a whole ring past it, so that it is lapped whatever "
          "the machine's speed");
    } else if (w[0] == "final") {
      const auto v = words_of(line, 12);
      r.final = true;
      r.final_offset = number(v, 1);
      r.final_checksum = v.size() > 2 ? v[2] : "";
      r.final_keys = number(v, 3);
      r.applied = number(v, 4);
      r.final_full = number(v, 5);
      r.final_partial = number(v, 6);
      r.final_laps = number(v, 7);
      r.full_after_lap = number(v, 8);
      r.backlog_too_small = number(v, 9);
      r.rejected = number(v, 10);
    }
  }

  // One timestamped permanent line.
  void say(const std::string& text) {
    char head[32];
    std::snprintf(head, sizeof head, "[%5.1fs] ", seconds_since(start_));
    permanent(head + text);
  }

  // Text without a timestamp (the verdict).
  void permanent(const std::string& line) {
    clear_progress();
    std::fputs((line + "\n").c_str(), stdout);
    redraw_progress();
  }

  void status_line() {
    log_info info;
    try {
      info = inspect(log_);
    } catch (const error&) {
      return;  // not there yet or gone: nothing to show
    }
    const double dt = std::max(1e-3, seconds_since(last_status_));
    last_status_ = steady_clock::now();
    const double producer_dt = double(producer.ns - producer.shown_ns) / 1e9;
    std::string line =
        "producer " + human_bytes(double(info.window.master_offset)) + " " +
        human_count(producer_dt > 0 ? double(producer.count - producer.shown_count) / producer_dt
                                    : 0) +
        "/s " + human_count(double(producer.keys)) + " keys";
    producer.shown_count = producer.count;
    producer.shown_ns = producer.ns;
    for (replica_view& r : replicas) {
      line += " | r" + std::to_string(r.index) + (r.throttled ? " (slow) " : " ");
      const reader_info* slot = nullptr;
      for (const reader_info& ri : info.readers)
        if (ri.pid == static_cast<std::uint32_t>(r.proc.pid())) slot = &ri;
      const std::uint64_t records = slot ? slot->records : r.shown_records;
      const double rate = double(records - r.shown_records) / dt;
      r.shown_records = records;
      if (r.final) {
        line += "done";
      } else if (r.proc.reaped() || slot == nullptr) {
        line += r.proc.reaped() ? "exited" : "starting";
      } else if (r.pause == replica_view::pause_step::paused) {
        line += "paused, lag " + human_bytes(double(slot->lag_bytes));
      } else if (r.now == replica_view::phase::loading) {
        line += "loading " + progress_bar(r.load_done, r.load_total);
      } else if (r.now == replica_view::phase::syncing) {
        line += "full resync: waiting for a snapshot";
      } else {
        line += human_bytes(double(slot->offset)) + " lag " + human_bytes(double(slot->lag_bytes)) +
                " " + human_count(rate) + "/s " + std::to_string(r.full) + "F/" +
                std::to_string(r.partial) + "P";
      }
    }
    say(line);
  }

  void start_clock() {
    start_ = steady_clock::now();
    last_status_ = start_;
  }

  const std::string& log() const { return log_; }

  // Leaves the terminal clean: no transient line.
  void finish_output() {
    clear_progress();
    std::fflush(stdout);
  }

 private:
  void on_event(replica_view& r, const std::string& kind, const std::string& message) {
    const std::string who = "replica " + std::to_string(r.index) + ": ";
    if (kind == "full_resync_done") {
      ++r.full;
      r.now = replica_view::phase::streaming;
      say(who + message + " (" + human_bytes(double(r.load_total)) + ")");
    } else if (kind == "partial_resync") {
      ++r.partial;
      r.now = replica_view::phase::streaming;
      say(who + message);
    } else if (kind == "lapped") {
      ++r.laps;
      r.now = replica_view::phase::syncing;
      say(who + message);
    } else if (kind == "snapshot_requested") {
      r.now = replica_view::phase::syncing;  // routine: not printed
    } else if (kind == "full_resync_started") {
      // "loading snapshot ...": the progress bar shows it. Anything else (a corrupt record) is
      // news.
      if (message.rfind("loading snapshot", 0) != 0) say(who + message);
    } else {
      // backlog_too_small, snapshot_rejected, snapshot_timeout, history_changed
      r.now = replica_view::phase::syncing;
      say(who + message);
    }
    redraw_progress();
  }

  void clear_progress() {
    if (progress_shown_) std::fputs("\r\033[K", stdout);
    progress_shown_ = false;
  }

  void redraw_progress() {
    if (!tty_) {
      std::fflush(stdout);
      return;
    }
    std::string text;
    for (const replica_view& r : replicas) {
      if (r.now != replica_view::phase::loading || r.final) continue;
      text += (text.empty() ? "" : "  ") + std::string("replica ") + std::to_string(r.index) +
              ": loading a snapshot " + progress_bar(r.load_done, r.load_total);
    }
    clear_progress();
    if (!text.empty()) {
      // Never wider than the terminal: a wrapped line could not be redrawn in place.
      winsize ws{};
      if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && text.size() >= ws.ws_col)
        text.resize(ws.ws_col - 1u);
      std::fputs(text.c_str(), stdout);
      progress_shown_ = true;
    }
    std::fflush(stdout);
  }

  std::string log_;
  bool tty_;
  bool progress_shown_ = false;
  steady_clock::time_point start_ = steady_clock::now();
  steady_clock::time_point last_status_ = steady_clock::now();
};

// Reads what the children have written, waiting up to `timeout`, then reaps those that exited.
void pump(demo_run& run, std::chrono::milliseconds timeout) {
  std::vector<subprocess::line_reader*> readers = {&run.producer.proc.out()};
  for (replica_view& r : run.replicas)
    readers.push_back(&r.proc.out());
  const int ms = static_cast<int>(std::max<std::int64_t>(0, timeout.count()));
  if (std::all_of(readers.begin(), readers.end(), [](auto* r) { return r->at_eof(); })) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(ms, 10)));
  } else {
    subprocess::line_reader::read_any(readers, std::chrono::milliseconds(ms));
  }
  while (const auto line = run.producer.proc.out().take_line())
    run.on_producer_line(*line);
  for (replica_view& r : run.replicas)
    while (const auto line = r.proc.out().take_line())
      run.on_replica_line(r, *line);
  run.producer.proc.try_reap();
  for (replica_view& r : run.replicas)
    r.proc.try_reap();
}

// How long the producer may append past --seconds while the paused replica's offset is still
// held: it needs a ring's worth of commands, which takes capacity / (rate x record size).
constexpr auto max_hold = 60s;
constexpr auto start_timeout = 60s;

// Runs the children until there is a verdict to give: every replica loads the initial (empty)
// state, the producer appends for the configured time (or until ^C), longer if it has not yet
// overwritten the paused replica's offset, then every replica catches up to its final offset.
void monitor(demo_run& run, const demo_config& config) {
  enum class stage { starting, appending, draining } now = stage::starting;
  replica_view* slow = nullptr;
  for (replica_view& r : run.replicas)
    if (r.throttled) slow = &r;
  const auto started_at = steady_clock::now();
  auto next_status = started_at + 1s;
  auto next_lap_check = started_at;
  std::optional<steady_clock::time_point> hold_deadline;
  std::optional<steady_clock::time_point> drain_deadline;
  bool stop_sent = false;
  bool released = slow == nullptr;
  const auto release = [&](const std::string& why_no_lap) {
    send(run.producer.proc, "release");
    released = true;
    if (!why_no_lap.empty()) run.no_lap_because = why_no_lap;
  };
  for (;;) {
    const auto tick = !released && now == stage::appending ? 20ms : 200ms;
    const auto wait =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::max<steady_clock::duration>(
            0ms, std::min<steady_clock::duration>(next_status - steady_clock::now(), tick)));
    pump(run, wait);
    if (interrupts >= 2) {
      run.finish_output();
      throw command_failure(exit_failure, "interrupted: stopped every process");
    }
    if (interrupts == 1 && !stop_sent && now != stage::draining) {
      run.say(
          "interrupted: stopping the producer; the replicas catch up and are checked "
          "(^C again to abandon)");
      send(run.producer.proc, "stop");
      stop_sent = true;
      if (!released)
        release("the run was interrupted before the producer had overwritten its offset");
    }
    if (now == stage::starting) {
      const bool ready =
          std::all_of(run.replicas.begin(), run.replicas.end(), [](const replica_view& r) {
            return r.proc.reaped() ||
                   (r.full > 0 && (!r.throttled || r.pause == replica_view::pause_step::paused));
          });
      if (ready && !stop_sent) {
        run.say("every replica holds the initial (empty) state; the producer starts appending");
        send(run.producer.proc, "start");
        now = stage::appending;
      } else if (!stop_sent && steady_clock::now() > started_at + start_timeout) {
        run.say(
            "the replicas did not all load the initial state within 60 s; stopping the "
            "producer");
        send(run.producer.proc, "stop");
        stop_sent = true;
        if (!released) release("the replicas did not all load the initial state in time");
      }
    }
    // Before the lap check below: the producer was held before the parent resumed the replica.
    if (now == stage::appending && !released && run.producer.held_at && !hold_deadline) {
      hold_deadline = steady_clock::now() + max_hold;
      char secs[32];
      std::snprintf(secs, sizeof secs, "%g", config.seconds);
      run.say("the producer goes on past " + std::string(secs) +
              " s until it has overwritten replica " + std::to_string(slow->index) + "'s offset " +
              std::to_string(slow->paused_at) + ": it has written " +
              human_bytes(double(*run.producer.held_at - slow->paused_at)) +
              " past it, the ring holds " + human_bytes(double(config.capacity)));
    }
    if (now == stage::appending && !released && steady_clock::now() >= next_lap_check) {
      next_lap_check = steady_clock::now() + 20ms;
      try {
        const log_info info = inspect(run.log());
        const std::uint64_t at = slow->paused_at;
        // The reader's own rule: lapped once the write intent is more than a ring past it.
        if (info.write_intent > at + info.capacity) {
          send(slow->proc, "resume");
          slow->pause = replica_view::pause_step::resumed;
          release("");
          run.say("replica " + std::to_string(slow->index) + ": resumed; the producer has " +
                  "overwritten offset " + std::to_string(at) + " (the oldest held offset is " +
                  std::to_string(info.window.first_byte_offset) + "), so its next read is a lap");
        } else if (hold_deadline && steady_clock::now() > *hold_deadline) {
          run.say("the producer has not overwritten replica " + std::to_string(slow->index) +
                  "'s offset within 60 s more; stopping it anyway");
          release("the producer did not overwrite its offset within 60 s past --seconds (" +
                  human_bytes(double(info.window.master_offset - at)) + " written past it, the " +
                  "ring holds " + human_bytes(double(info.capacity)) +
                  "); use a higher --rate or a smaller --capacity");
        }
      } catch (const error&) {
        // The log is always there while the producer runs; if not, the producer's exit says why.
      }
    }
    if (now != stage::draining) {
      if (run.producer.final) {
        char secs[32];
        std::snprintf(secs, sizeof secs, "%.1f", double(run.producer.final_ns) / 1e9);
        run.say("producer stopped at offset " + std::to_string(run.producer.final_offset) +
                " after " + grouped(run.producer.final_count) + " commands in " + secs +
                " s; every replica now catches up to that offset" +
                (slow != nullptr ? " (the throttled one stops sleeping)" : ""));
        for (replica_view& r : run.replicas) {
          send(r.proc, "stop " + std::to_string(run.producer.final_offset));
          if (r.pause != replica_view::pause_step::none)  // "stop" resumes a paused replica
            r.pause = replica_view::pause_step::resumed;
        }
        now = stage::draining;
        drain_deadline = steady_clock::now() + 30s;
      } else if (run.producer.proc.reaped()) {
        run.say("the producer " + describe_exit(run.producer.proc.status()) +
                " before it finished; stopping the replicas");
        return;
      }
    }
    if (now == stage::draining) {
      const bool all_done =
          std::all_of(run.replicas.begin(), run.replicas.end(),
                      [](const replica_view& r) { return r.final || r.proc.reaped(); });
      if (all_done) return;
      if (steady_clock::now() > *drain_deadline) {
        run.say("some replicas did not reach the final offset within 30 s");
        return;
      }
    }
    if (steady_clock::now() >= next_status) {
      run.status_line();
      next_status += 1s;
      if (next_status < steady_clock::now()) next_status = steady_clock::now() + 1s;
    }
  }
}

// Closes the producer's stdin (it stops serving snapshots and exits) and waits for everyone.
void wind_down(demo_run& run) {
  run.producer.proc.close_stdin();
  for (replica_view& r : run.replicas)
    r.proc.close_stdin();
  const auto give_up = steady_clock::now() + 10s;
  for (;;) {
    pump(run, 50ms);
    const bool all_exited = run.producer.proc.reaped() &&
                            std::all_of(run.replicas.begin(), run.replicas.end(),
                                        [](const replica_view& r) { return r.proc.reaped(); });
    if (all_exited || steady_clock::now() > give_up || interrupts >= 2) return;
  }
}

// The verdict: every replica at the producer's final offset with the producer's state, and
// the throttled replica lapped and recovered by a full resync at least once.
bool print_verdict(const demo_run& run) {
  const producer_view& p = run.producer;
  std::printf("\n");
  if (!p.final) {
    std::printf(
        "verdict: FAILED: the producer %s before it reported its final state; nothing "
        "to compare the replicas with\n",
        p.proc.reaped() ? describe_exit(p.proc.status()).c_str() : "did not finish");
    return false;
  }
  std::printf("state at offset %s (the producer's final master offset):\n",
              std::to_string(p.final_offset).c_str());
  std::printf("  producer    %10s keys  checksum %s  (%s commands appended)\n",
              grouped(p.final_keys).c_str(), p.final_checksum.c_str(),
              grouped(p.final_count).c_str());
  std::vector<std::string> problems;
  const replica_view* slow = nullptr;
  for (const replica_view& r : run.replicas) {
    if (r.throttled) slow = &r;
    const std::string who = "replica " + std::to_string(r.index);
    if (!r.final) {
      const std::string why = r.proc.reaped() ? describe_exit(r.proc.status())
                                              : std::string("did not reach the final offset");
      std::printf("  %-10s  FAILED: %s\n", who.c_str(), why.c_str());
      problems.push_back(who + " " + why);
      continue;
    }
    const bool same = r.final_offset == p.final_offset && r.final_keys == p.final_keys &&
                      r.final_checksum == p.final_checksum;
    std::printf(
        "  %-10s  %10s keys  checksum %s  %s  applied %s records; resyncs: %s full, %s "
        "partial; lapped %s time%s%s\n",
        who.c_str(), grouped(r.final_keys).c_str(), r.final_checksum.c_str(),
        same ? "equal    " : "DIFFERENT", grouped(r.applied).c_str(), grouped(r.final_full).c_str(),
        grouped(r.final_partial).c_str(), grouped(r.final_laps).c_str(),
        r.final_laps == 1 ? "" : "s", r.throttled ? " (throttled)" : "");
    if (r.final_offset != p.final_offset)
      problems.push_back(who + " stopped at offset " + std::to_string(r.final_offset) + ", not " +
                         std::to_string(p.final_offset));
    else if (!same)
      problems.push_back(who + "'s state differs from the producer's");
  }
  if (slow != nullptr && slow->final && slow->full_after_lap == 0)
    problems.push_back(
        "replica " + std::to_string(slow->index) +
        " (throttled) was never lapped and recovered by a full resync: " +
        (run.no_lap_because.empty() ? std::string("it was not lapped") : run.no_lap_because));
  if (!problems.empty()) {
    std::printf("verdict: FAILED: ");
    for (std::size_t i = 0; i < problems.size(); ++i)
      std::printf("%s%s", i == 0 ? "" : "; ", problems[i].c_str());
    std::printf("\n");
    return false;
  }
  const std::string who = run.replicas.size() == 1
                              ? std::string("the replica holds")
                              : "all " + std::to_string(run.replicas.size()) + " replicas hold";
  std::printf("verdict: OK: %s exactly the producer's state at offset %s", who.c_str(),
              std::to_string(p.final_offset).c_str());
  if (slow != nullptr)
    std::printf("; replica %u was lapped %s time%s and recovered by a full resync %s time%s",
                slow->index, grouped(slow->final_laps).c_str(), slow->final_laps == 1 ? "" : "s",
                grouped(slow->full_after_lap).c_str(), slow->full_after_lap == 1 ? "" : "s");
  std::printf("\n");
  return true;
}

}  // namespace

int run_demo(std::span<const std::string> argv) {
  const command_spec& spec = command_named("demo");
  const parsed_args args = parse_args(argv, spec);
  if (args.has("help")) return print_command_help(spec);
  const demo_config config = demo_config_from(args);

  struct sigaction sa {};
  sa.sa_handler = on_interrupt;  // no SA_RESTART: poll() returns at once
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a child that died closes its stdin; we see EPIPE instead

  const std::string name = "shmlog-demo-" + std::to_string(::getpid()) + "-" +
                           std::to_string(steady_clock::now().time_since_epoch().count() % 1000000);
  create(name, {.capacity = config.capacity});
  demo_run run(name);
  run.replicas.resize(config.replicas);
  std::vector<process*> processes = {&run.producer.proc};
  for (replica_view& r : run.replicas)
    processes.push_back(&r.proc);
  demo_cleanup cleanup(name, processes);

  std::string pattern = (std::filesystem::temp_directory_path() / "shmlog-demo-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr)
    throw command_failure(exit_failure, "cannot create a snapshot directory like '" + pattern +
                                            "': " + std::strerror(errno));
  const std::filesystem::path dir = pattern;
  cleanup.set_dir(dir);

  const unsigned slow_index = config.slow_every != 0 ? config.replicas - 1 : config.replicas;
  std::printf(
      "shmlog demo: a key-value producer and %u replica%s, each its own process, on the "
      "log '%s'\n",
      config.replicas, config.replicas == 1 ? "" : "s", name.c_str());
  std::printf(
      "  the log: a %s ring in /dev/shm (the backlog); snapshots go to %s, saved by a "
      "forked child like Redis's BGSAVE\n",
      human_bytes(double(config.capacity)).c_str(), dir.c_str());
  std::printf(
      "  the producer: %s for %g s%s, a seeded mix of SET/INCR/DEL over %s keys, once every "
      "replica has loaded the initial (empty) state\n",
      config.rate ? (grouped(config.rate) + " commands/s").c_str() : "flat out", config.seconds,
      slow_index < config.replicas ? " (longer if the throttled replica is not lapped by then)"
                                   : "",
      grouped(config.keys).c_str());
  if (slow_index < config.replicas)
    std::printf(
        "  replica %u is throttled (sleeps 1 ms every %s records, %s ms per MiB of snapshot it "
        "loads), and paused at its first state until the producer has overwritten that offset: "
        "it is lapped and must reload its state from a snapshot\n",
        slow_index, grouped(config.slow_every).c_str(), grouped(config.load_delay_ms).c_str());
  std::printf(
      "  each second: the producer's offset, commands/s and keys; per replica rN: its offset, "
      "lag behind the producer, records/s, resyncs done (F full, P partial)\n");
  std::printf("  watch it from another shell: shmlog info %s\n\n", name.c_str());
  std::fflush(stdout);

  run.start_clock();
  // The text the user gave, already checked: a number printed back could round to 0.
  const std::string seconds = args.value("seconds").value_or(std::to_string(config.seconds));
  std::vector<std::string> producer_args = {"demo-writer",    name,
                                            "--snapshot-dir", dir.string(),
                                            "--seconds",      seconds,
                                            "--rate",         std::to_string(config.rate),
                                            "--keys",         std::to_string(config.keys),
                                            "--seed",         std::to_string(config.seed),
                                            "--parent",       std::to_string(::getpid())};
  if (slow_index < config.replicas) producer_args.push_back("--hold");
  run.producer.proc = spawn_self(producer_args);
  for (unsigned i = 0; i < config.replicas; ++i) {
    replica_view& r = run.replicas[i];
    r.index = i;
    r.throttled = i == slow_index;
    std::vector<std::string> a = {"demo-reader", name,      "--snapshot-dir",
                                  dir.string(),  "--index", std::to_string(i)};
    if (r.throttled) {
      a.insert(a.end(), {"--slow-every", std::to_string(config.slow_every), "--load-delay",
                         std::to_string(config.load_delay_ms)});
    }
    r.proc = spawn_self(a);
    if (r.throttled) {
      send(r.proc, "pause");
      r.pause = replica_view::pause_step::asked;
    }
  }

  monitor(run, config);
  wind_down(run);
  run.finish_output();
  return print_verdict(run) ? exit_ok : exit_failure;
}

}  // namespace shmlog::cli
