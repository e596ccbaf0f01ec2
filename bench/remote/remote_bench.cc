// shmlog_remote_bench: remote replication through Redis (docs/remote.md), measured on loopback,
// beside Redis's own master-to-replica replication (docs/benchmarks.md, "Remote replication"):
//
//   latency     a writer appends 32-byte records to log A at a paced rate, a shipper ships them
//               into Redis, a mirror writes them into log B, a reader of B takes the arrival
//               time of each; then the same rate and size through Redis alone: a client XADDs
//               to a master, a second redis-server replicates it (--replicaof), a client of the
//               replica reads with a blocking XREAD
//   throughput  the same pipeline, the writer appending as fast as the shipper takes records
//               (it never gets more than half a ring ahead of the shipper), records arriving
//               at B per second
//   snapshot    a producer whose state saves a 100 MB snapshot, a shipper started after the
//               ring was overrun (it must have the producer save a snapshot and upload it),
//               then a mirror started fresh: time until it created its log at the snapshot's
//               offset
//
//   shmlog_remote_bench [--quick] [--only latency|throughput|snapshot]... [--out FILE]
//                       [--snapshot-mb N] [--snapshot-dir DIR] [--retry-noisy N]
//
// The machine is shared (2 vCPUs): each case also reports the CPU its processes took and what
// every other process took meanwhile; a case that others disturbed is run again, up to
// --retry-noisy times (default 3), and the least disturbed run is kept.
//
// Every role is a process of its own: the parent re-executes this binary (`__child ROLE
// key=value...`), as the multi-process harness does. The shipper and the mirror children run
// shmlog::run_shipper and shmlog::run_mirror, the functions behind `shmlog ship` and `shmlog
// mirror`, with the CLI's defaults; they only add a time stamp (CLOCK_MONOTONIC, the clock every
// role uses) to each log line so the parent can time what they report.
#include <hiredis/hiredis.h>
#include <poll.h>
#include <signal.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../harness/clock.h"
#include "../harness/histogram.h"
#include "../harness/json.h"
#include "redis_server.h"
#include "shmlog/producer.h"
#include "shmlog/reader.h"
#include "shmlog/remote.h"
#include "shmlog/segment.h"
#include "shmlog/snapshot_service.h"
#include "shmlog/state_machine.h"
#include "shmlog/writer.h"
#include "subprocess/subprocess.h"

namespace {

using shmlog::bench::histogram;
using shmlog::bench::json_object;
using shmlog::bench::now_ns;
using args_map = std::map<std::string, std::string>;
namespace subprocess = shmlog::subprocess;

constexpr std::uint64_t sentinel_seq = ~std::uint64_t{0};
constexpr std::size_t record_bytes = 32;

// The 32 bytes every record carries: its sequence number (from 1; the sentinel ends a run) and
// the CLOCK_MONOTONIC time its writer appended it, then filler.
struct stamp {
  std::uint64_t seq = 0;
  std::uint64_t appended_ns = 0;
};

void fill_record(std::byte (&out)[record_bytes], std::uint64_t seq, std::uint64_t t) {
  std::memset(out, 0xab, sizeof out);
  std::memcpy(out, &seq, 8);
  std::memcpy(out + 8, &t, 8);
}

stamp read_stamp(const void* p, std::size_t n) {
  stamp s;
  if (n < 16) return s;
  std::memcpy(&s.seq, p, 8);
  std::memcpy(&s.appended_ns, static_cast<const char*>(p) + 8, 8);
  return s;
}

std::uint64_t u64_arg(const args_map& a, const std::string& k) {
  const auto it = a.find(k);
  if (it == a.end()) throw std::runtime_error("child: missing argument " + k);
  return std::stoull(it->second);
}
std::string str_arg(const args_map& a, const std::string& k) {
  const auto it = a.find(k);
  if (it == a.end()) throw std::runtime_error("child: missing argument " + k);
  return it->second;
}

// --- the child's side: stdout lines to the parent, control lines on stdin ------------------

std::mutex out_mutex;
void say(const std::string& line) {
  const std::lock_guard lock(out_mutex);
  std::string l = line + "\n";
  subprocess::write_all(STDOUT_FILENO, l);
}

class control {
 public:
  control() : in_(STDIN_FILENO, subprocess::line_reader::ownership::borrowed) {}
  // The next control line (nullopt at end of file: the parent is gone or done with us).
  std::optional<std::string> next() { return in_.read_line(); }
  std::uint64_t wait_go() {
    for (;;) {
      const auto l = next();
      if (!l) throw std::runtime_error("child: the parent closed the control pipe before go");
      if (l->rfind("go ", 0) == 0) return std::stoull(l->substr(3));
    }
  }
  // Whether the control pipe has ended (non-blocking look, up to timeout_ms).
  bool closed(int timeout_ms) {
    pollfd p{STDIN_FILENO, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    char c;
    return ::read(STDIN_FILENO, &c, 1) <= 0;
  }

 private:
  subprocess::line_reader in_;
};

void sleep_until_ns(std::uint64_t t) {
  timespec ts{static_cast<time_t>(t / 1'000'000'000u), static_cast<long>(t % 1'000'000'000u)};
  while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

// The pacing both sources share: record i (from 1) is due at t0 + (i - 1) / rate. The source
// sleeps until the next record is due (never spins: on 2 vCPUs a spinning source would take a
// core from the pipeline it measures), then sends every record that is due, as one batch.
// Returns the largest lateness of a batch's first record against its due time.
template <class Send>
std::uint64_t pace(std::uint64_t rate, std::uint64_t t0, std::uint64_t n, Send send) {
  std::uint64_t late_max = 0;
  std::uint64_t i = 1;
  const auto due = [&](std::uint64_t k) { return t0 + (k - 1) * 1'000'000'000u / rate; };
  while (i <= n) {
    std::uint64_t now = now_ns();
    if (now < due(i)) {
      sleep_until_ns(due(i));
      now = now_ns();
    }
    late_max = std::max(late_max, now - due(i));
    std::uint64_t j = i;
    while (j <= n && due(j) <= now)
      ++j;
    send(i, j);
    i = j;
  }
  return late_max;
}

// writer: creates log A, appends a first record (so the stream never starts empty: see
// docs/benchmarks.md), then paced (rate > 0) or flat out behind the shipper (rate = 0).
int child_writer(const args_map& a) {
  const std::string name = str_arg(a, "name");
  const std::uint64_t capacity = u64_arg(a, "capacity");
  const std::uint64_t rate = u64_arg(a, "rate");
  const std::uint64_t run_ns = u64_arg(a, "run_ns");
  const std::uint64_t window = u64_arg(a, "window");
  shmlog::destroy(name);
  shmlog::writer w = shmlog::writer::create(name, {.capacity = capacity});
  std::byte rec[record_bytes];
  fill_record(rec, 0, 0);
  w.append(std::span<const std::byte>(rec, sizeof rec));
  control ctl;
  say("ready");
  const std::uint64_t t0 = ctl.wait_go();
  std::uint64_t appended = 0;
  std::uint64_t late_max = 0;
  std::uint64_t throttled = 0;
  if (rate > 0) {
    const std::uint64_t n = rate * run_ns / 1'000'000'000u;
    late_max = pace(rate, t0, n, [&](std::uint64_t i, std::uint64_t j) {
      for (; i < j; ++i) {
        fill_record(rec, i, now_ns());
        w.append(std::span<const std::byte>(rec, sizeof rec));
      }
    });
    appended = n;
  } else {
    // Flat out, but never more than `window` bytes ahead of the shipper (the only reader of
    // A): the writer outruns any network path, and a lapped shipper would measure snapshots.
    sleep_until_ns(t0);
    const std::uint64_t end = t0 + run_ns;
    std::uint64_t seq = 0;
    while (now_ns() < end) {
      for (int k = 0; k < 256; ++k) {
        fill_record(rec, ++seq, now_ns());
        w.append(std::span<const std::byte>(rec, sizeof rec));
      }
      const std::uint64_t m = w.master_offset();
      if (m > window) {
        while (w.wait_for_readers(1, m - window, std::chrono::milliseconds(5)) < 1 &&
               now_ns() < end)
          ++throttled;
      }
    }
    appended = seq;
  }
  fill_record(rec, sentinel_seq, now_ns());
  w.append(std::span<const std::byte>(rec, sizeof rec));
  say("appended " + std::to_string(appended));
  say("late_max_ns " + std::to_string(late_max));
  say("throttled " + std::to_string(throttled));
  say("done");
  ctl.closed(-1);  // keep the log's writer until the parent is done with the pipeline
  shmlog::destroy(name);
  return 0;
}

// reader: attaches to log B from its oldest record; for records appended in [from, to) records
// the latency (arrival - append time) and counts arrivals in [from, to); checks that sequence
// numbers follow each other. Ends at the sentinel.
int child_reader(const args_map& a) {
  const std::string name = str_arg(a, "name");
  shmlog::reader r =
      shmlog::reader::attach(name, {.start = shmlog::start_position::oldest(), .label = "bench-b"});
  control ctl;
  say("ready");
  const std::uint64_t t0 = ctl.wait_go();
  const std::uint64_t from = t0 + u64_arg(a, "from_ns");
  const std::uint64_t to = t0 + u64_arg(a, "to_ns");
  const std::uint64_t give_up = to + 60'000'000'000u;
  histogram h;
  std::uint64_t prev = 0, lost = 0, dup = 0, records = 0, arrived_in_window = 0, lapped = 0;
  std::uint64_t first_arrival = 0, last_arrival = 0;
  std::vector<std::byte> buf;
  for (;;) {
    const shmlog::poll_result p = r.poll_copy(buf);
    if (p.status == shmlog::poll_status::record) {
      const std::uint64_t now = now_ns();
      const stamp s = read_stamp(p.record.payload.data(), p.record.payload.size());
      if (s.seq == sentinel_seq) break;
      if (s.seq == 0) continue;  // the writer's first record
      ++records;
      if (s.seq > prev + 1) lost += s.seq - prev - 1;
      if (s.seq <= prev) ++dup;
      prev = std::max(prev, s.seq);
      if (s.appended_ns >= from && s.appended_ns < to) h.record(now - s.appended_ns);
      if (now >= from && now < to) {
        if (arrived_in_window == 0) first_arrival = now;
        last_arrival = now;
        ++arrived_in_window;
      }
      continue;
    }
    if (p.status == shmlog::poll_status::empty) {
      r.wait(std::chrono::milliseconds(100));
      if (now_ns() > give_up) {
        say("error no sentinel within 60 s of the end");
        break;
      }
      continue;
    }
    if (p.status == shmlog::poll_status::lapped) {
      ++lapped;
      r.seek_oldest();
      continue;
    }
    say("error poll status " + std::to_string(static_cast<int>(p.status)));
    break;
  }
  say("records " + std::to_string(records));
  say("lost " + std::to_string(lost));
  say("dup " + std::to_string(dup));
  say("lapped " + std::to_string(lapped));
  say("arrived_in_window " + std::to_string(arrived_in_window));
  say("first_arrival " + std::to_string(first_arrival));
  say("last_arrival " + std::to_string(last_arrival));
  say("hist " + h.serialize());
  say("done");
  return 0;
}

// ship / mirror: the library's daemons, stopped by SIGTERM as the CLI's are; each log line is
// passed on with its time.
void say_log(const std::string& line) {
  say("log " + std::to_string(now_ns()) + " " + line);
}

int child_ship(const args_map& a) {
  say("started " + std::to_string(now_ns()));
  shmlog::ship_options o;
  o.redis_url = str_arg(a, "redis");
  if (a.contains("snapshot_dir")) o.snapshot_dir = str_arg(a, "snapshot_dir");
  o.log = say_log;
  o.on_ready = [] { say("ready " + std::to_string(now_ns())); };
  const shmlog::ship_result r = shmlog::run_shipper(str_arg(a, "name"), o);
  say("shipped " + std::to_string(r.shipped_offset));
  say("done");
  return 0;
}

int child_mirror(const args_map& a) {
  say("started " + std::to_string(now_ns()));
  shmlog::mirror_options o;
  o.redis_url = str_arg(a, "redis");
  o.key = str_arg(a, "key");
  if (a.contains("snapshot_dir")) o.snapshot_dir = str_arg(a, "snapshot_dir");
  o.log = say_log;
  o.on_ready = [] { say("ready " + std::to_string(now_ns())); };
  const shmlog::mirror_result r = shmlog::run_mirror(str_arg(a, "name"), o);
  say("mirrored " + std::to_string(r.mirrored_offset));
  say("done");
  return 0;
}

// --- the Redis baseline's clients -----------------------------------------------------------

redisContext* redis_connect(int port) {
  redisContext* c = redisConnect("127.0.0.1", port);
  if (c == nullptr || c->err != 0)
    throw std::runtime_error("cannot connect to redis-server on port " + std::to_string(port));
  return c;
}

// redis_producer: the same pacing as the writer; the due records of one wake-up go to the
// master as one pipelined write of XADDs, then their replies are read.
int child_redis_producer(const args_map& a) {
  redisContext* c = redis_connect(static_cast<int>(u64_arg(a, "port")));
  const std::uint64_t rate = u64_arg(a, "rate");
  const std::uint64_t run_ns = u64_arg(a, "run_ns");
  control ctl;
  say("ready");
  const std::uint64_t t0 = ctl.wait_go();
  std::byte rec[record_bytes];
  const auto xadd = [&](std::uint64_t seq) {
    fill_record(rec, seq, now_ns());
    const char* argv[] = {"XADD",   "bench", "MAXLEN", "~",
                          "100000", "*",     "d",      reinterpret_cast<const char*>(rec)};
    const std::size_t len[] = {4, 5, 6, 1, 6, 1, 1, record_bytes};
    redisAppendCommandArgv(c, 8, argv, len);
  };
  const auto replies = [&](std::uint64_t n) {
    for (std::uint64_t k = 0; k < n; ++k) {
      void* reply = nullptr;
      if (redisGetReply(c, &reply) != REDIS_OK || reply == nullptr)
        throw std::runtime_error("redis producer: no reply from the master");
      const auto* r = static_cast<redisReply*>(reply);
      if (r->type == REDIS_REPLY_ERROR) throw std::runtime_error(std::string("XADD: ") + r->str);
      freeReplyObject(reply);
    }
  };
  const std::uint64_t n = rate * run_ns / 1'000'000'000u;
  const std::uint64_t late_max = pace(rate, t0, n, [&](std::uint64_t i, std::uint64_t j) {
    for (std::uint64_t k = i; k < j; ++k)
      xadd(k);
    replies(j - i);
  });
  xadd(sentinel_seq);
  replies(1);
  redisFree(c);
  say("appended " + std::to_string(n));
  say("late_max_ns " + std::to_string(late_max));
  say("done");
  return 0;
}

// redis_reader: blocking XREAD on the replica, from the entries added after it started.
int child_redis_reader(const args_map& a) {
  redisContext* c = redis_connect(static_cast<int>(u64_arg(a, "port")));
  control ctl;
  std::string last = "$";
  say("ready");
  const std::uint64_t t0 = ctl.wait_go();
  const std::uint64_t from = t0 + u64_arg(a, "from_ns");
  const std::uint64_t to = t0 + u64_arg(a, "to_ns");
  histogram h;
  std::uint64_t prev = 0, lost = 0, records = 0;
  bool done = false;
  while (!done) {
    const char* argv[] = {"XREAD", "COUNT", "1000", "BLOCK", "0", "STREAMS", "bench", last.c_str()};
    const std::size_t len[] = {5, 5, 4, 5, 1, 7, 5, last.size()};
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, 8, argv, len));
    if (r == nullptr) throw std::runtime_error("redis reader: no reply from the replica");
    const std::uint64_t now = now_ns();
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
      const redisReply* entries = r->element[0]->element[1];
      for (std::size_t i = 0; i < entries->elements; ++i) {
        const redisReply* e = entries->element[i];
        last.assign(e->element[0]->str, e->element[0]->len);
        const redisReply* fv = e->element[1];
        const stamp s = read_stamp(fv->element[1]->str, fv->element[1]->len);
        if (s.seq == sentinel_seq) {
          done = true;
          break;
        }
        ++records;
        if (s.seq > prev + 1) lost += s.seq - prev - 1;
        prev = std::max(prev, s.seq);
        if (s.appended_ns >= from && s.appended_ns < to) h.record(now - s.appended_ns);
      }
    }
    freeReplyObject(r);
  }
  redisFree(c);
  say("records " + std::to_string(records));
  say("lost " + std::to_string(lost));
  say("hist " + h.serialize());
  say("done");
  return 0;
}

// --- the snapshot case's producer -----------------------------------------------------------

// A state whose snapshot is `bytes` long (incompressible bytes from a fixed seed): the size is
// what the case measures, not the content.
class big_state final : public shmlog::state_machine {
 public:
  explicit big_state(std::uint64_t bytes) : bytes_(bytes), block_(1 << 20) {
    std::mt19937_64 rng(42);
    for (std::size_t i = 0; i < block_.size(); i += 8) {
      const std::uint64_t v = rng();
      std::memcpy(block_.data() + i, &v, 8);
    }
  }
  void apply(const shmlog::record_view&) override {}
  void save(std::ostream& out) const override {
    for (std::uint64_t done = 0; done < bytes_;) {
      const std::uint64_t n = std::min<std::uint64_t>(block_.size(), bytes_ - done);
      block_[0] = static_cast<char>(done >> 20);  // no two blocks alike
      out.write(block_.data(), static_cast<std::streamsize>(n));
      done += n;
    }
  }
  void load(std::istream&) override {}

 private:
  std::uint64_t bytes_;
  mutable std::vector<char> block_;
};

// producer: open_producer on a small ring, overruns it, then serves snapshot requests (inline
// saves, checked at every poll) until the parent closes stdin.
int child_producer(const args_map& a) {
  const std::string name = str_arg(a, "name");
  const std::filesystem::path dir = str_arg(a, "dir");
  big_state state(u64_arg(a, "bytes"));
  shmlog::destroy(name);
  shmlog::recovered_producer p = shmlog::open_producer(
      name, state, {.snapshot_dir = dir, .create = shmlog::create_options{.capacity = 1 << 20}});
  shmlog::snapshot_service snaps(
      p.log, state, {.dir = dir, .check_every = 1, .on_event = [](const shmlog::snapshot_event& e) {
                       say("event " + std::to_string(now_ns()) + " " +
                           std::string(shmlog::to_string(e.what)) + " " + e.message);
                     }});
  std::byte rec[record_bytes];
  for (std::uint64_t i = 1; i <= 100'000; ++i) {  // 4 MB through a 1 MiB ring
    fill_record(rec, i, now_ns());
    p.log.append(std::span<const std::byte>(rec, sizeof rec));
  }
  control ctl;
  say("ready " + std::to_string(p.log.master_offset()));
  while (!ctl.closed(1))
    snaps.poll();
  shmlog::destroy(name);
  return 0;
}

int run_child(const std::string& role, const args_map& a) {
  if (role == "writer") return child_writer(a);
  if (role == "reader") return child_reader(a);
  if (role == "ship") return child_ship(a);
  if (role == "mirror") return child_mirror(a);
  if (role == "redis_producer") return child_redis_producer(a);
  if (role == "redis_reader") return child_redis_reader(a);
  if (role == "producer") return child_producer(a);
  throw std::runtime_error("unknown child role " + role);
}

// --- the parent -----------------------------------------------------------------------------

using clock_type = std::chrono::steady_clock;

struct peer {
  std::string role;
  subprocess::child proc;
  std::vector<std::pair<std::uint64_t, std::string>> logs;  // (time, line) of a daemon
  std::map<std::string, std::string> results;               // "key value" lines
  std::uint64_t spawned_ns = 0;

  // Reads lines until one starts with `word`; returns the rest of it. Throws at the deadline
  // or if the child ends first.
  std::string expect(std::string_view word, std::chrono::seconds within) {
    const auto deadline = clock_type::now() + within;
    for (;;) {
      const std::optional<std::string> l = proc.read_line(deadline);
      if (!l)
        throw std::runtime_error(role + ": no '" + std::string(word) + "' line" +
                                 (proc.out().at_eof() ? " (it ended)" : " in time"));
      const std::size_t sp = l->find(' ');
      const std::string key = l->substr(0, sp);
      const std::string rest = sp == std::string::npos ? "" : l->substr(sp + 1);
      if (key == "log" || key == "event") {
        const std::size_t sp2 = rest.find(' ');
        logs.emplace_back(std::stoull(rest.substr(0, sp2)), rest.substr(sp2 + 1));
        std::fprintf(stderr, "  [%s] %s\n", role.c_str(), rest.substr(sp2 + 1).c_str());
      } else if (key == "error") {
        throw std::runtime_error(role + ": " + rest);
      } else if (key != word) {
        results[key] = rest;
      }
      if (key == word) return rest;
    }
  }
  // The time of the first log line containing `text` (expecting more lines until it comes).
  std::uint64_t log_time(std::string_view text, std::chrono::seconds within) {
    const auto deadline = clock_type::now() + within;
    for (;;) {
      for (const auto& [t, line] : logs)
        if (line.find(text) != std::string::npos) return t;
      const auto left =
          std::chrono::duration_cast<std::chrono::seconds>(deadline - clock_type::now());
      if (left.count() <= 0)
        throw std::runtime_error(role + ": no log line with '" + std::string(text) + "'");
      // Any line moves us on; "log" lines are kept by expect().
      try {
        expect("\x01", std::chrono::seconds(1));
      } catch (const std::runtime_error&) {
        if (proc.out().at_eof()) throw;
      }
    }
  }
  std::uint64_t result(const std::string& k) const {
    const auto it = results.find(k);
    return it == results.end() ? 0 : std::stoull(it->second);
  }
  void go(std::uint64_t t0) { proc.write_stdin("go " + std::to_string(t0) + "\n"); }
  // SIGTERM (the daemons' stop), then wait for "done".
  void stop_daemon() {
    proc.signal(SIGTERM);
    expect("done", std::chrono::seconds(20));
    proc.wait(clock_type::now() + std::chrono::seconds(10));
  }
  void finish() {
    proc.close_stdin();
    if (!proc.wait(clock_type::now() + std::chrono::seconds(20))) proc.kill_and_reap();
  }
};

std::unique_ptr<peer> spawn(const std::string& role, const args_map& args) {
  auto p = std::make_unique<peer>();
  p->role = role;
  std::vector<std::string> argv = {"shmlog_remote_bench", "__child", role};
  for (const auto& [k, v] : args)
    argv.push_back(k + "=" + v);
  p->spawned_ns = now_ns();
  p->proc = subprocess::child({.program = "/proc/self/exe",
                               .argv = std::move(argv),
                               .stderr_mode = subprocess::stream_mode::inherit,
                               .default_signals = {SIGPIPE},
                               .parent_death_signal = SIGKILL,
                               .keep_transcript = false});
  return p;
}

struct options {
  bool quick = false;
  int retry_noisy = 3;
  std::vector<std::string> only;
  std::string out;
  std::uint64_t snapshot_mb = 100;
  std::filesystem::path snapshot_dir;
  bool wants(const std::string& c) const {
    return only.empty() || std::find(only.begin(), only.end(), c) != only.end();
  }
};

double us(std::uint64_t ns) {
  return double(ns) / 1000.0;
}

json_object latency_json(const histogram& h) {
  json_object o;
  o.set_u64("count", h.count());
  o.set_f64("p50_us", us(h.percentile(50)));
  o.set_f64("p99_us", us(h.percentile(99)));
  o.set_f64("p999_us", us(h.percentile(99.9)));
  o.set_f64("max_us", us(h.max()));
  o.set_f64("mean_us", h.mean() / 1000.0);
  o.set_raw("spectrum_ns", shmlog::bench::spectrum_json(shmlog::bench::percentile_spectrum(h)));
  return o;
}

histogram parse_hist(const peer& p) {
  const auto it = p.results.find("hist");
  const auto h = it == p.results.end() ? std::nullopt : histogram::parse(it->second);
  if (!h) throw std::runtime_error(p.role + ": no histogram");
  return *h;
}

// User + system CPU seconds a live process has used so far (/proc/PID/stat fields 14 and 15).
double cpu_seconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(f, stat);
  const std::size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream in(stat.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && in >> field; ++i)
    if (i >= 14) ticks += std::stod(field);
  return ticks / double(::sysconf(_SC_CLK_TCK));
}

// CPU seconds the machine's processes have used so far (/proc/stat: user, nice, system; not
// interrupts, where loopback TCP does much of its work on behalf of the processes measured).
double machine_busy_seconds() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  f >> cpu;
  double busy = 0;
  std::uint64_t v = 0;
  for (int i = 0; i < 3 && f >> v; ++i)
    busy += double(v);
  return busy / double(::sysconf(_SC_CLK_TCK));
}

// CPU used per process over a run, as a share of one CPU: "writer 0.12, ship 0.85, ...", and
// "others": what every other process of the machine used meanwhile (the case was disturbed if
// that is more than a few percent: the machine is shared).
struct cpu_meter {
  std::vector<std::pair<std::string, pid_t>> procs;
  std::vector<double> start;
  double busy_start = 0;
  std::uint64_t t_start = 0;
  double others = 0;
  void begin() {
    t_start = now_ns();
    busy_start = machine_busy_seconds();
    for (const auto& [n, pid] : procs)
      start.push_back(cpu_seconds(pid));
  }
  json_object end(std::string& line) {
    const double wall = double(now_ns() - t_start) / 1e9;
    json_object o;
    double mine = 0;
    for (std::size_t i = 0; i < procs.size(); ++i) {
      const double share = (cpu_seconds(procs[i].second) - start[i]) / wall;
      mine += share;
      o.set_f64(procs[i].first, share);
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s%s %.2f", line.empty() ? "" : ", ", procs[i].first.c_str(),
                    share);
      line += buf;
    }
    others = std::max(0.0, (machine_busy_seconds() - busy_start) / wall - mine);
    o.set_f64("others", others);
    char buf[64];
    std::snprintf(buf, sizeof buf, "; other processes %.2f%s", others,
                  others > disturbed_above ? " (DISTURBED)" : "");
    line += buf;
    return o;
  }
  static constexpr double disturbed_above = 0.05;
};

std::string unique_prefix() {
  return "rbench-" + std::to_string(::getpid());
}

// One source -> ship -> Redis -> mirror -> reader pipeline: rate 0 runs the writer flat out.
struct pipeline_result {
  histogram latency;
  std::uint64_t appended = 0, records = 0, lost = 0, dup = 0, arrived_in_window = 0;
  std::uint64_t first_arrival = 0, last_arrival = 0, late_max_ns = 0, throttled = 0;
  std::uint64_t reader_lapped = 0, shipped = 0, mirrored = 0;
  std::optional<shmlog::link_status> ship_link, mirror_link;
  json_object cpu;
  std::string cpu_line;
  double others = 0;
  int attempts = 1;
};

pipeline_result run_pipeline(std::uint64_t rate, double warmup_s, double seconds,
                             std::uint64_t capacity, std::uint64_t window) {
  shmlog::test::redis_server redis;
  const std::string a = unique_prefix() + "-a", b = unique_prefix() + "-b";
  const auto run_ns = static_cast<std::uint64_t>((warmup_s + seconds) * 1e9);
  auto writer = spawn("writer", {{"name", a},
                                 {"capacity", std::to_string(capacity)},
                                 {"rate", std::to_string(rate)},
                                 {"window", std::to_string(window)},
                                 {"run_ns", std::to_string(run_ns)}});
  writer->expect("ready", std::chrono::seconds(10));
  auto ship = spawn("ship", {{"name", a}, {"redis", redis.url()}});
  ship->expect("ready", std::chrono::seconds(10));
  // The mirror starts once the writer's first record is in the stream (see child_writer).
  const auto deadline = clock_type::now() + std::chrono::seconds(10);
  while (redis.command({"HGET", "shmlog:{" + a + "}:meta", "shipped"}).str.empty() ||
         redis.command({"HGET", "shmlog:{" + a + "}:meta", "shipped"}).str == "0") {
    if (clock_type::now() > deadline) throw std::runtime_error("the first record never shipped");
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a polled condition
  }
  shmlog::destroy(b);
  auto mirror = spawn("mirror", {{"name", b}, {"key", a}, {"redis", redis.url()}});
  mirror->expect("ready", std::chrono::seconds(10));
  auto reader =
      spawn("reader", {{"name", b},
                       {"from_ns", std::to_string(static_cast<std::uint64_t>(warmup_s * 1e9))},
                       {"to_ns", std::to_string(run_ns)}});
  reader->expect("ready", std::chrono::seconds(10));
  cpu_meter cpu{.procs = {{"writer", writer->proc.pid()},
                          {"ship", ship->proc.pid()},
                          {"redis", redis.pid()},
                          {"mirror", mirror->proc.pid()},
                          {"reader", reader->proc.pid()}}};
  const std::uint64_t t0 = now_ns() + 20'000'000;
  cpu.begin();
  writer->go(t0);
  reader->go(t0);
  writer->expect("done", std::chrono::seconds(static_cast<long>(warmup_s + seconds) + 30));
  reader->expect("done", std::chrono::seconds(90));
  pipeline_result r;
  r.cpu = cpu.end(r.cpu_line);
  r.others = cpu.others;
  r.ship_link = shmlog::query_link(ship->proc.pid(), a);
  r.mirror_link = shmlog::query_link(mirror->proc.pid(), b);
  ship->stop_daemon();
  mirror->stop_daemon();
  writer->finish();
  reader->finish();
  shmlog::destroy(b);
  r.latency = parse_hist(*reader);
  r.appended = writer->result("appended");
  r.late_max_ns = writer->result("late_max_ns");
  r.throttled = writer->result("throttled");
  r.records = reader->result("records");
  r.lost = reader->result("lost");
  r.dup = reader->result("dup");
  r.reader_lapped = reader->result("lapped");
  r.shipped = ship->result("shipped");
  r.mirrored = mirror->result("mirrored");
  r.arrived_in_window = reader->result("arrived_in_window");
  r.first_arrival = reader->result("first_arrival");
  r.last_arrival = reader->result("last_arrival");
  return r;
}

struct redis_result {
  json_object cpu;
  std::string cpu_line;
  double others = 0;
  int attempts = 1;
  histogram latency;
  std::uint64_t appended = 0, records = 0, lost = 0, late_max_ns = 0;
};

redis_result run_redis_baseline(std::uint64_t rate, double warmup_s, double seconds) {
  shmlog::test::redis_server master;
  shmlog::test::redis_server replica({"--replicaof", "127.0.0.1", std::to_string(master.port())});
  const auto deadline = clock_type::now() + std::chrono::seconds(20);
  while (replica.command({"INFO", "replication"}).str.find("master_link_status:up") ==
         std::string::npos) {
    if (clock_type::now() > deadline) throw std::runtime_error("the replica never linked up");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // a polled condition
  }
  const auto run_ns = static_cast<std::uint64_t>((warmup_s + seconds) * 1e9);
  auto reader = spawn("redis_reader",
                      {{"port", std::to_string(replica.port())},
                       {"from_ns", std::to_string(static_cast<std::uint64_t>(warmup_s * 1e9))},
                       {"to_ns", std::to_string(run_ns)}});
  reader->expect("ready", std::chrono::seconds(10));
  auto producer = spawn("redis_producer", {{"port", std::to_string(master.port())},
                                           {"rate", std::to_string(rate)},
                                           {"run_ns", std::to_string(run_ns)}});
  producer->expect("ready", std::chrono::seconds(10));
  // The reader's XREAD ... $ must be waiting before the first XADD; it is sent right after
  // "ready", and the 20 ms before t0 cover it.
  cpu_meter cpu{.procs = {{"client", producer->proc.pid()},
                          {"master", master.pid()},
                          {"replica", replica.pid()},
                          {"reader", reader->proc.pid()}}};
  const std::uint64_t t0 = now_ns() + 20'000'000;
  cpu.begin();
  reader->go(t0);
  producer->go(t0);
  producer->expect("done", std::chrono::seconds(static_cast<long>(warmup_s + seconds) + 30));
  reader->expect("done", std::chrono::seconds(60));
  redis_result r;
  r.cpu = cpu.end(r.cpu_line);
  r.others = cpu.others;
  producer->finish();
  reader->finish();
  r.latency = parse_hist(*reader);
  r.appended = producer->result("appended");
  r.late_max_ns = producer->result("late_max_ns");
  r.records = reader->result("records");
  r.lost = reader->result("lost");
  return r;
}

json_object link_json(const std::optional<shmlog::link_status>& s) {
  json_object o;
  if (!s) return o;
  o.set_u64("records", s->records);
  o.set_u64("entries", s->entries);
  o.set_u64("full_resyncs", s->full_resyncs);
  o.set_u64("snapshots", s->snapshots);
  o.set_string("last_error", s->last_error);
  return o;
}

std::string machine_line(json_object& m) {
  utsname u{};
  ::uname(&u);
  std::string model;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string l; std::getline(cpuinfo, l);)
    if (l.rfind("model name", 0) == 0) {
      model = l.substr(l.find(':') + 2);
      break;
    }
  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  m.set_u64("cpus", static_cast<std::uint64_t>(cpus));
  m.set_string("cpu_model", model);
  m.set_string("kernel", std::string(u.release));
  std::string redis_version;
  if (FILE* f = ::popen("redis-server --version 2>/dev/null", "r")) {
    char buf[256];
    if (std::fgets(buf, sizeof buf, f) != nullptr) redis_version = buf;
    ::pclose(f);
  }
  while (!redis_version.empty() && redis_version.back() == '\n')
    redis_version.pop_back();
  m.set_string("redis", redis_version);
  return std::to_string(cpus) + " CPUs (" + model + "), Linux " + u.release + ", " + redis_version;
}

// The snapshot case.
json_object run_snapshot_case(const options& o, std::string& text) {
  shmlog::test::redis_server redis;
  const std::string s = unique_prefix() + "-s", t = unique_prefix() + "-t";
  std::filesystem::path base =
      o.snapshot_dir.empty() ? std::filesystem::temp_directory_path() : o.snapshot_dir;
  const std::filesystem::path src_dir = base / (unique_prefix() + "-snap-src");
  const std::filesystem::path dst_dir = base / (unique_prefix() + "-snap-mirror");
  std::filesystem::create_directories(src_dir);
  std::filesystem::create_directories(dst_dir);
  const std::uint64_t bytes = o.snapshot_mb * 1'000'000;
  auto producer =
      spawn("producer", {{"name", s}, {"dir", src_dir.string()}, {"bytes", std::to_string(bytes)}});
  const std::uint64_t master = std::stoull(producer->expect("ready", std::chrono::seconds(20)));
  auto ship = spawn("ship", {{"name", s}, {"redis", redis.url()}, {"snapshot_dir", src_dir}});
  ship->expect("ready", std::chrono::seconds(120));  // after the upload
  const std::uint64_t ship_start = ship->spawned_ns;
  const std::uint64_t resync_line = ship->log_time("full resync", std::chrono::seconds(1));
  const std::uint64_t uploaded = ship->log_time("uploaded snapshot", std::chrono::seconds(1));
  // The producer's save, as it reported it (its lines came before the upload ended).
  const std::uint64_t save_start = producer->log_time("started", std::chrono::seconds(5));
  const std::uint64_t save_end = producer->log_time("published", std::chrono::seconds(5));
  // A mirror started fresh: the stream does not begin at the source's start, so it must load
  // the snapshot from Redis.
  shmlog::destroy(t);
  auto mirror =
      spawn("mirror",
            {{"name", t}, {"key", s}, {"redis", redis.url()}, {"snapshot_dir", dst_dir.string()}});
  const std::uint64_t created = mirror->log_time("at snapshot offset", std::chrono::seconds(120));
  const std::uint64_t downloaded = mirror->log_time("downloaded snapshot", std::chrono::seconds(1));
  const shmlog::log_info info = shmlog::inspect(t);
  mirror->stop_daemon();
  ship->stop_daemon();
  producer->finish();
  shmlog::destroy(t);
  std::filesystem::remove_all(src_dir);
  std::filesystem::remove_all(dst_dir);

  json_object j;
  j.set_u64("snapshot_bytes", bytes);
  j.set_u64("source_master_offset", master);
  j.set_u64("mirror_start_offset", info.start_offset);
  j.set_f64("save_s", save_end > save_start ? double(save_end - save_start) / 1e9 : -1);
  j.set_f64("ship_start_to_request_s", double(resync_line - ship_start) / 1e9);
  j.set_f64("upload_s", double(uploaded - save_end) / 1e9);
  j.set_f64("ship_start_to_uploaded_s", double(uploaded - ship_start) / 1e9);
  j.set_f64("mirror_download_s", double(downloaded - mirror->spawned_ns) / 1e9);
  j.set_f64("mirror_resync_s", double(created - mirror->spawned_ns) / 1e9);
  j.set_string("snapshot_dir", base.string());
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "SNAPSHOT  %" PRIu64
                " MB state, ring 1 MiB overrun; snapshot files in %s\n"
                "  producer save (inline, fsync)                  %8.3f s\n"
                "  shipper: upload (verify + 4 MiB chunks + meta)  %8.3f s   (shipper start to "
                "uploaded: %.3f s)\n"
                "  mirror: start to downloaded+verified            %8.3f s\n"
                "  mirror: start to log created at offset %-8" PRIu64 " %8.3f s   (target < 2 s)\n",
                o.snapshot_mb, base.c_str(), j.number("save_s").value_or(-1),
                j.number("upload_s").value_or(-1),
                j.number("ship_start_to_uploaded_s").value_or(-1),
                j.number("mirror_download_s").value_or(-1), info.start_offset,
                j.number("mirror_resync_s").value_or(-1));
  text += buf;
  return j;
}

// Runs a case up to `tries` times while other processes disturbed it, and keeps the least
// disturbed run. The choice looks at the machine (other processes' CPU time), never at the
// figures.
template <class Run>
auto least_disturbed(int tries, Run run) {
  auto best = run();
  for (int i = 1; i < tries && best.others > cpu_meter::disturbed_above; ++i) {
    std::fprintf(stderr, "  disturbed (other processes used %.2f CPU): again\n", best.others);
    auto again = run();
    again.attempts = best.attempts + 1;
    if (again.others < best.others)
      best = std::move(again);
    else
      best.attempts = again.attempts;
  }
  return best;
}

int run_parent(const options& o) {
  json_object doc;
  json_object machine;
  std::string text = "REMOTE REPLICATION (shmlog ship/mirror through Redis, loopback)\n";
  text += "machine: " + machine_line(machine) + "\n";
  text +=
      "placement: no pinning; every process of a case shares the 2 vCPUs (writer or producer, "
      "shipper, redis-server, mirror, reader; baseline: client, master, replica, client)\n\n";
  doc.set_raw("machine", machine.dump());
  doc.set_bool("quick", o.quick);
  const std::uint64_t rate = 100'000;
  const double warmup = o.quick ? 0.5 : 1.0;
  const double lat_seconds = o.quick ? 2.0 : 5.0;
  const double tput_seconds = o.quick ? 2.0 : 5.0;
  const std::uint64_t capacity = 64u << 20;
  char buf[2048];

  if (o.wants("latency")) {
    std::fprintf(stderr, "== latency: redis master -> replica baseline\n");
    const redis_result base = least_disturbed(
        o.retry_noisy, [&] { return run_redis_baseline(rate, warmup, lat_seconds); });
    std::fprintf(stderr, "== latency: shmlog A -> ship -> redis -> mirror -> B\n");
    const pipeline_result shm = least_disturbed(o.retry_noisy, [&] {
      return run_pipeline(rate, warmup, lat_seconds, capacity, capacity / 2);
    });
    json_object lat;
    json_object s = latency_json(shm.latency);
    s.set_u64("appended", shm.appended);
    s.set_u64("received", shm.records);
    s.set_u64("lost", shm.lost);
    s.set_u64("duplicates", shm.dup);
    s.set_f64("source_late_max_us", us(shm.late_max_ns));
    s.set_raw("ship_link", link_json(shm.ship_link).dump());
    s.set_raw("mirror_link", link_json(shm.mirror_link).dump());
    s.set_raw("cpu_share", shm.cpu.dump());
    s.set_u64("attempts", static_cast<std::uint64_t>(shm.attempts));
    json_object r = latency_json(base.latency);
    r.set_raw("cpu_share", base.cpu.dump());
    r.set_u64("attempts", static_cast<std::uint64_t>(base.attempts));
    r.set_u64("appended", base.appended);
    r.set_u64("received", base.records);
    r.set_u64("lost", base.lost);
    r.set_f64("source_late_max_us", us(base.late_max_ns));
    lat.set_u64("rate", rate);
    lat.set_u64("record_bytes", record_bytes);
    lat.set_f64("seconds", lat_seconds);
    lat.set_f64("warmup_seconds", warmup);
    lat.set_raw("shmlog", s.dump());
    lat.set_raw("redis_replication", r.dump());
    const double ratio = double(shm.latency.percentile(50)) / double(base.latency.percentile(50));
    lat.set_f64("p50_ratio", ratio);
    doc.set_raw("latency", lat.dump());
    std::snprintf(
        buf, sizeof buf,
        "LATENCY  %" PRIu64
        " records/s paced, %zu B, %.1f s measured after %.1f s warm-up "
        "(us, append to arrival)\n"
        "  %-44s %9s %9s %9s %9s %9s %6s\n"
        "  %-44s %9.1f %9.1f %9.1f %9.1f %9" PRIu64 " %6" PRIu64
        "\n"
        "  %-44s %9.1f %9.1f %9.1f %9.1f %9" PRIu64 " %6" PRIu64
        "\n"
        "  p50 ratio shmlog/redis %.2f (target <= 2.5); shmlog p99 %.1f us (target < 2000)\n"
        "  full resyncs: ship %" PRIu64 ", mirror %" PRIu64
        "\n"
        "  CPU (share of one CPU) redis: %s\n"
        "  CPU (share of one CPU) shmlog: %s\n\n",
        rate, record_bytes, lat_seconds, warmup, "path", "p50", "p99", "p99.9", "max", "count",
        "lost", "redis XADD -> master -> replica -> XREAD", us(base.latency.percentile(50)),
        us(base.latency.percentile(99)), us(base.latency.percentile(99.9)), us(base.latency.max()),
        base.latency.count(), base.lost, "shmlog A -> ship -> redis -> mirror -> B",
        us(shm.latency.percentile(50)), us(shm.latency.percentile(99)),
        us(shm.latency.percentile(99.9)), us(shm.latency.max()), shm.latency.count(), shm.lost,
        ratio, us(shm.latency.percentile(99)), shm.ship_link ? shm.ship_link->full_resyncs : 0,
        shm.mirror_link ? shm.mirror_link->full_resyncs : 0, base.cpu_line.c_str(),
        shm.cpu_line.c_str());
    text += buf;
  }

  if (o.wants("throughput")) {
    std::fprintf(stderr, "== throughput: shmlog A -> ship -> redis -> mirror -> B, flat out\n");
    // A's ring (and so B's) is 8 times the writer's lead over the shipper: the reader of B,
    // which counts, has that much slack when the scheduler holds it up.
    const std::uint64_t tput_capacity = 64u << 20;
    const std::uint64_t tput_window = 8u << 20;
    const pipeline_result p = least_disturbed(o.retry_noisy, [&] {
      return run_pipeline(0, warmup, tput_seconds, tput_capacity, tput_window);
    });
    const double window =
        p.last_arrival > p.first_arrival ? double(p.last_arrival - p.first_arrival) / 1e9 : 0;
    const double per_s = window > 0 ? double(p.arrived_in_window) / window : 0;
    json_object t;
    t.set_u64("record_bytes", record_bytes);
    t.set_u64("capacity", tput_capacity);
    t.set_f64("seconds", window);
    t.set_f64("records_per_s", per_s);
    t.set_f64("mb_per_s", per_s * record_bytes / 1e6);
    t.set_u64("appended", p.appended);
    t.set_u64("received", p.records);
    t.set_u64("lost", p.lost);
    t.set_u64("duplicates", p.dup);
    t.set_u64("writer_throttle_waits", p.throttled);
    t.set_u64("reader_of_b_lapped", p.reader_lapped);
    t.set_u64("shipped_offset", p.shipped);
    t.set_u64("mirrored_offset", p.mirrored);
    t.set_bool("mirror_reached_source_end", p.shipped == p.mirrored && p.shipped != 0);
    t.set_raw("ship_link", link_json(p.ship_link).dump());
    t.set_raw("mirror_link", link_json(p.mirror_link).dump());
    t.set_raw("cpu_share", p.cpu.dump());
    t.set_u64("attempts", static_cast<std::uint64_t>(p.attempts));
    doc.set_raw("throughput", t.dump());
    std::snprintf(
        buf, sizeof buf,
        "THROUGHPUT  %zu B records, writer flat out (at most %" PRIu64
        " MiB ahead of the shipper; rings of %" PRIu64
        " MiB)\n"
        "  arriving at B: %.0f records/s (%.1f MB/s of payload) over %.2f s (target >= "
        "300000)\n"
        "  appended %" PRIu64 ", received %" PRIu64 ", lost %" PRIu64 ", duplicates %" PRIu64
        ", full resyncs: ship %" PRIu64 ", mirror %" PRIu64 "\n  mirror's end offset %" PRIu64
        " %s the shipper's %" PRIu64 "; the counting reader of B was lapped %" PRIu64
        " times (records it lost are the reader's, not the pipeline's)"
        "\n  CPU (share of one CPU): %s\n\n",
        record_bytes, tput_window >> 20, tput_capacity >> 20, per_s, per_s * record_bytes / 1e6,
        window, p.appended, p.records, p.lost, p.dup, p.ship_link ? p.ship_link->full_resyncs : 0,
        p.mirror_link ? p.mirror_link->full_resyncs : 0, p.mirrored,
        p.mirrored == p.shipped ? "==" : "!=", p.shipped, p.reader_lapped, p.cpu_line.c_str());
    text += buf;
  }

  if (o.wants("snapshot")) {
    std::fprintf(stderr, "== snapshot: %" PRIu64 " MB full resync through Redis\n", o.snapshot_mb);
    std::string t;
    doc.set_raw("snapshot", run_snapshot_case(o, t).dump());
    text += t;
  }

  std::fputs(text.c_str(), stdout);
  if (!o.out.empty()) {
    std::ofstream f(o.out);
    f << doc.dump() << "\n";
    if (!f) throw std::runtime_error("cannot write " + o.out);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc >= 3 && std::string_view(argv[1]) == "__child") {
      args_map a;
      for (int i = 3; i < argc; ++i) {
        const std::string s = argv[i];
        const std::size_t eq = s.find('=');
        a[s.substr(0, eq)] = eq == std::string::npos ? "" : s.substr(eq + 1);
      }
      return run_child(argv[2], a);
    }
    options o;
    for (int i = 1; i < argc; ++i) {
      const std::string_view s = argv[i];
      if (s == "--quick")
        o.quick = true;
      else if (s == "--only" && i + 1 < argc)
        o.only.emplace_back(argv[++i]);
      else if (s == "--out" && i + 1 < argc)
        o.out = argv[++i];
      else if (s == "--snapshot-mb" && i + 1 < argc)
        o.snapshot_mb = std::stoull(argv[++i]);
      else if (s == "--retry-noisy" && i + 1 < argc)
        o.retry_noisy = std::max(1, std::stoi(argv[++i]));
      else if (s == "--snapshot-dir" && i + 1 < argc)
        o.snapshot_dir = argv[++i];
      else {
        std::fprintf(stderr,
                     "usage: shmlog_remote_bench [--quick] [--only latency|throughput|snapshot]... "
                     "[--out FILE] [--snapshot-mb N] [--snapshot-dir DIR] [--retry-noisy N]\n");
        return 2;
      }
    }
    for (const std::string& c : o.only)
      if (c != "latency" && c != "throughput" && c != "snapshot") {
        std::fprintf(stderr, "shmlog_remote_bench: unknown case '%s'\n", c.c_str());
        return 2;
      }
    return run_parent(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shmlog_remote_bench: %s\n", e.what());
    return 1;
  }
}
