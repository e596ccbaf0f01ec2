// Helpers shared by the test programs: unique log names, cleanup, and payloads that carry a
// checkable formula (sequence number, length and CRC-32C), so a reader can prove that every
// record it accepted is exactly what the writer appended.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "shmlog/crc32c.h"
#include "shmlog/segment.h"

namespace shmlog::test {

// A log name no other test (or parallel ctest job) uses: prefix, pid and a counter.
inline std::string unique_log_name(const std::string& prefix = "t") {
  static std::atomic<unsigned> counter{0};
  return "shmlog-test-" + prefix + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter.fetch_add(1));
}

// Destroys the log when the test ends, whether it passed or not.
class scoped_log {
 public:
  explicit scoped_log(std::string name) : name_(std::move(name)) {
    shmlog::destroy(name_, shmlog::destroy_what::anything);
  }
  ~scoped_log() {
    try {
      shmlog::destroy(name_, shmlog::destroy_what::anything);  // whatever a test left there
    } catch (...) {
    }
  }
  scoped_log(const scoped_log&) = delete;
  scoped_log& operator=(const scoped_log&) = delete;
  const std::string& name() const { return name_; }
  operator const std::string&() const { return name_; }
  operator std::string_view() const { return name_; }

 private:
  std::string name_;
};

// A fresh directory under /tmp (mkdtemp), removed with everything in it when the test ends.
class scratch_dir {
 public:
  scratch_dir() {
    char pattern[] = "/tmp/shmlog-test-dir-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~scratch_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  operator std::string() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A whole file's bytes ("" if it cannot be read), and a file made of exactly `bytes`.
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
inline void write_file(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Payload layout: [u64 sequence][u32 length][bytes...][u32 crc32c of everything before it].
// The filler bytes are a function of the sequence number, so any torn or stale byte shows.
inline constexpr std::size_t payload_overhead = 8 + 4 + 4;

// A payload size in [payload_overhead, max_size] that varies with seq (deterministic).
inline std::size_t payload_size_for(std::uint64_t seq, std::size_t max_size) {
  const std::size_t span = max_size - payload_overhead + 1;
  std::uint64_t x = seq * 0x9E3779B97F4A7C15ull;
  x ^= x >> 29;
  return payload_overhead + static_cast<std::size_t>(x % span);
}

inline void make_payload(std::uint64_t seq, std::size_t size, std::span<std::byte> out) {
  auto* p = out.data();
  const auto length = static_cast<std::uint32_t>(size);
  std::memcpy(p, &seq, 8);
  std::memcpy(p + 8, &length, 4);
  for (std::size_t i = 12; i < size - 4; ++i)
    p[i] = static_cast<std::byte>((seq * 31 + i * 7) & 0xFF);
  const std::uint32_t crc = shmlog::crc32c(p, size - 4);
  std::memcpy(p + size - 4, &crc, 4);
}

inline std::vector<std::byte> make_payload(std::uint64_t seq, std::size_t size) {
  std::vector<std::byte> v(size);
  make_payload(seq, size, v);
  return v;
}

// True if `payload` is exactly what make_payload produced; *seq_out gets its sequence number.
inline bool verify_payload(std::span<const std::byte> payload, std::uint64_t* seq_out = nullptr) {
  if (payload.size() < payload_overhead) return false;
  const auto* p = payload.data();
  std::uint64_t seq = 0;
  std::uint32_t length = 0;
  std::uint32_t crc = 0;
  std::memcpy(&seq, p, 8);
  std::memcpy(&length, p + 8, 4);
  if (length != payload.size()) return false;
  std::memcpy(&crc, p + payload.size() - 4, 4);
  if (crc != shmlog::crc32c(p, payload.size() - 4)) return false;
  for (std::size_t i = 12; i < payload.size() - 4; ++i)
    if (p[i] != static_cast<std::byte>((seq * 31 + i * 7) & 0xFF)) return false;
  if (seq_out) *seq_out = seq;
  return true;
}

}  // namespace shmlog::test
