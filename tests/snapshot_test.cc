// Snapshot files: written atomically, verified whole before anything is loaded, and refused
// with the file named and the problem said, for every kind of damage.
#include "shmlog/snapshot.h"

#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "shmlog/crc32c.h"
#include "shmlog/error.h"
#include "test_state.h"
#include "test_util.h"

namespace shmlog {
namespace {

namespace fs = std::filesystem;

using test::read_file;
using test::scratch_dir;
using test::write_file;

struct snapshot_files : ::testing::Test {
  scratch_dir dir;
  history_id id = history_id::random();
  test::list_state state;

  void SetUp() override { state.items = {"alpha", "", std::string(5000, 'b'), "gamma"}; }
  fs::path write(std::uint64_t offset = 4096, std::uint64_t generation = 1) {
    return write_snapshot(dir.path(), "log", generation, id, offset, state).path;
  }
  // Loads `p` into a fresh state; returns the error message ("" if it loaded).
  std::string refusal(const fs::path& p, std::optional<history_id> expected = std::nullopt) {
    test::list_state fresh;
    try {
      load_snapshot(p, fresh, expected);
    } catch (const error& e) {
      EXPECT_EQ(e.code(), errc::bad_snapshot);
      EXPECT_EQ(fresh.loads, 0u) << "load() ran on a file that failed verification";
      EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
      return e.what();
    }
    return "";
  }
};

TEST_F(snapshot_files, WrittenFileRoundTrips) {
  const fs::path p = write(4096, 7);
  EXPECT_EQ(p.filename(), "log-00000000000000004096-7.snap");
  const snapshot_meta info = verify_snapshot(p, id);
  EXPECT_EQ(info.offset, 4096u);
  EXPECT_EQ(info.replid, id);
  EXPECT_EQ(fs::file_size(p), snapshot_header_size + info.payload_bytes);
  test::list_state loaded;
  std::uint64_t last_progress = 0;
  load_snapshot(p, loaded, id, [&](std::uint64_t done, std::uint64_t total) {
    EXPECT_LE(done, total);
    last_progress = done;
  });
  EXPECT_EQ(loaded.items, state.items);
  EXPECT_EQ(last_progress, info.payload_bytes);
}

TEST_F(snapshot_files, NoTemporaryFileIsLeftBehind) {
  write();
  for (const auto& e : fs::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().extension(), ".snap") << e.path();
}

TEST_F(snapshot_files, FailedSaveLeavesNothing) {
  struct failing_state : test::list_state {
    void save(std::ostream& out) const override {
      out << "partial";
      throw std::runtime_error("disk on fire");
    }
  } bad_state;
  EXPECT_THROW(write_snapshot(dir.path(), "log", 1, id, 0, bad_state), std::runtime_error);
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST_F(snapshot_files, TruncatedAnywhereIsRefused) {
  const std::string whole = read_file(write());
  for (std::size_t keep : {std::size_t{0}, std::size_t{60}, std::size_t{snapshot_header_size},
                           whole.size() / 2, whole.size() - 1}) {
    const fs::path p = dir.path() / "cut.snap";
    write_file(p, whole.substr(0, keep));
    EXPECT_NE(refusal(p).find("truncated"), std::string::npos) << keep;
  }
}

TEST_F(snapshot_files, FlippedPayloadBitIsRefused) {
  const fs::path p = write();
  std::string bytes = read_file(p);
  bytes[snapshot_header_size + 100] ^= 0x04;
  write_file(p, bytes);
  EXPECT_NE(refusal(p).find("payload checksum mismatch"), std::string::npos);
}

TEST_F(snapshot_files, FlippedHeaderBitIsRefused) {
  const fs::path p = write();
  std::string bytes = read_file(p);
  bytes[17] ^= 0x01;  // the offset
  write_file(p, bytes);
  EXPECT_NE(refusal(p).find("header checksum mismatch"), std::string::npos);
}

TEST_F(snapshot_files, ForeignFileIsRefused) {
  const fs::path p = dir.path() / "notes.snap";
  write_file(p, std::string(300, 'x'));
  EXPECT_NE(refusal(p).find("not a shmlog snapshot"), std::string::npos);
}

TEST_F(snapshot_files, UnknownFormatVersionIsRefusedNamingBoth) {
  const fs::path p = write();
  std::string bytes = read_file(p);
  const std::uint32_t v = 9;
  std::memcpy(bytes.data() + 8, &v, 4);
  const std::uint32_t crc = crc32c(bytes.data(), 124);  // a valid header otherwise
  std::memcpy(bytes.data() + 124, &crc, 4);
  write_file(p, bytes);
  const std::string m = refusal(p);
  EXPECT_NE(m.find("format version 9"), std::string::npos) << m;
  EXPECT_NE(m.find("version 1"), std::string::npos) << m;
}

TEST_F(snapshot_files, OtherHistoryIsRefused) {
  const fs::path p = write();
  const history_id other = history_id::random();
  const std::string m = refusal(p, other);
  EXPECT_NE(m.find(id.str()), std::string::npos) << m;
  EXPECT_NE(m.find(other.str()), std::string::npos) << m;
}

TEST_F(snapshot_files, TrailingBytesAreRefused) {
  const fs::path p = write();
  write_file(p, read_file(p) + "junk");
  EXPECT_NE(refusal(p).find("4 bytes after"), std::string::npos);
}

TEST_F(snapshot_files, MissingFileIsRefused) {
  EXPECT_NE(refusal(dir.path() / "gone.snap").find("no such file"), std::string::npos);
}

TEST_F(snapshot_files, ListingIsNewestFirstAndPruningKeepsTheNewest) {
  for (std::uint64_t g = 1; g <= 5; ++g)
    write(g * 100, g);
  write_file(dir.path() / "other-00000000000000000100-9.snap", "");  // another log's
  write_file(dir.path() / "log-notanumber-1.snap", "");
  const auto listed = list_snapshots(dir.path(), "log");
  ASSERT_EQ(listed.size(), 5u);
  EXPECT_EQ(listed.front().filename(), snapshot_file_name("log", 500, 5));
  EXPECT_EQ(prune_snapshots(dir.path(), "log", 2), 3u);
  const auto kept = list_snapshots(dir.path(), "log");
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[1].filename(), snapshot_file_name("log", 400, 4));
  EXPECT_TRUE(fs::exists(dir.path() / "other-00000000000000000100-9.snap"));
}

TEST_F(snapshot_files, StaleTemporaryFilesOfDeadWritersAreRemoved) {
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);  // a pid that is surely not running now
  const fs::path stale =
      dir.path() / (".log-00000000000000000000-1.snap.tmp." + std::to_string(dead));
  const fs::path live =
      dir.path() / (".log-00000000000000000000-2.snap.tmp." + std::to_string(::getpid()));
  write_file(stale, "half");
  write_file(live, "being written");
  EXPECT_EQ(remove_stale_snapshot_files(dir.path(), "log"), 1u);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(live));
}

// Scans of the directory (the newest snapshot, pruning, stale temporary files) consider only
// regular files: a link is neither followed nor removed, and nothing is removed through one.
TEST_F(snapshot_files, ScansSkipLinksDirectoriesAndFifos) {
  scratch_dir outside;
  const fs::path precious = outside.path() / "precious";
  write_file(precious, "not yours to delete");
  write(100, 1);
  write(200, 2);
  fs::create_symlink(precious, dir.path() / snapshot_file_name("log", 300, 3));
  fs::create_directory(dir.path() / snapshot_file_name("log", 400, 4));
  ASSERT_EQ(::mkfifo((dir.path() / snapshot_file_name("log", 500, 5)).c_str(), 0600), 0);
  const auto listed = list_snapshots(dir.path(), "log");
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed.front().filename(), snapshot_file_name("log", 200, 2));
  EXPECT_EQ(prune_snapshots(dir.path(), "log", 0), 2u);
  EXPECT_TRUE(fs::is_symlink(dir.path() / snapshot_file_name("log", 300, 3)));
  EXPECT_TRUE(fs::is_directory(dir.path() / snapshot_file_name("log", 400, 4)));
  EXPECT_TRUE(fs::is_fifo(dir.path() / snapshot_file_name("log", 500, 5)));
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const fs::path stale_link =
      dir.path() / (".log-00000000000000000000-6.snap.tmp." + std::to_string(dead));
  fs::create_symlink(precious, stale_link);
  EXPECT_EQ(remove_stale_snapshot_files(dir.path(), "log"), 0u);
  EXPECT_TRUE(fs::is_symlink(stale_link));
  EXPECT_EQ(read_file(precious), "not yours to delete");
}

// Producer and replicas may run as different users sharing a group: the producer owns the
// snapshot directory and its files, a replica of another user loads them. Anyone else's file
// in the directory (a group member who may write there) is refused, naming the owner.
struct snapshot_owners : snapshot_files {
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to give files other owners";
    snapshot_files::SetUp();
  }
  // What a process of user `uid` makes of `p`: "" if it loads, else the refusal.
  std::string as_user(uid_t uid, const fs::path& p) {
    int pipe_fds[2];
    EXPECT_EQ(::pipe(pipe_fds), 0);
    const pid_t child = ::fork();
    if (child == 0) {
      ::close(pipe_fds[0]);
      std::string m = "setuid failed";
      if (::setgroups(0, nullptr) == 0 && ::setgid(uid) == 0 && ::setuid(uid) == 0) {
        test::list_state fresh;
        try {
          load_snapshot(p, fresh, id);
          m = fresh.items == state.items ? "" : "loaded a different state";
        } catch (const std::exception& e) {
          m = e.what();
        }
      }
      const ssize_t ignored = ::write(pipe_fds[1], m.data(), m.size());
      (void)ignored;
      ::_exit(0);
    }
    ::close(pipe_fds[1]);
    std::string m;
    char buf[512];
    for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof buf)) > 0;)
      m.append(buf, static_cast<std::size_t>(n));
    ::close(pipe_fds[0]);
    ::waitpid(child, nullptr, 0);
    return m;
  }
};

TEST_F(snapshot_owners, ReplicaOfAnotherUserLoadsTheDirectoryOwnersFile) {
  const fs::path p = write_snapshot(dir.path(), "log", 1, id, 0, state, 0644).path;
  ::chmod(dir.path().c_str(), 0755);
  ASSERT_EQ(::chown(dir.path().c_str(), 65533, 65533), 0);
  ASSERT_EQ(::chown(p.c_str(), 65533, 65533), 0);  // the producer's user owns both
  EXPECT_EQ(as_user(65534, p), "");
}

TEST_F(snapshot_owners, FileOfAThirdUserIsRefusedNamingItsOwner) {
  const fs::path p = write_snapshot(dir.path(), "log", 1, id, 0, state, 0644).path;
  ::chmod(dir.path().c_str(), 0777);  // a directory that others may write into
  ASSERT_EQ(::chown(dir.path().c_str(), 65533, 65533), 0);
  ASSERT_EQ(::chown(p.c_str(), 65532, 65532), 0);
  const std::string m = as_user(65534, p);
  EXPECT_NE(m.find("snapshot '" + p.string() +
                   "': is owned by uid 65532, neither the snapshot "
                   "directory's owner (uid 65533) nor this process's user (uid 65534)"),
            std::string::npos)
      << m;
  EXPECT_NE(refusal(p).find("is owned by uid 65532"), std::string::npos);  // root: the same rule
}

TEST_F(snapshot_owners, OwnFileIsLoadedInAnotherUsersDirectory) {
  const fs::path p = write_snapshot(dir.path(), "log", 1, id, 0, state, 0644).path;
  ::chmod(dir.path().c_str(), 01777);  // like /tmp
  ASSERT_EQ(::chown(p.c_str(), 65534, 65534), 0);
  EXPECT_EQ(as_user(65534, p), "");  // the directory is root's, the file its own
}

TEST_F(snapshot_files, SnapshotDirectoryProblemsAreNamed) {
  const auto message = [](const fs::path& d) {
    try {
      check_snapshot_dir(d, true);
    } catch (const error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(message(dir.path()), "accepted");
  EXPECT_NE(message(dir.path() / "missing").find("does not exist"), std::string::npos);
  write_file(dir.path() / "file", "x");
  EXPECT_NE(message(dir.path() / "file").find("is not a directory"), std::string::npos);
}

// Run as another user: root may write anywhere.
TEST_F(snapshot_files, UnwritableSnapshotDirectoryIsNamed) {
  ::chmod(dir.path().c_str(), 0555);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(10);
    try {
      check_snapshot_dir(dir.path(), true);
    } catch (const error& e) {
      ::_exit(std::string(e.what()).find("is not writable") != std::string::npos ? 0 : 2);
    }
    ::_exit(1);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ::chmod(dir.path().c_str(), 0700);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace shmlog
