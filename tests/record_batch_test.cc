// Records packed into one engine entry by a shipper and unpacked by a mirror: what comes back is
// what went in, and bytes from another host that do not describe records in order are refused
// with the reason, whatever they are (a fixed-seed fuzz).
#include "remote/record_batch.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace shmlog::remote {
namespace {

std::span<const std::byte> bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

TEST(record_batch, WhatIsPackedUnpacksWithItsOffsetsAcrossAGapForPadding) {
  std::string packed;
  pack_record(packed, 64, default_record_type, bytes("first"));
  pack_record(packed, 80, 7, bytes(""));
  pack_record(packed, 4096, default_record_type, bytes(std::string(40, 'x')));  // after padding
  std::string why;
  const auto records = unpack_records(packed, 64, 4096 + 48, 1016, &why);
  ASSERT_TRUE(records) << why;
  ASSERT_EQ(records->size(), 3u);
  EXPECT_EQ((*records)[0].offset, 64u);
  EXPECT_EQ((*records)[0].payload, "first");
  EXPECT_EQ((*records)[1].type, 7);
  EXPECT_EQ((*records)[1].payload, "");
  EXPECT_EQ((*records)[2].offset, 4096u);
  EXPECT_EQ((*records)[2].payload, std::string(40, 'x'));
}

std::string why_refused(const std::string& packed, std::uint64_t first, std::uint64_t end) {
  std::string why;
  EXPECT_FALSE(unpack_records(packed, first, end, 1016, &why));
  return why;
}

TEST(record_batch, BytesThatDoNotDescribeRecordsInOrderAreRefusedWithTheReason) {
  std::string one;
  pack_record(one, 64, default_record_type, bytes("abc"));
  EXPECT_EQ(why_refused(one.substr(0, 10), 64, 80), "a record header is cut short at byte 0");
  EXPECT_EQ(why_refused(one.substr(0, one.size() - 1), 64, 80),
            "the record at offset 64 says 3 bytes, but 2 are left");
  EXPECT_EQ(why_refused(one, 72, 88), "record offset 64 is out of order (expected at least 72)");
  EXPECT_EQ(why_refused(one, 64, 96), "the last record ends at 80, not at the entry's end 96");
  EXPECT_EQ(why_refused(one, 64, 72),
            "the record at offset 64 ends at 80, beyond the entry's end 72");
  EXPECT_EQ(why_refused("", 64, 64), "the entry holds no record");
  std::string big;
  pack_record(big, 0, default_record_type, bytes(std::string(1017, 'b')));
  EXPECT_EQ(why_refused(big, 0, 1032),
            "the record at offset 0 says 1017 bytes, but the log's largest payload is 1016");
  std::string overlapping = one;
  pack_record(overlapping, 72, default_record_type, bytes("d"));  // inside the first
  EXPECT_EQ(why_refused(overlapping, 64, 88),
            "record offset 72 is out of order (expected at least 80)");
  std::string unaligned;
  pack_record(unaligned, 68, default_record_type, bytes("abc"));
  EXPECT_EQ(why_refused(unaligned, 64, 84), "record offset 68 is not a multiple of 8");
  std::string padding;
  pack_record(padding, 64, padding_record_type, bytes("abc"));
  EXPECT_EQ(why_refused(padding, 64, 80),
            "the record at offset 64 is a padding record, which is never shipped");
}

// An entry covers the log from where the previous one ended: the source may have put padding
// there, so the first record starts later (the mirror's append_at checks the padding).
TEST(record_batch, FirstRecordAfterTheEntryStartIsPaddingTheMirrorChecks) {
  std::string one;
  pack_record(one, 4096, default_record_type, bytes("abc"));
  std::string why;
  const auto records = unpack_records(one, 4040, 4112, 1016, &why);
  ASSERT_TRUE(records) << why;
  EXPECT_EQ((*records)[0].offset, 4096u);
}

TEST(record_batch, RandomBytesAreRefusedOrDescribeRecordsWithinTheEntry) {
  std::mt19937_64 random(20261130);
  for (int i = 0; i < 20000; ++i) {
    std::string junk(random() % 200, '\0');
    for (char& c : junk)
      c = static_cast<char>(random());
    std::string why;
    const auto records = unpack_records(junk, 64, 64 + (random() % 4096), 1016, &why);
    if (!records) {
      EXPECT_FALSE(why.empty());
      continue;
    }
    for (const unpacked_record& r : *records)
      EXPECT_LE(r.payload.size(), 1016u);
  }
}

}  // namespace
}  // namespace shmlog::remote
