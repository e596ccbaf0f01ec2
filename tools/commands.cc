// create, destroy, write and tail.
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <memory>
#include <optional>

#include "cli.h"
#include "shmlog/shmlog.h"

namespace shmlog::cli {

namespace {}  // namespace

int run_create(std::span<const std::string> argv) {
  const command_spec& spec = command_named("create");
  const std::string usage = usage_line(spec);
  const parsed_args args = parse_args(argv, spec);
  if (args.has("help")) return print_command_help(spec);
  const std::string& name = single_name(args, usage);
  validate_name(name);
  const auto capacity = args.value("capacity");
  if (!capacity)
    throw usage_error(
        "missing --capacity SIZE (a power of two from 4K to 1024G, e.g. --capacity 1M)");
  create_options options;
  options.capacity = parse_size("capacity", *capacity);
  if (const auto mode = args.value("mode")) options.mode = parse_mode("mode", *mode);
  if (const auto readers = args.value("readers"))
    options.reader_slots =
        static_cast<std::uint32_t>(parse_unsigned("readers", *readers, 1, max_reader_slots));
  if (const auto fence = args.value("fence")) {
    if (*fence == "seq_cst") {
      options.writer_fence = fence_mode::seq_cst;
    } else if (*fence == "membarrier") {
      options.writer_fence = fence_mode::membarrier;
    } else {
      throw usage_error("bad --fence '" + one_line(*fence) + "': expected seq_cst or membarrier");
    }
  }
  if (const auto wait = args.value("max-gating-wait"))
    options.max_gating_wait = std::chrono::nanoseconds(static_cast<std::int64_t>(
        parse_seconds("max-gating-wait", *wait,
                      std::chrono::duration<double>(max_max_gating_wait).count()) *
        1e9));
  validate_create_options(options);
  create(name, options);
  return exit_ok;
}

int run_destroy(std::span<const std::string> argv) {
  const command_spec& spec = command_named("destroy");
  const std::string usage = usage_line(spec);
  const parsed_args args = parse_args(argv, spec);
  if (args.has("help")) return print_command_help(spec);
  const std::string& name = single_name(args, usage);
  validate_name(name);
  const std::string missing = "log '" + name + "' does not exist (no /dev/shm/" + name + ")";
  // Without --force, only a shmlog segment goes: a name typed wrong must not remove another
  // program's shared memory (the library refuses it, saying what it found).
  try {
    if (!destroy(name, args.has("force") ? destroy_what::anything : destroy_what::only_a_log))
      throw command_failure(exit_failure, missing);
  } catch (const error& e) {
    if (e.code() != errc::bad_magic && e.code() != errc::permission_denied) throw;
    throw command_failure(exit_failure,
                          std::string(e.what()) + " (use --force to remove it anyway)");
  }
  return exit_ok;
}

// ---------------------------------------------------------------------------------------------
// write

namespace {

// getline(3) keeps one buffer for every line and handles bytes (NULs included) as they are.
class line_reader {
 public:
  line_reader() = default;
  ~line_reader() { std::free(data_); }
  line_reader(const line_reader&) = delete;
  line_reader& operator=(const line_reader&) = delete;

  // The next line without its newline; nullopt at the end of input.
  std::optional<std::string_view> next(FILE* in) {
    const ssize_t n = ::getline(&data_, &allocated_, in);
    if (n < 0) {
      if (std::ferror(in))
        throw command_failure(exit_failure,
                              std::string("reading stdin failed: ") + std::strerror(errno));
      return std::nullopt;
    }
    std::size_t length = static_cast<std::size_t>(n);
    if (length > 0 && data_[length - 1] == '\n') --length;
    return std::string_view(data_, length);
  }

 private:
  char* data_ = nullptr;
  std::size_t allocated_ = 0;
};

// What a refused line leaves behind: the lines before it, whole, and nothing of the rest.
std::string appended_before(std::uint64_t line) {
  const std::string rest = ", line " + std::to_string(line) + " and the rest were not";
  if (line == 1) return "nothing was appended";
  if (line == 2) return "line 1 was appended" + rest;
  return "lines 1-" + std::to_string(line - 1) + " were appended" + rest;
}

}  // namespace

int run_write(std::span<const std::string> argv) {
  const command_spec& spec = command_named("write");
  const std::string usage = usage_line(spec);
  const parsed_args args = parse_args(argv, spec);
  if (args.has("help")) return print_command_help(spec);
  // Open before reading anything, so that a second writer is refused at once.
  writer w = writer::open(single_name(args, usage));
  line_reader lines;
  std::uint64_t line_number = 0;
  while (const auto line = lines.next(stdin)) {
    ++line_number;
    try {
      w.append(*line);
    } catch (const error& e) {
      if (e.code() != errc::record_too_large) throw;
      throw command_failure(exit_failure, "line " + std::to_string(line_number) + " is " +
                                              std::to_string(line->size()) +
                                              " bytes, more than the log's max_payload of " +
                                              std::to_string(w.max_payload()) + " bytes; " +
                                              appended_before(line_number));
    }
  }
  return exit_ok;
}

// ---------------------------------------------------------------------------------------------
// tail

namespace {

enum class on_lap { fail, skip, resync };

struct tail_options {
  start_position from = start_position::oldest();
  std::uint64_t count = 0;  // 0: no limit
  std::uint64_t last = 0;   // start at the newest `last` records held; 0: not asked
  bool follow = false;
  bool print_offsets = false;
  bool print_types = false;
  bool hex = false;
  on_lap lap = on_lap::fail;
  std::filesystem::path snapshot_dir;  // resync only
};

start_position parse_from(std::string_view text) {
  if (text == "oldest") return start_position::oldest();
  if (text == "latest") return start_position::latest();
  const bool digits = !text.empty() && text.find_first_not_of("0123456789") == text.npos;
  if (!digits)
    throw usage_error("bad --from '" + one_line(text) +
                      "': expected oldest, latest or a byte offset");
  return start_position::at(parse_unsigned("from", text, 0, ~std::uint64_t{0}));
}

tail_options tail_options_from(const parsed_args& args) {
  tail_options t;
  t.follow = args.has("follow");
  t.print_offsets = args.has("print-offsets");
  t.print_types = args.has("print-types");
  t.hex = args.has("hex");
  // Without --follow, "print what is held"; with it, "print what comes next", like tail -f
  // on a busy file would if it had no history.
  t.from = t.follow ? start_position::latest() : start_position::oldest();
  if (const auto from = args.value("from")) t.from = parse_from(*from);
  if (const auto last = args.value("last")) {
    if (args.has("from")) throw usage_error("--last and --from both say where to start: give one");
    t.last = parse_unsigned("last", *last, 1, ~std::uint64_t{0});
    t.from = start_position::oldest();
  }
  if (const auto count = args.value("count"))
    t.count = parse_unsigned("count", *count, 1, ~std::uint64_t{0});
  if (const auto lap = args.value("on-lap")) {
    if (*lap == "fail") {
      t.lap = on_lap::fail;
    } else if (*lap == "skip") {
      t.lap = on_lap::skip;
    } else if (*lap == "resync") {
      t.lap = on_lap::resync;
    } else {
      throw usage_error("bad --on-lap '" + one_line(*lap) + "': expected fail, skip or resync");
    }
  }
  if (t.lap == on_lap::resync)
    t.snapshot_dir = snapshot_dir_option(args, false,
                                         "--on-lap=resync loads the producer's "
                                         "snapshots from it");
  else if (args.has("snapshot-dir"))
    throw usage_error("--snapshot-dir is only used with --on-lap=resync");
  return t;
}

// Moves `r` (at the oldest record held) to the first of the newest `n` records before `end`: one
// pass over the record headers held (at most a ring), keeping the last n starts. A lap during
// the pass drops what it kept and goes on a quarter ring ahead; the newest records are still to
// come.
void seek_to_last(reader& r, std::uint64_t n, std::uint64_t end) {
  std::deque<std::uint64_t> starts;
  while (r.offset() < end) {
    const poll_result p = r.poll();
    if (p.status == poll_status::record) {
      starts.push_back(p.record.offset);
      if (starts.size() > n) starts.pop_front();
    } else if (p.status == poll_status::lapped) {
      starts.clear();
      r.recover_from_lap(lap_policy::oldest_safe);
    } else {
      break;  // empty, corrupt, a new history: the read that follows reports it
    }
  }
  if (starts.empty()) return;
  try {
    r.seek(starts.front());
  } catch (const shmlog::error& e) {
    if (e.code() != errc::offset_out_of_range) throw;
    r.seek_oldest();  // overwritten since the pass: as many of the newest as are still held
  }
}

// OFFSET<TAB>TYPE<TAB>payload, the first two as asked; with --hex the payload is written as
// space-separated hex bytes, so a binary record stays on its line (xxd -r -p reads it back).
void print_record(const record_view& r, const tail_options& t) {
  if (t.print_offsets) std::printf("%llu\t", static_cast<unsigned long long>(r.offset));
  if (t.print_types) std::printf("%u\t", static_cast<unsigned>(r.type));
  if (t.hex) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string line;
    line.reserve(r.payload.size() * 3);
    for (const std::byte b : r.payload) {
      if (!line.empty()) line += ' ';
      line += digits[std::to_integer<unsigned>(b) >> 4];
      line += digits[std::to_integer<unsigned>(b) & 15];
    }
    std::fwrite(line.data(), 1, line.size(), stdout);
  } else {
    std::fwrite(r.payload.data(), 1, r.payload.size(), stdout);
  }
  std::putchar('\n');
}

void flush_stdout() {
  if (std::fflush(stdout) != 0 || std::ferror(stdout))
    throw command_failure(exit_failure,
                          std::string("writing stdout failed: ") + std::strerror(errno));
}

std::string lap_reason(const lap_report& lap) {
  return "lapped: wanted offset " + std::to_string(lap.wanted_offset) +
         " but the oldest held offset is " + std::to_string(lap.oldest_offset) + " (" +
         std::to_string(lap.bytes_lost()) + " bytes lost)";
}

int report_lap(const lap_report& lap) {
  flush_stdout();
  std::fprintf(stderr, "shmlog tail: %s\n", lap_reason(lap).c_str());
  return exit_lapped;
}

// --from OFFSET. An offset the writer has already overwritten is what a lap is: the records
// tail was asked for are gone, exactly as if tail had stood there and been lapped, so it gets
// the lap's status and --on-lap handling (returned as a lap report; the reader has not moved).
// An offset beyond the master offset or inside a record is the library's error as it is.
std::optional<lap_report> seek_from(reader& r, std::uint64_t offset) {
  try {
    r.seek(offset);
    return std::nullopt;
  } catch (const error& e) {
    if (e.code() != errc::offset_out_of_range) throw;
    // Below the window as it is now: the bytes asked for are gone. Above it: not there yet.
    const backlog_window w = r.window();
    if (offset >= w.first_byte_offset) throw;
    return lap_report{offset, w.first_byte_offset, w.master_offset, w.first_byte_offset};
  }
}

int report_history_change(const resync_decision& d) {
  flush_stdout();
  std::fprintf(
      stderr,
      "shmlog tail: the log's history changed and offset %llu is not part of the new one: %s\n",
      static_cast<unsigned long long>(d.wanted_offset), d.describe().c_str());
  return exit_history_changed;
}

int report_corruption(const std::string& name, const corruption_report& c) {
  flush_stdout();
  std::fprintf(stderr, "shmlog tail: log '%s': corrupt record at offset %llu: %s\n", name.c_str(),
               static_cast<unsigned long long>(c.offset), c.reason);
  return exit_corrupt;
}

void report_skip(const lap_report& lap) {
  std::fprintf(stderr, "shmlog tail: lapped: skipped %llu bytes from offset %llu to %llu\n",
               static_cast<unsigned long long>(lap.bytes_lost()),
               static_cast<unsigned long long>(lap.wanted_offset),
               static_cast<unsigned long long>(lap.resume_offset));
}

// --on-lap=skip after a lap while reading: go on a quarter ring ahead of the oldest record
// (lap_policy::oldest_safe), saying what was lost. A tail printing to a terminal is slower
// than most writers; from the oldest record it would be lapped again before printing anything.
void skip_lap(reader& r) {
  flush_stdout();
  report_skip(r.recover_from_lap(lap_policy::oldest_safe));
}

// --on-lap=skip for a --from offset already overwritten: tail has read nothing yet and stands
// at the oldest record; it prints what the ring holds from there.
void skip_to_oldest(reader& r, lap_report lap) {
  flush_stdout();
  r.seek_oldest();
  lap.resume_offset = r.offset();
  report_skip(lap);
}

// --on-lap=resync: the full resync a replica does (shmlog::full_resync), on tail's own reader
// and without a state: find or request the producer's snapshot and verify the whole file, then
// this reader goes on from the snapshot's offset. tail prints records, not states: what it
// prints next is the records after the snapshot's offset. Returns false if a stop signal ended
// it first.
bool full_resync(reader& r, const std::filesystem::path& dir, const std::string& why) {
  flush_stdout();
  std::fprintf(stderr, "shmlog tail: %s; full resync from the producer's snapshot\n", why.c_str());
  std::string done;
  full_resync_options o;
  o.snapshot_dir = dir;
  o.on_event = [&](const replica_event& e) {
    switch (e.what) {
      case replica_event::kind::full_resync_done:
        done = e.message;
        break;
      case replica_event::kind::snapshot_requested:
      case replica_event::kind::snapshot_rejected:
      case replica_event::kind::backlog_too_small:
      case replica_event::kind::snapshot_timeout:
      case replica_event::kind::history_changed:
        std::fprintf(stderr, "shmlog tail: %s\n", one_line(e.message).c_str());
        break;
      default:
        break;
    }
  };
  if (!shmlog::full_resync(r, nullptr, o, stop_signal_flag())) return false;
  std::fprintf(stderr, "shmlog tail: %s (the state it holds is not printed)\n",
               one_line(done).c_str());
  return true;
}

}  // namespace

int run_tail(std::span<const std::string> argv) {
  const command_spec& spec = command_named("tail");
  const std::string usage = usage_line(spec);
  const parsed_args args = parse_args(argv, spec);
  if (args.has("help")) return print_command_help(spec);
  const std::string& name = single_name(args, usage);
  const tail_options t = tail_options_from(args);
  const std::chrono::milliseconds wait_for_log = wait_for_log_option(args);
  // While tail waits for the log to be created, a stop signal ends it the default way (there
  // is nothing to flush yet): the library's wait does not look at tail's stop flag.
  if (t.follow && wait_for_log == std::chrono::milliseconds::zero()) catch_stop_signals();

  // A person is watching: a short spin and yield, then sleep, so an idle tail costs no CPU.
  const wait_policy idle_cheaply{.mode = wait_mode::adaptive,
                                 .spin_for = std::chrono::microseconds(20),
                                 .yield_for = std::chrono::microseconds(200)};
  const bool from_offset = t.from.where == start_position::kind::offset;
  reader r = reader::attach(name, {.start = from_offset ? start_position::oldest() : t.from,
                                   .wait = idle_cheaply,
                                   .label = "shmlog-tail",
                                   .wait_for_creation = wait_for_log,
                                   .gating = args.has("gating")});
  if (t.follow && wait_for_log != std::chrono::milliseconds::zero()) catch_stop_signals();
  if (from_offset) {
    if (const std::optional<lap_report> lap = seek_from(r, t.from.offset)) {
      if (t.lap == on_lap::fail) return report_lap(*lap);
      if (t.lap == on_lap::skip) {
        skip_to_oldest(r, *lap);
      } else if (!full_resync(r, t.snapshot_dir, lap_reason(*lap))) {
        return flush_stdout(), exit_ok;
      }
    }
  }
  // Without --follow, stop at the master offset as of now, even if the writer keeps going.
  const std::uint64_t end = r.master_offset();
  if (t.last != 0) seek_to_last(r, t.last, end);
  std::vector<std::byte> buffer;
  std::uint64_t printed = 0;
  while (!stop_requested()) {
    if (!t.follow && r.offset() >= end) break;
    const poll_result p = r.poll_copy(buffer);
    switch (p.status) {
      case poll_status::record:
        print_record(p.record, t);
        if (++printed == t.count) return flush_stdout(), exit_ok;
        break;
      case poll_status::empty:
        flush_stdout();
        if (!t.follow) return exit_ok;
        // Nothing more can arrive once the name is gone: no writer can open the log again.
        if (!r.wait(std::chrono::milliseconds(100)) && r.log_removed())
          throw command_failure(exit_failure, "log '" + name + "' was destroyed");
        break;
      case poll_status::lapped:
        if (t.lap == on_lap::fail) return report_lap(p.lap);
        if (t.lap == on_lap::skip) {
          skip_lap(r);
        } else if (!full_resync(r, t.snapshot_dir, lap_reason(p.lap))) {
          return flush_stdout(), exit_ok;  // stopped by a signal while waiting for a snapshot
        }
        break;
      case poll_status::corrupt:
        return report_corruption(name, p.corruption);
      case poll_status::history_changed: {
        // A writer started from another state: PSYNC again from where we stand.
        const resync_decision d = r.resync(r.replid(), r.offset());
        if (d.is_partial()) {
          flush_stdout();
          std::fprintf(stderr, "shmlog tail: the log's history changed; %s\n",
                       d.describe().c_str());
        } else if (t.lap == on_lap::fail) {
          return report_history_change(d);
        } else if (t.lap == on_lap::skip) {
          flush_stdout();
          r.seek_oldest();
          std::fprintf(stderr,
                       "shmlog tail: the log's history changed and offset %llu is not part of the "
                       "new one (%s); skipped to the oldest held offset %llu\n",
                       static_cast<unsigned long long>(d.wanted_offset), d.describe().c_str(),
                       static_cast<unsigned long long>(r.offset()));
        } else if (!full_resync(r, t.snapshot_dir,
                                "the log's history changed and offset " +
                                    std::to_string(d.wanted_offset) +
                                    " is not part of the new one (" + d.describe() + ")")) {
          return flush_stdout(), exit_ok;
        }
        break;
      }
      case poll_status::too_small:  // poll_copy(vector) grows the buffer: never says it
        break;
    }
  }
  flush_stdout();
  return exit_ok;
}

}  // namespace shmlog::cli
