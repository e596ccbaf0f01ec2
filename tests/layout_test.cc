// Properties of the shared format that the writer and readers rely on.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "copy.h"
#include "segment_layout.h"
#include "shmlog/crc32c.h"

namespace shmlog {
namespace {

TEST(layout_rules, HeaderPacksLengthTypeAndTagIntoOneWord) {
  const std::uint64_t word = pack_record_header(0x12345678, 0xBEEF, 8 * 0x4321);
  EXPECT_EQ(header_length(word), 0x12345678u);
  EXPECT_EQ(header_type(word), 0xBEEF);
  EXPECT_EQ(header_tag(word), 0x4321);
}

TEST(layout_rules, HeaderIsLittleEndianLengthFirst) {
  const std::uint64_t word = pack_record_header(5, 7, 0);
  unsigned char bytes[8];
  std::memcpy(bytes, &word, 8);
  EXPECT_EQ(bytes[0], 5);
  EXPECT_EQ(bytes[4], 7);
}

TEST(layout_rules, FrameIsHeaderPlusPayloadRoundedToEight) {
  EXPECT_EQ(record_frame_size(0), 8u);
  EXPECT_EQ(record_frame_size(1), 16u);
  EXPECT_EQ(record_frame_size(8), 16u);
  EXPECT_EQ(record_frame_size(9), 24u);
}

TEST(layout_rules, TagIsOffsetInWordsModulo65536) {
  EXPECT_EQ(record_tag(0), 0);
  EXPECT_EQ(record_tag(8), 1);
  EXPECT_EQ(record_tag(8 * 65536), 0);
}

TEST(layout_rules, SizingRulesFollowCapacity) {
  EXPECT_EQ(intent_chunk_for(4096), 256u);
  EXPECT_EQ(max_payload_for(4096), 1016u);
  EXPECT_EQ(record_frame_size(max_payload_for(4096)), 1024u);  // exactly a quarter
  EXPECT_EQ(max_payload_for(1 << 20), (1u << 18) - 8);
}

TEST(layout_rules, ReaderAreaIsWholePages) {
  EXPECT_EQ(reader_area_size_for(1), 4096u);
  EXPECT_EQ(reader_area_size_for(31), 4096u);  // 128 + 31 * 128 = 4096
  EXPECT_EQ(reader_area_size_for(32), 8192u);
  EXPECT_EQ(segment_size_for(4096, 64), 4096u + 4096u + 12288u);
}

// The record header's 32-bit length is the limit above 16 GiB, where a quarter of the ring
// would no longer fit; every sizing field still fits its (64-bit) descriptor field.
TEST(layout_rules, LargestPayloadIsAQuarterOfTheRingUpTo16GiBThen4GiBLess8) {
  EXPECT_EQ(max_payload_for(std::uint64_t{1} << 34), (std::uint64_t{1} << 32) - 8);
  EXPECT_EQ(max_payload_for(std::uint64_t{1} << 35), (std::uint64_t{1} << 32) - 8);
  EXPECT_EQ(max_payload_for(max_capacity), (std::uint64_t{1} << 32) - 8);
  EXPECT_EQ(max_frame_for(max_capacity), std::uint64_t{1} << 32);
  EXPECT_EQ(intent_chunk_for(max_capacity), std::uint64_t{1} << 36);
  // A padding record is shorter than the largest frame, so its length fits 32 bits too.
  EXPECT_LE(max_frame_for(max_capacity) - record_header_size, std::uint64_t{0xFFFFFFFF});
}

TEST(layout_rules, LockBytesDoNotOverlap) {
  EXPECT_EQ(writer_lock_byte, 0u);
  EXPECT_EQ(reader_lock_byte(0), 1u);
  EXPECT_EQ(reader_lock_byte(max_reader_slots - 1), max_reader_slots);
}

}  // namespace
}  // namespace shmlog

namespace shmlog::detail {
namespace {

// The inline copy must copy every length exactly and never touch a byte outside either range.
TEST(copy_payload_rules, EveryLengthUpTo200CopiesExactlyAndStaysInBounds) {
  for (std::size_t n = 0; n <= 200; ++n) {
    std::vector<std::byte> from(n + 32), to(n + 32, std::byte{0xEE});
    for (std::size_t i = 0; i < from.size(); ++i)
      from[i] = static_cast<std::byte>(i * 7 + n);
    copy_payload(to.data() + 16, from.data() + 16, n);
    for (std::size_t i = 0; i < to.size(); ++i) {
      const bool inside = i >= 16 && i < 16 + n;
      ASSERT_EQ(to[i], inside ? from[i] : std::byte{0xEE}) << "n=" << n << " i=" << i;
    }
  }
}

}  // namespace
}  // namespace shmlog::detail

namespace shmlog {
namespace {

// Known answers for CRC-32C (RFC 3720, appendix B.4) and agreement of split computations.
TEST(crc32c_rules, KnownAnswers) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  std::vector<unsigned char> zeros(32, 0);
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  std::vector<unsigned char> ones(32, 0xFF);
  EXPECT_EQ(crc32c(ones.data(), ones.size()), 0x62A8AB43u);
}

TEST(crc32c_rules, ExtendingInPiecesEqualsOneCall) {
  std::vector<unsigned char> data(1000);
  for (std::size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<unsigned char>(i * 13 + 7);
  const std::uint32_t whole = crc32c(data.data(), data.size());
  for (std::size_t cut : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{8},
                          std::size_t{333}, std::size_t{1000}})
    EXPECT_EQ(crc32c(data.data() + cut, data.size() - cut, crc32c(data.data(), cut)), whole) << cut;
}

}  // namespace
}  // namespace shmlog
