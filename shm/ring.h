// What a process may believe about the ring: the rules every record header, checkpoint and walk
// over records is checked against before anything acts on it. Shared by the reader (which must
// treat every byte it loads as possibly hostile) and a writer taking over a log (which must not
// trust what the previous one left). Private to the library.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "segment_layout.h"

#if defined(__SANITIZE_THREAD__)
#define SHMLOG_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHMLOG_TSAN 1
#endif
#endif

// The seqlock's intended race: a reader loads ring bytes the writer may be overwriting at the
// same moment, then validates and discards them if it was. Under ThreadSanitizer exactly these
// loads are excluded from race detection (not suppressed after the fact: TSan cannot always
// recover the stack of an old read to match a suppression). See docs/design.md.
#if defined(SHMLOG_TSAN)
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
#define SHMLOG_RACY_READS_BEGIN() AnnotateIgnoreReadsBegin(__FILE__, __LINE__)
#define SHMLOG_RACY_READS_END() AnnotateIgnoreReadsEnd(__FILE__, __LINE__)
#else
#define SHMLOG_RACY_READS_BEGIN() ((void)0)
#define SHMLOG_RACY_READS_END() ((void)0)
#endif

namespace shmlog::detail {

// The validated geometry of a segment, from its descriptor.
struct geometry {
  std::uint64_t capacity = 0;
  std::uint64_t mask = 0;
  std::uint64_t intent_chunk = 0;
  std::uint64_t max_payload = 0;
  std::uint64_t reader_area_offset = 0;
  std::uint64_t reader_area_size = 0;
  std::uint32_t slot_count = 0;
  std::uint64_t total_size = 0;
  std::uint64_t start_offset = 0;  // nothing before it was ever held (a mirror's log)

  // The chunk boundary a ring below this write intent, whose checkpoint names the oldest record
  // held, or nullopt while the ring still holds everything since the log's start (the oldest
  // record is then start_offset). From the boundary of the start's own chunk on, the checkpoint
  // decides: it is the start at creation, and a mirror's reset_to(Y) within that chunk sets it
  // to Y, which start_offset alone could not say (docs/design.md, "What a mirror needs").
  std::optional<std::uint64_t> oldest_boundary(std::uint64_t intent) const noexcept {
    if (intent < capacity) return std::nullopt;
    const std::uint64_t boundary = intent - capacity;
    if (boundary < (start_offset & ~(intent_chunk - 1))) return std::nullopt;
    return boundary;
  }
  // The lowest offset the ring can still hold with this write intent: that boundary, or where
  // the log started.
  std::uint64_t lowest_held(std::uint64_t intent) const noexcept {
    return oldest_boundary(intent).value_or(start_offset);
  }
};

// A header is read with one 64-bit load, so it is never torn, only possibly stale.
template <int memory_order>
inline std::uint64_t racy_load_word(const std::byte* at) noexcept {
  SHMLOG_RACY_READS_BEGIN();
  const std::uint64_t word =
      __atomic_load_n(reinterpret_cast<const std::uint64_t*>(at), memory_order);
  SHMLOG_RACY_READS_END();
  return word;
}
inline std::uint64_t racy_load_header(const std::byte* at) noexcept {
  return racy_load_word<__ATOMIC_RELAXED>(at);
}
// The header at the master offset, which may be the one that publishes the next record.
// acquire: pairs with the writer's release store of that header (publish_at): if this load
// sees it, the record's payload, the cleared word after it and its checkpoints are visible.
inline std::uint64_t load_publishing_header(const std::byte* at) noexcept {
  return racy_load_word<__ATOMIC_ACQUIRE>(at);
}

// nullptr if `word`, loaded at `offset` (8-aligned), could be the header of a record a sound
// writer published below `master`; else why not. Everything a reader acts on is checked: the
// tag, the length against the largest payload, a record within the ring, a padding record only
// after ring byte 0 and exactly up to the ring's end (so after padding comes ring byte 0, which
// is never padding: one poll crosses at most one padding record).
inline const char* check_record_header(std::uint64_t word, std::uint64_t offset,
                                       std::uint64_t master, std::uint64_t capacity,
                                       std::uint64_t max_payload) noexcept {
  const std::uint64_t index = offset & (capacity - 1);
  const std::uint64_t frame = record_frame_size(header_length(word));
  if (header_tag(word) != record_tag(offset)) return "header tag does not match its offset";
  if (header_type(word) == padding_record_type) {
    // A sound writer pads only when a record does not fit before the ring's end, so padding is
    // shorter than the largest record and never starts at ring byte 0.
    if (index == 0) return "padding record at the start of the ring";
    if (header_length(word) > max_payload) return "padding record longer than the largest record";
    if (index + frame != capacity) return "padding record does not end at the ring's end";
  } else {
    if (header_length(word) > max_payload) return "record length exceeds the log's max payload";
    if (index + frame > capacity) return "record runs past the ring's end";
  }
  if (offset + frame > master) return "record extends past the master offset";
  return nullptr;
}

// The checkpoint of chunk boundary `boundary` (valid for boundaries in the held window), if it
// is one a sound writer could have stored: 8-aligned, at or after the boundary, and within one
// largest frame of it (the record that crossed the boundary ends there). Any process.
inline std::optional<std::uint64_t> checked_checkpoint(
    const std::atomic<std::uint64_t>* checkpoints, std::uint64_t boundary,
    const geometry& g) noexcept {
  // acquire: pairs with the master/intent release stores that follow the checkpoint store.
  const std::uint64_t at =
      checkpoints[(boundary / g.intent_chunk) % checkpoint_count].load(std::memory_order_acquire);
  if (at % record_alignment != 0 || at < boundary ||
      at - boundary > record_frame_size(g.max_payload))
    return std::nullopt;
  return at;
}

struct record_walk {
  std::uint64_t position = 0;  // the first record start at or beyond the target, or where a
                               // header failed its check
  std::uint64_t previous = 0;  // the record start before position
  const char* problem = nullptr;
};

// Walks record headers from `from` (a record start) until reaching or passing `target` (at most
// master), checking each as check_record_header does. Bounded: every step moves at least 8 bytes
// forward. The caller validates the bytes it relied on afterwards if the writer may be running.
inline record_walk walk_records(const std::byte* ring, const geometry& g, std::uint64_t from,
                                std::uint64_t target, std::uint64_t master) noexcept {
  record_walk w{from, from, nullptr};
  while (w.position < target) {
    const std::uint64_t word = racy_load_header(ring + (w.position & g.mask));
    w.problem = check_record_header(word, w.position, master, g.capacity, g.max_payload);
    if (w.problem) return w;
    w.previous = w.position;
    w.position += record_frame_size(header_length(word));
  }
  return w;
}

}  // namespace shmlog::detail
