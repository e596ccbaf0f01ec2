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
#include <ostream>
#include <streambuf>

#include "os.h"
#include "shmlog/crc32c.h"
#include "shmlog/error.h"

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
snapshot_info info_from_header(const std::filesystem::path& path, const snapshot_header& h) {
  const auto replid = history_id::parse({h.replid, history_id_size});
  if (!replid) bad(path, "its history id is not 40 hex characters");
  snapshot_info info;
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

// A read-only mapping of a whole snapshot file, verified.
class verified_file {
 public:
  verified_file(const std::filesystem::path& path, std::optional<history_id> expected)
      : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      if (errno == ENOENT) bad(path, "no such file");
      system_failure(path, "open", errno);
    }
    struct stat st {};
    if (::fstat(fd_, &st) != 0) system_failure(path, "fstat", errno);
    size_ = static_cast<std::uint64_t>(st.st_size);
    if (size_ < snapshot_header_size)
      bad(path, "truncated: " + std::to_string(size_) + " bytes, less than the " +
                    std::to_string(snapshot_header_size) + "-byte header");
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (p == MAP_FAILED) system_failure(path, "mmap", errno);
    base_ = static_cast<const char*>(p);
    check(expected);
  }
  ~verified_file() {
    if (base_) ::munmap(const_cast<char*>(base_), size_);
    if (fd_ >= 0) ::close(fd_);
  }
  verified_file(const verified_file&) = delete;
  verified_file& operator=(const verified_file&) = delete;

  const snapshot_info& info() const noexcept { return info_; }
  const char* payload() const noexcept { return base_ + snapshot_header_size; }

 private:
  void check(std::optional<history_id> expected) {
    snapshot_header h;
    std::memcpy(&h, base_, sizeof h);
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
    const std::uint64_t expected_size = snapshot_header_size + h.payload_length;
    if (size_ < expected_size)
      bad(path_, "truncated: " + std::to_string(size_) + " bytes, but the header describes " +
                     std::to_string(expected_size));
    if (size_ > expected_size)
      bad(path_, std::to_string(size_ - expected_size) + " bytes after the " +
                     std::to_string(expected_size) + " the header describes");
    if (crc32c(base_ + snapshot_header_size, h.payload_length) != h.payload_crc)
      bad(path_, "payload checksum mismatch (the file was damaged after it was written)");
    info_ = info_from_header(path_, h);
    if (expected && info_.replid != *expected)
      bad(path_, "belongs to history " + info_.replid.str() + ", not to " + expected->str());
  }

  std::filesystem::path path_;
  int fd_ = -1;
  const char* base_ = nullptr;
  std::uint64_t size_ = 0;
  snapshot_info info_;
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

snapshot_info write_snapshot(const std::filesystem::path& dir, std::string_view log,
                             std::uint64_t generation, const history_id& replid,
                             std::uint64_t offset, const state_machine& state, mode_t mode) {
  const std::uint64_t started = detail::monotonic_ns();
  const std::uint64_t created = detail::realtime_ns();
  const std::filesystem::path final_path = dir / snapshot_file_name(log, offset, generation);
  const std::filesystem::path temp_path =
      dir / ("." + final_path.filename().string() + ".tmp." + std::to_string(::getpid()));
  const int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) system_failure(temp_path, "create", errno);
  bool open = true;
  try {
    if (::fchmod(fd, mode & 0666) != 0) system_failure(temp_path, "fchmod", errno);
    // The header goes in last, once the payload's length and checksum are known.
    snapshot_header h{};
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
    if (::fsync(fd) != 0) system_failure(temp_path, "fsync", errno);
    open = false;
    if (::close(fd) != 0) system_failure(temp_path, "close", errno);
    // Now the file is whole on disk: give it its name, then make the name durable.
    if (::rename(temp_path.c_str(), final_path.c_str()) != 0)
      system_failure(final_path, "rename", errno);
    fsync_dir(dir);
    snapshot_info info;
    info.path = final_path;
    info.replid = replid;
    info.offset = offset;
    info.payload_bytes = h.payload_length;
    info.created_ns = created;
    info.save_ns = h.save_ns;
    return info;
  } catch (...) {
    if (open) ::close(fd);  // only ours: a closed number may already belong to another thread
    ::unlink(temp_path.c_str());
    throw;
  }
}

snapshot_info read_snapshot_header(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) system_failure(path, "open", errno);
  snapshot_header h{};
  const ssize_t n = ::pread(fd, &h, sizeof h, 0);
  const int err = errno;
  ::close(fd);
  if (n < 0) system_failure(path, "read", err);
  if (n != static_cast<ssize_t>(sizeof h)) bad(path, "truncated header");
  if (h.magic != snapshot_magic || h.format_version != snapshot_format_version ||
      h.header_crc != header_crc_of(h))
    bad(path, "not a valid snapshot header");
  return info_from_header(path, h);
}

snapshot_info verify_snapshot(const std::filesystem::path& path,
                              std::optional<history_id> expected_replid) {
  return verified_file(path, expected_replid).info();
}

snapshot_info load_snapshot(const std::filesystem::path& path, state_machine& state,
                            std::optional<history_id> expected_replid,
                            const std::function<void(std::uint64_t, std::uint64_t)>& progress) {
  const verified_file file(path, expected_replid);
  const snapshot_info& info = file.info();
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
    if (const auto gen = generation_of(file, log)) found.emplace_back(*gen, entry.path());
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
  for (std::size_t i = keep; i < paths.size(); ++i) {
    std::error_code ec;
    if (std::filesystem::remove(paths[i], ec)) ++removed;
  }
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
    if (std::filesystem::remove(entry.path(), ec)) ++removed;
  }
  return removed;
}

}  // namespace shmlog
