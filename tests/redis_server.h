// A real redis-server for one test: on a free port of 127.0.0.1, with no persistence (--save ''
// --appendonly no) and its files in a scratch directory, started through support/subprocess and
// stopped by pid. Tests of the Redis engine and of ship/mirror use it; nothing is mocked.
//
// When redis-server is not installed the constructor throws a message that says so (CI installs
// it with tools/install-deps.sh): a Redis test fails, it never skips.
#pragma once

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "subprocess/subprocess.h"

namespace shmlog::test {

// A reply as plain data, for tests that look at Redis directly.
struct redis_value {
  int type = REDIS_REPLY_NIL;  // REDIS_REPLY_*
  std::string str;             // string, status or error text
  long long integer = 0;
  std::vector<redis_value> elements;

  bool is_error() const { return type == REDIS_REPLY_ERROR; }
  bool is_nil() const { return type == REDIS_REPLY_NIL; }
};

class redis_server {
 public:
  using clock = std::chrono::steady_clock;

  // Starts the server with `extra_args` after the fixed ones (e.g. {"--requirepass", "pw"} or
  // {"--replicaof", "127.0.0.1", "6379"}) and returns once it answers PING.
  explicit redis_server(std::vector<std::string> extra_args = {})
      : program_(find_program()), extra_args_(std::move(extra_args)) {
    for (std::size_t i = 0; i + 1 < extra_args_.size(); ++i)
      if (extra_args_[i] == "--requirepass") password_ = extra_args_[i + 1];
    char dir[] = "/tmp/shmlog-redis-XXXXXX";
    if (::mkdtemp(dir) == nullptr) throw std::runtime_error("redis_server: mkdtemp failed");
    dir_ = dir;
    // A port freed by bind(0) may be taken by someone else before redis-server binds it.
    for (int attempt = 0;; ++attempt) {
      port_ = free_port();
      if (start() || attempt == 4) break;
    }
    if (child_.pid() <= 0 || child_.reaped()) fail("did not start");
  }

  ~redis_server() {
    shut_down();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return child_.pid(); }
  // redis://[userinfo@]127.0.0.1:port[/db]
  std::string url(std::string_view userinfo = "", std::string_view db = "") const {
    std::string out = "redis://";
    if (!userinfo.empty()) out += std::string(userinfo) + "@";
    out += "127.0.0.1:" + std::to_string(port_);
    if (!db.empty()) out += "/" + std::string(db);
    return out;
  }
  // The URL's endpoint form, as the engine reports it (no password).
  std::string endpoint() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }

  // SIGSTOP: the server holds its connections and answers nothing until resume().
  void stop() {
    if (!child_.stop()) fail("did not stop on SIGSTOP");
    stopped_ = true;
  }
  void resume() {
    child_.signal(SIGCONT);
    stopped_ = false;
  }
  // SIGKILL and reap: the server is gone, its data with it.
  void kill() {
    child_.kill_and_reap();
    stopped_ = false;
  }
  // The server killed (if it runs) and started again on the same port, empty.
  void restart_empty() {
    kill();
    if (!start()) fail("did not start again on port " + std::to_string(port_));
  }

  // One command on a fresh connection, authenticated with --requirepass if there was one.
  // Throws if the server cannot be reached; an error reply is returned, not thrown.
  redis_value command(const std::vector<std::string>& args) const {
    redisContext* c = connect(std::chrono::milliseconds(2000));
    if (c == nullptr) fail("cannot be reached for " + args.at(0));
    redis_value out;
    if (!password_.empty()) {
      out = run(c, {"AUTH", password_});
      if (out.is_error()) {
        redisFree(c);
        fail("refused AUTH: " + out.str);
      }
    }
    out = run(c, args);
    redisFree(c);
    return out;
  }

  // The server's log, for failure messages.
  std::string log() const {
    std::ifstream in(dir_ / "redis.log");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  static std::string find_program() {
    const char* path = std::getenv("PATH");
    std::string_view dirs = path != nullptr ? path : "/usr/bin:/bin";
    for (;;) {
      const std::size_t colon = dirs.find(':');
      const std::filesystem::path candidate =
          std::filesystem::path(std::string(dirs.substr(0, colon))) / "redis-server";
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
      if (colon == std::string_view::npos) break;
      dirs.remove_prefix(colon + 1);
    }
    throw std::runtime_error(
        "redis-server is not installed (not found in PATH): the Redis tests need a real server; "
        "install it with tools/install-deps.sh (Debian package redis-server)");
  }

  // A port nobody listens on now: bind port 0, read what the kernel chose, release it.
  static int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("redis_server: socket failed");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof address;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      ::close(fd);
      throw std::runtime_error("redis_server: cannot find a free port");
    }
    ::close(fd);
    return ntohs(address.sin_port);
  }

  // Starts redis-server on port_ and waits (under a deadline) until it answers PING. False if
  // it exited because the port was taken; throws on any other failure.
  bool start() {
    std::vector<std::string> argv = {program_, "--port", std::to_string(port_)};
    for (const char* a :
         {"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir"})
      argv.push_back(a);
    argv.push_back(dir_.string());
    argv.push_back("--logfile");
    argv.push_back((dir_ / "redis.log").string());
    argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
    std::filesystem::remove(dir_ / "redis.log");
    subprocess::spawn_options options{.program = program_,
                                      .argv = std::move(argv),
                                      .stdin_mode = subprocess::stream_mode::null,
                                      .stdout_mode = subprocess::stream_mode::null,
                                      .stderr_mode = subprocess::stream_mode::pipe,
                                      .default_signals = {SIGPIPE},
                                      // A test that dies (an abort, a ctest timeout) leaves no
                                      // server behind.
                                      .parent_death_signal = SIGKILL};
    child_ = subprocess::child(std::move(options));
    const auto deadline = clock::now() + std::chrono::seconds(10);
    for (;;) {
      if (child_.try_reap()) {
        child_.err().read_available();
        if (log().find("Address already in use") != std::string::npos) return false;
        fail("exited during startup (" + subprocess::describe_status(child_.status()) + ")");
      }
      if (redisContext* c = connect(std::chrono::milliseconds(200))) {
        // Any reply will do: a server with --requirepass answers NOAUTH, which is an answer.
        const redis_value pong = run(c, {"PING"});
        redisFree(c);
        if (pong.type != REDIS_REPLY_NIL) return true;
      }
      if (clock::now() > deadline) fail("did not answer PING within 10 s");
      // The poll interval of a condition polled under a deadline, not a synchronisation.
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  void shut_down() noexcept {
    if (child_.pid() <= 0 || child_.reaped()) return;
    if (stopped_) child_.signal(SIGCONT);
    child_.signal(SIGTERM);
    if (!child_.wait(clock::now() + std::chrono::seconds(5))) child_.kill_and_reap();
  }

  // nullptr if the server cannot be reached.
  redisContext* connect(std::chrono::milliseconds timeout) const {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>(timeout.count() % 1000 * 1000);
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
    if (c != nullptr && c->err == 0 && redisSetTimeout(c, tv) == REDIS_OK) return c;
    if (c != nullptr) redisFree(c);
    return nullptr;
  }

  static redis_value convert(const redisReply* r) {
    redis_value v;
    v.type = r->type;
    if (r->str != nullptr) v.str.assign(r->str, r->len);
    v.integer = r->integer;
    for (std::size_t i = 0; i < r->elements; ++i)
      v.elements.push_back(convert(r->element[i]));
    return v;
  }

  // The reply, or a nil value if there was none (an I/O error).
  static redis_value run(redisContext* c, const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lengths.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lengths.data()));
    if (r == nullptr) return {};
    redis_value v = convert(r);
    freeReplyObject(r);
    return v;
  }

  [[noreturn]] void fail(const std::string& what) const {
    std::string err = child_.err().transcript();
    throw std::runtime_error("redis-server on port " + std::to_string(port_) + " " + what +
                             "; stderr:\n" + err + "\nlog:\n" + log());
  }

  std::string program_;
  std::vector<std::string> extra_args_;
  std::string password_;
  std::filesystem::path dir_;
  int port_ = 0;
  subprocess::child child_;
  bool stopped_ = false;
};

}  // namespace shmlog::test
