// A writer thread and reader threads sharing one mapping, so ThreadSanitizer sees every access
// (it cannot see across processes). Each payload carries a sequence number and a CRC; readers
// check every record they accept and that sequence numbers are consecutive between laps.
#include <gtest/gtest.h>

#include <array>
#include <span>
#include <thread>

#include "shmlog/reader.h"
#include "shmlog/segment.h"
#include "shmlog/writer.h"
#include "test_util.h"

namespace shmlog {
namespace {

using namespace std::chrono_literals;
using test::scoped_log;
using test::unique_log_name;

constexpr record_type end_marker = 2;
constexpr std::uint64_t record_count = 20000;
constexpr std::size_t max_payload_bytes = 200;

struct reader_tally {
  std::uint64_t records = 0;
  std::uint64_t laps = 0;
  std::uint64_t bad = 0;           // payloads that failed verification: must stay 0
  std::uint64_t out_of_order = 0;  // sequence gaps not explained by a lap: must stay 0
  bool saw_end = false;
};

// into_span: poll_copy into a fixed buffer of max_payload_bytes (every record fits), the
// caller's-span overload, which must give the same torn-read guarantee as the vector's.
reader_tally read_until_end(reader r, lap_policy on_lap, bool into_span) {
  reader_tally t;
  std::vector<std::byte> buffer(into_span ? max_payload_bytes : 0);
  bool have_previous = false;
  std::uint64_t previous = 0;
  while (!t.saw_end) {
    const poll_result p =
        into_span ? r.poll_copy(std::span<std::byte>(buffer)) : r.poll_copy(buffer);
    switch (p.status) {
      case poll_status::record: {
        if (p.record.type == end_marker) {
          t.saw_end = true;
          break;
        }
        std::uint64_t seq = 0;
        if (!test::verify_payload(p.record.payload, &seq)) {
          ++t.bad;
          break;
        }
        if (have_previous && seq != previous + 1) ++t.out_of_order;
        previous = seq;
        have_previous = true;
        ++t.records;
        break;
      }
      case poll_status::empty:
        r.wait(1s);
        break;
      case poll_status::lapped:
        ++t.laps;
        r.recover_from_lap(on_lap);
        have_previous = false;  // a gap is expected here, and only here
        break;
      case poll_status::corrupt:
        ++t.bad;
        r.skip_corruption();
        break;
      case poll_status::history_changed:  // one writer, never restarted: cannot happen
      case poll_status::too_small:        // poll_copy(span) only: cannot happen
        ++t.bad;
        r.seek_oldest();
        have_previous = false;
        break;
    }
  }
  return t;
}

enum class append_style { single, batch, claim };

// fixed_size: every payload that many bytes (0: sizes vary with the sequence number).
void write_all(writer& w, append_style style, std::size_t fixed_size = 0) {
  std::vector<std::vector<std::byte>> batch_payloads;
  std::vector<record_ref> batch;
  for (std::uint64_t seq = 0; seq < record_count; ++seq) {
    const std::size_t size =
        fixed_size != 0 ? fixed_size : test::payload_size_for(seq, max_payload_bytes);
    switch (style) {
      case append_style::single:
        w.append(test::make_payload(seq, size));
        break;
      case append_style::batch:
        batch_payloads.push_back(test::make_payload(seq, size));
        if (batch_payloads.size() == 7 || seq + 1 == record_count) {
          batch.clear();
          for (const auto& p : batch_payloads)
            batch.push_back({p});
          w.append_batch(batch);
          batch_payloads.clear();
        }
        break;
      case append_style::claim: {
        auto c = w.claim(max_payload_bytes);
        test::make_payload(seq, size, c.payload().first(size));
        c.commit(size);
        break;
      }
    }
  }
  w.append(std::string_view("end"), end_marker);
}

// Three readers, each recovering from laps with its policy. Not lap_policy::latest: from the
// master offset a reader could skip the end marker and wait for ever.
void run(append_style style, wait_mode mode,
         std::array<lap_policy, 3> on_lap = {lap_policy::oldest, lap_policy::oldest,
                                             lap_policy::oldest},
         bool into_span = false, std::uint64_t capacity = 16384, std::size_t fixed_size = 0) {
  scoped_log log{unique_log_name("conc")};
  writer w = writer::create(log, {.capacity = capacity});
  std::vector<reader_tally> tallies(on_lap.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < tallies.size(); ++i) {
    reader r =
        reader::attach(w.mapped(), {.start = start_position::oldest(),
                                    .wait = {.mode = mode, .spin_for = 20us, .yield_for = 200us}});
    threads.emplace_back([&tallies, &on_lap, i, into_span, rr = std::move(r)]() mutable {
      tallies[i] = read_until_end(std::move(rr), on_lap[i], into_span);
    });
  }
  write_all(w, style, fixed_size);
  for (auto& t : threads)
    t.join();
  for (const reader_tally& t : tallies) {
    EXPECT_TRUE(t.saw_end);
    EXPECT_EQ(t.bad, 0u);
    EXPECT_EQ(t.out_of_order, 0u);
    EXPECT_GT(t.records, 0u);
    if (t.laps == 0) {
      EXPECT_EQ(t.records, record_count);
    }
  }
}

TEST(concurrency, ThreadedReadersSeeOnlyWholeRecordsFromSingleAppends) {
  run(append_style::single, wait_mode::adaptive);
}
// The recovery reads the window and a checkpoint while the writer runs, and a reader resumes
// from it: still only whole records, in order between laps.
TEST(concurrency, ReadersRecoveringFromLapsOldestSafeSeeOnlyWholeRecords) {
  run(append_style::single, wait_mode::spin,
      {lap_policy::oldest_safe, lap_policy::oldest_safe, lap_policy::oldest});
}
TEST(concurrency, ThreadedReadersSeeOnlyWholeRecordsFromBatches) {
  run(append_style::batch, wait_mode::yield);
}
TEST(concurrency, ThreadedReadersSeeOnlyWholeRecordsFromClaims) {
  run(append_style::claim, wait_mode::sleep);
}
TEST(concurrency, ThreadedReadersSeeOnlyWholeRecordsThroughACallersSpan) {
  run(append_style::single, wait_mode::yield,
      {lap_policy::oldest_safe, lap_policy::oldest_safe, lap_policy::oldest}, true);
}
// From 512 KiB on, a header a lap older carries the tag of the offset a ring later: only the
// word the writer clears after each publication keeps a caught-up reader, which waits on the
// next header rather than the master offset, from taking one for a new record (docs/design.md,
// "The one-transfer read"). Frames of 64 bytes, so that after the first lap every record
// start holds such a header; spinning readers, singles and batches, over two laps and more.
TEST(concurrency, CaughtUpReadersOfARingWhoseTagsRepeatEveryLapSeeOnlyWholeRecords) {
  constexpr std::uint64_t capacity = 512 * 1024;
  constexpr std::size_t payload = 64 - record_header_size;
  run(append_style::single, wait_mode::spin,
      {lap_policy::oldest_safe, lap_policy::oldest, lap_policy::oldest}, false, capacity, payload);
  run(append_style::batch, wait_mode::spin,
      {lap_policy::oldest_safe, lap_policy::oldest, lap_policy::oldest}, false, capacity, payload);
}

// Gating readers (docs/design.md, "Gating readers") on a ring small enough that the writer
// comes round every few hundred records: with a bound no run reaches, the writer waits for
// them instead of lapping them, so each gets every record, whole and in order (zero loss),
// while a plain reader beside them is lapped as before. Under TSan this checks the hand-over
// the gating rests on: the reader's release store of its offset, the writer's acquire load.
TEST(concurrency, GatingReadersLoseNothingWhileAPlainReaderIsLapped) {
  scoped_log log{unique_log_name("conc")};
  writer w = writer::create(log, {.capacity = 16384, .max_gating_wait = max_max_gating_wait});
  std::vector<reader_tally> tallies(3);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < tallies.size(); ++i) {
    const bool gating = i < 2;
    reader r =
        reader::attach(w.mapped(), {.start = start_position::oldest(),
                                    .wait = {.mode = i == 0 ? wait_mode::spin : wait_mode::adaptive,
                                             .spin_for = 20us,
                                             .yield_for = 200us},
                                    .gating = gating});
    threads.emplace_back([&tallies, i, rr = std::move(r)]() mutable {
      tallies[i] = read_until_end(std::move(rr), lap_policy::oldest_safe, i == 1);
    });
  }
  write_all(w, append_style::single);
  for (auto& t : threads)
    t.join();
  for (std::size_t i = 0; i < 2; ++i) {
    const reader_tally& t = tallies[i];
    EXPECT_TRUE(t.saw_end);
    EXPECT_EQ(t.bad, 0u);
    EXPECT_EQ(t.out_of_order, 0u);
    EXPECT_EQ(t.laps, 0u) << "gating reader " << i;
    EXPECT_EQ(t.records, record_count) << "gating reader " << i;
  }
  EXPECT_EQ(tallies[2].bad, 0u);
  EXPECT_EQ(tallies[2].out_of_order, 0u);
  EXPECT_EQ(inspect(log).gating_laps, 0u);
}

}  // namespace
}  // namespace shmlog
