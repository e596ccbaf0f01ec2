// The replica daemon facility's pieces that need no processes: whom a query client believes.
// (The daemon itself runs in processes: tests/cli_test.cc, shmlog replica, and
// tests/examples_test.cc, the example daemon.)
#include <gtest/gtest.h>
#include <sys/socket.h>

#include "query_socket.h"

namespace shmlog::detail {
namespace {

TEST(query_peer_check, TrustsTheNamedPidAsTheClientsUidOrRoot) {
  EXPECT_EQ(check_peer(123, 1000, ucred{.pid = 123, .uid = 1000, .gid = 5}), std::nullopt);
  EXPECT_EQ(check_peer(123, 1000, ucred{.pid = 123, .uid = 0, .gid = 0}), std::nullopt);
  EXPECT_EQ(check_peer(123, 0, ucred{.pid = 123, .uid = 0, .gid = 0}), std::nullopt);
}

TEST(query_peer_check, RefusesTheNamedPidRunningAsAnotherUser) {
  EXPECT_EQ(
      check_peer(123, 1000, ucred{.pid = 123, .uid = 1001, .gid = 1000}),
      "expected pid 123 running as uid 1000 (yours) or root, found pid 123 running as uid 1001");
  // Root trusts only root: a user's replica is asked as that user.
  EXPECT_EQ(check_peer(123, 0, ucred{.pid = 123, .uid = 1000, .gid = 1000}),
            "expected pid 123 running as root, found pid 123 running as uid 1000");
}

TEST(query_peer_check, RefusesAnotherPidEvenAsTheClientsUidOrRoot) {
  EXPECT_EQ(
      check_peer(123, 1000, ucred{.pid = 456, .uid = 1000, .gid = 1000}),
      "expected pid 123 running as uid 1000 (yours) or root, found pid 456 running as uid 1000");
  EXPECT_EQ(check_peer(123, 1000, ucred{.pid = 456, .uid = 0, .gid = 0}),
            "expected pid 123 running as uid 1000 (yours) or root, found pid 456 running as uid 0");
  // A listener in a pid namespace the client cannot see is reported as pid 0.
  EXPECT_EQ(
      check_peer(123, 1000, ucred{.pid = 0, .uid = 1000, .gid = 1000}),
      "expected pid 123 running as uid 1000 (yours) or root, found pid 0 running as uid 1000");
}

}  // namespace
}  // namespace shmlog::detail
