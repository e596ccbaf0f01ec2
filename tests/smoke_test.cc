#include <gtest/gtest.h>
#include <unistd.h>

#include "shmlog/reader.h"
#include "shmlog/segment.h"
#include "shmlog/writer.h"

TEST(Smoke, AppendAndRead) {
  const std::string name = "shmlog-smoke-" + std::to_string(getpid());
  shmlog::destroy(name);
  auto w = shmlog::writer::create(name, {.capacity = 4096});
  auto r = shmlog::reader::attach(name, {.start = shmlog::start_position::oldest()});
  for (int i = 0; i < 1000; ++i) {
    std::string s = "record " + std::to_string(i);
    w.append(s);
    std::vector<std::byte> buf;
    auto p = r.poll_copy(buf);
    ASSERT_EQ(p.status, shmlog::poll_status::record) << i;
    EXPECT_EQ(p.record.text(), s);
  }
  shmlog::destroy(name);
}
