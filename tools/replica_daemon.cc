// shmlog replica: the key-value reader daemon, and shmlog get, which asks it for a key.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "cli.h"
#include "kv_state.h"
#include "shmlog/shmlog.h"

namespace shmlog::cli {

namespace {

// The key-value state as the daemon replicates it: a record that is not a key-value command, or
// a snapshot that is not a key-value state, is reported for what it is.
class kv_replica_state : public state_machine {
 public:
  void apply(const record_view& record) override {
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
  }
  void save(std::ostream& out) const override { kv_.save(out); }
  void load(std::istream& in) override {
    try {
      kv_.load(in);
    } catch (const std::exception& e) {
      // A file that passed its checksums but is not a key-value state: the replica refuses it
      // (snapshot_rejected) and asks for another, as for any bad snapshot.
      throw error(errc::bad_snapshot, std::string("not a key-value snapshot: ") + e.what());
    }
  }
  const kv::kv_state& kv() const noexcept { return kv_; }

 private:
  kv::kv_state kv_;
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

// The directory a file option's FILE goes in must exist and be writable now, not at SIGTERM.
void check_dump_target(const std::filesystem::path& file, const std::string& option) {
  const std::filesystem::path dir = file.parent_path().empty() ? "." : file.parent_path();
  const std::string bad = "bad " + option + " '" + one_line(file.string()) + "': ";
  if (file.filename().empty() || file.filename() == "." || file.filename() == "..")
    throw usage_error(bad + "expected a file name");
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw usage_error(bad + "directory '" + one_line(dir.string()) + "' does not exist");
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw usage_error(bad + "directory '" + one_line(dir.string()) + "' is not writable");
  if (std::filesystem::is_directory(file, ec)) throw usage_error(bad + "it is a directory");
}

std::uint64_t realtime_now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

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
  const command_spec& spec = command_named("replica");
  const std::string usage = usage_line(spec);
  const parsed_args args = parse_args(argv, spec);
  if (args.has("help")) return print_command_help(spec);
  const std::string& name = single_name(args, usage);
  validate_name(name);
  replica_daemon_options o;
  o.snapshot_dir = snapshot_dir_option(args, false, "where the producer writes its snapshots");
  std::optional<std::filesystem::path> dump;
  if (const auto d = args.value("dump")) {
    if (d->empty()) throw usage_error("bad --dump '': expected a file name");
    dump = std::filesystem::absolute(*d).lexically_normal();
    check_dump_target(*dump, "--dump");
  }
  if (const auto f = args.value("state-file")) {
    if (f->empty()) throw usage_error("bad --state-file '': expected a file name");
    o.state_file = std::filesystem::absolute(*f).lexically_normal();
    check_dump_target(o.state_file, "--state-file");
  }
  if (const auto e = args.value("save-every")) {
    if (o.state_file.empty()) throw usage_error("--save-every needs --state-file");
    o.save_every = std::chrono::seconds(parse_unsigned("save-every", *e, 1, 86'400));
  }
  if (const auto l = args.value("label")) {
    if (l->empty() || l->size() > 15)
      throw usage_error("bad --label '" + one_line(*l) + "': expected 1-15 bytes");
    o.label = *l;
  }

  o.wait_for_log = wait_for_log_option(args);

  kv_replica_state state;
  // The GET protocol on the library's query socket: "GET <key>" -> "VALUE\n<value>" or
  // "ABSENT\n" (docs/cli.md, "shmlog get").
  o.query = [&state](std::string_view request) -> std::string {
    if (request.rfind("GET ", 0) != 0) throw std::invalid_argument("expected 'GET <key>'");
    const auto value = state.kv().get(request.substr(4));
    return value ? "VALUE\n" + *value : std::string("ABSENT\n");
  };
  o.log = [](const std::string& line) {
    std::fprintf(stderr, "%s replica[%d] %s\n", iso_utc_time(realtime_now_ns()).c_str(),
                 static_cast<int>(::getpid()), one_line(line).c_str());
    std::fflush(stderr);
  };
  if (dump)
    o.on_stop = [&](std::uint64_t offset) {
      std::ostringstream out;
      state.kv().dump(out);
      out << "offset " << offset << "\n";
      write_file_atomically(*dump, out.str());
      o.log("dumped " + std::to_string(state.kv().size()) + " keys at offset " +
            std::to_string(offset) + " to " + dump->string());
    };
  const replica_daemon_result r = run_replica_daemon(name, state, o);
  if (r.gave_up_catching_up)
    throw command_failure(exit_failure,
                          "stopped by a second signal before the state caught up with offset " +
                              std::to_string(r.catch_up_target) + "; no " +
                              (dump ? "dump" : "state file") + " written");
  if (r.log_destroyed) throw command_failure(exit_failure, "log '" + name + "' was destroyed");
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
  const command_spec& spec = command_named("get");
  const std::string usage = usage_line(spec);
  const parsed_args args = parse_args(argv, spec);
  if (args.has("help")) return print_command_help(spec);
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
    const std::optional<query_answer> reply =
        query_replica(static_cast<pid_t>(rd.pid), name, "GET " + key);
    if (!reply) continue;
    const std::string at = reply->offset ? "at offset " + std::to_string(*reply->offset)
                                         : "which has not settled a state yet";
    if (reply->text.rfind("VALUE\n", 0) == 0) {
      std::fwrite(reply->text.data() + 6, 1, reply->text.size() - 6, stdout);
      std::putchar('\n');
      return std::fflush(stdout) == 0 ? exit_ok : exit_failure;
    }
    if (reply->text == "ABSENT\n")
      throw command_failure(exit_failure, key + " is not set (replica pid " +
                                              std::to_string(rd.pid) + " " + at + ")");
    // Another kind of daemon on the same socket (a shipper answers LINK, not GET): ask the next
    // reader, unless this one was asked for by pid.
    if (only_pid)
      throw command_failure(exit_failure, "pid " + std::to_string(rd.pid) +
                                              " answered something else than a GET reply: '" +
                                              one_line(reply->text) + "'");
  }
  if (only_pid && tried.empty())
    throw command_failure(exit_failure, "pid " + std::to_string(*only_pid) +
                                            " is not a live reader of log '" + name + "'");
  if (only_pid)
    throw command_failure(exit_failure, "pid " + std::to_string(*only_pid) + " reads log '" + name +
                                            "' but is not a shmlog replica daemon (nothing "
                                            "listens on @shmlog-replica-" +
                                            std::to_string(*only_pid) + ")");
  throw command_failure(
      exit_failure, "no replica daemon is serving log '" + name + "' (" +
                        std::to_string(info.readers.size()) +
                        " live readers, none answers GET; start one with: shmlog replica " + name +
                        " --snapshot-dir DIR)");
}

}  // namespace shmlog::cli
