// shmlog demo: a replica (the hidden command demo-reader). shmlog::replica with the key-value
// state, optionally throttled; it talks to the parent by the line protocol of demo_protocol.h.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <thread>

#include "cli.h"
#include "demo_protocol.h"
#include "kv_state.h"
#include "shmlog/shmlog.h"

namespace shmlog::cli {

namespace {

using namespace std::chrono_literals;
using demo::child_stop;
using demo::hex32;
using demo::parent_commands;
using demo::stop_on_signal;
using demo::tell_parent;

// The throttled replica sleeps 1 ms after every `slow_every` records it applies: slow at
// everything, like a consumer on an overloaded host (and this long per MiB of snapshot it loads,
// as the parent tells it with --load-delay).
constexpr auto slow_apply_pause = 1ms;

}  // namespace

// ---------------------------------------------------------------------------------------------
// demo-reader NAME --snapshot-dir DIR --index I [--slow-every N] [--load-delay MS]
//
// A replica. Tells the parent "event KIND OFFSET MESSAGE" for each replica event and "load DONE
// TOTAL" while a snapshot loads. "pause" on stdin: once it has a state, stop reading, tell
// "paused OFFSET" and wait for "resume" (the parent resumes it once the producer has overwritten
// OFFSET, so that its next read is a lap on any machine). "stop OFFSET": resume if paused, catch
// up to that offset (no more throttling), then tell "final OFFSET CHECKSUM KEYS APPLIED FULL
// PARTIAL LAPS FULL_AFTER_LAP BACKLOG_TOO_SMALL REJECTED" and exit.

int run_demo_reader(std::span<const std::string> argv) {
  const parsed_args args = parse_args(argv, command_named("demo-reader"));
  const std::string& name = single_name(args, "shmlog demo-reader NAME --snapshot-dir DIR ...");
  const unsigned index = static_cast<unsigned>(
      parse_unsigned("index", args.value("index").value_or("0"), 0, demo::max_replicas));
  const std::uint64_t slow_every =
      parse_unsigned("slow-every", args.value("slow-every").value_or("0"), 0, 1'000'000);
  const std::uint64_t load_delay_ms =
      parse_unsigned("load-delay", args.value("load-delay").value_or("0"), 0, 60'000);
  demo::catch_child_signals();

  kv::kv_state state;
  bool throttled = slow_every != 0;  // false again once the parent says stop
  bool lapped = false;               // since the last completed full resync
  std::uint64_t full_after_lap = 0;
  replica_options options;
  options.snapshot_dir = args.value("snapshot-dir").value_or("");
  // Sleep on the futex between bursts: five processes share two CPUs here.
  options.wait.mode = wait_mode::sleep;
  options.label = "demo-replica-" + std::to_string(index);
  options.on_event = [&](const replica_event& e) {
    if (e.what == replica_event::kind::lapped) lapped = true;
    if (e.what == replica_event::kind::full_resync_done) {
      full_after_lap += lapped ? 1 : 0;
      lapped = false;
    }
    tell_parent("event " + std::string(to_string(e.what)) + " " + std::to_string(e.offset) + " " +
                e.message);
  };
  options.on_load_progress = [&](std::uint64_t done, std::uint64_t total) {
    tell_parent("load " + std::to_string(done) + " " + std::to_string(total));
    if (throttled && done < total && load_delay_ms != 0) {
      // load_snapshot hands the payload to load() a MiB at a time, calling this before each.
      const std::uint64_t slice = std::min<std::uint64_t>(total - done, 1 << 20);
      std::this_thread::sleep_for(std::chrono::microseconds(load_delay_ms * 1000 * slice >> 20));
    }
  };
  replica r(name, state, options);
  const stop_on_signal stop_guard(r);
  parent_commands commands;
  std::optional<std::uint64_t> target;
  bool pause_asked = false;
  bool paused = false;

  for (;;) {
    if (child_stop) return exit_failure;
    const std::size_t batch =
        throttled ? static_cast<std::size_t>(slow_every) : std::numeric_limits<std::size_t>::max();
    const std::size_t applied = paused ? 0 : r.catch_up(batch);
    while (const auto line = commands.next()) {
      if (line->rfind("stop ", 0) == 0) {
        target = std::strtoull(line->c_str() + 5, nullptr, 10);
        throttled = pause_asked = paused = false;
      } else if (*line == "pause") {
        pause_asked = true;
      } else if (*line == "resume") {
        paused = false;
      }
    }
    if (commands.closed()) return exit_failure;
    if (pause_asked && r.synced()) {  // paused only with a state: a lap needs a position
      pause_asked = false;
      paused = true;
      tell_parent("paused " + std::to_string(r.offset()));
    }
    if (paused) {
      commands.wait(100ms);
      continue;
    }
    if (target && r.synced() && r.offset() >= *target) break;
    if (throttled && applied == batch) {
      std::this_thread::sleep_for(slow_apply_pause);
      continue;
    }
    if (r.synced()) r.wait(100ms);  // wakes at the next record; stdin is looked at meanwhile
  }
  const replica_stats& s = r.stats();
  tell_parent("final " + std::to_string(r.offset()) + " " + hex32(state.checksum()) + " " +
              std::to_string(state.size()) + " " + std::to_string(s.records_applied) + " " +
              std::to_string(s.full_resyncs) + " " + std::to_string(s.partial_resyncs) + " " +
              std::to_string(s.laps) + " " + std::to_string(full_after_lap) + " " +
              std::to_string(s.backlog_too_small) + " " + std::to_string(s.snapshots_rejected));
  return exit_ok;
}

}  // namespace shmlog::cli
