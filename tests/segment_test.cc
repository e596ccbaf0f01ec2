// Creating, naming, inspecting and refusing segments: every kind of bad input names what is
// wrong.
#include "shmlog/segment.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>

#include "raw_segment.h"
#include "shmlog/reader.h"
#include "shmlog/writer.h"
#include "test_util.h"

namespace shmlog {
namespace {

using test::scoped_log;
using test::unique_log_name;

errc code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no shmlog::error thrown";
  return errc::system_error;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(names, GoodNamesAreAccepted) {
  for (const char* name : {"a", "quotes", "md.feed-1_A", "9lives"})
    EXPECT_NO_THROW(validate_name(name));
  EXPECT_NO_THROW(validate_name(std::string(200, 'n')));
}

TEST(names, BadNamesAreRefusedSayingWhy) {
  const std::pair<std::string, const char*> cases[] = {
      {"", "empty"},
      {std::string(201, 'n'), "201 characters"},
      {"a/b", "'/'"},
      {".hidden", "start with a letter or digit"},
      {"-dash", "start with a letter or digit"},
      {"has space", "' '"},
      {std::string("ctl\x01", 4), "control"},
      {"caf\xc3\xa9", "non-ASCII"},
  };
  for (const auto& [name, why] : cases) {
    const std::string m = message_of([&] { validate_name(name); });
    EXPECT_NE(m.find(why), std::string::npos) << m;
    EXPECT_EQ(code_of([&] { create(name, {}); }), errc::invalid_name);
    EXPECT_EQ(code_of([&] { writer::open(name); }), errc::invalid_name);
    EXPECT_EQ(code_of([&] { reader::attach(name); }), errc::invalid_name);
  }
}

TEST(sizes, CapacityMustBeAPowerOfTwoInRange) {
  const std::string name = unique_log_name("size");
  for (std::uint64_t bad : {std::uint64_t{0}, std::uint64_t{1000}, std::uint64_t{2048},
                            std::uint64_t{3 * 4096}, std::uint64_t{1} << 41}) {
    EXPECT_EQ(code_of([&] { create(name, {.capacity = bad}); }), errc::invalid_argument) << bad;
    EXPECT_FALSE(exists(name));
  }
  EXPECT_NE(message_of([&] { create(name, {.capacity = 5000}); }).find("nearest allowed: 8192"),
            std::string::npos);
}

TEST(sizes, ReaderSlotsMustBeInRange) {
  const std::string name = unique_log_name("slots");
  EXPECT_EQ(code_of([&] { create(name, {.capacity = 4096, .reader_slots = 0}); }),
            errc::invalid_argument);
  EXPECT_EQ(code_of([&] { create(name, {.capacity = 4096, .reader_slots = 4097}); }),
            errc::invalid_argument);
}

TEST(sizes, ModeMustKeepOwnerReadWriteAndStayWithin0777) {
  const std::string name = unique_log_name("mode");
  EXPECT_EQ(code_of([&] { create(name, {.capacity = 4096, .mode = 01777}); }),
            errc::invalid_argument);
  EXPECT_EQ(code_of([&] { create(name, {.capacity = 4096, .mode = 0400}); }),
            errc::invalid_argument);
}

mode_t mode_of(const std::string& name) {
  struct stat st {};
  EXPECT_EQ(::stat(("/dev/shm/" + name).c_str(), &st), 0);
  return st.st_mode & 0777;
}

TEST(creation, DefaultModeIs0600WhateverTheUmask) {
  scoped_log log{unique_log_name("mode")};
  const mode_t old = ::umask(0);
  create(log, {.capacity = 4096});
  ::umask(old);
  EXPECT_EQ(mode_of(log), 0600u);
  EXPECT_EQ(inspect(log.name()).mode, 0600u);
}

TEST(creation, ModeIsAppliedExactly) {
  scoped_log log{unique_log_name("mode")};
  const mode_t old = ::umask(077);  // would strip group bits from a plain open(2)
  create(log, {.capacity = 4096, .mode = 0640});
  ::umask(old);
  EXPECT_EQ(mode_of(log), 0640u);
}

TEST(creation, FreshLogDescribesItself) {
  scoped_log log{unique_log_name("fresh")};
  create(log, {.capacity = 8192, .reader_slots = 7});
  const log_info info = inspect(log.name());
  EXPECT_EQ(info.capacity, 8192u);
  EXPECT_EQ(info.reader_slot_count, 7u);
  EXPECT_EQ(info.layout_version, layout_version);
  EXPECT_EQ(info.max_payload, 8192u / 4 - 8);
  EXPECT_EQ(info.segment_bytes, segment_size_for(8192, 7));
  EXPECT_FALSE(info.history.replid.is_none());
  EXPECT_TRUE(info.history.replid2.is_none());
  EXPECT_EQ(info.history.second_repl_offset, no_offset);
  EXPECT_EQ(info.window.first_byte_offset, 0u);
  EXPECT_EQ(info.window.master_offset, 0u);
  EXPECT_EQ(info.histlen(), 0u);
  EXPECT_EQ(info.writer_pid, 0u);
  EXPECT_FALSE(info.writer_alive);
  EXPECT_TRUE(info.readers.empty());
  EXPECT_GT(info.creation_time_ns, 0u);
}

TEST(creation, EachLogGetsItsOwnHistoryId) {
  scoped_log a{unique_log_name("id")};
  scoped_log b{unique_log_name("id")};
  create(a, {.capacity = 4096});
  create(b, {.capacity = 4096});
  EXPECT_NE(inspect(a.name()).history.replid, inspect(b.name()).history.replid);
}

TEST(creation, DestroyReportsWhetherTheLogExisted) {
  const std::string name = unique_log_name("destroy");
  create(name, {.capacity = 4096});
  EXPECT_TRUE(destroy(name));
  EXPECT_FALSE(destroy(name));
  EXPECT_EQ(code_of([&] { inspect(name); }), errc::not_found);
}

// --- refusing segments that are not (or no longer) valid shmlog segments ------------------

struct bad_segment : ::testing::Test {
  scoped_log log{unique_log_name("bad")};
  void SetUp() override { create(log, {.capacity = 4096}); }
  errc open_error() {
    const errc as_reader = code_of([&] { reader::attach(log.name()); });
    EXPECT_EQ(code_of([&] { writer::open(log.name()); }), as_reader);
    EXPECT_EQ(code_of([&] { inspect(log.name()); }), as_reader);
    return as_reader;
  }
};

TEST_F(bad_segment, WrongMagicIsRefused) {
  test::raw_segment(log.name()).poke<std::uint64_t>(0, 0x1122334455667788);
  EXPECT_EQ(open_error(), errc::bad_magic);
  EXPECT_NE(message_of([&] { inspect(log.name()); }).find("0x1122334455667788"), std::string::npos);
}

TEST_F(bad_segment, UnknownLayoutVersionIsRefusedNamingBoth) {
  test::raw_segment(log.name())
      .poke<std::uint32_t>(offsetof(segment_descriptor, layout_version), 99);
  EXPECT_EQ(open_error(), errc::unsupported_version);
  const std::string m = message_of([&] { inspect(log.name()); });
  EXPECT_NE(m.find("99"), std::string::npos) << m;
  EXPECT_NE(m.find("version " + std::to_string(layout_version)), std::string::npos) << m;
}

TEST_F(bad_segment, ChangedCapacityFailsTheChecks) {
  test::raw_segment(log.name()).poke<std::uint64_t>(offsetof(segment_descriptor, capacity), 8192);
  EXPECT_EQ(open_error(), errc::corrupt_header);
}

TEST_F(bad_segment, FlippedCreationTimeFailsTheChecksum) {
  test::raw_segment raw(log.name());
  const auto at = offsetof(segment_descriptor, creation_time_ns);
  raw.poke<std::uint64_t>(at, raw.peek<std::uint64_t>(at) ^ 1);
  EXPECT_EQ(open_error(), errc::corrupt_header);
  EXPECT_NE(message_of([&] { inspect(log.name()); }).find("checksum"), std::string::npos);
}

TEST_F(bad_segment, BadSlotCountIsNamed) {
  test::raw_segment(log.name())
      .poke<std::uint32_t>(offsetof(segment_descriptor, reader_slot_count), 0);
  EXPECT_EQ(open_error(), errc::corrupt_header);
  EXPECT_NE(message_of([&] { inspect(log.name()); }).find("reader_slot_count"), std::string::npos);
}

// Found by the header fuzz (tests/header_fuzz_test.cc): the error said "a history id is not 40
// hex characters", naming neither which id nor what it held.
TEST_F(bad_segment, HistoryIdThatIsNotHexIsNamedWithWhatItHolds) {
  const std::size_t replid2 = offsetof(segment_header, history) + offsetof(history_block, replid2);
  test::raw_segment(log.name()).poke<char>(replid2 + 3, 'z');
  const std::string m = message_of([&] { inspect(log.name()); });
  EXPECT_NE(m.find("corrupt header: history replid2 \"000z000000000000000000000000000000000000\" "
                   "is not 40 hex characters"),
            std::string::npos)
      << m;
  EXPECT_EQ(code_of([&] { reader::attach(log.name()); }), errc::corrupt_header);
}

TEST_F(bad_segment, TruncatedSegmentIsRefusedWithBothSizes) {
  test::raw_segment(log.name()).resize(header_size + 100);
  EXPECT_EQ(open_error(), errc::truncated);
  const std::string m = message_of([&] { inspect(log.name()); });
  EXPECT_NE(m.find(std::to_string(header_size + 100)), std::string::npos) << m;
  EXPECT_NE(m.find(std::to_string(segment_size_for(4096, default_reader_slots))), std::string::npos)
      << m;
}

TEST_F(bad_segment, SegmentSmallerThanItsDescriptorIsTruncated) {
  test::raw_segment(log.name()).resize(10);
  EXPECT_EQ(open_error(), errc::truncated);
}

TEST(foreign_segment, EmptyObjectWithNoCreatorIsNotInitialized) {
  scoped_log log{unique_log_name("empty")};
  const int fd = ::shm_open(("/" + log.name()).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  EXPECT_EQ(code_of([&] { inspect(log.name()); }), errc::not_initialized);
  const int fd2 = ::shm_open(("/" + log.name()).c_str(), O_RDWR, 0600);
  ASSERT_EQ(::ftruncate(fd2, 64 * 1024), 0);  // sized but never written: no magic
  ::close(fd2);
  EXPECT_EQ(code_of([&] { reader::attach(log.name()); }), errc::not_initialized);
}

// Found by the header fuzz (tests/header_fuzz_test.cc): writer::open took the writer lock, then
// saw that lock held (its own, on its other description) and waited the full 2 s meant for a
// creator still at work before it said so.
TEST(foreign_segment, WriterOnALogWithoutMagicFailsAtOnce) {
  scoped_log log{unique_log_name("nomagic")};
  create(log, {.capacity = 4096});
  test::raw_segment(log.name()).poke<std::uint64_t>(offsetof(segment_descriptor, magic), 0);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(code_of([&] { writer::open(log.name()); }), errc::not_initialized);
  // No creator can be at work while we hold the writer lock: nothing to wait for. (Bound far
  // below the 2 s wait and far above a failure that did not wait at all.)
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1000));
  EXPECT_NE(message_of([&] { writer::open(log.name()); }).find("never fully created"),
            std::string::npos);
}

TEST(foreign_segment, SomeoneElsesSharedMemoryIsNotAShmlogSegment) {
  scoped_log log{unique_log_name("foreign")};
  const int fd = ::shm_open(("/" + log.name()).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  const char junk[] = "this is somebody else's shared memory, not a log";
  ASSERT_EQ(::write(fd, junk, sizeof junk), static_cast<ssize_t>(sizeof junk));
  ASSERT_EQ(::ftruncate(fd, 8192), 0);
  ::close(fd);
  EXPECT_EQ(code_of([&] { reader::attach(log.name()); }), errc::bad_magic);
}

// Run as another user in a child process: root ignores file permissions, and CI runs as root.
TEST(foreign_segment, LogOfAnotherUserIsPermissionDenied) {
  scoped_log log{unique_log_name("perm")};
  create(log, {.capacity = 4096});  // mode 0600: the owner only
  const uid_t nobody = 65534;
  if (::geteuid() != 0) {
    ASSERT_EQ(::chmod(("/dev/shm/" + log.name()).c_str(), 0), 0);  // not even the owner
  }
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::geteuid() == 0 && (::setgid(nobody) != 0 || ::setuid(nobody) != 0)) ::_exit(10);
    int status = 1;
    try {
      reader::attach(log.name());
    } catch (const error& e) {
      const bool named = std::string(e.what()).find("permission denied") != std::string::npos;
      status = e.code() == errc::permission_denied && named ? 0 : 2;
    }
    ::_exit(status);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace shmlog
