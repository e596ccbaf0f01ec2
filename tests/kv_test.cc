// The key-value example's state machine: commands, their validation, and save/load.
#include <gtest/gtest.h>

#include <sstream>

#include "kv_state.h"

namespace shmlog::kv {
namespace {

record_view as_record(const std::string& s) {
  return {0, 0, default_record_type, std::as_bytes(std::span(s.data(), s.size()))};
}

TEST(kv_state_commands, SetGetDelIncr) {
  kv_state s;
  EXPECT_EQ(s.execute("SET a hello world"), "SET a hello world");
  EXPECT_EQ(s.get("a"), "hello world");
  s.execute("INCR n");
  s.execute("INCR n");
  EXPECT_EQ(s.get("n"), "2");
  s.execute("DEL a");
  EXPECT_FALSE(s.get("a"));
  EXPECT_EQ(s.size(), 1u);
}

TEST(kv_state_commands, BadCommandsChangeNothingAndSayWhy) {
  kv_state s;
  s.execute("SET x notanumber");
  const std::pair<const char*, const char*> cases[] = {
      {"", "empty"},           {"GET a", "unknown command 'GET'"},
      {"SET", "missing key"},  {"SET a", "needs a value"},
      {"DEL a b", "key only"}, {"INCR x", "not an integer"},
  };
  for (const auto& [cmd, why] : cases) {
    try {
      s.execute(cmd);
      FAIL() << cmd;
    } catch (const invalid_command& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << cmd << ": " << e.what();
    }
  }
  EXPECT_EQ(s.get("x"), "notanumber");
  EXPECT_EQ(s.size(), 1u);
}

TEST(kv_state_commands, IncrRefusesToOverflow) {
  kv_state s;
  s.execute("SET big 9223372036854775807");
  EXPECT_THROW(s.execute("INCR big"), invalid_command);
}

TEST(kv_state_replication, ReplicaApplyingTheRecordsEqualsTheProducer) {
  kv_state producer, replica;
  for (const char* c : {"SET a 1", "INCR a", "SET b two words", "DEL a", "INCR c"})
    replica.apply(as_record(producer.execute(c)));
  EXPECT_EQ(replica.entries(), producer.entries());
  EXPECT_EQ(replica.checksum(), producer.checksum());
}

TEST(kv_state_replication, SaveThenLoadRestoresEveryByte) {
  kv_state a;
  a.execute("SET k1 value with spaces");
  a.execute("SET k2 " + std::string("\x01\x02 binary", 10));
  a.execute("INCR k3");
  std::stringstream bytes;
  a.save(bytes);
  kv_state b;
  b.execute("SET stale x");
  b.load(bytes);
  EXPECT_EQ(b.entries(), a.entries());
  EXPECT_EQ(b.checksum(), a.checksum());
}

TEST(kv_state_replication, DumpIsSortedKeyValueLines) {
  kv_state s;
  s.execute("SET b 2");
  s.execute("SET a 1");
  std::ostringstream out;
  s.dump(out);
  EXPECT_EQ(out.str(), "a 1\nb 2\n");
}

TEST(kv_state_replication, TruncatedSaveIsRefused) {
  kv_state a;
  a.execute("SET key value");
  std::stringstream bytes;
  a.save(bytes);
  std::stringstream cut(bytes.str().substr(0, bytes.str().size() - 3));
  kv_state b;
  EXPECT_THROW(b.load(cut), std::runtime_error);
}

}  // namespace
}  // namespace shmlog::kv
