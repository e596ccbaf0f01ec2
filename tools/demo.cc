// shmlog demo: one writer process and N reader processes on a temporary log, with a live status
// line and a verified summary. The processes are this binary re-executed (/proc/self/exe) with
// the hidden commands demo-writer and demo-reader; they report to the parent through pipes.
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "cli.h"
#include "shmlog/shmlog.h"

namespace shmlog::cli {

namespace {

using steady_clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// Records: data records carry a sequence number, bytes derived from it and a CRC-32C, so a
// reader can prove each record is exactly the one written. The last record (end_type) carries
// the total count, so a reader knows when it has seen everything.

constexpr std::size_t payload_size = 64;
constexpr record_type data_type = 1;
constexpr record_type end_type = 2;
constexpr std::uint64_t slow_every = 256;  // the slow reader sleeps 1 ms after this many records
constexpr unsigned max_demo_readers = 16;

using payload_bytes = std::array<std::byte, payload_size>;

void make_payload(std::uint64_t seq, payload_bytes& p) {
  std::memcpy(p.data(), &seq, sizeof seq);
  for (std::size_t i = 8; i < payload_size - 4; ++i)
    p[i] = static_cast<std::byte>((seq * 31 + i * 7) & 0xFF);
  const std::uint32_t crc = crc32c(p.data(), payload_size - 4);
  std::memcpy(p.data() + payload_size - 4, &crc, sizeof crc);
}

// The record's sequence number, or nullopt with the reason in *why if it is not a demo record.
std::optional<std::uint64_t> check_payload(std::span<const std::byte> p, const char** why) {
  if (p.size() != payload_size) {
    *why = "wrong payload size";
    return std::nullopt;
  }
  std::uint32_t crc = 0;
  std::memcpy(&crc, p.data() + payload_size - 4, sizeof crc);
  if (crc != crc32c(p.data(), payload_size - 4)) {
    *why = "checksum mismatch";
    return std::nullopt;
  }
  std::uint64_t seq = 0;
  std::memcpy(&seq, p.data(), sizeof seq);
  for (std::size_t i = 8; i < payload_size - 4; ++i) {
    if (p[i] != static_cast<std::byte>((seq * 31 + i * 7) & 0xFF)) {
      *why = "payload bytes do not match its sequence number";
      return std::nullopt;
    }
  }
  return seq;
}

std::uint64_t elapsed_ns(steady_clock::time_point since) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(steady_clock::now() - since).count());
}

// Children report "key value ..." lines to the parent on stdout.
void report_line(const std::string& line) {
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// demo-writer NAME --seconds S --rate R

int run_demo_writer(std::span<const std::string> argv) {
  const parsed_args args = parse_args(argv, {{"seconds", true}, {"rate", true}});
  const std::string& name = single_name(args, "shmlog demo-writer NAME --seconds S --rate R");
  const double seconds = parse_seconds("seconds", args.value("seconds").value_or("5"), 3600);
  const std::uint64_t rate =
      parse_unsigned("rate", args.value("rate").value_or("0"), 0, 1'000'000'000);
  catch_stop_signals();
  writer w = writer::open(name);

  payload_bytes payload;
  const auto start = steady_clock::now();
  const auto end = start + std::chrono::duration_cast<steady_clock::duration>(
                               std::chrono::duration<double>(seconds));
  auto next_report = start + 100ms;
  std::uint64_t count = 0;
  while (!stop_requested()) {
    const auto now = steady_clock::now();
    if (now >= end) break;
    if (now >= next_report) {
      report_line("progress " + std::to_string(count) + " " + std::to_string(elapsed_ns(start)));
      next_report += 100ms;
    }
    // Flat out: a burst between clock checks. Paced: catch up with the schedule, then sleep.
    std::uint64_t target = count + 256;
    if (rate != 0) {
      const double due = std::chrono::duration<double>(now - start).count() * double(rate);
      target = std::min(target, static_cast<std::uint64_t>(due) + 1);
      if (count >= target) {
        std::this_thread::sleep_for(std::min<steady_clock::duration>(1ms, end - now));
        continue;
      }
    }
    for (; count < target; ++count) {
      make_payload(count, payload);
      w.append(payload, data_type);
    }
  }
  const std::uint64_t ns = elapsed_ns(start);
  w.append(std::as_bytes(std::span(&count, 1)), end_type);
  report_line("done " + std::to_string(count) + " " + std::to_string(ns));
  return exit_ok;
}

// ---------------------------------------------------------------------------------------------
// demo-reader NAME --index I [--slow]

namespace {

struct verifier {
  int index = 0;
  std::uint64_t expected = 0;  // the next sequence number
  bool resyncing = false;      // lapped since the last good record: a gap is expected
  std::uint64_t read = 0;
  std::uint64_t lost = 0;
  std::uint64_t laps = 0;
  std::uint64_t errors = 0;
  bool complete = false;

  void fail(std::uint64_t offset, const std::string& why) {
    if (++errors <= 5)
      std::fprintf(stderr, "shmlog demo: reader %d: record at offset %" PRIu64 ": %s\n", index,
                   offset, why.c_str());
  }

  void on_data(const record_view& r) {
    const char* why = "";
    const auto seq = check_payload(r.payload, &why);
    if (!seq) return fail(r.offset, why);
    if (*seq > expected && resyncing) {
      lost += *seq - expected;
    } else if (*seq != expected) {
      fail(r.offset,
           "sequence number " + std::to_string(*seq) + ", expected " + std::to_string(expected));
    }
    expected = *seq + 1;
    resyncing = false;
    ++read;
  }

  void on_end(const record_view& r) {
    std::uint64_t total = 0;
    if (r.payload.size() != sizeof total) return fail(r.offset, "malformed end record");
    std::memcpy(&total, r.payload.data(), sizeof total);
    if (resyncing && total >= expected) {
      lost += total - expected;
    } else if (total != expected) {
      fail(r.offset, "the writer wrote " + std::to_string(total) +
                         " records but this reader got "
                         "to " +
                         std::to_string(expected));
    }
    complete = true;
  }
};

}  // namespace

int run_demo_reader(std::span<const std::string> argv) {
  const parsed_args args = parse_args(argv, {{"index", true}, {"slow", false}});
  const std::string& name = single_name(args, "shmlog demo-reader NAME --index I [--slow]");
  verifier v;
  v.index = static_cast<int>(parse_unsigned("index", args.value("index").value_or("0"), 0, 99));
  const bool slow = args.has("slow");
  catch_stop_signals();
  reader r = reader::attach(
      name, {.start = start_position::oldest(), .label = slow ? "demo-slow" : "demo-fast"});
  std::vector<std::byte> buffer;
  while (!v.complete && !stop_requested()) {
    const poll_result p = r.poll_copy(buffer);
    switch (p.status) {
      case poll_status::record:
        if (p.record.type == end_type)
          v.on_end(p.record);
        else
          v.on_data(p.record);
        if (slow && v.read % slow_every == 0) std::this_thread::sleep_for(1ms);
        break;
      case poll_status::empty:
        r.wait(100ms);
        break;
      case poll_status::lapped:
        // The writer overwrote what we had not read: resume at the oldest record held; the gap
        // in sequence numbers is what we lost.
        ++v.laps;
        v.resyncing = true;
        r.seek_oldest();
        break;
      case poll_status::corrupt:
        v.fail(p.corruption.offset, p.corruption.reason);
        v.resyncing = true;
        r.skip_corruption();
        break;
      case poll_status::history_changed:  // the demo's one writer never restarts
        v.fail(r.offset(), "the log's history changed");
        v.resyncing = true;
        r.seek_oldest();
        break;
    }
  }
  report_line("result " + std::to_string(v.read) + " " + std::to_string(v.lost) + " " +
              std::to_string(v.laps) + " " + std::to_string(v.errors) + " " +
              (v.complete ? "1" : "0"));
  return v.errors == 0 ? exit_ok : exit_failure;
}

// ---------------------------------------------------------------------------------------------
// demo: the parent

namespace {

struct demo_config {
  double seconds = 5;
  // Records per second; 0: flat out. The default is well within what a reader keeps up with
  // on a small machine, so the fast reader shows the normal case and the slow one the lapped.
  std::uint64_t rate = 1'000'000;
  std::uint64_t capacity = 1 << 20;
  unsigned readers = 2;
};

demo_config demo_config_from(const parsed_args& args) {
  demo_config c;
  if (!args.positionals.empty())
    throw usage_error("unexpected argument '" + one_line(args.positionals.front()) + "'");
  if (const auto s = args.value("seconds")) c.seconds = parse_seconds("seconds", *s, 3600);
  if (const auto r = args.value("rate")) c.rate = parse_unsigned("rate", *r, 0, 1'000'000'000);
  if (const auto s = args.value("capacity")) c.capacity = parse_size("capacity", *s);
  if (const auto n = args.value("readers"))
    c.readers = static_cast<unsigned>(parse_unsigned("readers", *n, 1, max_demo_readers));
  validate_create_options({.capacity = c.capacity});
  return c;
}

// One process of the demo, as the parent sees it.
struct child {
  std::string role;  // "writer", "reader 0", ...
  pid_t pid = -1;
  int out = -1;                   // read end of its stdout; -1 at end of file
  std::string pending;            // bytes after the last newline
  std::vector<std::string> last;  // the words of its last complete line
  bool exited = false;
  int status = 0;
  std::uint64_t prev_records = 0;  // reader records at the previous status line
  std::uint64_t max_lag = 0;       // largest lag seen at a status line

  bool running() const { return !exited || out >= 0; }
  std::uint64_t word(std::size_t i) const {
    return i < last.size() ? std::strtoull(last[i].c_str(), nullptr, 10) : 0;
  }
};

// Starts this binary with `args` as a child in its own process group (so the terminal's ^C
// reaches only the parent, which then stops the writer and lets the readers finish), dying
// with the parent if the parent dies first.
child spawn_self(const std::string& role, std::vector<std::string> args) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw command_failure(exit_failure, std::string("pipe failed: ") + std::strerror(errno));
  args.insert(args.begin(), "shmlog");
  std::vector<char*> argv;
  for (std::string& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0)
    throw command_failure(exit_failure, std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    ::dup2(fds[1], STDOUT_FILENO);
    const int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, STDIN_FILENO);
    ::execv("/proc/self/exe", argv.data());
    const char msg[] = "shmlog demo: cannot run /proc/self/exe\n";
    [[maybe_unused]] auto ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::close(fds[1]);
  child c;
  c.role = role;
  c.pid = pid;
  c.out = fds[0];
  return c;
}

void read_output(child& c) {
  char buf[4096];
  const ssize_t n = ::read(c.out, buf, sizeof buf);
  if (n <= 0) {
    if (n < 0 && errno == EINTR) return;
    ::close(c.out);
    c.out = -1;
    return;
  }
  c.pending.append(buf, static_cast<std::size_t>(n));
  for (std::size_t nl; (nl = c.pending.find('\n')) != std::string::npos;) {
    std::istringstream words(c.pending.substr(0, nl));
    c.last.clear();
    for (std::string w; words >> w;)
      c.last.push_back(w);
    c.pending.erase(0, nl + 1);
  }
}

void reap(child& c) {
  if (c.exited) return;
  int status = 0;
  if (::waitpid(c.pid, &status, WNOHANG) == c.pid) {
    c.exited = true;
    c.status = status;
  }
}

// Waits up to `timeout` for output from any child, then reaps those that exited.
void pump(std::vector<child>& children, std::chrono::milliseconds timeout) {
  std::vector<pollfd> fds;
  std::vector<child*> owners;
  for (child& c : children) {
    if (c.out < 0) continue;
    fds.push_back({c.out, POLLIN, 0});
    owners.push_back(&c);
  }
  const int ms = static_cast<int>(std::max<std::int64_t>(0, timeout.count()));
  if (::poll(fds.data(), fds.size(), fds.empty() ? std::min(ms, 10) : ms) > 0) {
    for (std::size_t i = 0; i < fds.size(); ++i)
      if (fds[i].revents != 0) read_output(*owners[i]);
  }
  for (child& c : children)
    reap(c);
}

// Kills and reaps whatever is still running and removes the log, however run_demo ends.
class demo_cleanup {
 public:
  demo_cleanup(std::string name, std::vector<child>& children)
      : name_(std::move(name)), children_(children) {}
  ~demo_cleanup() {
    for (child& c : children_) {
      if (!c.exited) {
        ::kill(c.pid, SIGKILL);
        ::waitpid(c.pid, nullptr, 0);
      }
      if (c.out >= 0) ::close(c.out);
    }
    try {
      destroy(name_);
    } catch (...) {
    }
  }
  demo_cleanup(const demo_cleanup&) = delete;
  demo_cleanup& operator=(const demo_cleanup&) = delete;

 private:
  std::string name_;
  std::vector<child>& children_;
};

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by ") + strsignal(WTERMSIG(status));
  return "ended";
}

void wait_for_readers(const std::string& name, std::vector<child>& children, unsigned count) {
  const auto give_up = steady_clock::now() + 10s;
  while (inspect(name).readers.size() < count) {
    for (child& c : children) {
      reap(c);
      if (c.exited)
        throw command_failure(exit_failure,
                              c.role + " " + describe_exit(c.status) + " before attaching");
    }
    if (steady_clock::now() > give_up)
      throw command_failure(exit_failure, "the readers did not attach within 10 s");
    std::this_thread::sleep_for(1ms);
  }
}

class status_printer {
 public:
  status_printer(const std::string& name, steady_clock::time_point start)
      : name_(name), start_(start) {}

  void print(child& writer, std::span<child> readers) {
    const auto now = steady_clock::now();
    const double dt = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    std::string line;
    char head[32];
    std::snprintf(head, sizeof head, "[%5.1fs] ",
                  std::chrono::duration<double>(now - start_).count());
    line += head;
    // The writer reports its own count and clock; its rate is exact for its interval.
    const std::uint64_t count = writer.word(1);
    const std::uint64_t ns = writer.word(2);
    const double wdt = double(ns - prev_writer_ns_) / 1e9;
    line += "writer " + (wdt > 0 ? human_count(double(count - prev_writer_count_) / wdt) : "0") +
            " rec/s";
    prev_writer_count_ = count;
    prev_writer_ns_ = ns;
    std::map<std::uint32_t, reader_info> by_pid;
    for (reader_info& r : inspect(name_).readers)
      by_pid[r.pid] = std::move(r);
    for (child& c : readers) {
      line += " | " + c.role + ": ";
      const auto it = by_pid.find(static_cast<std::uint32_t>(c.pid));
      if (it == by_pid.end()) {
        line += "done";
        continue;
      }
      const reader_info& r = it->second;
      line += human_count(double(r.records - c.prev_records) / dt) + " rec/s, lag " +
              human_bytes(double(r.lag_bytes)) + ", laps " + std::to_string(r.lapped);
      c.prev_records = r.records;
      c.max_lag = std::max(c.max_lag, r.lag_bytes);
    }
    std::puts(line.c_str());
    std::fflush(stdout);
  }

 private:
  std::string name_;
  steady_clock::time_point start_;
  steady_clock::time_point last_ = steady_clock::now();
  std::uint64_t prev_writer_count_ = 0;
  std::uint64_t prev_writer_ns_ = 0;
};

// Runs until every child has exited: stops the writer on ^C, gives the readers time to drain.
void monitor(const std::string& name, std::vector<child>& children) {
  child& writer = children.back();
  const std::span<child> readers(children.data(), children.size() - 1);
  status_printer status(name, steady_clock::now());
  auto next_tick = steady_clock::now() + 1s;
  std::optional<steady_clock::time_point> drain_deadline;
  bool writer_stopped = false;
  bool readers_stopped = false;
  for (;;) {
    const auto now = steady_clock::now();
    pump(children, std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - now));
    if (stop_requested() && !writer_stopped) {
      std::puts("interrupted: stopping the writer; the readers finish what is held");
      ::kill(writer.pid, SIGTERM);
      writer_stopped = true;
    }
    if (writer.exited && !drain_deadline) drain_deadline = steady_clock::now() + 10s;
    if (drain_deadline && steady_clock::now() > *drain_deadline && !readers_stopped) {
      std::puts("the readers did not finish within 10 s of the writer: stopping them");
      for (child& r : readers)
        if (!r.exited) ::kill(r.pid, SIGTERM);
      readers_stopped = true;
    }
    if (std::none_of(children.begin(), children.end(), [](const child& c) { return c.running(); }))
      return;
    if (steady_clock::now() >= next_tick) {
      status.print(writer, readers);
      next_tick += 1s;
    }
  }
}

bool exited_ok(const child& c) {
  return WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0;
}

// One reader's summary line; returns whether it verified everything and accounted for every
// record the writer wrote (read + lost == total).
bool print_reader_summary(const child& c, std::optional<std::uint64_t> total,
                          std::uint64_t& errors) {
  const bool reported = c.last.size() == 6 && c.last[0] == "result";
  if (!reported || !WIFEXITED(c.status)) {
    std::printf("  %-15s: FAILED (%s)\n", c.role.c_str(), describe_exit(c.status).c_str());
    return false;
  }
  const std::uint64_t read = c.word(1), lost = c.word(2), laps = c.word(3), errs = c.word(4);
  const bool complete = c.word(5) == 1;
  const bool adds_up = !total || !complete || read + lost == *total;
  errors += errs;
  std::printf("  %-15s: read %s, lost %s to %s lap%s, largest lag seen %s, %s error%s%s%s\n",
              c.role.c_str(), grouped(read).c_str(), grouped(lost).c_str(), grouped(laps).c_str(),
              laps == 1 ? "" : "s", human_bytes(double(c.max_lag)).c_str(), grouped(errs).c_str(),
              errs == 1 ? "" : "s", complete ? "" : ", did not reach the end",
              adds_up ? "" : ", COUNTS DO NOT ADD UP");
  return errs == 0 && complete && adds_up && exited_ok(c);
}

// The writer's summary line; returns its total, or nullopt if it failed.
std::optional<std::uint64_t> print_writer_summary(const child& writer) {
  if (!exited_ok(writer) || writer.last.size() != 3 || writer.last[0] != "done") {
    std::printf("  writer         : FAILED (%s)\n", describe_exit(writer.status).c_str());
    return std::nullopt;
  }
  const std::uint64_t total = writer.word(1);
  const double seconds = double(writer.word(2)) / 1e9;
  std::printf("  writer         : %s records in %.2f s, %s records/s (%s/s of %zu-byte records)\n",
              grouped(total).c_str(), seconds, human_count(double(total) / seconds).c_str(),
              human_bytes(double(total * record_frame_size(payload_size)) / seconds).c_str(),
              payload_size);
  return total;
}

// Prints the summary; returns whether every record every reader accepted was verified.
bool print_summary(const demo_config& config, const std::vector<child>& children) {
  std::printf("\nsummary\n");
  const std::optional<std::uint64_t> total = print_writer_summary(children.back());
  bool ok = total.has_value();
  std::uint64_t errors = 0;
  for (std::size_t i = 0; i + 1 < children.size(); ++i)
    ok = print_reader_summary(children[i], total, errors) && ok;
  std::printf("  capacity       : %s; %s\n", human_bytes(double(config.capacity)).c_str(),
              config.rate ? ("paced at " + grouped(config.rate) + " records/s").c_str()
                          : "writer ran flat out");
  if (ok)
    std::printf(
        "verification: OK (every record read was exactly the one written, in order; "
        "%s verification errors)\n",
        grouped(errors).c_str());
  else
    std::printf("verification: FAILED (%s verification errors)\n", grouped(errors).c_str());
  return ok;
}

}  // namespace

int run_demo(std::span<const std::string> argv) {
  const parsed_args args =
      parse_args(argv, {{"seconds", true}, {"rate", true}, {"capacity", true}, {"readers", true}});
  if (args.has("help")) {
    std::puts("usage: shmlog demo [--seconds S] [--rate R] [--capacity SIZE] [--readers N]");
    return exit_ok;
  }
  const demo_config config = demo_config_from(args);
  catch_stop_signals();
  const std::string name = "shmlog-demo-" + std::to_string(::getpid()) + "-" +
                           std::to_string(steady_clock::now().time_since_epoch().count() % 1000000);
  create(name, {.capacity = config.capacity, .reader_slots = std::max(64u, config.readers)});
  std::vector<child> children;
  children.reserve(config.readers + 1);
  demo_cleanup cleanup(name, children);

  const bool has_slow = config.readers >= 2;
  std::printf("shmlog demo: 1 writer and %u reader process%s on log '%s' (capacity %s), %g s, %s\n",
              config.readers, config.readers == 1 ? "" : "es", name.c_str(),
              human_bytes(double(config.capacity)).c_str(), config.seconds,
              config.rate ? (grouped(config.rate) + " records/s").c_str() : "writing flat out");
  if (has_slow)
    std::printf("reader %u sleeps 1 ms every %" PRIu64
                " records, so it lags and may be lapped; a lapped reader resumes at the oldest "
                "record held and counts what it lost\n",
                config.readers - 1, slow_every);
  std::fflush(stdout);
  for (unsigned i = 0; i < config.readers; ++i) {
    std::vector<std::string> a = {"demo-reader", name, "--index", std::to_string(i)};
    if (has_slow && i + 1 == config.readers) a.push_back("--slow");
    const bool slow = has_slow && i + 1 == config.readers;
    children.push_back(spawn_self("reader " + std::to_string(i) + (slow ? " (slow)" : ""), a));
  }
  wait_for_readers(name, children, config.readers);
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.3f", config.seconds);
  children.push_back(spawn_self("writer", {"demo-writer", name, "--seconds", seconds, "--rate",
                                           std::to_string(config.rate)}));
  monitor(name, children);
  return print_summary(config, children) ? exit_ok : exit_failure;
}

}  // namespace shmlog::cli
