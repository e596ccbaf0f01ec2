// shmlog demo: the producer (the hidden command demo-writer). A key-value state, a writer that
// appends the commands the state accepted, and a snapshot service in fork mode; it talks to the
// parent by the line protocol of demo_protocol.h.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <limits>
#include <string>
#include <thread>

#include "cli.h"
#include "demo_protocol.h"
#include "kv_state.h"
#include "shmlog/shmlog.h"

namespace shmlog::cli {

namespace {

using steady_clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using demo::child_stop;
using demo::hex32;
using demo::parent_commands;
using demo::tell_parent;

// ---------------------------------------------------------------------------------------------
// The producer's commands: a deterministic mix from a seeded generator, so that a run can be
// repeated exactly. SETs of "user:N" grow the state, INCRs of "hits:N" change it in place, DELs
// shrink it; the two key families never meet, so every command applies (INCR of a SET value
// would be refused by the producer's state and never appended).

class command_mix {
 public:
  command_mix(std::uint64_t seed, std::uint64_t keys) : state_(seed), keys_(keys) {}

  const std::string& next() {
    const std::uint64_t pick = random() % 100;
    const std::uint64_t key = random() % keys_;
    cmd_.clear();
    if (pick < 55) {
      cmd_ += "SET user:";
      cmd_ += std::to_string(key);
      cmd_ += ' ';
      static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
      const std::uint64_t length = 8 + random() % 57;  // 8-64 bytes
      std::uint64_t bits = random();
      for (std::uint64_t i = 0; i < length; ++i) {
        if (i % 10 == 9) bits = random();
        cmd_ += alphabet[bits % 36];
        bits /= 36;
      }
    } else if (pick < 85) {
      cmd_ += "INCR hits:";
      cmd_ += std::to_string(key);
    } else {
      cmd_ += pick % 2 == 0 ? "DEL user:" : "DEL hits:";
      cmd_ += std::to_string(key);
    }
    return cmd_;
  }

 private:
  std::uint64_t random() {  // splitmix64
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  std::uint64_t state_;
  std::uint64_t keys_;
  std::string cmd_;
};

// A producer whose parent died (PR_SET_PDEATHSIG) removes what the parent would have.
void clean_up_after_parent(pid_t parent, const std::string& log, const std::filesystem::path& dir) {
  if (::getppid() == parent) return;
  try {
    destroy(log);
  } catch (...) {
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// demo-writer NAME --snapshot-dir DIR --seconds S --rate R --keys K --seed N --parent PID [--hold]
//
// The producer. Serves snapshots but appends nothing until "start" arrives on stdin (so that
// every replica begins from the same, empty, state); then appends for S seconds. With --hold it
// goes on appending past S seconds until "release" arrives (the parent releases it once a
// replica it paused has been overwritten), and tells the parent "held OFFSET" when that begins.
// Tells the parent "progress COUNT NS KEYS" every 100 ms, "snapshot GENERATION OFFSET BYTES
// SAVE_NS" for each snapshot it publishes, "note MESSAGE" for a failed one, and at the end "final
// OFFSET CHECKSUM KEYS COUNT NS"; then it keeps serving snapshots (a replica may need one to reach
// the final offset) until its stdin closes. "stop" on stdin ends the appending early (or before it
// began).

int run_demo_writer(std::span<const std::string> argv) {
  const parsed_args args = parse_args(argv, command_named("demo-writer"));
  const std::string& name = single_name(args, "shmlog demo-writer NAME --snapshot-dir DIR ...");
  const std::filesystem::path dir = args.value("snapshot-dir").value_or("");
  const double seconds = parse_seconds("seconds", args.value("seconds").value_or("8"), 86400);
  const std::uint64_t rate =
      parse_unsigned("rate", args.value("rate").value_or("0"), 0, 1'000'000'000);
  const std::uint64_t keys =
      parse_unsigned("keys", args.value("keys").value_or("1000"), 1, 100'000'000);
  const std::uint64_t seed = parse_unsigned("seed", args.value("seed").value_or("1"), 0,
                                            std::numeric_limits<std::uint64_t>::max());
  const auto parent =
      static_cast<pid_t>(parse_unsigned("parent", args.value("parent").value_or("0"), 0, 1u << 30));
  demo::catch_child_signals();

  writer w = writer::open(name);
  kv::kv_state state;
  // The service reports each snapshot it publishes (and each failure) as an event: the parent
  // gets the published ones as numbers, and a failure as its message.
  const auto on_snapshot = [](const snapshot_event& e) {
    if (e.what == snapshot_event::kind::published)
      tell_parent("snapshot " + std::to_string(e.snapshot.generation) + " " +
                  std::to_string(e.snapshot.offset) + " " +
                  std::to_string(e.snapshot.file_bytes()) + " " +
                  std::to_string(e.snapshot.save_ns));
    else if (e.what == snapshot_event::kind::failed)
      tell_parent("note " + e.message);
  };
  // Fork mode, like Redis's BGSAVE: the producer keeps appending while a child saves its
  // copy-on-write image. Safe here: the producer has one thread.
  snapshot_service snapshots(w, state,
                             {.dir = dir,
                              .mode = snapshot_mode::fork,
                              .keep = 2,
                              .check_every = 16,
                              .on_event = on_snapshot});
  command_mix mix(seed, keys);
  parent_commands commands;

  const auto abandon = [&] {
    clean_up_after_parent(parent, name, dir);
    return exit_failure;
  };
  bool started = false;
  bool stop = false;
  bool held = args.has("hold");  // until "release"
  const auto take_commands = [&] {
    while (const auto line = commands.next()) {
      started = started || *line == "start";
      stop = stop || *line == "stop";
      held = held && *line != "release";
    }
  };
  while (!started && !stop) {
    if (child_stop) return abandon();
    snapshots.poll();  // the replicas' first full resync: the empty state at offset 0
    std::this_thread::sleep_for(1ms);
    take_commands();
    if (commands.closed()) return abandon();
  }

  const auto start = steady_clock::now();
  const auto end = start + std::chrono::duration_cast<steady_clock::duration>(
                               std::chrono::duration<double>(seconds));
  auto next_report = start;
  bool held_told = false;
  std::uint64_t count = 0;
  const auto elapsed_ns = [&] {
    return std::to_string(
        std::chrono::duration_cast<std::chrono::nanoseconds>(steady_clock::now() - start).count());
  };
  while (!stop) {
    if (child_stop) return abandon();
    const auto now = steady_clock::now();
    if (now >= end && !held) break;
    if (now >= end && !held_told) {
      held_told = true;
      if (!tell_parent("held " + std::to_string(w.master_offset()))) return abandon();
    }
    if (now >= next_report) {
      next_report = now + 100ms;
      if (!tell_parent("progress " + std::to_string(count) + " " + elapsed_ns() + " " +
                       std::to_string(state.size())))
        return abandon();
      take_commands();
      if (commands.closed()) return abandon();
    }
    // Paced: catch up with the schedule, then sleep. Flat out (rate 0): bursts between checks.
    std::uint64_t target = count + 256;
    if (rate != 0) {
      const double due = std::chrono::duration<double>(now - start).count() * double(rate);
      target = std::min(target, static_cast<std::uint64_t>(due) + 1);
      if (count >= target) {
        snapshots.poll();
        std::this_thread::sleep_for(held ? steady_clock::duration(1ms)
                                         : std::clamp<steady_clock::duration>(
                                               end - now, steady_clock::duration::zero(), 1ms));
        continue;
      }
    }
    for (; count < target; ++count) {
      // The state accepts the command first; only what it accepted is appended, so every
      // replica can apply every record.
      w.append(state.execute(mix.next()));
      snapshots.poll();  // between appends: a counter decrement, a relaxed load every 16
    }
  }
  tell_parent("final " + std::to_string(w.master_offset()) + " " + hex32(state.checksum()) + " " +
              std::to_string(state.size()) + " " + std::to_string(count) + " " + elapsed_ns());
  while (!commands.closed()) {
    if (child_stop) return abandon();
    snapshots.poll();
    std::this_thread::sleep_for(1ms);
    while (commands.next()) {
    }
  }
  clean_up_after_parent(parent, name, dir);
  return exit_ok;
}

}  // namespace shmlog::cli
