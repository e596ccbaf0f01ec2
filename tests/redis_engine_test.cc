// The Redis engine of remote replication (replication/remote/redis_engine.h) against a real
// redis-server started per test (tests/redis_server.h): URLs, AUTH and ACL users, the stream
// entries and their IDs, duplicates, fencing, trimming, blocking reads, the meta hash, snapshot
// chunks, and what a dead, restarted or stopped server looks like to a caller.
#include "remote/redis_engine.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "deadline.h"
#include "redis_server.h"
#include "shmlog/error.h"

namespace shmlog::remote {
namespace {

using namespace std::chrono_literals;
using test::redis_server;
using clock = std::chrono::steady_clock;

constexpr std::string_view key = "orders";
constexpr std::string_view replid = "8a1f0c2e4b6d8f0a1c3e5b7d9f1a3c5e7b9d1f3a";
constexpr std::string_view other_replid = "0000000000000000000000000000000000000001";

// Short timeouts: a failure shows within a test's budget.
redis_options quick() {
  return {.connect_timeout = 1000ms, .command_timeout = 300ms};
}

// Every byte value, NUL included, starting at `seed`.
std::string binary(std::size_t size, unsigned seed = 0) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i)
    out[i] = static_cast<char>((i + seed) & 0xFF);
  return out;
}

entry make_entry(std::uint64_t first, std::uint64_t end, std::string records) {
  return {.first_offset = first, .end_offset = end, .records = std::move(records)};
}

// The message of the shmlog::error `body` throws, which must be of `code`.
template <typename Body>
std::string error_of(errc code, Body body) {
  try {
    body();
  } catch (const error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error thrown";
  return {};
}

// A fresh engine whose meta names `replid` as the history appends are fenced on.
std::unique_ptr<engine> shipper(const redis_server& server, redis_options options = quick()) {
  auto e = connect_redis(server.url(), options);
  EXPECT_TRUE(e->set_meta_if(key, "replid", "", {{"replid", std::string(replid)}}));
  return e;
}

std::vector<entry> read_all(engine& e, std::string_view id = replid) {
  return e.read(key, id, std::nullopt, 100000, 0ms);
}

// --- URLs ------------------------------------------------------------------------------------

TEST(redis_url_parsing, AcceptsTheDocumentedForms) {
  redis_url u = parse_redis_url("redis://localhost");
  EXPECT_EQ(u.host, "localhost");
  EXPECT_EQ(u.port, 6379);
  EXPECT_EQ(u.db, 0u);
  EXPECT_EQ(u.user, "");
  EXPECT_EQ(u.password, "");
  EXPECT_EQ(u.endpoint(), "redis://localhost:6379/0");

  u = parse_redis_url("redis://:secret@10.1.2.3:6380/2");
  EXPECT_EQ(u.host, "10.1.2.3");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(u.db, 2u);
  EXPECT_EQ(u.user, "");
  EXPECT_EQ(u.password, "secret");
  EXPECT_EQ(u.endpoint(), "redis://10.1.2.3:6380/2");

  u = parse_redis_url("redis://shipper:p%40ss%3Aw%2Frd@redis.example-1.net:7000/15");
  EXPECT_EQ(u.user, "shipper");
  EXPECT_EQ(u.password, "p@ss:w/rd");
  EXPECT_EQ(u.host, "redis.example-1.net");
  EXPECT_EQ(u.endpoint(), "redis://shipper@redis.example-1.net:7000/15");

  u = parse_redis_url("redis://[::1]:6390");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 6390);
  EXPECT_EQ(u.endpoint(), "redis://[::1]:6390/0");
}

TEST(redis_url_parsing, RefusesBadUrlsNamingTheProblemWithoutThePassword) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"http://localhost", "does not start with redis://"},
      {"localhost:6379", "does not start with redis://"},
      {"rediss://u:secret@localhost", "TLS (rediss://) is not supported"},
      {"redis://", "no host"},
      {"redis://:secret@", "no host"},
      {"redis://:secret@:6379", "no host"},
      {"redis://localhost:", "port '' is not a number"},
      {"redis://localhost:0", "port '0' is not a number from 1 to 65535"},
      {"redis://localhost:65536", "port '65536'"},
      {"redis://localhost:63x9", "port '63x9'"},
      {"redis://localhost/", "no database number after '/'"},
      {"redis://localhost/x", "database 'x' is not a number"},
      {"redis://localhost/2147483648", "database '2147483648'"},
      {"redis://localhost/1/2", "database '1/2'"},
      {"redis://secret@localhost", "needs a ':'"},
      {"redis://user:@localhost", "the password is empty"},
      {"redis://user:se%zzcret@localhost", "bad percent-encoding in the password"},
      {"redis://us%4:secret@localhost", "bad percent-encoding in the user name"},
      {"redis://localhost?db=1", "query"},
      {"redis://local host", "host 'local host' has characters other than"},
      {"redis://::1:6379", "more than one ':'"},
      {"redis://[::1:6379", "without its ']'"},
      {"redis://[zz]:6379", "'zz' is not an IPv6 address"},
      {"redis://[::1]6379", "unexpected '6379' after the IPv6 address"},
  };
  for (const auto& [url, expected] : cases) {
    SCOPED_TRACE(url);
    const std::string message = error_of(errc::invalid_argument, [&] { parse_redis_url(url); });
    EXPECT_NE(message.find(expected), std::string::npos) << message;
    EXPECT_EQ(message.find("secret"), std::string::npos) << message;
    EXPECT_NE(message.find("expected redis://[user:password@]host[:port][/db]"), std::string::npos)
        << message;
  }
}

TEST(redis_url_parsing, ConnectRefusesABadUrlBeforeConnecting) {
  const std::string message =
      error_of(errc::invalid_argument, [] { connect_redis("redis://h:secret@localhost:0"); });
  EXPECT_NE(message.find("port '0'"), std::string::npos) << message;
  EXPECT_EQ(message.find("secret"), std::string::npos) << message;
}

// --- connecting ------------------------------------------------------------------------------

TEST(redis_engine_connect, NothingListeningIsAnErrorNamingTheEndpoint) {
  std::string url;
  std::string endpoint;
  {
    redis_server server;  // a port nobody listens on once the server has gone
    url = server.url();
    endpoint = server.endpoint();
  }
  const std::string message = error_of(errc::system_error, [&] { connect_redis(url, quick()); });
  EXPECT_NE(message.find(endpoint + ": cannot connect"), std::string::npos) << message;
  EXPECT_NE(message.find("refused"), std::string::npos) << message;
}

TEST(redis_engine_connect, LazyConnectionReportsOnTheFirstCall) {
  std::string url;
  {
    redis_server server;
    url = server.url();
  }
  redis_options options = quick();
  options.connect_at_once = false;
  auto e = connect_redis(url, options);  // no error yet
  const std::string message = error_of(errc::system_error, [&] { e->meta(key); });
  EXPECT_NE(message.find("cannot connect"), std::string::npos) << message;
}

TEST(redis_engine_connect, ALazyEngineConnectsOnItsFirstCallAnAppend) {
  redis_server server;
  auto setup = shipper(server);
  redis_options options = quick();
  options.connect_at_once = false;
  auto e = connect_redis(server.url(), options);
  EXPECT_EQ(e->append(key, replid, std::vector<entry>{make_entry(0, 8, "a")}, 0),
            std::vector<append_result>{append_result::appended});
}

TEST(redis_engine_connect, RequirepassRightPasswordWorks) {
  redis_server server({"--requirepass", "s3cret-pw"});
  auto e = connect_redis(server.url(":s3cret-pw"), quick());
  EXPECT_EQ(e->endpoint(), server.endpoint());
  EXPECT_TRUE(e->set_meta_if(key, "replid", "", {{"replid", std::string(replid)}}));
  EXPECT_EQ(e->meta(key).at("replid"), replid);
}

TEST(redis_engine_connect, RequirepassWrongPasswordIsAClearErrorWithoutThePassword) {
  redis_server server({"--requirepass", "s3cret-pw"});
  const std::string message =
      error_of(errc::system_error, [&] { connect_redis(server.url(":wrong-pw"), quick()); });
  EXPECT_NE(message.find(server.endpoint() + ": AUTH (password only): WRONGPASS"),
            std::string::npos)
      << message;
  EXPECT_EQ(message.find("wrong-pw"), std::string::npos) << message;
  EXPECT_EQ(message.find("s3cret"), std::string::npos) << message;
}

TEST(redis_engine_connect, RequirepassWithoutAPasswordIsNoauth) {
  redis_server server({"--requirepass", "s3cret-pw"});
  const std::string message =
      error_of(errc::system_error, [&] { connect_redis(server.url(), quick()); });
  EXPECT_NE(message.find("NOAUTH"), std::string::npos) << message;
}

TEST(redis_engine_connect, TheUrlsDatabaseIsSelected) {
  redis_server server;
  auto db3 = connect_redis(server.url("", "3"), quick());
  auto db0 = connect_redis(server.url(), quick());
  EXPECT_EQ(db3->endpoint(), "redis://127.0.0.1:" + std::to_string(server.port()) + "/3");
  ASSERT_TRUE(db3->set_meta_if(key, "replid", "", {{"replid", "abc"}}));
  EXPECT_EQ(db3->meta(key).at("replid"), "abc");
  EXPECT_TRUE(db0->meta(key).empty());
  EXPECT_EQ(server.command({"SELECT", "3"}).str, "OK");
}

// The ACL line of docs/remote.md, "Security": a user limited to shmlog's keys and the commands
// the engine sends can do everything the engine does, and nothing to other keys.
TEST(redis_engine_connect, AnAclUserLimitedToShmlogKeysCanDoEverythingTheEngineDoes) {
  redis_server server({"--requirepass", "admin-pw"});
  const test::redis_value set = server.command(
      {"ACL", "SETUSER", "shipper", "on", ">shipper-pw", "~shmlog:*", "+@stream", "+@hash",
       "+@string", "+eval", "+evalsha", "+script|load", "+scan", "+del", "+ping", "+select"});
  ASSERT_EQ(set.str, "OK") << set.str;
  auto e = connect_redis(server.url("shipper:shipper-pw"), quick());
  EXPECT_EQ(e->endpoint(), "redis://shipper@127.0.0.1:" + std::to_string(server.port()) + "/0");
  ASSERT_TRUE(e->set_meta_if(key, "replid", "", {{"replid", std::string(replid)}}));
  EXPECT_EQ(e->increment_meta(key, "requests", 1), 1);
  const std::vector<entry> entries = {make_entry(0, 8, "aaaaaaaa"), make_entry(8, 16, "bbbbbbbb")};
  EXPECT_EQ(e->append(key, replid, entries, 1000),
            (std::vector<append_result>{append_result::appended, append_result::appended}));
  EXPECT_EQ(e->read(key, replid, 0, 10, 50ms).size(), 1u);
  EXPECT_EQ(e->oldest(key, replid), 0u);
  EXPECT_EQ(e->newest_end(key, replid), 16u);
  e->put_chunk(key, 1, 0, "chunk");
  EXPECT_EQ(e->get_chunk(key, 1, 0), "chunk");
  e->drop_chunks_below(key, 2);
  EXPECT_EQ(e->get_chunk(key, 1, 0), std::nullopt);
  EXPECT_EQ(e->meta(key).at("shipped"), "16");

  // And the user can reach no key outside shmlog:*.
  const test::redis_value refused =
      server.command({"ACL", "DRYRUN", "shipper", "SET", "elsewhere", "v"});
  EXPECT_NE(refused.str.find("no permissions to access the 'elsewhere' key"), std::string::npos)
      << refused.str;
}

// --- streams ---------------------------------------------------------------------------------

TEST(redis_engine_stream, AppendReadRoundTripIsBinarySafe) {
  redis_server server;
  auto e = shipper(server);
  std::vector<entry> entries;
  std::uint64_t offset = 0;
  for (unsigned i = 0; i < 5; ++i) {
    std::string records = binary(256 * (i + 1), i * 7);
    entries.push_back(make_entry(offset, offset + records.size(), records));
    offset += records.size();
  }
  EXPECT_EQ(e->append(key, replid, entries, 0),
            std::vector<append_result>(5, append_result::appended));
  const std::vector<entry> back = read_all(*e);
  ASSERT_EQ(back.size(), entries.size());
  for (std::size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i].first_offset, entries[i].first_offset);
    EXPECT_EQ(back[i].end_offset, entries[i].end_offset);
    EXPECT_EQ(back[i].records, entries[i].records) << "entry " << i;
  }
  // The stream's entry IDs are <first offset>-1 (docs/remote.md): 0 itself is a valid offset.
  const test::redis_value range =
      server.command({"XRANGE", "shmlog:{orders}:stream:" + std::string(replid), "-", "+"});
  ASSERT_EQ(range.elements.size(), 5u);
  EXPECT_EQ(range.elements[0].elements[0].str, "0-1");
  EXPECT_EQ(range.elements[1].elements[0].str, "256-1");
}

TEST(redis_engine_stream, ReadAfterAnOffsetReturnsOnlyEntriesAboveItUpToMax) {
  redis_server server;
  auto e = shipper(server);
  std::vector<entry> entries;
  for (std::uint64_t i = 0; i < 10; ++i)
    entries.push_back(make_entry(i * 16, i * 16 + 16, "r"));
  e->append(key, replid, entries, 0);
  std::vector<entry> got = e->read(key, replid, 32, 3, 0ms);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].first_offset, 48u);
  EXPECT_EQ(got[2].first_offset, 80u);
  got = e->read(key, replid, 40, 100, 0ms);  // inside an entry: the next one starts above
  ASSERT_EQ(got.size(), 7u);
  EXPECT_EQ(got[0].first_offset, 48u);
  EXPECT_TRUE(e->read(key, replid, 144, 100, 0ms).empty());
  EXPECT_EQ(e->read(key, replid, std::nullopt, 1, 0ms).at(0).first_offset, 0u);
}

TEST(redis_engine_stream, AResentEntryIsADuplicateAndTheStreamIsUnchanged) {
  redis_server server;
  auto e = shipper(server);
  const std::vector<entry> first = {make_entry(0, 100, binary(100)),
                                    make_entry(100, 200, binary(100, 1))};
  ASSERT_EQ(e->append(key, replid, first, 0),
            std::vector<append_result>(2, append_result::appended));
  // The same entries again, one with other bytes, then one that is new.
  const std::vector<entry> again = {make_entry(0, 100, "different"), make_entry(100, 200, "x"),
                                    make_entry(200, 300, binary(100, 2))};
  EXPECT_EQ(e->append(key, replid, again, 0),
            (std::vector<append_result>{append_result::duplicate, append_result::duplicate,
                                        append_result::appended}));
  const std::vector<entry> back = read_all(*e);
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[0].records, binary(100));
  EXPECT_EQ(back[1].records, binary(100, 1));
  // A duplicate does not move "shipped" back.
  EXPECT_EQ(e->append(key, replid, std::vector<entry>{make_entry(50, 60, "y")}, 0),
            std::vector<append_result>{append_result::duplicate});
  EXPECT_EQ(e->meta(key).at("shipped"), "300");
}

TEST(redis_engine_stream, AStaleReplidIsFencedAndNothingIsAppended) {
  redis_server server;
  auto e = shipper(server);  // meta replid = replid
  const std::vector<entry> entries = {make_entry(0, 8, "a"), make_entry(8, 16, "b"),
                                      make_entry(16, 24, "c")};
  // Stops at the first fenced entry.
  EXPECT_EQ(e->append(key, other_replid, entries, 0),
            std::vector<append_result>{append_result::fenced});
  EXPECT_TRUE(read_all(*e, other_replid).empty());
  EXPECT_EQ(e->newest_end(key, other_replid), std::nullopt);
  EXPECT_EQ(e->meta(key).count("shipped"), 0u);
  // A log with no meta at all fences every append too.
  EXPECT_EQ(e->append("no-meta", replid, entries, 0),
            std::vector<append_result>{append_result::fenced});
  EXPECT_EQ(server.command({"EXISTS", "shmlog:{no-meta}:stream:" + std::string(replid)}).integer,
            0);
}

TEST(redis_engine_stream, APromotionMidBatchFencesTheRest) {
  redis_server server;
  auto e = shipper(server);
  ASSERT_EQ(e->append(key, replid, std::vector<entry>{make_entry(0, 8, "a")}, 0).at(0),
            append_result::appended);
  // The replid changes (a mirror was promoted): the old history's next appends are refused.
  auto promoter = connect_redis(server.url(), quick());
  ASSERT_TRUE(
      promoter->set_meta_if(key, "replid", replid, {{"replid", std::string(other_replid)}}));
  EXPECT_EQ(e->append(key, replid, std::vector<entry>{make_entry(8, 16, "b")}, 0),
            std::vector<append_result>{append_result::fenced});
  EXPECT_EQ(e->newest_end(key, replid), 8u);
}

TEST(redis_engine_stream, MaxlenTrimsTheOldestEntries) {
  redis_server server;
  auto e = shipper(server);
  std::vector<entry> entries;
  for (std::uint64_t i = 0; i < 400; ++i)
    entries.push_back(make_entry(i * 8, i * 8 + 8, "r"));
  e->append(key, replid, entries, 10);
  // MAXLEN ~ trims whole stream nodes (stream-node-max-entries, 100 by default): about 10 is
  // at most 10 + 100.
  const auto oldest = e->oldest(key, replid);
  ASSERT_TRUE(oldest.has_value());
  EXPECT_GE(*oldest, (400u - 110u) * 8u);
  EXPECT_EQ(e->newest_end(key, replid), 400u * 8u);
  const std::vector<entry> held = read_all(*e);
  EXPECT_LE(held.size(), 110u);
  EXPECT_EQ(held.front().first_offset, *oldest);

  // 0: no trim.
  auto untrimmed = connect_redis(server.url(), quick());
  ASSERT_TRUE(untrimmed->set_meta_if("other", "", "", {{"replid", std::string(replid)}}));
  std::vector<entry> more;
  for (std::uint64_t i = 0; i < 400; ++i)
    more.push_back(make_entry(i * 8, i * 8 + 8, "r"));
  untrimmed->append("other", replid, more, 0);
  EXPECT_EQ(untrimmed->oldest("other", replid), 0u);
}

TEST(redis_engine_stream, OldestAndNewestOfAMissingStreamAreNone) {
  redis_server server;
  auto e = shipper(server);
  EXPECT_EQ(e->oldest(key, replid), std::nullopt);
  EXPECT_EQ(e->newest_end(key, replid), std::nullopt);
}

TEST(redis_engine_stream, ReadOfAStreamThatDoesNotExistIsEmpty) {
  redis_server server;
  auto e = connect_redis(server.url(), quick());
  EXPECT_TRUE(e->read(key, replid, std::nullopt, 10, 0ms).empty());
  EXPECT_TRUE(e->read(key, replid, 100, 10, 20ms).empty());
}

TEST(redis_engine_stream, ABlockingReadTimesOutCleanlyReturningEmpty) {
  redis_server server;
  auto e = shipper(server);
  e->append(key, replid, std::vector<entry>{make_entry(0, 8, "a")}, 0);
  const auto start = clock::now();
  EXPECT_TRUE(e->read(key, replid, 0, 10, 100ms).empty());
  EXPECT_GE(clock::now() - start, 90ms);  // Redis held the read for the block time
  // The connection is still good.
  EXPECT_EQ(e->read(key, replid, std::nullopt, 10, 0ms).size(), 1u);
}

// The socket's timeout during a blocking read is block + command timeout: a block longer than
// the command timeout is not a timeout.
TEST(redis_engine_stream, ABlockLongerThanTheCommandTimeoutIsNotATimeout) {
  redis_server server;
  auto e = shipper(server);  // command timeout 300 ms
  EXPECT_TRUE(e->read(key, replid, std::nullopt, 10, 700ms).empty());
  // And the command timeout is back for the next call (a stopped server fails it quickly).
  e->meta(key);
}

TEST(redis_engine_stream, ABlockingReadWakesWhenAnEntryArrives) {
  redis_server server;
  auto reader_engine = shipper(server, {.connect_timeout = 1000ms, .command_timeout = 2000ms});
  auto writer_engine = connect_redis(server.url(), quick());
  std::vector<entry> got;
  std::thread reader([&] { got = reader_engine->read(key, replid, std::nullopt, 10, 10'000ms); });
  // Wait until the read is blocked in Redis (CLIENT LIST shows it in XREAD), then append.
  const auto deadline = clock::now() + 5s;
  while (server.command({"CLIENT", "LIST"}).str.find("cmd=xread") == std::string::npos &&
         clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  const auto start = clock::now();
  writer_engine->append(key, replid, std::vector<entry>{make_entry(0, 8, "arrived")}, 0);
  reader.join();
  EXPECT_LT(clock::now() - start, 5s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].records, "arrived");
}

TEST(redis_engine_stream, MalformedEntriesAreRefusedNamingTheKeyAndTheId) {
  redis_server server;
  auto e = shipper(server);
  const std::string stream = "shmlog:{orders}:stream:" + std::string(replid);
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"XADD", stream, "5-1", "r", "x"}, "entry 5-1: no field e"},
      {{"XADD", stream, "6-1", "e", "10"}, "entry 6-1: no field r"},
      {{"XADD", stream, "7-2", "e", "10", "r", "x"}, "entry 7-2: the ID is not <offset>-1"},
      {{"XADD", stream, "8-1", "e", "1o", "r", "x"}, "entry 8-1: field e '1o' is not a decimal"},
      {{"XADD", stream, "9-1", "e", "9", "r", "x"}, "entry 9-1: end offset 9 is not above"},
  };
  std::optional<std::uint64_t> after;
  for (const auto& [command, expected] : cases) {
    SCOPED_TRACE(command[2]);
    ASSERT_FALSE(server.command(command).is_error());
    const std::string message =
        error_of(errc::system_error, [&] { e->read(key, replid, after, 10, 0ms); });
    EXPECT_NE(message.find(server.endpoint() + ": reading " + stream + ": " + expected),
              std::string::npos)
        << message;
    ASSERT_EQ(server.command({"XDEL", stream, command[2]}).integer, 1);
  }
}

TEST(redis_engine_stream, AnEntryThatEndsWhereItStartsIsRefusedBeforeSending) {
  redis_server server;
  auto e = shipper(server);
  const std::string message = error_of(errc::invalid_argument, [&] {
    e->append(key, replid, std::vector<entry>{make_entry(8, 8, "")}, 0);
  });
  EXPECT_NE(message.find("ends at 8, not after its first offset 8"), std::string::npos) << message;
  EXPECT_EQ(e->newest_end(key, replid), std::nullopt);
}

TEST(redis_engine_stream, BadKeysAndReplidsAreRefused) {
  redis_server server;
  auto e = shipper(server);
  EXPECT_EQ(error_of(errc::invalid_name, [&] { e->meta("a}b"); }).find("invalid log name"), 0u);
  EXPECT_NE(error_of(errc::invalid_argument, [&] { e->oldest(key, "x:y"); }).find("invalid replid"),
            std::string::npos);
  EXPECT_NE(error_of(errc::invalid_argument,
                     [&] { e->append(key, "", std::vector<entry>{make_entry(0, 8, "a")}, 0); })
                .find("invalid replid"),
            std::string::npos);
}

// After SCRIPT FLUSH (or a script cache lost some other way) the engine falls back to EVAL.
TEST(redis_engine_stream, AppendAndSetMetaIfSurviveAScriptFlush) {
  redis_server server;
  auto e = shipper(server);
  ASSERT_EQ(server.command({"SCRIPT", "FLUSH"}).str, "OK");
  const std::vector<entry> entries = {make_entry(0, 8, "a"), make_entry(8, 16, "b"),
                                      make_entry(16, 24, "c")};
  EXPECT_EQ(e->append(key, replid, entries, 0),
            std::vector<append_result>(3, append_result::appended));
  ASSERT_EQ(server.command({"SCRIPT", "FLUSH"}).str, "OK");
  EXPECT_TRUE(e->set_meta_if(key, "replid", replid, {{"epoch", "2"}}));
  EXPECT_EQ(e->meta(key).at("epoch"), "2");
  EXPECT_EQ(read_all(*e).size(), 3u);
}

// --- meta ------------------------------------------------------------------------------------

TEST(redis_engine_meta, SetMetaIfSetsAllFieldsOnlyWhenTheGuardHolds) {
  redis_server server;
  auto e = connect_redis(server.url(), quick());
  EXPECT_TRUE(e->meta(key).empty());
  // "" = absent.
  EXPECT_TRUE(e->set_meta_if(key, "replid", "", {{"replid", "A"}, {"capacity", "4096"}}));
  EXPECT_EQ(e->meta(key), (fields{{"replid", "A"}, {"capacity", "4096"}}));
  EXPECT_FALSE(e->set_meta_if(key, "replid", "", {{"replid", "B"}}));
  EXPECT_FALSE(e->set_meta_if(key, "replid", "B", {{"replid", "C"}, {"capacity", "1"}}));
  EXPECT_EQ(e->meta(key), (fields{{"replid", "A"}, {"capacity", "4096"}}));
  EXPECT_TRUE(e->set_meta_if(key, "replid", "A",
                             {{"replid", "B"}, {"replid2", "A"}, {"second_offset", "64"}}));
  EXPECT_EQ(
      e->meta(key),
      (fields{{"replid", "B"}, {"replid2", "A"}, {"second_offset", "64"}, {"capacity", "4096"}}));
  // No values: a guard check alone.
  EXPECT_TRUE(e->set_meta_if(key, "replid", "B", {}));
  EXPECT_FALSE(e->set_meta_if(key, "replid", "A", {}));
  // Binary-safe values.
  EXPECT_TRUE(e->set_meta_if(key, "replid", "B", {{"blob", binary(256)}}));
  EXPECT_EQ(e->meta(key).at("blob"), binary(256));
}

TEST(redis_engine_meta, IncrementMetaAddsAndReturnsTheNewValue) {
  redis_server server;
  auto e = connect_redis(server.url(), quick());
  EXPECT_EQ(e->increment_meta(key, "snapshot_requests", 1), 1);
  EXPECT_EQ(e->increment_meta(key, "snapshot_requests", 5), 6);
  EXPECT_EQ(e->increment_meta(key, "snapshot_requests", -2), 4);
  EXPECT_EQ(e->meta(key).at("snapshot_requests"), "4");
  ASSERT_TRUE(e->set_meta_if(key, "replid", "", {{"replid", "A"}}));
  const std::string message =
      error_of(errc::system_error, [&] { e->increment_meta(key, "replid", 1); });
  EXPECT_NE(message.find(server.endpoint() + ": HINCRBY: ERR hash value is not an integer"),
            std::string::npos)
      << message;
}

// --- snapshot chunks -------------------------------------------------------------------------

TEST(redis_engine_chunks, PutGetAndDropBelowAGeneration) {
  redis_server server;
  auto e = connect_redis(server.url(), quick());
  const std::string big = binary(3 << 20, 5);
  e->put_chunk(key, 1, 0, "g1c0");
  e->put_chunk(key, 1, 1, big);
  e->put_chunk(key, 2, 0, "g2c0");
  e->put_chunk(key, 3, 0, "g3c0");
  e->put_chunk(key, 10, 0, "g10c0");  // 10 > 3 although "10" < "3" as text
  e->put_chunk("other-log", 1, 0, "other");
  EXPECT_EQ(e->get_chunk(key, 1, 1), big);
  EXPECT_EQ(e->get_chunk(key, 1, 2), std::nullopt);
  EXPECT_EQ(e->get_chunk(key, 4, 0), std::nullopt);
  // A key under the prefix that is not <generation>:<index> is not the engine's to delete.
  ASSERT_EQ(server.command({"SET", "shmlog:{orders}:snap:notes", "keep"}).str, "OK");

  e->drop_chunks_below(key, 3);
  EXPECT_EQ(e->get_chunk(key, 1, 0), std::nullopt);
  EXPECT_EQ(e->get_chunk(key, 1, 1), std::nullopt);
  EXPECT_EQ(e->get_chunk(key, 2, 0), std::nullopt);
  EXPECT_EQ(e->get_chunk(key, 3, 0), "g3c0");
  EXPECT_EQ(e->get_chunk(key, 10, 0), "g10c0");
  EXPECT_EQ(e->get_chunk("other-log", 1, 0), "other");
  EXPECT_EQ(server.command({"GET", "shmlog:{orders}:snap:notes"}).str, "keep");
}

TEST(redis_engine_chunks, DropWalksEveryScanPage) {
  redis_server server;
  auto e = connect_redis(server.url(), quick());
  for (std::uint64_t i = 0; i < 2500; ++i)
    e->put_chunk(key, i % 2 == 0 ? 1 : 7, i, "c");
  e->drop_chunks_below(key, 5);
  const test::redis_value left = server.command(
      {"EVAL", "return #redis.call('KEYS', ARGV[1])", "0", "shmlog:{orders}:snap:*"});
  EXPECT_EQ(left.integer, 1250);
  EXPECT_EQ(e->get_chunk(key, 7, 1), "c");
  EXPECT_EQ(e->get_chunk(key, 1, 0), std::nullopt);
}

// --- failures --------------------------------------------------------------------------------

TEST(redis_engine_failure, AKilledServerIsAnErrorNamingTheEndpointAndARestartReconnects) {
  redis_server server;
  auto e = shipper(server);
  ASSERT_EQ(e->append(key, replid, std::vector<entry>{make_entry(0, 8, "a")}, 0).at(0),
            append_result::appended);
  server.kill();
  const std::string message = error_of(errc::system_error, [&] { e->meta(key); });
  EXPECT_EQ(message.find(server.endpoint() + ": "), 0u) << message;
  // Still down: connecting again fails the same way.
  const std::string again = error_of(errc::system_error, [&] { e->meta(key); });
  EXPECT_NE(again.find(server.endpoint() + ": cannot connect"), std::string::npos) << again;

  server.restart_empty();
  EXPECT_TRUE(e->meta(key).empty());  // reconnected; Redis came back without data
  EXPECT_EQ(e->append(key, replid, std::vector<entry>{make_entry(8, 16, "b")}, 0),
            std::vector<append_result>{append_result::fenced});
  ASSERT_TRUE(e->set_meta_if(key, "replid", "", {{"replid", std::string(replid)}}));
  EXPECT_EQ(e->append(key, replid, std::vector<entry>{make_entry(8, 16, "b")}, 0),
            std::vector<append_result>{append_result::appended});
}

TEST(redis_engine_failure, AStoppedServerFailsTheCallWithinItsTimeout) {
  redis_server server;
  auto e = shipper(server);  // command timeout 300 ms
  server.stop();
  const auto start = clock::now();
  const std::string outcome = test::outcome_within(test::hang_guard, [&] { e->meta(key); });
  EXPECT_LT(clock::now() - start, 5s);
  EXPECT_EQ(outcome.find("error system_error: " + server.endpoint() +
                         ": HGETALL: no reply within 300 ms (timed out)"),
            0u)
      << outcome;
  // A blocking read waits for its block plus the command timeout, then fails the same way.
  const std::string read_outcome = test::outcome_within(
      test::hang_guard, [&] { e->read(key, replid, std::nullopt, 10, 200ms); });
  EXPECT_NE(read_outcome.find("XREAD: no reply within 500 ms (timed out)"), std::string::npos)
      << read_outcome;
  // A new connection to the stopped server: the kernel completes the TCP handshake, then the
  // setup commands time out.
  const std::string connect_outcome =
      test::outcome_within(test::hang_guard, [&] { connect_redis(server.url(), quick()); });
  EXPECT_NE(connect_outcome.find("no reply within 300 ms"), std::string::npos) << connect_outcome;

  server.resume();
  EXPECT_EQ(e->meta(key).at("replid"), replid);
}

// hiredis 0.14 writes with write(2): a write to a connection the server reset raises SIGPIPE,
// which would kill a shipper that does not ignore it. The engine blocks it around its I/O.
TEST(redis_engine_failure, AServerThatDiedDoesNotKillTheCallerWithSigpipe) {
  redis_server server;
  auto e = shipper(server);
  server.kill();
  std::vector<entry> big;
  for (std::uint64_t i = 0; i < 16; ++i)
    big.push_back(make_entry(i << 20, (i + 1) << 20, binary(1 << 20)));
  const std::string outcome = test::outcome_within(test::hang_guard, [&] {
    ::signal(SIGPIPE, SIG_DFL);
    e->append(key, replid, big, 0);
  });
  EXPECT_EQ(outcome.find("error system_error: " + server.endpoint()), 0u) << outcome;
}

TEST(redis_engine_failure, AnErrorReplyKeepsTheConnection) {
  redis_server server;
  auto e = shipper(server);
  ASSERT_EQ(server.command({"SET", "shmlog:{orders}:stream:" + std::string(other_replid), "x"}).str,
            "OK");
  const auto connections = [&] {
    const std::string stats = server.command({"INFO", "stats"}).str;
    const std::size_t at = stats.find("total_connections_received:");
    return std::stoll(stats.substr(at + std::string_view("total_connections_received:").size()));
  };
  const long long before = connections();
  const std::string message = error_of(errc::system_error, [&] { e->oldest(key, other_replid); });
  EXPECT_NE(message.find(server.endpoint() + ": XRANGE: WRONGTYPE"), std::string::npos) << message;
  EXPECT_EQ(e->meta(key).at("replid"), replid);
  // The only new connection is the one that asks.
  EXPECT_EQ(connections(), before + 1);
}

// --- a replica (--replicaof) -----------------------------------------------------------------

TEST(redis_engine_replica, AMirrorCanReadFromAReplicaWhichRefusesAppends) {
  // Redis 7 waits 5 s for more replicas before a diskless full sync unless told not to.
  redis_server primary({"--repl-diskless-sync-delay", "0"});
  redis_server replica({"--replicaof", "127.0.0.1", std::to_string(primary.port())});
  const auto deadline = clock::now() + 10s;
  while (replica.command({"INFO", "replication"}).str.find("master_link_status:up") ==
         std::string::npos) {
    ASSERT_LT(clock::now(), deadline) << "the replica did not link up";
    std::this_thread::sleep_for(5ms);
  }
  auto source = shipper(primary);
  auto mirror =
      connect_redis(replica.url(), {.connect_timeout = 1000ms, .command_timeout = 2000ms});
  source->append(key, replid, std::vector<entry>{make_entry(0, 8, binary(8))}, 0);
  const std::vector<entry> got = mirror->read(key, replid, std::nullopt, 10, 5000ms);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].records, binary(8));
  EXPECT_EQ(mirror->meta(key).at("shipped"), "8");
  const std::string message = error_of(errc::system_error, [&] {
    mirror->append(key, replid, std::vector<entry>{make_entry(8, 16, "b")}, 0);
  });
  EXPECT_NE(message.find("READONLY"), std::string::npos) << message;
}

}  // namespace
}  // namespace shmlog::remote
