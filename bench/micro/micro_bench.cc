// shmlog_micro: Google Benchmark micro-benchmarks of the append, poll and resync paths.
//
//   shmlog_micro [--quick] [Google Benchmark flags, e.g. --benchmark_filter=^append/single/]
//
// Names are <operation>/<variant>/<record bytes>:
//   append/single/N        writer::append of one record
//   append/batch16/N       writer::append_batch of 16 records (time per batch; items = records)
//   append/claim/N         writer::claim, memset of the payload in place, commit
//   poll/view/N            reader::poll through a pre-filled ring (refilled, untimed, when empty)
//   poll/copy/N            reader::poll_copy, the same way
//   poll/empty             reader::poll when caught up (the cost of one spin of a waiting loop)
//   append_poll/view/N     one append then one poll, same thread (the record is hot in L1)
//   append_poll/copy/N     one append then one poll_copy
//   resync/decide/...      shmlog::decide_resync (pure)
//   resync/reader/...      reader::resync, including the seek that checks the record boundary
//   concurrent/alone/N     append with the writer pinned to CPU 0 and no reader
//   concurrent/reader/N    the same with a reader thread on CPU 1 spinning on poll_copy
//
// Every benchmark reports items_per_second (records) and bytes_per_second (payload bytes) and
// a counter time_per_record (seconds), so batch and single appends compare directly. The default
// minimum time per benchmark is 0.2 s (--quick: 0.02 s); an explicit --benchmark_min_time wins.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "micro_common.h"
#include "shmlog/history.h"
#include "shmlog/reader.h"
#include "shmlog/writer.h"

namespace {

using shmlog_bench::record_sizes;

// --- shared logs ---------------------------------------------------------------------------
// One 16 MiB log serves every append and poll benchmark, created and warmed on first use and
// destroyed at the end of main: creating and faulting in a fresh ring for each of Google
// Benchmark's runs would cost ~5 ms each and nothing would be measured better for it.

std::unique_ptr<shmlog_bench::scoped_log> main_log_storage;

shmlog::writer& main_log() {
  if (!main_log_storage) {
    main_log_storage =
        std::make_unique<shmlog_bench::scoped_log>("micro", shmlog_bench::default_capacity);
    shmlog_bench::warm_ring(main_log_storage->writer());
  }
  return main_log_storage->writer();
}

// --- reporting -----------------------------------------------------------------------------

// items_per_second and bytes_per_second count records and payload bytes; time_per_record is
// the inverse of the record rate, in seconds (the console prints it as e.g. "6.2ns"), so that
// a batch of 16 and a single append compare directly.
void report_records(benchmark::State& state, std::int64_t records_per_iteration,
                    std::size_t record_bytes) {
  const std::int64_t records = state.iterations() * records_per_iteration;
  state.SetItemsProcessed(records);
  state.SetBytesProcessed(records * static_cast<std::int64_t>(record_bytes));
  state.counters["time_per_record"] = benchmark::Counter(
      static_cast<double>(records_per_iteration),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// Google Benchmark does not catch exceptions; a shmlog::error (e.g. /dev/shm full) would
// otherwise terminate the whole run without saying which benchmark failed.
void guarded(benchmark::State& state, const std::function<void(benchmark::State&)>& body) {
  try {
    body(state);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

void register_sized(const char* name, void (*fn)(benchmark::State&),
                    std::span<const std::int64_t> sizes, bool real_time = false) {
  auto* b = benchmark::RegisterBenchmark(name, [fn](benchmark::State& s) { guarded(s, fn); });
  for (std::int64_t size : sizes)
    b->Arg(size);
  if (real_time) b->UseRealTime();
}

template <bool copy>
shmlog::poll_result poll_once(shmlog::reader& r, std::vector<std::byte>& buffer) {
  if constexpr (copy) {
    return r.poll_copy(buffer);
  } else {
    return r.poll();
  }
}

// --- append --------------------------------------------------------------------------------

void bm_append_single(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  shmlog::writer& w = main_log();
  const std::vector<std::byte> payload = shmlog_bench::make_payload(size);
  const std::span<const std::byte> bytes(payload);
  for (auto _ : state)
    benchmark::DoNotOptimize(w.append(bytes));
  report_records(state, 1, size);
}

constexpr std::int64_t batch_records = 16;

void bm_append_batch16(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  shmlog::writer& w = main_log();
  const std::vector<std::byte> payload = shmlog_bench::make_payload(size);
  const std::vector<shmlog::record_ref> batch(batch_records,
                                              shmlog::record_ref{.payload = payload});
  for (auto _ : state)
    benchmark::DoNotOptimize(w.append_batch(batch));
  report_records(state, batch_records, size);
}

void bm_append_claim(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  shmlog::writer& w = main_log();
  for (auto _ : state) {
    shmlog::claimed_record c = w.claim(size);
    // Fill the whole payload, as a producer serialising in place would, so that the claim
    // path does the same stores as append's memcpy.
    std::memset(c.payload().data(), 0x5a, size);
    c.commit();
  }
  report_records(state, 1, size);
}

// --- poll ----------------------------------------------------------------------------------

// Polls through a ring filled ahead of time. Only the polls are timed: when the reader has
// caught up, the timer is paused and a quarter of the ring (4 MiB: 64 to 260k records, so the
// pause is rare next to the polls) is written again. poll_copy reads every payload byte, so
// its ring is refilled with append (the payload was just written, as in a real stream);
// poll() reads only the header, so its ring is refilled with claim + commit, which writes the
// header and leaves the payload bytes as they were: the same work for the poll, and a refill
// that costs nothing per payload byte (appending 64 KiB records to feed 25 ns views made
// poll/view/65536 alone run for 30 s).
template <bool copy>
void bm_poll(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  shmlog::writer& w = main_log();
  shmlog::reader r =
      shmlog::reader::attach(w.mapped(), {.start = shmlog::start_position::latest()});
  const std::vector<std::byte> payload = shmlog_bench::make_payload(size);
  std::vector<std::byte> buffer(size);
  const std::uint64_t fill_bytes = w.capacity() / 4;
  auto refill = [&] {
    const std::uint64_t target = w.master_offset() + fill_bytes;
    while (w.master_offset() < target) {
      if constexpr (copy) {
        w.append(std::span(payload));
      } else {
        w.claim(size).commit();
      }
    }
  };
  refill();
  for (auto _ : state) {
    shmlog::poll_result p = poll_once<copy>(r, buffer);
    if (p.status != shmlog::poll_status::record) [[unlikely]] {
      state.PauseTiming();
      const bool caught_up = p.status == shmlog::poll_status::empty;
      if (caught_up) refill();
      state.ResumeTiming();
      if (!caught_up) {
        state.SkipWithError("reader was lapped or found corruption in a single-thread run");
        break;
      }
      p = poll_once<copy>(r, buffer);
    }
    benchmark::DoNotOptimize(p.record.payload.data());
  }
  report_records(state, 1, size);
}

void bm_poll_empty(benchmark::State& state) {
  shmlog::writer& w = main_log();
  shmlog::reader r =
      shmlog::reader::attach(w.mapped(), {.start = shmlog::start_position::latest()});
  for (auto _ : state) {
    shmlog::poll_result p = r.poll();
    benchmark::DoNotOptimize(p.status);
  }
  state.SetItemsProcessed(state.iterations());
}

// One append and one poll per iteration, in one thread: the round trip without any cache
// line moving between cores (compare with concurrent/reader for the cost of sharing).
template <bool copy>
void bm_append_poll(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  shmlog::writer& w = main_log();
  shmlog::reader r =
      shmlog::reader::attach(w.mapped(), {.start = shmlog::start_position::latest()});
  const std::vector<std::byte> payload = shmlog_bench::make_payload(size);
  const std::span<const std::byte> bytes(payload);
  std::vector<std::byte> buffer(size);
  for (auto _ : state) {
    w.append(bytes);
    shmlog::poll_result p = poll_once<copy>(r, buffer);
    if (p.status != shmlog::poll_status::record) [[unlikely]] {
      state.SkipWithError("poll right after an append did not return the record");
      break;
    }
    benchmark::DoNotOptimize(p.record.payload.data());
  }
  report_records(state, 1, size);
}

// --- resync --------------------------------------------------------------------------------
// A 1 MiB log (64 KiB intent chunks) of 64 B records, written once past a full lap so that the
// window starts mid-ring, and never written again: every run sees the same window.

struct resync_fixture {
  std::unique_ptr<shmlog_bench::scoped_log> log;
  std::vector<std::uint64_t> offsets;  // every record appended, in order
  shmlog::history_state history;
  shmlog::backlog_window window;
  std::uint64_t at_checkpoint = 0;  // a record that starts a chunk: seek walks no header
  std::uint64_t mid_chunk = 0;      // a record half a chunk further: seek walks ~455 headers
};

std::unique_ptr<resync_fixture> resync_storage;

resync_fixture& resync_log() {
  if (!resync_storage) {
    resync_storage = std::make_unique<resync_fixture>();
    resync_fixture& f = *resync_storage;
    constexpr std::uint64_t capacity = std::uint64_t{1} << 20;
    constexpr std::uint64_t chunk = capacity / 16;
    f.log = std::make_unique<shmlog_bench::scoped_log>("resync", capacity);
    shmlog::writer& w = f.log->writer();
    const std::vector<std::byte> payload = shmlog_bench::make_payload(64);
    while (w.master_offset() < capacity + capacity / 2)
      f.offsets.push_back(w.append(std::span(payload)));
    f.history = w.history();
    // The window as a reader sees it.
    shmlog::reader r =
        shmlog::reader::attach(w.mapped(), {.start = shmlog::start_position::latest()});
    f.window = r.window();
    // Two chunks into the window, well clear of both of its ends.
    const std::uint64_t boundary = ((f.window.first_byte_offset / chunk) + 2) * chunk;
    auto first_at_or_after = [&](std::uint64_t x) {
      return *std::lower_bound(f.offsets.begin(), f.offsets.end(), x);
    };
    f.at_checkpoint = first_at_or_after(boundary);
    f.mid_chunk = first_at_or_after(boundary + chunk / 2);
  }
  return *resync_storage;
}

void bm_decide_resync(benchmark::State& state, int which) {
  resync_fixture& f = resync_log();
  std::optional<shmlog::history_id> id = f.history.replid;
  std::uint64_t offset = f.mid_chunk;
  if (which == 1) id = shmlog::history_id::parse(std::string(40, 'a'));  // unknown history
  if (which == 2) offset = f.window.first_byte_offset - 8;               // overwritten
  for (auto _ : state) {
    shmlog::resync_decision d = shmlog::decide_resync(f.history, f.window, id, offset);
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(state.iterations());
}

void bm_reader_resync(benchmark::State& state, int which) {
  resync_fixture& f = resync_log();
  shmlog::reader r =
      shmlog::reader::attach(f.log->writer().mapped(), {.start = shmlog::start_position::latest()});
  std::optional<shmlog::history_id> id = f.history.replid;
  const std::uint64_t offset = which == 1 ? f.mid_chunk : f.at_checkpoint;
  if (which == 2) id = shmlog::history_id::parse(std::string(40, 'a'));
  const shmlog::resync_kind expected =
      which == 2 ? shmlog::resync_kind::full : shmlog::resync_kind::partial;
  for (auto _ : state) {
    shmlog::resync_decision d = r.resync(id, offset);
    if (d.kind != expected) [[unlikely]] {
      state.SkipWithError(("unexpected resync decision: " + d.describe()).c_str());
      break;
    }
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(state.iterations());
}

// --- append with a concurrent reader ---------------------------------------------------------
// The writer (this thread) is pinned to CPU 0 and a reader thread to CPU 1 when both exist,
// so that the numbers measure a cache line moving between two cores and not the scheduler.
// The reader spins on poll_copy; when lapped it jumps to the newest record (seek_latest), as a
// consumer that wants fresh data rather than all of it would.

struct reader_stats {
  std::uint64_t records = 0;
  std::uint64_t laps = 0;
  std::uint64_t corrupt = 0;
};

template <bool with_reader>
void bm_concurrent(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  shmlog::writer& w = main_log();
  const std::vector<std::byte> payload = shmlog_bench::make_payload(size);
  const std::span<const std::byte> bytes(payload);
  const bool can_pin = shmlog_bench::cpu_allowed(0) && shmlog_bench::cpu_allowed(1);
  std::optional<shmlog_bench::scoped_cpu_pin> pin;
  if (can_pin) pin.emplace(0);

  // Each flag on its own line: the writer's loop must not share a line with the reader's.
  alignas(64) std::atomic<bool> stop{false};
  alignas(64) std::atomic<bool> ready{false};
  reader_stats stats;
  std::thread consumer;
  if constexpr (with_reader) {
    shmlog::reader r =
        shmlog::reader::attach(w.mapped(), {.start = shmlog::start_position::latest()});
    consumer = std::thread([&, r = std::move(r)]() mutable {
      // Its own name, so that perf (bench/perf/perf_record.sh) reports it apart from the writer.
      ::pthread_setname_np(::pthread_self(), "micro-reader");
      std::optional<shmlog_bench::scoped_cpu_pin> reader_pin;
      if (can_pin) reader_pin.emplace(1);
      std::vector<std::byte> buffer(size);
      reader_stats local;
      ready.store(true, std::memory_order_release);
      while (!stop.load(std::memory_order_relaxed)) {
        const shmlog::poll_result p = r.poll_copy(buffer);
        switch (p.status) {
          case shmlog::poll_status::record:
            ++local.records;
            break;
          case shmlog::poll_status::empty:
            shmlog_bench::cpu_relax();
            break;
          case shmlog::poll_status::lapped:
            ++local.laps;
            r.seek_latest();
            break;
          case shmlog::poll_status::corrupt:
            ++local.corrupt;
            r.skip_corruption();
            break;
          case shmlog::poll_status::history_changed:  // one writer, never restarted
          case shmlog::poll_status::too_small:        // poll_copy(span) only
            ++local.corrupt;
            r.seek_latest();
            break;
        }
      }
      stats = local;  // published to the benchmark thread by join()
    });
    while (!ready.load(std::memory_order_acquire))
      shmlog_bench::cpu_relax();
  }

  for (auto _ : state)
    benchmark::DoNotOptimize(w.append(bytes));

  stop.store(true, std::memory_order_relaxed);
  if (consumer.joinable()) consumer.join();
  report_records(state, 1, size);
  if constexpr (with_reader) {
    // Records delivered after the timed loop ended were appended inside it, so the rate is
    // the reader's share of what the writer produced in the timed interval.
    state.counters["reader_records"] =
        benchmark::Counter(static_cast<double>(stats.records), benchmark::Counter::kIsRate);
    state.counters["reader_laps"] =
        benchmark::Counter(static_cast<double>(stats.laps), benchmark::Counter::kIsRate);
    state.counters["reader_share"] =
        static_cast<double>(stats.records) / static_cast<double>(state.iterations());
    if (stats.corrupt != 0) state.SkipWithError("the reader saw a corrupt record");
  }
  state.SetLabel(can_pin ? "writer cpu0, reader cpu1" : "unpinned (fewer than 2 CPUs)");
}

// --- registration --------------------------------------------------------------------------

void register_all() {
  register_sized("append/single", bm_append_single, record_sizes);
  register_sized("append/batch16", bm_append_batch16, record_sizes);
  register_sized("append/claim", bm_append_claim, record_sizes);
  register_sized("poll/view", bm_poll<false>, record_sizes);
  register_sized("poll/copy", bm_poll<true>, record_sizes);
  benchmark::RegisterBenchmark("poll/empty",
                               [](benchmark::State& s) { guarded(s, bm_poll_empty); });
  register_sized("append_poll/view", bm_append_poll<false>, record_sizes);
  register_sized("append_poll/copy", bm_append_poll<true>, record_sizes);

  const std::pair<const char*, int> decide_cases[] = {
      {"resync/decide/partial", 0},
      {"resync/decide/full_unknown_history", 1},
      {"resync/decide/full_offset_before_backlog", 2},
  };
  for (const auto& [name, which] : decide_cases)
    benchmark::RegisterBenchmark(name, [which = which](benchmark::State& s) {
      guarded(s, [which](benchmark::State& st) { bm_decide_resync(st, which); });
    });
  const std::pair<const char*, int> reader_cases[] = {
      {"resync/reader/partial_at_checkpoint", 0},
      {"resync/reader/partial_mid_chunk", 1},
      {"resync/reader/full_unknown_history", 2},
  };
  for (const auto& [name, which] : reader_cases)
    benchmark::RegisterBenchmark(name, [which = which](benchmark::State& s) {
      guarded(s, [which](benchmark::State& st) { bm_reader_resync(st, which); });
    });

  static constexpr std::int64_t concurrent_sizes[] = {32, 64, 1024, 65536};
  register_sized("concurrent/alone", bm_concurrent<false>, concurrent_sizes, true);
  register_sized("concurrent/reader", bm_concurrent<true>, concurrent_sizes, true);
}

}  // namespace

int main(int argc, char** argv) {
  // Our own flag first (Google Benchmark rejects flags it does not know), then a default
  // minimum time unless the caller chose one.
  std::vector<char*> args;
  bool quick = false;
  bool min_time_given = false;
  for (int i = 0; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (i > 0 && arg == "--quick") {
      quick = true;
      continue;
    }
    if (arg.starts_with("--benchmark_min_time")) min_time_given = true;
    if (arg == "--help" || arg == "-h")
      std::printf(
          "shmlog_micro [--quick] [benchmark flags]\n"
          "  --quick  0.02 s per benchmark instead of 0.2 s (ignored with --benchmark_min_time)\n"
          "  names: append/{single,batch16,claim}/N, poll/{view,copy}/N, poll/empty,\n"
          "         append_poll/{view,copy}/N, resync/{decide,reader}/..., "
          "concurrent/{alone,reader}/N\n\n");
    args.push_back(argv[i]);
  }
  std::string min_time = quick ? "--benchmark_min_time=0.02" : "--benchmark_min_time=0.2";
  if (!min_time_given) args.insert(args.begin() + 1, min_time.data());
  int count = static_cast<int>(args.size());
  args.push_back(nullptr);

  register_all();
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
  benchmark::AddCustomContext("shmlog_ring_capacity",
                              std::to_string(shmlog_bench::default_capacity));
  benchmark::AddCustomContext("shmlog_cpu_pinning",
                              shmlog_bench::cpu_allowed(0) && shmlog_bench::cpu_allowed(1)
                                  ? "concurrent/*: writer cpu0, reader cpu1"
                                  : "concurrent/*: unpinned");
  shmlog_bench::install_cleanup_handlers();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  main_log_storage.reset();
  resync_storage.reset();
  return 0;
}
