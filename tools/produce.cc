// shmlog produce: a key-value producer driven from stdin, with snapshots and restart recovery.
//
// The invariant it keeps: once the writer is open, the log's content (what a replica reading
// from offset 0 of the current history, or loading a snapshot of it, ends up with) equals the
// producer's state. Every command is applied to the state first (kv_state::execute validates
// it there) and appended only if it applied, so the two never part.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "cli.h"
#include "kv_state.h"
#include "shmlog/shmlog.h"

namespace shmlog::cli {

namespace {

namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

// While stdin is quiet, snapshot requests are still looked for this often.
constexpr auto idle_look = std::chrono::milliseconds(10);

void note(const std::string& line) {
  std::fprintf(stderr, "shmlog produce: %s\n", one_line(line).c_str());
  std::fflush(stderr);
}

// One WAIT or SNAPSHOT command, or a KV command.
class producer {
 public:
  producer(writer& w, kv::kv_state& state, snapshot_service& snapshots, std::uint64_t check_every)
      : w_(w), state_(state), snapshots_(snapshots), check_every_(check_every) {}

  void line(std::string_view text) {
    ++line_;
    while (!text.empty() && text.back() == '\r')
      text.remove_suffix(1);
    if (text.empty()) return;  // a blank line is no command
    if (text == "WAIT" || text.starts_with("WAIT ")) return wait_command(text);
    if (text == "SNAPSHOT" || text.starts_with("SNAPSHOT ")) return snapshot_command(text);
    if (text.size() > w_.max_payload())
      return invalid("command of " + std::to_string(text.size()) +
                     " bytes is longer than the log's max_payload of " +
                     std::to_string(w_.max_payload()) + " bytes");
    std::string record;
    try {
      record = state_.execute(text);
    } catch (const kv::invalid_command& e) {
      return invalid(e.what());
    }
    w_.append(record);  // cannot fail: the record is the line, within max_payload
    if (++since_look_ >= check_every_) look();
  }

  // A line longer than run_input keeps (dropped as it came in), of `bytes` bytes.
  void overlong_line(std::uint64_t bytes) {
    ++line_;
    invalid("command of " + std::to_string(bytes) +
            " bytes is longer than the log's max_payload of " + std::to_string(w_.max_payload()) +
            " bytes");
  }

  // Serves snapshot requests: every check_every commands, and whenever idle_look passed.
  void look() {
    snapshots_.poll();
    since_look_ = 0;
    last_look_ = steady::now();
  }
  void look_if_due() {
    if (steady::now() - last_look_ >= idle_look) look();
  }

 private:
  void invalid(const std::string& why) { note("line " + std::to_string(line_) + ": " + why); }

  // WAIT n timeout_ms: Redis WAIT. Snapshot requests are still served while waiting, in steps,
  // so that a replica that needs one before it can catch up is not kept waiting by the WAIT.
  void wait_command(std::string_view text) {
    const auto parse = [](std::string_view s, std::uint64_t max) -> std::optional<std::uint64_t> {
      std::uint64_t v = 0;
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v > max)
        return std::nullopt;
      return v;
    };
    const std::string_view args = text.size() > 5 ? text.substr(5) : "";
    const std::size_t sp = args.find(' ');
    const auto n = sp == std::string_view::npos ? std::nullopt : parse(args.substr(0, sp), 1 << 20);
    const auto ms =
        sp == std::string_view::npos ? std::nullopt : parse(args.substr(sp + 1), 86'400'000);
    if (!n || !ms)
      return invalid(
          "WAIT needs two whole numbers: readers (at most 1048576) and a timeout in "
          "milliseconds (at most 86400000), e.g. WAIT 2 500");
    const std::uint64_t offset = w_.master_offset();
    const auto deadline = steady::now() + std::chrono::milliseconds(*ms);
    std::size_t reached = 0;
    for (;;) {
      const auto left = deadline - steady::now();
      reached = w_.wait_for_readers(
          *n, offset,
          std::max<steady::duration>(steady::duration::zero(),
                                     std::min<steady::duration>(left, idle_look)));
      if (reached >= *n || steady::now() >= deadline || stop_requested()) break;
      look();
    }
    std::printf("WAIT %llu %llu -> %zu reader%s at offset %llu\n",
                static_cast<unsigned long long>(*n), static_cast<unsigned long long>(*ms), reached,
                reached == 1 ? "" : "s", static_cast<unsigned long long>(offset));
    std::fflush(stdout);
  }

  void snapshot_command(std::string_view text) {
    if (text != "SNAPSHOT") return invalid("SNAPSHOT takes no arguments");
    try {
      const snapshot_meta info = snapshots_.snapshot_now();
      std::printf("SNAPSHOT -> offset %llu: %s (%llu bytes)\n",
                  static_cast<unsigned long long>(info.offset), info.path.c_str(),
                  static_cast<unsigned long long>(snapshot_header_size + info.payload_bytes));
      std::fflush(stdout);
    } catch (const error& e) {
      invalid(std::string("SNAPSHOT failed: ") + e.what());
    }
  }

  writer& w_;
  kv::kv_state& state_;
  snapshot_service& snapshots_;
  std::uint64_t check_every_;
  std::uint64_t since_look_ = 0;
  steady::time_point last_look_ = steady::now();
  std::uint64_t line_ = 0;
};

// Reads stdin with poll(2), so that the producer can serve snapshot requests while no input
// comes, and hands complete lines to the producer. Returns at end of input or on a stop signal.
void run_input(producer& p, std::uint64_t max_line) {
  std::string pending;
  // Inside a line longer than max_line: it is refused whatever it says, so it is dropped as it
  // comes rather than kept in memory; `discarded` counts its bytes so far.
  bool discarding = false;
  std::uint64_t discarded = 0;
  std::vector<char> chunk(1 << 16);
  for (;;) {
    std::size_t start = 0;
    for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      if (discarding) {
        p.overlong_line(discarded + (nl - start));
        discarding = false;
        continue;
      }
      p.line(std::string_view(pending).substr(start, nl - start));
      if (stop_requested()) return;
    }
    pending.erase(0, start);
    if (discarding || pending.size() > max_line) {
      discarded = (discarding ? discarded : 0) + pending.size();
      discarding = true;
      pending.clear();
    }
    if (stop_requested()) return;
    pollfd in{STDIN_FILENO, POLLIN, 0};
    const int ready = ::poll(&in, 1, static_cast<int>(idle_look.count()));
    if (ready < 0 && errno != EINTR)
      throw command_failure(exit_failure,
                            std::string("polling stdin failed: ") + std::strerror(errno));
    p.look_if_due();
    if (ready <= 0) continue;
    const ssize_t n = ::read(STDIN_FILENO, chunk.data(), chunk.size());
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      throw command_failure(exit_failure,
                            std::string("reading stdin failed: ") + std::strerror(errno));
    }
    if (n == 0) {  // end of input: a last line without a newline is a line too
      if (discarding)
        p.overlong_line(discarded);
      else if (!pending.empty())
        p.line(pending);
      return;
    }
    pending.append(chunk.data(), static_cast<std::size_t>(n));
  }
}

snapshot_mode parse_snapshot_mode(std::string_view text) {
  if (text == "inline") return snapshot_mode::inline_save;
  if (text == "fork") return snapshot_mode::fork;
  throw usage_error("bad --snapshot-mode '" + one_line(text) + "': expected inline or fork");
}

}  // namespace

int run_produce(std::span<const std::string> argv) {
  const command_spec& spec = command_named("produce");
  const std::string usage = usage_line(spec);
  const parsed_args args = parse_args(argv, spec);
  if (args.has("help")) return print_command_help(spec);
  const std::string& name = single_name(args, usage);
  validate_name(name);
  snapshot_options so;
  so.dir = snapshot_dir_option(args, true, "where the producer writes its snapshots");
  if (const auto m = args.value("snapshot-mode")) so.mode = parse_snapshot_mode(*m);
  if (const auto k = args.value("keep")) so.keep = parse_unsigned("keep", *k, 1, 1'000'000);
  std::uint64_t check_every = 64;
  if (const auto c = args.value("check-every"))
    check_every = parse_unsigned("check-every", *c, 1, 1'000'000);
  // The service looks at every poll(); the producer decides when to call it (check_every
  // commands, or idle), so that an idle producer still answers within idle_look.
  so.check_every = 1;
  so.on_event = [](const snapshot_event& e) {
    if (e.what != snapshot_event::kind::started) note(e.message);  // published, or failed
  };
  std::optional<std::uint64_t> capacity;
  if (const auto c = args.value("capacity")) capacity = parse_size("capacity", *c);
  std::optional<std::uint32_t> readers;
  if (const auto r = args.value("readers"))
    readers = static_cast<std::uint32_t>(parse_unsigned("readers", *r, 1, max_reader_slots));
  std::optional<mode_t> mode;
  if (const auto m = args.value("mode")) mode = parse_mode("mode", *m);

  producer_options po{.snapshot_dir = so.dir};
  if (exists(name)) {
    // --capacity and --readers apply to a new log: say so rather than ignore them.
    const log_info info = inspect(name);
    if (capacity && *capacity != info.capacity)
      throw command_failure(exit_failure, "log '" + name + "' exists with capacity " +
                                              std::to_string(info.capacity) + ", not " +
                                              std::to_string(*capacity) +
                                              " (--capacity applies to a new log; leave it out)");
    if (readers && *readers != info.reader_slot_count)
      throw command_failure(exit_failure, "log '" + name + "' exists with " +
                                              std::to_string(info.reader_slot_count) +
                                              " reader slots, not " + std::to_string(*readers) +
                                              " (--readers applies to a new log; leave it out)");
    if (mode && *mode != (info.mode & 0777)) {
      char modes[64];
      std::snprintf(modes, sizeof modes, "mode %04o, not %04o", info.mode & 0777U, *mode);
      throw command_failure(exit_failure, "log '" + name + "' exists with " + modes +
                                              " (--mode applies to a new log; leave it out, or "
                                              "chmod /dev/shm/" +
                                              name + ")");
    }
  } else {
    create_options c;
    if (capacity) c.capacity = *capacity;
    if (readers) c.reader_slots = *readers;
    if (mode) c.mode = *mode;
    validate_create_options(c);  // a bad --capacity is a usage error (status 2)
    po.create = c;
  }

  kv::kv_state state;
  recovered_producer recovered = [&] {
    try {
      return open_producer(name, state, po);
    } catch (const error& e) {
      if (e.code() == errc::apply_failed)
        throw command_failure(exit_failure, std::string(e.what()) +
                                                " (only logs written by shmlog produce "
                                                "can be recovered)");
      // The options were checked above: what is left is the snapshot directory the log does
      // not use, which the system's state refuses (status 1), not the command line.
      if (e.code() == errc::invalid_argument) throw command_failure(exit_failure, e.what());
      throw;
    }
  }();
  writer& w = recovered.log;
  note("log '" + name + "': " + recovered.report.describe(w) + "; " + std::to_string(state.size()) +
       " keys");
  snapshot_service snapshots(w, state, so);

  // SIGHUP stops produce as SIGTERM does, with its snapshot on the way out: its input is a
  // terminal or a pipe, and a hang-up means that input is gone.
  catch_stop_signals(true);
  producer p(w, state, snapshots, check_every);
  p.look();  // requests made while no producer was running
  // A line longer than max_payload is refused whatever it says; keep no more of it than that.
  run_input(p, w.max_payload() + 64);

  // Save the state on the way out unless the newest snapshot already is it, so that a restart
  // needs no backlog (and the replicas that ask next get it at once).
  const snapshot_meta newest = w.announced_snapshot();
  const bool saved = newest.generation != 0 && newest.replid == w.history().replid &&
                     newest.offset == w.master_offset();
  const bool nothing = w.master_offset() == 0 && state.size() == 0;
  if (!saved && !nothing) snapshots.snapshot_now();
  return exit_ok;
}

}  // namespace shmlog::cli
