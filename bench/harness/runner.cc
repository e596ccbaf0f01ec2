// The parent of a case: looks the transport up in the table (table.cc), lets it set the case
// up, starts the processes, says "go", collects what they report and turns it into the case's
// JSON object.
#include <signal.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <ctime>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "clock.h"
#include "harness.h"
#include "process.h"
#include "shmlog/reader.h"
#include "shmlog/segment.h"
#include "table.h"

namespace shmlog::bench {

std::atomic<bool> interrupted{false};

double measure_clock_overhead_ns() {
  constexpr int calls = 2'000'000;
  std::uint64_t sink = 0;
  for (int i = 0; i < calls / 10; ++i)  // warm the vDSO page and the branch predictors
    sink += now_ns();
  const std::uint64_t start = now_ns();
  for (int i = 0; i < calls; ++i)
    sink += now_ns();
  const std::uint64_t elapsed = now_ns() - start;
  asm volatile("" : : "r"(sink));
  return double(elapsed) / calls;
}

std::uint64_t warmup_ns(const case_config& c) {
  return std::max(min_warmup_ns, static_cast<std::uint64_t>(c.seconds * warmup_fraction * 1e9));
}

bool is_shmlog(const std::string& transport) {
  return transport == "shmlog" || transport == "shmlog-view" || transport == "shmlog-gating";
}

bool is_spsc_ring(const std::string& transport) {
  return transport == "spsc-ring" || transport == "spsc-ring-view";
}

std::optional<lap_policy> to_lap_policy(const std::string& name) {
  if (name == "oldest") return lap_policy::oldest;
  if (name == "oldest-safe") return lap_policy::oldest_safe;
  if (name == "latest") return lap_policy::latest;
  return std::nullopt;
}

lap_policy effective_lap_policy(const case_config& c) {
  return to_lap_policy(c.on_lap).value_or(lap_policy::oldest_safe);
}

const char* lap_policy_name(lap_policy p) {
  switch (p) {
    case lap_policy::oldest:
      return "oldest";
    case lap_policy::oldest_safe:
      return "oldest-safe";
    case lap_policy::latest:
      return "latest";
  }
  return "?";
}

std::uint64_t effective_grace_ns(const case_config& c) {
  return c.catch_up_grace_ns.value_or(
      static_cast<std::uint64_t>(wait_policy{}.catch_up_grace.count()));
}

std::uint64_t spsc_ring_slots(const case_config& c) {
  return c.record_bytes ? c.capacity / c.record_bytes : 0;
}

std::string delivery(const std::string& transport) {
  const struct transport* row = find_transport(transport);
  return row ? std::string(row->delivery) : "";
}

std::string default_wait(const std::string& transport) {
  const struct transport* row = find_transport(transport);
  return row ? std::string(row->default_wait) : "block";
}

void validate(case_config& c) {
  auto bad = [](const std::string& what) { throw std::invalid_argument(what); };
  const std::string& t = c.transport;
  // Renamed in issue 11: it is a simple SPSC ring, not a floor (shmlog beats it).
  if (t == "floor-stream" || t == "floor-stream-view")
    bad("--transport '" + t + "' is now called '" +
        (t == "floor-stream" ? "spsc-ring" : "spsc-ring-view") +
        "' (a simple SPSC ring with back-pressure, not a floor)");
  if (find_transport(t) == nullptr) {
    // "a, b, ... or z", in the table's order.
    std::string names;
    const auto rows = transports();
    for (std::size_t i = 0; i < rows.size(); ++i)
      names += (i == 0 ? "" : i + 1 == rows.size() ? " or " : ", ") + std::string(rows[i].name);
    bad("--transport must be " + names + ", not '" + t + "'");
  }
  if (c.mode != "throughput" && c.mode != "latency")
    bad("--mode must be throughput or latency, not '" + c.mode + "'");
  if (c.wait.empty()) c.wait = default_wait(t);
  if (is_shmlog(t)) {
    if (c.wait != "spin" && c.wait != "yield" && c.wait != "sleep" && c.wait != "adaptive" &&
        c.wait != "spin-master")
      bad("--wait for shmlog must be spin, yield, sleep, adaptive or spin-master, not '" + c.wait +
          "'");
  } else if (c.wait != default_wait(t)) {
    bad("--wait for " + t + " can only be " + default_wait(t));
  }
  if (t == "memcpy") {
    if (c.mode != "throughput") bad("memcpy measures throughput only");
    c.readers = 0;
  }
  if (t == "floor-pingpong") {
    if (c.mode != "latency") bad("floor-pingpong measures latency only (one-way, RTT / 2)");
    c.readers = 1;
    c.record_bytes = 8;  // one counter on one cache line
    c.rate = 0;          // not paced: back to back
  }
  if (is_spsc_ring(t)) {
    if (c.mode != "throughput") bad(t + " measures throughput only");
    if (c.readers != 1) bad(t + " is single-consumer: --readers must be 1");
    if (c.capacity > (std::uint64_t{1} << 32)) bad("--capacity for " + t + " is limited to 4 GiB");
    if (c.record_bytes > 0 && spsc_ring_slots(c) < 2)
      bad("--capacity " + std::to_string(c.capacity) + " holds fewer than two " +
          std::to_string(c.record_bytes) + "-byte blocks; raise --capacity");
  }
  if (c.catch_up_grace_ns && !is_shmlog(t)) bad("--catch-up-grace applies to shmlog only");
  if (!c.on_lap.empty() && !is_shmlog(t)) bad("--on-lap applies to shmlog only");
  if (!c.on_lap.empty() && !to_lap_policy(c.on_lap))
    bad("--on-lap must be oldest, oldest-safe or latest, not '" + c.on_lap + "'");
  if (c.catch_up_grace_ns && *c.catch_up_grace_ns > 1'000'000'000)
    bad("--catch-up-grace is limited to 1 s (1e9 ns)");
  if (c.record_bytes < 8) bad("--record-bytes must be at least 8 (the sequence number)");
  if (c.mode == "latency" && t != "floor-pingpong" && c.record_bytes < 16)
    bad("latency mode needs --record-bytes of at least 16 (sequence number and due time)");
  if (c.record_bytes > (64u << 20)) bad("--record-bytes is limited to 64 MiB");
  if (!is_shmlog(t) && t != "memcpy" && t != "floor-pingpong" && c.readers == 0)
    bad(t + " needs at least one reader");
  if (c.readers > 1000) bad("--readers is limited to 1000");
  if (c.idle_readers > 0 && !is_shmlog(t)) bad("--idle-readers applies to shmlog only");
  if (c.readers + c.idle_readers > max_reader_slots)
    bad("--readers plus --idle-readers must be at most " + std::to_string(max_reader_slots));
  if (c.mode == "latency" && t != "floor-pingpong" && (c.rate == 0 || c.rate > 1'000'000'000))
    bad("--rate must be between 1 and 1e9 records per second");
  if (!(c.seconds > 0 && c.seconds <= 3600)) bad("--seconds must be in (0, 3600]");
  const std::vector<int> allowed = allowed_cpus();
  for (std::size_t i = 0; i < c.cpus.size(); ++i) {
    const int cpu = c.cpus[i];
    if (std::find(allowed.begin(), allowed.end(), cpu) == allowed.end()) {
      std::string list;
      for (const int a : allowed)
        list += (list.empty() ? "" : ",") + std::to_string(a);
      bad("--cpus: CPU " + std::to_string(cpu) + " is not one this process may run on (" + list +
          ")");
    }
    if (std::find(c.cpus.begin(), c.cpus.begin() + static_cast<std::ptrdiff_t>(i), cpu) !=
        c.cpus.begin() + static_cast<std::ptrdiff_t>(i))
      bad("--cpus: CPU " + std::to_string(cpu) + " is named twice");
  }
  if (is_shmlog(t)) {
    validate_create_options({.capacity = c.capacity});
    if (c.record_bytes > max_payload_for(c.capacity))
      bad("--record-bytes " + std::to_string(c.record_bytes) +
          " exceeds the largest payload of a " + std::to_string(c.capacity) + "-byte ring (" +
          std::to_string(max_payload_for(c.capacity)) + "); raise --capacity");
  }
}

std::map<std::string, std::string> to_args(const case_config& c) {
  std::ostringstream seconds;
  seconds.precision(17);
  seconds << c.seconds;
  return {{"transport", c.transport},
          {"mode", c.mode},
          {"record_bytes", std::to_string(c.record_bytes)},
          {"readers", std::to_string(c.readers)},
          {"wait", c.wait},
          {"rate", std::to_string(c.rate)},
          {"seconds", seconds.str()},
          {"capacity", std::to_string(c.capacity)},
          {"pin", c.pin ? "1" : "0"},
          {"idle_readers", std::to_string(c.idle_readers)},
          {"catch_up_grace",
           c.catch_up_grace_ns ? std::to_string(*c.catch_up_grace_ns) : std::string("default")},
          {"on_lap", c.on_lap.empty() ? std::string("default") : c.on_lap}};
}

case_config from_args(const std::map<std::string, std::string>& args) {
  auto get = [&](const char* k) {
    const auto it = args.find(k);
    if (it == args.end()) throw std::runtime_error(std::string("child: missing ") + k);
    return it->second;
  };
  case_config c;
  c.transport = get("transport");
  c.mode = get("mode");
  c.record_bytes = std::stoull(get("record_bytes"));
  c.readers = static_cast<unsigned>(std::stoul(get("readers")));
  c.wait = get("wait");
  c.rate = std::stoull(get("rate"));
  c.seconds = std::stod(get("seconds"));
  c.capacity = std::stoull(get("capacity"));
  c.pin = get("pin") == "1";
  c.idle_readers = static_cast<unsigned>(std::stoul(get("idle_readers")));
  if (const std::string g = get("catch_up_grace"); g != "default")
    c.catch_up_grace_ns = std::stoull(g);
  if (const std::string l = get("on_lap"); l != "default") c.on_lap = l;
  return c;
}

json_object machine_info() {
  json_object m;
  std::string model = "unknown";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) model = line.substr(line.find_first_not_of(' ', colon + 1));
      break;
    }
  }
  m.set_string("cpu_model", model);
  m.set_u64("cores", static_cast<std::uint64_t>(online_cpus()));
  // The CPU's "hypervisor" flag: on a VM the cost of every cross-core figure depends on where
  // the host places the vCPUs, which the plots' captions say (bench/plot.sh).
  bool virtualized = false;
  cpuinfo.clear();
  cpuinfo.seekg(0);
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("flags", 0) == 0) {
      virtualized = (line + " ").find(" hypervisor ") != std::string::npos;
      break;
    }
  }
  m.set_bool("virtualized", virtualized);
  utsname u{};
  ::uname(&u);
  m.set_string("kernel", u.release);
#if defined(__clang__)
  m.set_string("compiler", std::string("clang++ ") + __clang_version__);
#elif defined(__GNUC__)
  m.set_string("compiler", std::string("g++ ") + __VERSION__);
#else
  m.set_string("compiler", __VERSION__);
#endif
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
  m.set_string("date", date);
  m.set_string("build_type", SHMLOG_BENCH_BUILD_TYPE);
  return m;
}

int child_cpu(const case_config& c, unsigned index) {
  std::vector<int> all = c.cpus;
  if (all.empty())
    for (int cpu = 0; cpu < online_cpus(); ++cpu)
      all.push_back(cpu);
  const auto n = static_cast<unsigned>(all.size());
  if (index == 0 || n == 1) return all[0];
  return all[1 + (index - 1) % (n - 1)];
}

namespace {

void on_interrupt(int) {
  interrupted.store(true);
}

}  // namespace

void catch_interrupts() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

// ---------------------------------------------------------------------------------------------

namespace {

std::string unique_base() {
  static unsigned counter = 0;
  return "shmlog-bench-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

void check_interrupted() {
  if (interrupted.load()) throw std::runtime_error("interrupted");
}

// Waits until every child said ready; throws naming the first that died first.
void wait_ready(std::vector<child_process>& children, std::uint64_t timeout_ns) {
  std::vector<child_process*> all;
  for (child_process& c : children)
    all.push_back(&c);
  const std::uint64_t deadline = now_ns() + timeout_ns;
  for (;;) {
    check_interrupted();
    bool everyone = true;
    for (child_process& c : children) {
      if (c.ready) continue;
      everyone = false;
      if (c.proc.out().at_eof()) {
        c.proc.wait();
        take_results(c);
        std::string why;
        for (const std::string& line : c.lines)
          if (line.rfind("failed ", 0) == 0) why = ": " + line.substr(7);
        throw std::runtime_error(c.role + " " + subprocess::describe_status(c.proc.status()) +
                                 " before it was ready" + why);
      }
    }
    if (everyone) return;
    if (now_ns() > deadline) throw std::runtime_error("children were not ready in time");
    pump_results(all, 100);
  }
}

// Collects until the active children close their result pipes. A child that died abnormally
// ends the case at once: its peers may never finish (a writer blocked on a dead reader's full
// queue waits forever).
void collect(std::vector<child_process*>& active, std::uint64_t deadline) {
  for (;;) {
    check_interrupted();
    for (child_process* c : active) {
      if (!c->proc.out().at_eof() || !c->proc.try_reap()) continue;
      const int status = c->proc.status();
      if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        std::string why;
        for (const std::string& line : c->lines)
          if (line.rfind("failed ", 0) == 0) why = ": " + line.substr(7);
        throw std::runtime_error(c->role + " " + subprocess::describe_status(status) + why);
      }
    }
    if (std::all_of(active.begin(), active.end(),
                    [](child_process* c) { return c->proc.out().at_eof(); }))
      return;
    if (now_ns() > deadline) {
      std::string who;
      for (child_process* c : active)
        if (!c->proc.out().at_eof()) who += (who.empty() ? "" : ", ") + c->role;
      throw std::runtime_error("timed out waiting for " + who);
    }
    // A quarter of a second: the parent is not pinned, and every wake-up of it can preempt a
    // spinner; an end of file wakes it at once anyway.
    pump_results(active, 250);
  }
}

json_object run_case_once(case_config c, double clock_overhead_ns) {
  json_object j;
  try {
    validate(c);
  } catch (const std::exception& e) {
    j.set_string("transport", c.transport);
    j.set_string("mode", c.mode);
    j.set_string("error", e.what());
    return j;
  }
  const bool latency = c.mode == "latency";
  j.set_string("transport", c.transport);
  if (const std::string d = delivery(c.transport); !d.empty()) j.set_string("delivery", d);
  j.set_string("mode", c.mode);
  j.set_u64("record_bytes", c.record_bytes);
  j.set_u64("readers", c.readers);
  j.set_string("wait", c.wait);
  if (latency) j.set_u64("rate", c.rate);
  j.set_f64("seconds", c.seconds);
  j.set_f64("warmup_seconds", double(warmup_ns(c)) / 1e9);
  if (c.idle_readers) j.set_u64("idle_readers", c.idle_readers);
  if (is_shmlog(c.transport)) {
    j.set_u64("catch_up_grace_ns", effective_grace_ns(c));
    j.set_string("on_lap", lap_policy_name(effective_lap_policy(c)));
  }

  try {
    const std::uint64_t busy_before = machine_busy_ns();
    const std::uint64_t own_before = own_cpu_ns();
    const std::uint64_t wall_before = now_ns();
    case_resources res;
    std::map<std::string, std::string> args = to_args(c);
    std::vector<child_process>& kids = res.children;
    kids.reserve(2 + c.readers + c.idle_readers);
    auto spawn = [&](const endpoint& e, const char* side, int cpu) {
      std::map<std::string, std::string> a = args;
      a["role"] = e.role;
      a["side"] = side;
      a["cpu"] = std::to_string(cpu);
      for (const auto& [k, v] : e.args)
        a[k] = v;
      kids.push_back(spawn_child(e.label.empty() ? e.role : e.label, a, e.fds));
    };
    const transport& row = *find_transport(c.transport);
    const channel ch = row.set_up(c, unique_base(), res, j);
    spawn(ch.writer, "writer", child_cpu(c, 0));
    for (unsigned i = 0; i < ch.readers.size(); ++i)
      spawn(ch.readers[i], "reader", child_cpu(c, 1 + i));
    for (unsigned i = 0; i < ch.idle.size(); ++i)
      spawn(ch.idle[i], "idle", child_cpu(c, 1 + static_cast<unsigned>(ch.readers.size()) + i));
    res.close_fds();

    wait_ready(kids, 60'000'000'000u);
    const std::size_t active_count = kids.size() - c.idle_readers;
    std::vector<child_process*> active;
    for (std::size_t i = 0; i < active_count; ++i)
      active.push_back(&kids[i]);
    // t0 a little ahead, so every child has read "go" before the writer starts.
    const std::uint64_t t0 = now_ns() + 20'000'000;
    const std::string go = "go " + std::to_string(t0) + "\n";
    for (child_process* k : active)
      k->proc.write_stdin(go);
    const std::uint64_t run_ns = warmup_ns(c) + static_cast<std::uint64_t>(c.seconds * 1e9);
    collect(active, t0 + run_ns + 60'000'000'000u);
    // Idle readers leave when their control pipe closes.
    for (child_process& k : kids)
      k.proc.close_stdin();
    bool all_pinned = c.pin;
    std::string failure;
    std::vector<result_map> results;
    for (child_process& k : kids) {
      k.proc.wait();
      take_results(k);
      const result_map m = parse_lines(k.lines);
      const int status = k.proc.status();
      if (u64(m, "pinned") == 0) all_pinned = false;
      if (m.count("failed") && failure.empty()) failure = k.role + ": " + m.at("failed");
      if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) && failure.empty())
        failure = k.role + " " + subprocess::describe_status(status);
      results.push_back(m);
    }
    j.set_bool("pinned", all_pinned);
    if (!failure.empty()) throw std::runtime_error(failure);

    // How much of the machine went to anything but this case: busy CPU time minus the time of
    // this case's processes (and of the parent). A quiet machine shows ~0 (to within the 10 ms
    // tick of /proc/stat per CPU); more means the numbers shared the CPUs with someone.
    std::uint64_t ours = own_cpu_ns() - own_before;
    for (const child_process& k : kids)
      ours += static_cast<std::uint64_t>(k.proc.cpu_time().count());
    const std::uint64_t busy = machine_busy_ns() - busy_before;
    j.set_f64("case_wall_seconds", double(now_ns() - wall_before) / 1e9);
    j.set_f64("foreign_cpu_seconds", busy > ours ? double(busy - ours) / 1e9 : 0.0);
    std::uint64_t invol_writer = u64(results[0], "involuntary_switches");
    std::uint64_t invol_readers = 0;
    std::uint64_t vol_readers = 0;
    for (std::size_t i = 1; i < active_count; ++i) {
      invol_readers += u64(results[i], "involuntary_switches");
      vol_readers += u64(results[i], "voluntary_switches");
    }
    // CPU time over each process's life (set-up and the wait for "go" included): what waiting
    // costs, e.g. a sleep-mode reader that sleeps versus one that never gets to.
    j.set_f64("writer_cpu_seconds", double(kids[0].proc.cpu_time().count()) / 1e9);
    if (active_count > 1) {
      std::uint64_t reader_cpu = 0;
      for (std::size_t i = 1; i < active_count; ++i)
        reader_cpu += static_cast<std::uint64_t>(kids[i].proc.cpu_time().count());
      j.set_f64("reader_cpu_seconds", double(reader_cpu) / 1e9);
    }
    j.set_u64("writer_involuntary_switches", invol_writer);
    j.set_u64("writer_voluntary_switches", u64(results[0], "voluntary_switches"));
    if (active_count > 1) {
      j.set_u64("reader_involuntary_switches", invol_readers);
      j.set_u64("reader_voluntary_switches", vol_readers);
    }

    std::uint64_t errors = 0;
    row.report(c, results, j, errors);
    j.set_u64("errors", errors);
    j.set_f64("clock_overhead_ns", clock_overhead_ns);
  } catch (const std::exception& e) {
    j.set_string("error", e.what());
  }
  return j;
}

// One-way p50 of a short floor ping-pong between the case's writer and reader CPUs.
std::optional<double> floor_probe(const case_config& c, double clock_overhead_ns) {
  case_config f;
  f.transport = "floor-pingpong";
  f.mode = "latency";
  f.seconds = 0.05;
  f.pin = true;
  f.cpus = {child_cpu(c, 0), child_cpu(c, 1)};
  const json_object r = run_case_once(f, clock_overhead_ns);
  // A probe that another process preempted through much of its 50 ms says nothing about the
  // line (seen here: no round trip at all, or a p50 of 24 ms): no figure then. The threshold is
  // loose because /proc/stat counts in 10 ms ticks, a tenth of the probe's wall time.
  if (r.has("error") || r.number("count").value_or(0) < 1000 ||
      r.number("foreign_cpu_seconds").value_or(0) > 0.3 * r.number("case_wall_seconds").value_or(0))
    return std::nullopt;
  return r.number("p50_ns");
}

}  // namespace

json_object run_case(case_config c, double clock_overhead_ns) {
  // Not between two processes on one CPU: each round trip would wait for a time slice.
  const bool probe = c.floor_probe && c.pin && c.readers > 0 && c.transport != "floor-pingpong" &&
                     c.transport != "memcpy" && child_cpu(c, 0) != child_cpu(c, 1);
  const std::optional<double> before = probe ? floor_probe(c, clock_overhead_ns) : std::nullopt;
  json_object j = run_case_once(c, clock_overhead_ns);
  if (probe && !j.has("error") && !interrupted.load()) {
    const std::optional<double> after = floor_probe(c, clock_overhead_ns);
    if (before) j.set_f64("floor_before_p50_ns", *before);
    if (after) j.set_f64("floor_after_p50_ns", *after);
  }
  return j;
}

}  // namespace shmlog::bench
