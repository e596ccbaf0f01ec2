#include "shmlog/snapshot.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <istream>
#include <memory>
#include <ostream>
#include <streambuf>
#include <utility>

#include "os.h"
#include "shmlog/crc32c.h"
#include "shmlog/error.h"
#include "snapshot_bytes.h"

namespace shmlog {
namespace {

// The file's first 128 bytes, little-endian (shmlog runs where the segment does: one host).
struct snapshot_header {
  std::uint64_t magic;
  std::uint32_t format_version;
  std::uint32_t header_size;
  std::uint64_t offset;
  std::uint64_t payload_length;
  std::uint64_t created_ns;
  std::uint64_t save_ns;
  char replid[history_id_size];
  std::uint32_t payload_crc;
  std::uint8_t reserved[32];
  std::uint32_t header_crc;  // CRC-32C of the 124 bytes before it
};
static_assert(sizeof(snapshot_header) == snapshot_header_size);
static_assert(offsetof(snapshot_header, offset) == 16);
static_assert(offsetof(snapshot_header, replid) == 48);
static_assert(offsetof(snapshot_header, payload_crc) == 88);
static_assert(offsetof(snapshot_header, header_crc) == 124);

std::uint32_t header_crc_of(const snapshot_header& h) {
  return crc32c(&h, offsetof(snapshot_header, header_crc));
}

[[noreturn]] void bad(const std::filesystem::path& path, const std::string& problem) {
  throw error(errc::bad_snapshot, "snapshot '" + path.string() + "': " + problem);
}

// What a checked header says, with its history id parsed.
snapshot_meta info_from_header(const std::filesystem::path& path, const snapshot_header& h) {
  const auto replid = history_id::parse({h.replid, history_id_size});
  if (!replid) bad(path, "its history id is not 40 hex characters");
  snapshot_meta info;
  info.path = path;
  info.replid = *replid;
  info.offset = h.offset;
  info.payload_bytes = h.payload_length;
  info.created_ns = h.created_ns;
  info.save_ns = h.save_ns;
  return info;
}

[[noreturn]] void system_failure(const std::filesystem::path& path, const std::string& what,
                                 int err) {
  throw error(err == EACCES || err == EPERM ? errc::permission_denied : errc::system_error,
              "snapshot '" + path.string() + "': " + detail::errno_message(what, err));
}

// An output buffer on a file descriptor that checksums and counts what passes through it.
class checksummed_file_buf : public std::streambuf {
 public:
  explicit checksummed_file_buf(int fd) : fd_(fd) { setp(buffer_, buffer_ + sizeof buffer_); }
  std::uint32_t crc() const noexcept { return crc_; }
  std::uint64_t bytes() const noexcept { return bytes_; }
  int error_number() const noexcept { return errno_; }

 protected:
  int_type overflow(int_type c) override {
    if (!drain()) return traits_type::eof();
    if (!traits_type::eq_int_type(c, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(c);
      pbump(1);
    }
    return traits_type::not_eof(c);
  }
  int sync() override { return drain() ? 0 : -1; }

 private:
  bool drain() {
    const char* p = pbase();
    const std::size_t n = static_cast<std::size_t>(pptr() - pbase());
    crc_ = crc32c(p, n, crc_);
    bytes_ += n;
    for (std::size_t done = 0; done < n;) {
      const ssize_t w = ::write(fd_, p + done, n - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        errno_ = errno;
        return false;
      }
      done += static_cast<std::size_t>(w);
    }
    setp(buffer_, buffer_ + sizeof buffer_);
    return true;
  }

  int fd_;
  std::uint32_t crc_ = 0;
  std::uint64_t bytes_ = 0;
  int errno_ = 0;
  char buffer_[64 * 1024];
};

// An input buffer over verified bytes in memory, handed out a slice at a time so that the
// consumer's progress can be reported.
class progress_memory_buf : public std::streambuf {
 public:
  progress_memory_buf(const char* data, std::uint64_t size,
                      const std::function<void(std::uint64_t, std::uint64_t)>& progress)
      : data_(data), size_(size), progress_(progress) {}

 protected:
  int_type underflow() override {
    if (given_ == size_) return traits_type::eof();
    if (progress_) progress_(given_, size_);
    const std::uint64_t n = std::min<std::uint64_t>(slice, size_ - given_);
    char* begin = const_cast<char*>(data_ + given_);  // get area only: never written through
    setg(begin, begin, begin + n);
    given_ += n;
    return traits_type::to_int_type(*gptr());
  }

 private:
  static constexpr std::uint64_t slice = 1 << 20;
  const char* data_;
  std::uint64_t size_;
  std::uint64_t given_ = 0;
  const std::function<void(std::uint64_t, std::uint64_t)>& progress_;
};

// "a FIFO", "a symbolic link", ...: what a refusal says was found instead of a regular file.
std::string kind_of(mode_t mode) {
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  char octal[32];
  std::snprintf(octal, sizeof octal, "0%o", static_cast<unsigned>(mode & S_IFMT));
  return std::string("a file of type ") + octal;
}

[[noreturn]] void not_regular(const std::filesystem::path& path, mode_t mode) {
  bad(path, "is " + kind_of(mode) + ", not a regular file" +
                (S_ISLNK(mode) ? " (snapshot files are never followed through links)" : ""));
}

// Anonymous memory for a payload read from a file. Large ones ask for transparent huge pages:
// reading 256 MiB into 4 KiB pages costs 65,536 page faults, as much time as the copy itself.
class payload_memory {
 public:
  payload_memory() = default;
  payload_memory(const std::filesystem::path& path, std::uint64_t size) : size_(size) {
    if (size == 0) return;
    void* p = size > SIZE_MAX ? MAP_FAILED
                              : ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      throw error(
          errc::system_error,
          "snapshot '" + path.string() + "': " +
              detail::errno_message(
                  "cannot allocate " + std::to_string(size) + " bytes for its payload", errno));
    if (size >= huge_page) ::madvise(p, size, MADV_HUGEPAGE);  // a hint: failure is harmless
    data_ = static_cast<char*>(p);
  }
  ~payload_memory() {
    if (data_) ::munmap(data_, size_);
  }
  payload_memory(payload_memory&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(o.size_) {}
  payload_memory& operator=(payload_memory&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    return *this;
  }
  char* data() const noexcept { return data_; }

 private:
  static constexpr std::uint64_t huge_page = 2 << 20;
  char* data_ = nullptr;
  std::uint64_t size_ = 0;
};

class fd_guard {
 public:
  explicit fd_guard(int fd) noexcept : fd_(fd) {}
  ~fd_guard() {
    if (fd_ >= 0) ::close(fd_);
  }
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// Opens a snapshot file for reading without trusting what is at its path: no symbolic link is
// followed and nothing but a regular file is opened (a FIFO would block the open, a device
// could act on it), and the file must belong to a user the reader already trusts (design.md,
// "Snapshot files are opened, not trusted"). Returns the descriptor, blocking again, and fills
// `st` from it. Throws error(bad_snapshot) naming the path and what was found instead.
int open_snapshot_file(const std::filesystem::path& path, struct stat& st) {
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  const std::filesystem::path name = path.filename();
  if (name.empty() || name == "." || name == "..") bad(path, "does not name a file");
  // The owner rule is checked against the directory the file is then opened in, by descriptor.
  // O_PATH: opening a file in it needs search permission only, as a plain open() of it does.
  const fd_guard dir_fd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) {
    if (errno == ENOENT) bad(path, "no such file (its directory does not exist)");
    system_failure(dir, "open directory", errno);
  }
  struct stat dir_st {};
  if (::fstat(dir_fd.get(), &dir_st) != 0) system_failure(dir, "fstat", errno);
  // Looked at before opening, so that a device or FIFO is never opened at all.
  const auto look = [&] {
    struct stat entry {};
    if (::fstatat(dir_fd.get(), name.c_str(), &entry, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) bad(path, "no such file");
      system_failure(path, "stat", errno);
    }
    if (!S_ISREG(entry.st_mode)) not_regular(path, entry.st_mode);
  };
  look();
  // O_NOFOLLOW and O_NONBLOCK still: the entry may be replaced between the look and the open.
  fd_guard fd(::openat(dir_fd.get(), name.c_str(),
                       O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0) {
    const int err = errno;
    if (err == ENOENT) bad(path, "no such file");
    if (err == ELOOP || err == ENXIO) look();  // it was replaced: say by what
    system_failure(path, "open", err);
  }
  if (::fstat(fd.get(), &st) != 0) system_failure(path, "fstat", errno);
  if (!S_ISREG(st.st_mode)) not_regular(path, st.st_mode);
  const uid_t self = ::geteuid();
  if (st.st_uid != dir_st.st_uid && st.st_uid != self)
    bad(path, "is owned by uid " + std::to_string(st.st_uid) +
                  ", neither the snapshot directory's owner (uid " + std::to_string(dir_st.st_uid) +
                  ") nor this process's user (uid " + std::to_string(self) + ")");
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0)
    system_failure(path, "fcntl", errno);
  return fd.release();
}

// Reads up to `n` bytes at `at`; fewer only at the end of the file.
std::uint64_t read_at(const std::filesystem::path& path, int fd, char* into, std::uint64_t n,
                      std::uint64_t at) {
  std::uint64_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, into + done, n - done, static_cast<off_t>(at + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      system_failure(path, "read", errno);
    }
    if (r == 0) break;
    done += static_cast<std::uint64_t>(r);
  }
  return done;
}

// A whole snapshot file, read with pread (never mapped: a file truncated under a mapping
// raises SIGBUS) and verified. With `keep_payload`, the payload stays in memory and is exactly
// the bytes whose CRC was checked, so load() gets what was verified, whatever happens to the
// file afterwards.
class verified_file {
 public:
  verified_file(const std::filesystem::path& path, std::optional<history_id> expected,
                bool keep_payload)
      : path_(path) {
    struct stat st {};
    const fd_guard fd(open_snapshot_file(path, st));
    const std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
    if (size < snapshot_header_size)
      bad(path, "truncated: " + std::to_string(size) + " bytes, less than the " +
                    std::to_string(snapshot_header_size) + "-byte header");
    snapshot_header h;
    const std::uint64_t got = read_at(path, fd.get(), reinterpret_cast<char*>(&h), sizeof h, 0);
    if (got < sizeof h) shrank(got, sizeof h);
    check_header(h, size);
    read_payload(fd.get(), h, keep_payload);
    info_ = info_from_header(path_, h);
    if (expected && info_.replid != *expected)
      bad(path_, "belongs to history " + info_.replid.str() + ", not to " + expected->str());
  }

  const snapshot_meta& info() const noexcept { return info_; }
  // Only with keep_payload: the verified payload, info().payload_bytes long.
  const char* payload() const noexcept { return payload_.data(); }

 private:
  [[noreturn]] void shrank(std::uint64_t got, std::uint64_t wanted) const {
    bad(path_, "truncated while being read (" + std::to_string(got) + " of " +
                   std::to_string(wanted) + " bytes)");
  }

  void check_header(const snapshot_header& h, std::uint64_t size) const {
    if (h.magic != snapshot_magic) {
      char hex[32];
      std::snprintf(hex, sizeof hex, "0x%016llx", static_cast<unsigned long long>(h.magic));
      bad(path_, std::string("not a shmlog snapshot (magic ") + hex + ")");
    }
    if (h.format_version != snapshot_format_version)
      bad(path_, "format version " + std::to_string(h.format_version) +
                     "; this build reads version " + std::to_string(snapshot_format_version));
    if (h.header_size != snapshot_header_size)
      bad(path_, "header size " + std::to_string(h.header_size) + ", expected " +
                     std::to_string(snapshot_header_size));
    if (h.header_crc != header_crc_of(h)) bad(path_, "header checksum mismatch");
    // Compared without forming 128 + payload_length, which a hostile header could overflow.
    const std::uint64_t payload_held = size - snapshot_header_size;
    if (payload_held < h.payload_length)
      bad(path_, "truncated: " + std::to_string(size) + " bytes, but the header describes " +
                     (h.payload_length <= UINT64_MAX - snapshot_header_size
                          ? std::to_string(snapshot_header_size + h.payload_length)
                          : std::to_string(snapshot_header_size) + " + " +
                                std::to_string(h.payload_length)));
    if (payload_held > h.payload_length)
      bad(path_, std::to_string(payload_held - h.payload_length) + " bytes after the " +
                     std::to_string(snapshot_header_size + h.payload_length) +
                     " the header describes");
  }

  // Reads the payload a slice at a time, checksumming each slice while it is in cache.
  void read_payload(int fd, const snapshot_header& h, bool keep) {
    constexpr std::uint64_t slice = 1 << 20;
    std::unique_ptr<char[]> scratch;
    if (keep)
      payload_ = payload_memory(path_, h.payload_length);
    else
      scratch = std::make_unique_for_overwrite<char[]>(slice);
    std::uint32_t crc = 0;
    for (std::uint64_t done = 0; done < h.payload_length;) {
      const std::uint64_t n = std::min(slice, h.payload_length - done);
      char* into = keep ? payload_.data() + done : scratch.get();
      const std::uint64_t got = read_at(path_, fd, into, n, snapshot_header_size + done);
      if (got < n)
        shrank(snapshot_header_size + done + got, snapshot_header_size + h.payload_length);
      crc = crc32c(into, n, crc);
      done += n;
    }
    if (crc != h.payload_crc)
      bad(path_, "payload checksum mismatch (the file was damaged after it was written)");
  }

  std::filesystem::path path_;
  payload_memory payload_;
  snapshot_meta info_;
};

void fsync_dir(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) system_failure(dir, "open directory", errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) system_failure(dir, "fsync directory", err);
}

// "<log>-<20 digits>-<generation>.snap" -> generation, if the name is one of log's.
std::optional<std::uint64_t> generation_of(std::string_view file, std::string_view log) {
  const std::string_view suffix = ".snap";
  if (file.size() <= log.size() + 1 + 20 + 1 + suffix.size()) return std::nullopt;
  if (file.substr(0, log.size()) != log || file[log.size()] != '-') return std::nullopt;
  if (file.substr(file.size() - suffix.size()) != suffix) return std::nullopt;
  const std::string_view rest =
      file.substr(log.size() + 1, file.size() - log.size() - 1 - suffix.size());
  if (rest.size() < 22 || rest[20] != '-') return std::nullopt;
  for (char c : rest.substr(0, 20))
    if (c < '0' || c > '9') return std::nullopt;
  const std::string_view gen = rest.substr(21);
  std::uint64_t g = 0;
  const auto [end, ec] = std::from_chars(gen.data(), gen.data() + gen.size(), g);
  if (ec != std::errc() || end != gen.data() + gen.size()) return std::nullopt;
  return g;
}

// A directory entry that is a regular file itself, not a link to one: scans consider nothing
// else. What is removed after this look goes through unlink(), which removes a name and never
// follows a link or removes a directory, should the entry have been replaced since.
bool is_plain_file(const std::filesystem::directory_entry& entry) {
  std::error_code ec;
  return entry.symlink_status(ec).type() == std::filesystem::file_type::regular;
}

// A file at `final_path` written by `fill(fd, temp_path)` into a temporary file next to it, with
// `mode` exactly, then fsync, rename into place, fsync of the directory: a reader of the name
// sees the old file or the whole new one, also after a crash. Nothing is left behind if
// anything throws (or, if the process dies, a temporary file remove_stale_snapshot_files()
// removes).
void write_file_atomically(const std::filesystem::path& final_path, mode_t mode,
                           const std::function<void(int, const std::filesystem::path&)>& fill) {
  const std::filesystem::path dir =
      final_path.parent_path().empty() ? std::filesystem::path(".") : final_path.parent_path();
  const std::filesystem::path temp_path =
      dir / ("." + final_path.filename().string() + ".tmp." + std::to_string(::getpid()));
  const int fd =
      ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) system_failure(temp_path, "create", errno);
  bool open = true;
  try {
    if (::fchmod(fd, mode & 0666) != 0) system_failure(temp_path, "fchmod", errno);
    fill(fd, temp_path);
    if (::fsync(fd) != 0) system_failure(temp_path, "fsync", errno);
    open = false;
    if (::close(fd) != 0) system_failure(temp_path, "close", errno);
    // Now the file is whole on disk: give it its name, then make the name durable.
    if (::rename(temp_path.c_str(), final_path.c_str()) != 0)
      system_failure(final_path, "rename", errno);
    fsync_dir(dir);
  } catch (...) {
    if (open) ::close(fd);  // only ours: a closed number may already belong to another thread
    ::unlink(temp_path.c_str());
    throw;
  }
}

}  // namespace

void check_snapshot_dir(const std::filesystem::path& dir, bool for_writing) {
  const std::string where = "snapshot directory '" + dir.string() + "'";
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) throw error(errc::invalid_argument, where + " does not exist");
    throw error(errc::system_error, where + ": " + detail::errno_message("stat", errno));
  }
  if (!S_ISDIR(st.st_mode)) throw error(errc::invalid_argument, where + " is not a directory");
  const int need = for_writing ? (W_OK | X_OK | R_OK) : (R_OK | X_OK);
  if (::access(dir.c_str(), need) != 0)
    throw error(errc::permission_denied,
                where + (for_writing ? " is not writable" : " is not readable"));
}

std::string snapshot_file_name(std::string_view log, std::uint64_t offset,
                               std::uint64_t generation) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%020llu", static_cast<unsigned long long>(offset));
  std::string name(log);
  name += '-';
  name += digits;
  name += '-';
  name += std::to_string(generation);
  name += ".snap";
  return name;
}

snapshot_meta write_snapshot(const std::filesystem::path& dir, std::string_view log,
                             std::uint64_t generation, const history_id& replid,
                             std::uint64_t offset, const state_machine& state, mode_t mode) {
  return write_snapshot_file(dir / snapshot_file_name(log, offset, generation), replid, offset,
                             state, mode);
}

snapshot_meta write_snapshot_file(const std::filesystem::path& final_path, const history_id& replid,
                                  std::uint64_t offset, const state_machine& state, mode_t mode) {
  const std::uint64_t started = detail::monotonic_ns();
  const std::uint64_t created = detail::realtime_ns();
  snapshot_header h{};
  write_file_atomically(final_path, mode, [&](int fd, const std::filesystem::path& temp_path) {
    // The header goes in last, once the payload's length and checksum are known.
    if (::pwrite(fd, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h))
      system_failure(temp_path, "write", errno);
    if (::lseek(fd, sizeof h, SEEK_SET) < 0) system_failure(temp_path, "lseek", errno);
    checksummed_file_buf buf(fd);
    std::ostream out(&buf);
    state.save(out);
    out.flush();
    if (!out) system_failure(temp_path, "write", buf.error_number() ? buf.error_number() : EIO);
    h.magic = snapshot_magic;
    h.format_version = snapshot_format_version;
    h.header_size = snapshot_header_size;
    h.offset = offset;
    h.payload_length = buf.bytes();
    h.created_ns = created;
    std::memcpy(h.replid, replid.view().data(), history_id_size);
    h.payload_crc = buf.crc();
    h.save_ns = detail::monotonic_ns() - started;
    h.header_crc = header_crc_of(h);
    if (::pwrite(fd, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h))
      system_failure(temp_path, "write", errno);
  });
  snapshot_meta info;
  info.path = final_path;
  info.replid = replid;
  info.offset = offset;
  info.payload_bytes = h.payload_length;
  info.created_ns = created;
  info.save_ns = h.save_ns;
  return info;
}

snapshot_meta read_snapshot_header(const std::filesystem::path& path) {
  struct stat st {};
  const fd_guard fd(open_snapshot_file(path, st));
  snapshot_header h{};
  if (read_at(path, fd.get(), reinterpret_cast<char*>(&h), sizeof h, 0) != sizeof h)
    bad(path, "truncated header");
  if (h.magic != snapshot_magic || h.format_version != snapshot_format_version ||
      h.header_crc != header_crc_of(h))
    bad(path, "not a valid snapshot header");
  return info_from_header(path, h);
}

snapshot_meta verify_snapshot(const std::filesystem::path& path,
                              std::optional<history_id> expected_replid) {
  return verified_file(path, expected_replid, false).info();
}

snapshot_meta load_snapshot(const std::filesystem::path& path, state_machine& state,
                            std::optional<history_id> expected_replid,
                            const std::function<void(std::uint64_t, std::uint64_t)>& progress) {
  const verified_file file(path, expected_replid, true);
  const snapshot_meta& info = file.info();
  progress_memory_buf buf(file.payload(), info.payload_bytes, progress);
  std::istream in(&buf);
  state.load(in);
  if (progress) progress(info.payload_bytes, info.payload_bytes);
  return info;
}

std::vector<std::filesystem::path> list_snapshots(const std::filesystem::path& dir,
                                                  std::string_view log) {
  std::vector<std::pair<std::uint64_t, std::filesystem::path>> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string file = entry.path().filename().string();
    const auto gen = generation_of(file, log);
    if (gen && is_plain_file(entry)) found.emplace_back(*gen, entry.path());
  }
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::filesystem::path> paths;
  for (auto& f : found)
    paths.push_back(std::move(f.second));
  return paths;
}

std::size_t prune_snapshots(const std::filesystem::path& dir, std::string_view log,
                            std::size_t keep) {
  const auto paths = list_snapshots(dir, log);
  std::size_t removed = 0;
  for (std::size_t i = keep; i < paths.size(); ++i)
    if (::unlink(paths[i].c_str()) == 0) ++removed;
  return removed;
}

std::size_t remove_stale_snapshot_files(const std::filesystem::path& dir, std::string_view log) {
  const std::string prefix = "." + std::string(log) + "-";
  const std::string marker = ".snap.tmp.";
  std::size_t removed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string file = entry.path().filename().string();
    const auto at = file.rfind(marker);
    if (file.rfind(prefix, 0) != 0 || at == std::string::npos) continue;
    const std::string pid_text = file.substr(at + marker.size());
    int pid = 0;
    const auto [end, parse_ec] =
        std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), pid);
    if (parse_ec != std::errc() || end != pid_text.data() + pid_text.size() || pid <= 0) continue;
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // its writer may still be at it
    if (is_plain_file(entry) && ::unlink(entry.path().c_str()) == 0) ++removed;
  }
  return removed;
}

namespace detail {

std::uint64_t read_snapshot_bytes(const std::filesystem::path& path, std::size_t chunk_bytes,
                                  const std::function<void(std::string_view piece)>& sink) {
  struct stat st {};
  const fd_guard fd(open_snapshot_file(path, st));
  std::string piece(chunk_bytes, '\0');
  std::uint64_t at = 0;
  for (;;) {
    const std::uint64_t got = read_at(path, fd.get(), piece.data(), piece.size(), at);
    if (got == 0) return at;
    sink(std::string_view(piece.data(), got));
    at += got;
    if (got < piece.size()) return at;
  }
}

std::uint64_t write_snapshot_bytes(const std::filesystem::path& final_path,
                                   const std::function<std::string_view()>& next, mode_t mode) {
  std::uint64_t written = 0;
  write_file_atomically(final_path, mode, [&](int fd, const std::filesystem::path& temp_path) {
    for (std::string_view piece = next(); !piece.empty(); piece = next()) {
      while (!piece.empty()) {
        const ssize_t w = ::write(fd, piece.data(), piece.size());
        if (w < 0) {
          if (errno == EINTR) continue;
          system_failure(temp_path, "write", errno);
        }
        piece.remove_prefix(static_cast<std::size_t>(w));
        written += static_cast<std::uint64_t>(w);
      }
    }
  });
  return written;
}

}  // namespace detail
}  // namespace shmlog
