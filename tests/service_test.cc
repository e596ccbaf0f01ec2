// Service integration (docs/operations.md, "Running under systemd"): the hand-written sd_notify
// of shmlog/service.h in one process, then the daemons of contrib/systemd/ started the way
// systemd starts them. The command line is read from the unit file's ExecStart= (so a unit
// that drifts from the tool breaks this test), with its specifiers and variables expanded as
// systemd expands them, and run with NOTIFY_SOCKET naming a datagram socket this test bound:
// READY=1 must come only once the daemon serves, WATCHDOG=1 when WATCHDOG_USEC is set, SIGHUP
// must be logged and survived, SIGTERM must bring STOPPING=1 and exit status 0. Everything is
// awaited on a pipe or the socket under a deadline; no sleep is a synchronisation.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "redis_server.h"
#include "shmlog/shmlog.h"
#include "subprocess/subprocess.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using shmlog::test::redis_server;
using shmlog::test::scoped_log;
using shmlog::test::scratch_dir;
using shmlog::test::unique_log_name;
using clock_type = shmlog::subprocess::clock;

// A guard against a hung child or a message that never comes, not a synchronisation.
constexpr auto patience = 30s;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// --- the service manager's end of the notification socket -----------------------------------

// A datagram socket bound where NOTIFY_SOCKET will point: a path in a scratch directory, or an
// abstract name ("@..."). Keeps every message received, in order.
class notify_socket {
 public:
  explicit notify_socket(std::string address) : address_(std::move(address)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, address_.data(), address_.size());
    if (address_[0] == '@') a.sun_path[0] = '\0';
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size() +
                                               (address_[0] == '@' ? 0 : 1));
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&a), length) != 0)
      throw std::runtime_error("bind " + address_ + ": " + std::strerror(errno));
  }
  ~notify_socket() {
    ::close(fd_);
    if (address_[0] == '/') ::unlink(address_.c_str());
  }
  notify_socket(const notify_socket&) = delete;
  notify_socket& operator=(const notify_socket&) = delete;

  const std::string& address() const { return address_; }

  // The next message, waiting until `deadline`; nullopt if none came.
  std::optional<std::string> receive(clock_type::time_point deadline) {
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
      pollfd p{fd_, POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, left.count())));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return std::nullopt;
      char buffer[4096];
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n < 0) throw std::runtime_error(std::string("recv: ") + std::strerror(errno));
      received_.emplace_back(buffer, static_cast<std::size_t>(n));
      return received_.back();
    }
  }
  // Receives until a message has a line `line` (e.g. "READY=1"; "STATUS=" matches any
  // status) and returns that message; throws, listing what came, after `patience`.
  // `context` says more if it fails (the daemon's stderr).
  std::string await(const std::string& line, const std::function<std::string()>& context = {}) {
    return await_prefix(line, context, line.back() == '=');
  }
  // The same for a line that begins with `prefix`.
  std::string await_prefix(const std::string& prefix,
                           const std::function<std::string()>& context = {},
                           bool prefix_only = true) {
    const auto deadline = clock_type::now() + patience;
    for (;;) {
      const std::optional<std::string> m = receive(deadline);
      if (!m)
        throw std::runtime_error("no notification with " + prefix + "; received:\n" + all() +
                                 (context ? "stderr:\n" + context() : std::string()));
      if (has_line(*m, prefix, prefix_only)) return *m;
    }
  }
  // Whether a message with `line` came among those received so far or waiting now.
  bool received(const std::string& line) {
    while (receive(clock_type::now())) {
    }
    for (const std::string& m : received_)
      if (has_line(m, line, false)) return true;
    return false;
  }
  std::string all() const {
    std::string out;
    for (const std::string& m : received_)
      out += "[" + m + "]\n";
    return out;
  }

  static bool has_line(const std::string& message, const std::string& line, bool prefix_only) {
    std::istringstream in(message);
    for (std::string l; std::getline(in, l);)
      if (l == line || (prefix_only && l.rfind(line, 0) == 0)) return true;
    return false;
  }

 private:
  std::string address_;
  int fd_ = -1;
  std::vector<std::string> received_;
};

// --- a unit's command line, as systemd makes it ------------------------------------------------

struct unit_file {
  std::string exec_start;                      // the ExecStart= value
  std::map<std::string, std::string> env;      // Environment= defaults
  std::vector<std::string> state_directories;  // StateDirectory=, relative to %S
};

// The [Service] settings this test needs from contrib/systemd/NAME (continuation lines joined).
unit_file read_unit(const std::string& name) {
  const fs::path path = fs::path(SHMLOG_SOURCE_DIR) / "contrib" / "systemd" / name;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  unit_file u;
  std::string line;
  std::string joined;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\\') {
      joined += line.substr(0, line.size() - 1) + " ";
      continue;
    }
    joined += line;
    line = std::move(joined);
    joined.clear();
    if (line.rfind("ExecStart=", 0) == 0) u.exec_start = line.substr(10);
    if (line.rfind("Environment=", 0) == 0) {
      const std::string assignment = line.substr(12);
      const std::size_t eq = assignment.find('=');
      u.env[assignment.substr(0, eq)] = assignment.substr(eq + 1);
    }
    if (line.rfind("StateDirectory=", 0) == 0) {
      std::istringstream dirs(line.substr(15));
      for (std::string d; dirs >> d;)
        u.state_directories.push_back(d);
    }
  }
  if (u.exec_start.empty()) throw std::runtime_error(path.string() + " has no ExecStart=");
  return u;
}

// systemd.unit(5) specifiers this test gives values to (%i the instance, %S the state
// directory's root, %% a percent); any other is an error, so that a unit using one this test does
// not know fails here rather than running with it unexpanded.
std::string expand_specifiers(const std::string& text, const std::map<char, std::string>& values) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (++i == text.size()) throw std::runtime_error("a lone % in '" + text + "'");
    if (text[i] == '%') {
      out += '%';
      continue;
    }
    const auto v = values.find(text[i]);
    if (v == values.end())
      throw std::runtime_error(std::string("specifier %") + text[i] + " unknown to this test");
    out += v->second;
  }
  return out;
}

// ExecStart='s words (systemd.service(5), "Command lines"): split at spaces (the units quote
// nothing), then "${NAME}" becomes one word, the variable's value, and a word "$NAME" becomes
// the value's words (none if it is empty). Variables come from `env`: the unit's Environment=
// overridden by what an EnvironmentFile= would set.
std::vector<std::string> command_line(const std::string& exec_start,
                                      const std::map<std::string, std::string>& env) {
  const auto value = [&](const std::string& name) {
    const auto it = env.find(name);
    return it == env.end() ? std::string() : it->second;
  };
  std::vector<std::string> words;
  std::istringstream in(exec_start);
  for (std::string word; in >> word;) {
    if (word.size() > 1 && word[0] == '$' && word[1] != '{') {
      std::istringstream split(value(word.substr(1)));
      for (std::string w; split >> w;)
        words.push_back(w);
      continue;
    }
    std::string out;
    for (std::size_t at = 0; at < word.size();) {
      if (word.compare(at, 2, "${") == 0) {
        const std::size_t end = word.find('}', at);
        out += value(word.substr(at + 2, end - at - 2));
        at = end + 1;
      } else {
        out += word[at++];
      }
    }
    words.push_back(out);
  }
  return words;
}

// A daemon of a unit, started as systemd would start it: ExecStart= expanded, the program
// path replaced by the shmlog binary of this build, StateDirectory= created under `state_root`
// (%S), NOTIFY_SOCKET set (and WATCHDOG_USEC, WATCHDOG_PID if given).
class unit_daemon {
 public:
  unit_daemon(const std::string& unit, const std::string& instance, const fs::path& state_root,
              std::map<std::string, std::string> environment_file,
              std::vector<std::string> notify_env) {
    const unit_file u = read_unit(unit);
    const std::map<char, std::string> specifiers{{'i', instance}, {'S', state_root.string()}};
    std::map<std::string, std::string> env;
    for (const auto& [name, v] : u.env)
      env[name] = expand_specifiers(v, specifiers);
    for (auto& [name, v] : environment_file)
      env[name] = v;
    argv_ = command_line(expand_specifiers(u.exec_start, specifiers), env);
    // systemd puts Environment= and EnvironmentFile= variables in the daemon's environment too
    // (the ship and mirror units pass SHMLOG_REDIS_URL that way only).
    for (const auto& [name, v] : env)
      notify_env.push_back(name + "=" + v);
    // The unit runs the installed binary; this test, the one it built.
    if (argv_.empty() || argv_[0] != "/usr/local/bin/shmlog")
      throw std::runtime_error(unit + ": ExecStart= does not run /usr/local/bin/shmlog");
    argv_[0] = SHMLOG_CLI;
    for (const std::string& d : u.state_directories)
      fs::create_directories(state_root / expand_specifiers(d, specifiers));
    ::signal(SIGPIPE, SIG_IGN);  // a child that exits early must not kill the test
    child_ = shmlog::subprocess::child({.argv = argv_,
                                        .env = std::move(notify_env),
                                        .stdin_mode = shmlog::subprocess::stream_mode::null,
                                        .stderr_mode = shmlog::subprocess::stream_mode::pipe,
                                        .default_signals = {SIGPIPE, SIGHUP},
                                        .parent_death_signal = SIGKILL});
  }

  pid_t pid() const { return child_.pid(); }
  const std::vector<std::string>& argv() const { return argv_; }

  std::string await_err(const std::string& what) {
    const auto deadline = clock_type::now() + patience;
    for (;;) {
      const std::optional<std::string> line = child_.read_line(deadline, true);
      if (!line)
        throw std::runtime_error("no stderr line with '" + what + "' from " + argv_[1] + " (" +
                                 (child_.err().at_eof() ? "end of file" : "timed out") +
                                 "); stderr:\n" + err());
      if (contains(*line, what)) return *line;
    }
  }
  std::string err() {
    child_.err().read_available();
    return child_.err().transcript();
  }
  bool running() { return !child_.try_reap(); }
  bool signal(int sig) { return child_.signal(sig); }
  // The exit status (128 + signal if killed), waited for under `patience`.
  int wait_exit() {
    const std::optional<int> status = child_.wait(clock_type::now() + patience);
    if (!status) {
      child_.kill_and_reap();
      throw std::runtime_error(argv_[1] + " did not exit; stderr:\n" + err());
    }
    return WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status);
  }

 private:
  std::vector<std::string> argv_;
  shmlog::subprocess::child child_;
};

// `shmlog produce`, once it has opened the log; commands are fed on stdin.
class producer_process {
 public:
  producer_process(const std::string& log, const std::string& snapshot_dir,
                   std::vector<std::string> more = {}) {
    std::vector<std::string> argv{SHMLOG_CLI, "produce", log, "--snapshot-dir", snapshot_dir};
    argv.insert(argv.end(), more.begin(), more.end());
    ::signal(SIGPIPE, SIG_IGN);
    child_ = shmlog::subprocess::child({.argv = std::move(argv),
                                        .stderr_mode = shmlog::subprocess::stream_mode::pipe,
                                        .default_signals = {SIGPIPE},
                                        .parent_death_signal = SIGKILL});
    await_err("shmlog produce: log '" + log + "'");
  }
  // Feeds `text` and returns once the producer has applied it (its WAIT answer comes after).
  void produce(const std::string& text) {
    if (!child_.write_stdin(text + "WAIT 0 0\n")) throw std::runtime_error("produce took no input");
    const auto deadline = clock_type::now() + patience;
    for (;;) {
      const std::optional<std::string> line = child_.read_line(deadline);
      if (!line) throw std::runtime_error("no WAIT answer from produce; stderr:\n" + err());
      if (contains(*line, "WAIT 0 0 ->")) return;
    }
  }
  std::string await_err(const std::string& what) {
    const auto deadline = clock_type::now() + patience;
    for (;;) {
      const std::optional<std::string> line = child_.read_line(deadline, true);
      if (!line) throw std::runtime_error("no stderr line with '" + what + "'; stderr:\n" + err());
      if (contains(*line, what)) return *line;
    }
  }
  std::string err() {
    child_.err().read_available();
    return child_.err().transcript();
  }
  shmlog::subprocess::child& child() { return child_; }

 private:
  shmlog::subprocess::child child_;
};

int exit_code(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// --- service_notifier in this process -----------------------------------------------------------

class service_notifier_test : public ::testing::Test {
 protected:
  void TearDown() override {
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
  }
  scratch_dir dir_;
};

TEST_F(service_notifier_test, WithoutNotifySocketEveryCallDoesNothing) {
  ::unsetenv("NOTIFY_SOCKET");
  ::setenv("WATCHDOG_USEC", "1000", 1);
  shmlog::service_notifier n = shmlog::service_notifier::from_environment();
  EXPECT_FALSE(n.enabled());
  EXPECT_EQ(n.problem(), "");
  EXPECT_EQ(n.watchdog_timeout().count(), 0);
  EXPECT_FALSE(n.ready("x"));
  EXPECT_FALSE(n.keep_alive());
  EXPECT_FALSE(n.stopping());
}

TEST_F(service_notifier_test, SendsToAPathAndToAnAbstractName) {
  notify_socket path(dir_.file("notify"));
  notify_socket abstract("@shmlog-test-notify-" + std::to_string(::getpid()));
  for (notify_socket* s : {&path, &abstract}) {
    ::setenv("NOTIFY_SOCKET", s->address().c_str(), 1);
    shmlog::service_notifier n = shmlog::service_notifier::from_environment();
    ASSERT_TRUE(n.enabled()) << n.problem();
    // The variable stays for children: NotifyAccess=main makes systemd ignore them.
    EXPECT_NE(::getenv("NOTIFY_SOCKET"), nullptr);
    EXPECT_TRUE(n.ready("offset 7\nlag 0"));
    EXPECT_EQ(s->await("READY=1"), "READY=1\nSTATUS=offset 7 lag 0");
    EXPECT_TRUE(n.status("caught up"));
    EXPECT_EQ(s->await("STATUS="), "STATUS=caught up");
    EXPECT_TRUE(n.stopping());
    EXPECT_EQ(s->await("STOPPING=1"), "STOPPING=1");
  }
}

TEST_F(service_notifier_test, RefusesAddressesThatAreNotUnixSocketNames) {
  for (const std::string& bad :
       std::vector<std::string>{"vsock:2:1234", "relative/path", std::string(200, '/')}) {
    ::setenv("NOTIFY_SOCKET", bad.c_str(), 1);
    shmlog::service_notifier n = shmlog::service_notifier::from_environment();
    EXPECT_FALSE(n.enabled()) << bad;
    EXPECT_TRUE(contains(n.problem(), "not notifying")) << n.problem();
    EXPECT_FALSE(n.notify("READY=1"));
  }
}

TEST_F(service_notifier_test, NeverBlocksOnAManagerThatIsGoneOrFull) {
  // Nothing bound there: the send fails at once.
  shmlog::service_notifier gone(dir_.file("nobody"));
  ASSERT_TRUE(gone.enabled());
  EXPECT_FALSE(gone.notify("READY=1"));
  // A manager that reads nothing: its queue fills, and the sends fail rather than wait.
  notify_socket full(dir_.file("full"));
  shmlog::service_notifier n(full.address());
  int sent = 0;
  int refused = 0;
  for (int i = 0; i < 10'000 && refused == 0; ++i)
    (n.status("message " + std::to_string(i)) ? sent : refused) += 1;
  EXPECT_GT(sent, 0);
  EXPECT_EQ(refused, 1);
}

TEST_F(service_notifier_test, WatchdogFollowsWatchdogUsecAndWatchdogPid) {
  notify_socket s(dir_.file("notify"));
  ::setenv("NOTIFY_SOCKET", s.address().c_str(), 1);
  ::setenv("WATCHDOG_USEC", "30000000", 1);
  EXPECT_EQ(shmlog::service_notifier::from_environment().watchdog_timeout(), 30s);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  EXPECT_EQ(shmlog::service_notifier::from_environment().watchdog_timeout(), 30s);
  // Another process's watchdog (this one is the child of the unit's main process).
  ::setenv("WATCHDOG_PID", std::to_string(::getppid()).c_str(), 1);
  shmlog::service_notifier child = shmlog::service_notifier::from_environment();
  EXPECT_EQ(child.watchdog_timeout().count(), 0);
  EXPECT_FALSE(child.keep_alive());
  ::unsetenv("WATCHDOG_PID");
  for (const char* bad : {"", "0", "-5", "12abc", "99999999999999999999999"}) {
    ::setenv("WATCHDOG_USEC", bad, 1);
    EXPECT_EQ(shmlog::service_notifier::from_environment().watchdog_timeout().count(), 0) << bad;
  }
  // At most one ping per half timeout: the first at once, the second not yet.
  shmlog::service_notifier n(s.address(), 1h);
  EXPECT_TRUE(n.keep_alive());
  EXPECT_EQ(s.await("WATCHDOG=1"), "WATCHDOG=1");
  EXPECT_FALSE(n.keep_alive());
}

// --- the units
// ------------------------------------------------------------------------------------

class service_units : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }

  // NOTIFY_SOCKET (and the watchdog: 200 ms, a ping every 100 ms or so) for the unit's daemon.
  std::vector<std::string> notify_env(bool watchdog = true) const {
    std::vector<std::string> env{"NOTIFY_SOCKET=" + notify_.address()};
    if (watchdog) env.push_back("WATCHDOG_USEC=200000");
    return env;
  }

  // SIGHUP is logged and survived (a WATCHDOG=1 after it proves the loop still turns), then
  // SIGTERM brings STOPPING=1 and exit status 0.
  void expect_hangup_survived_and_clean_stop(unit_daemon& d) {
    ASSERT_TRUE(d.signal(SIGHUP));
    EXPECT_TRUE(contains(d.await_err("SIGHUP"), "ignored"));
    notify_.await("WATCHDOG=1");
    EXPECT_TRUE(d.running());
    EXPECT_FALSE(notify_.received("STOPPING=1"));
    ASSERT_TRUE(d.signal(SIGTERM));
    EXPECT_TRUE(contains(notify_.await("STOPPING=1"), "STATUS=stopping"));
    EXPECT_EQ(d.wait_exit(), 0) << d.err();
  }

  scoped_log log_{unique_log_name("svc")};
  scratch_dir snapshots_;
  scratch_dir state_root_;  // %S
  scratch_dir sockets_;
  notify_socket notify_{sockets_.file("notify")};
};

TEST_F(service_units, ReplicaIsReadyOnlyOnceItServesAndStopsCleanly) {
  // Started before the log exists: it waits (the unit's WAIT_FOR_LOG) and is not ready yet.
  unit_daemon d("shmlog-replica@.service", log_.name(), state_root_.path(),
                {{"SNAPSHOT_DIR", snapshots_.str()}, {"WAIT_FOR_LOG", "60"}}, notify_env());
  d.await_err("waiting up to 60000 ms for log '" + log_.name() + "'");
  EXPECT_TRUE(contains(notify_.await("STATUS="), "waiting for log"));
  EXPECT_FALSE(notify_.received("READY=1"));

  producer_process p(log_.name(), snapshots_.str(), {"--mode", "0660", "--capacity", "64K"});
  p.produce("SET colour blue\nINCR hits\n");
  const std::string ready = notify_.await("READY=1");
  // Ready means a state loaded and queries answered: the resync was logged before, and the
  // replica answers `shmlog get` now.
  EXPECT_TRUE(contains(d.err(), "full_resync_done")) << d.err();
  EXPECT_TRUE(contains(ready, "STATUS=offset ")) << ready;
  shmlog::subprocess::child get({.argv = {SHMLOG_CLI, "get", log_.name(), "colour"},
                                 .stdin_mode = shmlog::subprocess::stream_mode::null,
                                 .stderr_mode = shmlog::subprocess::stream_mode::pipe,
                                 .default_signals = {SIGPIPE},
                                 .parent_death_signal = SIGKILL});
  const std::optional<int> got = get.communicate({}, clock_type::now() + patience);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(exit_code(*got), 0) << get.err().transcript();
  EXPECT_EQ(get.out().transcript(), "blue\n");

  // The watchdog is pinged, and the status follows the replica's offset and lag.
  notify_.await("WATCHDOG=1");
  notify_.await("WATCHDOG=1");
  p.produce("SET colour green\n");
  const std::uint64_t master = shmlog::inspect(log_.name()).window.master_offset;
  notify_.await_prefix("STATUS=offset " + std::to_string(master) + ", lag 0 bytes; ");

  expect_hangup_survived_and_clean_stop(d);
  // The unit's --state-file, in its StateDirectory=, was saved on the way out.
  EXPECT_TRUE(fs::exists(state_root_.path() / "shmlog-replica" / log_.name() / "state"));
}

TEST_F(service_units, ReplicaStoppedBeforeTheLogExistsSaysStopping) {
  unit_daemon d("shmlog-replica@.service", log_.name(), state_root_.path(),
                {{"SNAPSHOT_DIR", snapshots_.str()}}, notify_env(false));
  d.await_err("waiting up to");
  ASSERT_TRUE(d.signal(SIGTERM));
  EXPECT_TRUE(contains(notify_.await("STOPPING=1"), "before log"));
  EXPECT_EQ(d.wait_exit(), 0) << d.err();
  EXPECT_FALSE(notify_.received("READY=1"));
  EXPECT_FALSE(notify_.received("WATCHDOG=1"));  // no WATCHDOG_USEC, no pings
}

TEST_F(service_units, ShipAndMirrorAreReadyOnceStreamingAndStopCleanly) {
  redis_server redis;
  producer_process p(log_.name(), snapshots_.str(), {"--capacity", "64K"});
  p.produce("SET a 1\nSET b 2\n");

  unit_daemon ship("shmlog-ship@.service", log_.name(), state_root_.path(),
                   {{"SHMLOG_REDIS_URL", redis.url()}, {"SNAPSHOT_DIR", snapshots_.str()}},
                   notify_env());
  // The URL (a password in it) reaches the daemon in its environment, never its command line.
  for (const std::string& arg : ship.argv())
    EXPECT_FALSE(contains(arg, "redis://")) << arg;
  const std::string ready = notify_.await("READY=1", [&] { return ship.err(); });
  EXPECT_TRUE(contains(ship.err(), "shipping log '" + log_.name() + "'")) << ship.err();
  EXPECT_TRUE(contains(ready, "STATUS=streaming")) << ready;
  notify_.await("WATCHDOG=1");
  expect_hangup_survived_and_clean_stop(ship);

  // The mirror of the same key as local log B, on its own socket.
  scoped_log b(unique_log_name("svcb"));
  notify_socket mirror_notify(sockets_.file("mirror-notify"));
  unit_daemon ship_again("shmlog-ship@.service", log_.name(), state_root_.path(),
                         {{"SHMLOG_REDIS_URL", redis.url()}, {"SNAPSHOT_DIR", snapshots_.str()}},
                         notify_env());
  notify_.await("READY=1", [&] { return ship_again.err(); });
  unit_daemon mirror(
      "shmlog-mirror@.service", b.name(), state_root_.path(),
      {{"SHMLOG_REDIS_URL", redis.url()}, {"MIRROR_OPTIONS", "--key " + log_.name()}},
      {"NOTIFY_SOCKET=" + mirror_notify.address(), "WATCHDOG_USEC=200000"});
  EXPECT_TRUE(
      contains(mirror_notify.await("READY=1", [&] { return mirror.err(); }), "STATUS=streaming"));
  EXPECT_TRUE(contains(mirror.err(), "created local log '" + b.name() + "'")) << mirror.err();
  // The unit's LOG_MODE (0660) on the log the mirror created, and its snapshot directory made
  // by StateDirectory=.
  struct stat st {};
  ASSERT_EQ(::stat(("/dev/shm/" + b.name()).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_TRUE(fs::is_directory(state_root_.path() / "shmlog-mirror" / b.name()));
  mirror_notify.await("WATCHDOG=1");
  ASSERT_TRUE(mirror.signal(SIGHUP));
  EXPECT_TRUE(contains(mirror.await_err("SIGHUP"), "ignored"));
  mirror_notify.await("WATCHDOG=1");
  EXPECT_TRUE(mirror.running());
  ASSERT_TRUE(mirror.signal(SIGTERM));
  EXPECT_TRUE(contains(mirror_notify.await("STOPPING=1"), "STATUS=stopping at offset"));
  EXPECT_EQ(mirror.wait_exit(), 0) << mirror.err();
  ASSERT_TRUE(ship_again.signal(SIGTERM));
  EXPECT_EQ(ship_again.wait_exit(), 0) << ship_again.err();
}

// --- produce: --mode, and SIGHUP
// ------------------------------------------------------------------

class produce_service : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }
  scoped_log log_{unique_log_name("svcp")};
  scratch_dir snapshots_;
};

TEST_F(produce_service, ModeGivesTheNewLogItsPermissionsAndIsCheckedOnAnExistingOne) {
  {
    producer_process p(log_.name(), snapshots_.str(), {"--mode", "0660"});
    p.produce("SET k v\n");
    struct stat st {};
    ASSERT_EQ(::stat(("/dev/shm/" + log_.name()).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    EXPECT_EQ(shmlog::inspect(log_.name()).mode & 0777, 0660u);
    p.child().close_stdin();
    const std::optional<int> status = p.child().wait(clock_type::now() + patience);
    ASSERT_TRUE(status.has_value());
    EXPECT_EQ(exit_code(*status), 0) << p.err();
  }
  const auto run = [&](std::vector<std::string> more) {
    std::vector<std::string> argv{SHMLOG_CLI, "produce", log_.name(), "--snapshot-dir",
                                  snapshots_.str()};
    argv.insert(argv.end(), more.begin(), more.end());
    shmlog::subprocess::child c({.argv = std::move(argv),
                                 .stdin_mode = shmlog::subprocess::stream_mode::null,
                                 .stderr_mode = shmlog::subprocess::stream_mode::pipe,
                                 .default_signals = {SIGPIPE},
                                 .parent_death_signal = SIGKILL});
    const std::optional<int> status = c.communicate({}, clock_type::now() + patience);
    if (!status) throw std::runtime_error("produce did not end");
    return std::pair(exit_code(*status), c.err().transcript());
  };
  // The same mode again is fine; another one is refused, saying what to do.
  EXPECT_EQ(run({"--mode", "660"}).first, 0);
  const auto [status, err] = run({"--mode", "0600"});
  EXPECT_EQ(status, 1);
  EXPECT_TRUE(contains(err, "exists with mode 0660, not 0600 (--mode applies to a new log")) << err;
  const auto [bad, bad_err] = run({"--mode", "0999"});
  EXPECT_EQ(bad, 2);
  EXPECT_TRUE(contains(bad_err, "bad --mode '0999'")) << bad_err;
}

TEST_F(produce_service, HangupStopsProduceCleanlyUnlessItWasIgnoredAtStart) {
  {
    producer_process p(log_.name(), snapshots_.str());
    p.produce("SET k v\n");
    ASSERT_TRUE(p.child().signal(SIGHUP));
    const std::optional<int> status = p.child().wait(clock_type::now() + patience);
    ASSERT_TRUE(status.has_value());
    EXPECT_EQ(exit_code(*status), 0) << p.err();
    // Its snapshot on the way out, as for SIGTERM.
    EXPECT_EQ(shmlog::inspect(log_.name()).snapshot.offset,
              shmlog::inspect(log_.name()).window.master_offset);
  }
  // Started with SIGHUP ignored (nohup): it stays ignored.
  ::signal(SIGHUP, SIG_IGN);
  std::unique_ptr<producer_process> p;
  try {
    p = std::make_unique<producer_process>(log_.name(), snapshots_.str());
  } catch (...) {
    ::signal(SIGHUP, SIG_DFL);
    throw;
  }
  ::signal(SIGHUP, SIG_DFL);
  ASSERT_TRUE(p->child().signal(SIGHUP));
  p->produce("SET k w\n");  // still applying commands after the SIGHUP
  EXPECT_FALSE(p->child().try_reap());
  p->child().close_stdin();
  const std::optional<int> status = p->child().wait(clock_type::now() + patience);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(exit_code(*status), 0) << p->err();
}

}  // namespace
