// shmlog replica: the key-value reader daemon, and shmlog get, which asks it for a key.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <sstream>

#include "cli.h"
#include "kv_socket.h"
#include "kv_state.h"
#include "shmlog/shmlog.h"

namespace shmlog::cli {

namespace {

std::uint64_t realtime_now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// One stderr line per event: "<time> replica[<pid>] <what>: <message>".
void log_line(const std::string& what) {
  std::fprintf(stderr, "%s replica[%d] %s\n", iso_utc_time(realtime_now_ns()).c_str(),
               static_cast<int>(::getpid()), one_line(what).c_str());
  std::fflush(stderr);
}

// The replica's key-value state, shared with the GET thread. The replica applies and loads
// through this wrapper, which takes the lock and keeps the offset the state reflects: the
// replica's own offset() belongs to the replica's thread, and between loading a snapshot and
// resynchronising from its offset it is not yet the state's.
class guarded_kv : public state_machine {
 public:
  void apply(const record_view& record) override {
    const std::lock_guard lock(mutex_);
    try {
      kv_.apply(record);
    } catch (const kv::invalid_command& e) {
      // The producer appends only commands its own state accepted, so this is not a log of
      // shmlog produce (or not of this state's kind).
      throw command_failure(exit_failure, "log record at offset " + std::to_string(record.offset) +
                                              " is not a key-value command the state can apply (" +
                                              e.what() +
                                              "): is this log written by shmlog produce?");
    }
    offset_ = record.next_offset;
  }
  void save(std::ostream& out) const override {
    const std::lock_guard lock(mutex_);
    kv_.save(out);
  }
  void load(std::istream& in) override {
    const std::lock_guard lock(mutex_);
    try {
      kv_.load(in);
    } catch (const std::exception& e) {
      // A file that passed its checksums but is not a key-value state: the replica refuses it
      // (snapshot_rejected) and asks for another, as for any bad snapshot.
      throw error(errc::bad_snapshot, std::string("not a key-value snapshot: ") + e.what());
    }
    offset_.reset();  // settled by the full_resync_done event
  }

  void settle(std::uint64_t offset) {
    const std::lock_guard lock(mutex_);
    offset_ = offset;
  }
  get_reply get(std::string_view key) const {
    const std::lock_guard lock(mutex_);
    get_reply r;
    r.offset = offset_;
    if (const auto v = kv_.get(key)) {
      r.what = get_reply::kind::value;
      r.text = *v;
    } else {
      r.what = get_reply::kind::absent;
    }
    return r;
  }
  std::string dump(std::size_t& keys) const {
    const std::lock_guard lock(mutex_);
    std::ostringstream out;
    kv_.dump(out);
    keys = kv_.size();
    return out.str();
  }

 private:
  mutable std::mutex mutex_;
  kv::kv_state kv_;
  std::optional<std::uint64_t> offset_;  // empty: no state yet, or a snapshot is being settled
};

[[noreturn]] void dump_failed(const std::filesystem::path& path, const char* what, int err) {
  throw command_failure(exit_failure, "cannot write dump '" + path.string() + "': " + what + ": " +
                                          std::strerror(err));
}

// Temp file, fsync, rename, fsync of the directory: a reader of FILE sees the old dump or the
// whole new one, and after a crash the new one is either there whole or not at all.
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes) {
  const std::filesystem::path dir = path.parent_path().empty() ? "." : path.parent_path();
  const std::filesystem::path temp =
      dir / ("." + path.filename().string() + ".tmp." + std::to_string(::getpid()));
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) dump_failed(temp, "create", errno);
  std::string_view rest = bytes;
  while (!rest.empty()) {
    const ssize_t n = ::write(fd, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(temp.c_str());
      dump_failed(temp, "write", err);
    }
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    dump_failed(temp, "fsync", err);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    dump_failed(path, "rename", err);
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

// The directory --dump FILE goes in must exist and be writable now, not at SIGTERM.
void check_dump_target(const std::filesystem::path& file) {
  const std::filesystem::path dir = file.parent_path().empty() ? "." : file.parent_path();
  if (file.filename().empty() || file.filename() == "." || file.filename() == "..")
    throw usage_error("bad --dump '" + one_line(file.string()) + "': expected a file name");
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw usage_error("bad --dump '" + one_line(file.string()) + "': directory '" +
                      one_line(dir.string()) + "' does not exist");
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw usage_error("bad --dump '" + one_line(file.string()) + "': directory '" +
                      one_line(dir.string()) + "' is not writable");
  if (std::filesystem::is_directory(file, ec))
    throw usage_error("bad --dump '" + one_line(file.string()) + "': it is a directory");
}

// A person or a supervisor starts and watches the daemon: a short spin and yield, then sleep,
// so an idle replica costs no CPU; the wait is bounded so that the loop sees a stop flag.
constexpr wait_policy daemon_wait{.mode = wait_mode::adaptive,
                                  .spin_for = std::chrono::microseconds(20),
                                  .yield_for = std::chrono::microseconds(200)};
constexpr auto loop_wait = std::chrono::milliseconds(100);

}  // namespace

// Shared by produce, replica and tail: a bad --snapshot-dir is a bad argument (status 2),
// whatever the library's error code for it.
std::string snapshot_dir_option(const parsed_args& args, bool for_writing,
                                std::string_view needed_by) {
  const auto dir = args.value("snapshot-dir");
  if (!dir) throw usage_error("missing --snapshot-dir DIR (" + std::string(needed_by) + ")");
  if (dir->empty()) throw usage_error("bad --snapshot-dir '': expected a directory");
  try {
    check_snapshot_dir(*dir, for_writing);
  } catch (const error& e) {
    throw usage_error(std::string("bad --snapshot-dir: ") + e.what());
  }
  return std::filesystem::absolute(*dir).lexically_normal().string();
}

int run_replica(std::span<const std::string> argv) {
  static constexpr const char* usage =
      "shmlog replica NAME --snapshot-dir DIR [--dump FILE] [--label L]";
  const parsed_args args =
      parse_args(argv, {{"snapshot-dir", true}, {"dump", true}, {"label", true}});
  if (args.has("help")) {
    std::printf("usage: %s\n(see shmlog help and docs/cli.md)\n", usage);
    return exit_ok;
  }
  const std::string& name = single_name(args, usage);
  validate_name(name);
  const std::filesystem::path dir =
      snapshot_dir_option(args, false, "where the producer writes its snapshots");
  std::optional<std::filesystem::path> dump;
  if (const auto d = args.value("dump")) {
    if (d->empty()) throw usage_error("bad --dump '': expected a file name");
    dump = std::filesystem::absolute(*d).lexically_normal();
    check_dump_target(*dump);
  }
  std::string label = "replica";
  if (const auto l = args.value("label")) {
    if (l->empty() || l->size() > 15)
      throw usage_error("bad --label '" + one_line(*l) + "': expected 1-15 bytes");
    label = *l;
  }

  catch_stop_signals();
  guarded_kv state;
  // Listen before attaching: a replica that cannot be asked (its socket name is taken) must
  // exit before it takes a reader slot or asks the producer for a snapshot.
  get_server server(name, [&state](std::string_view key) { return state.get(key); });
  replica_options options;
  options.snapshot_dir = dir;
  options.wait = daemon_wait;
  options.label = label;
  options.on_event = [&state](const replica_event& e) {
    // The state is settled once the replica goes on from the loaded snapshot's offset.
    if (e.what == replica_event::kind::full_resync_done) state.settle(e.offset);
    log_line(std::string(to_string(e.what)) + " at offset " + std::to_string(e.offset) + ": " +
             e.message);
  };
  replica r(name, state, options);
  // Without --dump the first stop signal interrupts a full resync at once. With --dump the
  // first one asks for a dump, which needs the resync to finish; a second one gives up.
  stop_replica_on_signal(&r, dump ? 2 : 1);
  struct unregister {
    ~unregister() { stop_replica_on_signal(nullptr); }
  } unregister_on_exit;
  log_line("started on log '" + name + "' (reader slot " + std::to_string(r.log_reader().slot()) +
           ", label " + label + "); snapshots from " + dir.string() + "; GET socket @" +
           server.address() + (dump ? "; dump to " + dump->string() + " on SIGTERM" : ""));

  bool destroyed = false;
  while (!stop_requested()) {
    r.catch_up();
    if (stop_requested()) break;
    // Nothing more can arrive once the name is gone: no writer can open the log again.
    if (!r.wait(loop_wait) && r.log_reader().log_removed()) {
      r.catch_up();
      destroyed = r.synced();
      if (destroyed) break;
    }
  }

  const replica_stats& s = r.stats();
  const std::string totals = std::to_string(s.records_applied) + " records applied, " +
                             std::to_string(s.full_resyncs) + " full and " +
                             std::to_string(s.partial_resyncs) + " partial resyncs, " +
                             std::to_string(s.laps) + " laps";
  if (dump) {
    // Every record published before the signal: the master offset now is at least the one
    // when the signal came. If a new writer took the history back below it, those records are
    // gone from the log, and the replica can only be as current as the new history.
    const std::uint64_t target = r.log_reader().master_offset();
    const history_id replid_then = r.log_reader().history().replid;
    for (;;) {
      r.catch_up();
      if (stop_signals_received() >= 2 || r.stopping())
        throw command_failure(exit_failure,
                              "stopped by a second signal before the state caught "
                              "up with offset " +
                                  std::to_string(target) + "; no dump written");
      if (r.synced()) {
        if (r.offset() >= target) break;
        const auto h = r.log_reader().history();
        if (h.replid != replid_then && r.offset() >= r.log_reader().master_offset()) break;
      }
      r.wait(loop_wait);
    }
    std::size_t keys = 0;
    std::string text = state.dump(keys);
    text += "offset " + std::to_string(r.offset()) + "\n";
    write_file_atomically(*dump, text);
    log_line("dumped " + std::to_string(keys) + " keys at offset " + std::to_string(r.offset()) +
             " to " + dump->string() + " (" + totals + ")");
  } else {
    log_line("stopped at offset " + std::to_string(r.offset()) + " (" + totals + ")");
  }
  if (destroyed) throw command_failure(exit_failure, "log '" + name + "' was destroyed");
  return exit_ok;
}

// ---------------------------------------------------------------------------------------------
// get

namespace {

// kv_state's key rule (examples/kv/kv_state.h), checked here so that a bad key is a usage
// error rather than a question no replica can answer.
void check_key(const std::string& key) {
  const auto bad = [&](const std::string& why) {
    throw usage_error("bad KEY '" + one_line(key) + "': " + why);
  };
  if (key.empty()) bad("keys are 1-512 bytes");
  if (key.size() > 512) bad("keys are at most 512 bytes");
  for (unsigned char c : key)
    if (c <= ' ' || c == 0x7F) bad("keys may not contain spaces or control bytes");
}

}  // namespace

int run_get(std::span<const std::string> argv) {
  static constexpr const char* usage = "shmlog get NAME KEY [--pid PID]";
  const parsed_args args = parse_args(argv, {{"pid", true}});
  if (args.has("help")) {
    std::printf("usage: %s\n(see shmlog help and docs/cli.md)\n", usage);
    return exit_ok;
  }
  if (args.positionals.size() != 2)
    throw usage_error(std::string(args.positionals.size() < 2 ? "missing " : "too many ") +
                      "arguments: expected a log NAME and a KEY (usage: " + usage + ")");
  const std::string& name = args.positionals[0];
  const std::string& key = args.positionals[1];
  validate_name(name);
  check_key(key);
  std::optional<std::uint32_t> only_pid;
  if (const auto p = args.value("pid"))
    only_pid = static_cast<std::uint32_t>(parse_unsigned("pid", *p, 1, 0x7FFFFFFF));

  const log_info info = inspect(name);
  // The freshest replica first: the one that has read furthest.
  std::vector<reader_info> readers = info.readers;
  std::stable_sort(readers.begin(), readers.end(),
                   [](const reader_info& a, const reader_info& b) { return a.offset > b.offset; });
  std::vector<std::uint32_t> tried;
  for (const reader_info& rd : readers) {
    if (only_pid && rd.pid != *only_pid) continue;
    if (std::find(tried.begin(), tried.end(), rd.pid) != tried.end()) continue;
    tried.push_back(rd.pid);
    const auto reply = ask_replica(static_cast<pid_t>(rd.pid), name, key);
    if (!reply) continue;
    const std::string at = reply->offset ? "at offset " + std::to_string(*reply->offset)
                                         : "which has not settled a state yet";
    switch (reply->what) {
      case get_reply::kind::value:
        std::fwrite(reply->text.data(), 1, reply->text.size(), stdout);
        std::putchar('\n');
        return std::fflush(stdout) == 0 ? exit_ok : exit_failure;
      case get_reply::kind::absent:
        throw command_failure(exit_failure, key + " is not set (replica pid " +
                                                std::to_string(rd.pid) + " " + at + ")");
      case get_reply::kind::error:
        throw command_failure(exit_failure,
                              "replica pid " + std::to_string(rd.pid) + ": " + reply->text);
    }
  }
  if (only_pid && tried.empty())
    throw command_failure(exit_failure, "pid " + std::to_string(*only_pid) +
                                            " is not a live reader of log '" + name + "'");
  if (only_pid)
    throw command_failure(exit_failure, "pid " + std::to_string(*only_pid) + " reads log '" + name +
                                            "' but is not a shmlog replica daemon (nothing "
                                            "listens on @" +
                                            replica_socket_name(static_cast<pid_t>(*only_pid)) +
                                            ")");
  throw command_failure(
      exit_failure, "no replica daemon is serving log '" + name + "' (" +
                        std::to_string(info.readers.size()) +
                        " live readers, none answers GET; start one with: shmlog replica " + name +
                        " --snapshot-dir DIR)");
}

}  // namespace shmlog::cli
