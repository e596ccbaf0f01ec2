// Direct read-write access to a segment's bytes with plain POSIX calls, independent of the
// library's own mapping code, so tests can corrupt headers and records on purpose.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "segment_layout.h"

namespace shmlog::test {

class raw_segment {
 public:
  explicit raw_segment(const std::string& name) {
    fd_ = ::shm_open(("/" + name).c_str(), O_RDWR, 0);
    if (fd_ < 0) throw std::runtime_error("shm_open " + name);
    struct stat st {};
    ::fstat(fd_, &st);
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ != 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
      if (p == MAP_FAILED) throw std::runtime_error("mmap " + name);
      base_ = static_cast<std::byte*>(p);
    }
  }
  ~raw_segment() {
    if (base_) ::munmap(base_, size_);
    ::close(fd_);
  }
  raw_segment(const raw_segment&) = delete;
  raw_segment& operator=(const raw_segment&) = delete;

  std::byte* base() const { return base_; }
  std::size_t size() const { return size_; }
  segment_header& header() const { return *reinterpret_cast<segment_header*>(base_); }
  std::byte* ring() const { return base_ + shmlog::header_size; }

  template <class T>
  void poke(std::size_t offset, T value) const {
    std::memcpy(base_ + offset, &value, sizeof value);
  }
  template <class T>
  T peek(std::size_t offset) const {
    T value;
    std::memcpy(&value, base_ + offset, sizeof value);
    return value;
  }
  // Shrinks or grows the object; the mapping is not changed.
  void resize(std::size_t bytes) const {
    if (::ftruncate(fd_, static_cast<off_t>(bytes)) != 0) throw std::runtime_error("ftruncate");
  }

 private:
  int fd_ = -1;
  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace shmlog::test
