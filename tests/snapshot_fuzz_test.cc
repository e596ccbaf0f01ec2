// Snapshot files as a hostile or unlucky environment leaves them: every byte flipped, every
// length cut, random garbage, and a FIFO, a symbolic link, a directory or a socket where the
// file should be. Each case either loads the very state that was saved or is refused with
// errc::bad_snapshot and a message naming the file, without load() seeing a byte, and within a
// deadline: nothing may block (a FIFO) or crash (a file truncated under the loader).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "fifo_watchdog.h"
#include "shmlog/error.h"
#include "shmlog/snapshot.h"
#include "test_state.h"
#include "test_util.h"

namespace shmlog {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using test::read_file;
using test::scratch_dir;
using test::write_file;

// Generous for one load of a file of a few hundred bytes, even under ASan on a busy machine;
// what it catches is a load that blocks.
constexpr auto deadline = 2s;

struct snapshot_fuzz : ::testing::Test {
  scratch_dir dir;
  history_id id = history_id::random();
  test::list_state saved;
  fs::path original;
  std::string whole;
  fs::path target;  // where each case is written and loaded from

  void SetUp() override {
    saved.items = {"alpha", "", std::string(300, 'b'), "gamma"};
    original = write_snapshot(dir.path(), "log", 1, id, 4096, saved).path;
    whole = read_file(original);
    target = dir.path() / "case.snap";
  }

  // Loads `target` into a fresh state; "" if it loaded the saved state, else the refusal. Fails
  // the test on anything else: another error, a load() of unverified bytes, a slow case.
  std::string load_case(const std::string& what) {
    test::list_state fresh;
    const auto started = std::chrono::steady_clock::now();
    std::string outcome;
    try {
      load_snapshot(target, fresh, id);
      EXPECT_EQ(fresh.items, saved.items) << what;
    } catch (const error& e) {
      outcome = e.what();
      EXPECT_EQ(e.code(), errc::bad_snapshot) << what << ": " << outcome;
      EXPECT_NE(outcome.find("snapshot '" + target.string() + "': "), std::string::npos)
          << what << ": " << outcome;
      EXPECT_EQ(fresh.loads, 0u) << what << ": load() ran on a refused file";
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": not a shmlog::error: " << e.what();
      outcome = "?";
    }
    EXPECT_LT(std::chrono::steady_clock::now() - started, deadline) << what;
    return outcome;
  }
  std::string load_bytes(const std::string& bytes, const std::string& what) {
    // A new file each time: ext4 flushes a file rewritten through O_TRUNC on close, which
    // would make thousands of cases take seconds.
    fs::remove(target);
    write_file(target, bytes);
    return load_case(what);
  }
};

TEST_F(snapshot_fuzz, TheUndamagedFileLoadsTheSavedState) {
  EXPECT_EQ(load_bytes(whole, "unchanged"), "");
}

TEST_F(snapshot_fuzz, EveryFlippedByteIsRefused) {
  for (std::size_t at = 0; at < whole.size(); ++at) {
    std::string bytes = whole;
    bytes[at] = static_cast<char>(bytes[at] ^ 0xFF);
    EXPECT_NE(load_bytes(bytes, "byte " + std::to_string(at) + " flipped"), "") << at;
  }
}

TEST_F(snapshot_fuzz, EveryTruncationIsRefused) {
  for (std::size_t keep = 0; keep < whole.size(); ++keep) {
    const std::string m = load_bytes(whole.substr(0, keep), "cut to " + std::to_string(keep));
    EXPECT_NE(m.find("truncated"), std::string::npos) << keep << ": " << m;
  }
}

TEST_F(snapshot_fuzz, RandomGarbageIsRefused) {
  std::mt19937_64 random(20261129);  // fixed: a failure names a case that reproduces
  for (int i = 0; i < 2000; ++i) {
    std::string bytes = whole;
    const std::size_t spots = 1 + random() % 8;
    for (std::size_t s = 0; s < spots; ++s) {
      const std::size_t at = random() % bytes.size();
      const char before = bytes[at];
      do {
        bytes[at] = static_cast<char>(random());
      } while (bytes[at] == before);
    }
    if (random() % 4 == 0) bytes += std::string(1 + random() % 16, static_cast<char>(random()));
    EXPECT_NE(load_bytes(bytes, "garbage case " + std::to_string(i)), "") << i;
  }
}

// Refusal of a special file by every entry point that opens snapshot files, each under the FIFO
// watchdog: before the fix, open() of a FIFO waited for a writer forever.
void expect_every_entry_point_refuses(const fs::path& p, const std::string& found,
                                      const history_id& id) {
  const auto refused = [&](const char* entry, auto&& call) {
    test::fifo_watchdog watchdog(p, deadline);
    std::string m;
    try {
      call();
    } catch (const error& e) {
      EXPECT_EQ(e.code(), errc::bad_snapshot) << entry << ": " << e.what();
      m = e.what();
    }
    EXPECT_TRUE(watchdog.stop()) << entry << " blocked on '" << p.string() << "'";
    EXPECT_NE(m.find("snapshot '" + p.string() + "': is " + found + ", not a regular file"),
              std::string::npos)
        << entry << ": " << m;
  };
  test::list_state fresh;
  refused("load_snapshot", [&] { load_snapshot(p, fresh, id); });
  refused("verify_snapshot", [&] { verify_snapshot(p, id); });
  refused("read_snapshot_header", [&] { read_snapshot_header(p); });
  EXPECT_EQ(fresh.loads, 0u);
}

TEST_F(snapshot_fuzz, FifoAtThePathIsRefusedWithoutBlocking) {
  ASSERT_EQ(::mkfifo(target.c_str(), 0600), 0);
  expect_every_entry_point_refuses(target, "a FIFO", id);
}

TEST_F(snapshot_fuzz, SymlinkToAValidSnapshotIsRefused) {
  fs::create_symlink(original, target);
  expect_every_entry_point_refuses(target, "a symbolic link", id);
}

TEST_F(snapshot_fuzz, SymlinkToAFifoIsRefusedWithoutBlocking) {
  const fs::path fifo = dir.path() / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  fs::create_symlink(fifo, target);
  expect_every_entry_point_refuses(target, "a symbolic link", id);
}

TEST_F(snapshot_fuzz, DirectoryAtThePathIsRefused) {
  fs::create_directory(target);
  expect_every_entry_point_refuses(target, "a directory", id);
}

TEST_F(snapshot_fuzz, SocketAtThePathIsRefused) {
  const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(s, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(target.string().size(), sizeof addr.sun_path);
  std::strcpy(addr.sun_path, target.c_str());
  ASSERT_EQ(::bind(s, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  expect_every_entry_point_refuses(target, "a socket", id);
  ::close(s);
}

// The loader used to map the file: truncating it after verification, while load() was reading,
// killed the process with SIGBUS. Now load() reads the very bytes that were verified, from
// memory, whatever happens to the file. Run in a child so that a SIGBUS fails this test only.
TEST_F(snapshot_fuzz, FileTruncatedDuringLoadNeverRaisesSigbus) {
  test::list_state big;
  for (int i = 0; i < 4; ++i)
    big.items.push_back(std::string(1 << 20, static_cast<char>('p' + i)));  // several slices
  const fs::path p = write_snapshot(dir.path(), "big", 1, id, 0, big).path;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    test::list_state loaded;
    bool truncated = false;
    try {
      load_snapshot(p, loaded, id, [&](std::uint64_t done, std::uint64_t) {
        if (done >= (1 << 20) && !truncated) truncated = ::truncate(p.c_str(), 0) == 0;
      });
    } catch (...) {
      ::_exit(3);
    }
    if (!truncated) ::_exit(4);
    ::_exit(loaded.items == big.items ? 0 : 5);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_FALSE(WIFSIGNALED(status)) << "the loader was killed by signal " << WTERMSIG(status)
                                    << " (" << ::strsignal(WTERMSIG(status)) << ")";
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "3: load failed, 4: never truncated, 5: state differs";
  EXPECT_EQ(fs::file_size(p), 0u);
}

}  // namespace
}  // namespace shmlog
