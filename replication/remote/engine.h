// The seam between shmlog's remote replication (ship, mirror, promote: docs/remote.md) and the
// engine that carries a log between hosts. Today the engine is Redis (redis_engine.h); another
// (NATS JetStream) would implement this interface and nothing else. Private to the library.
//
// What an engine stores for one shipped log, named by a key K:
//   - meta: a small map of text fields (replid, replid2, second_offset, capacity, epoch, snapshot
//     description, request counters, status), changed atomically as a whole set of fields;
//   - one stream per history: entries in increasing order of the log offset of their first
//     record, each entry carrying a batch of records ("entry" below); an entry whose first
//     offset is not above the stream's newest is refused as a duplicate (a resend is harmless);
//   - snapshot chunks: the bytes of a snapshot file, in numbered pieces.
// Every append to a stream is fenced: it is made only if the meta's replid is the one the caller
// names, atomically with the check (a stale shipper, after a failover promoted a mirror and
// changed the replid, cannot write).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shmlog::remote {

// One stream entry: the records of [first_offset, end_offset) of the log, packed
// (record_batch.h). first_offset is where the previous entry ended (its end_offset), so a
// missing entry shows as a gap; the first record may start later, after the source's padding.
struct entry {
  std::uint64_t first_offset = 0;
  std::uint64_t end_offset = 0;  // the offset after the last record (its next_offset)
  std::string records;           // the packed records
};

enum class append_result {
  appended,
  duplicate,  // an entry at or below first_offset is already in the stream: a resend
  fenced,     // the meta's replid is not the caller's: the caller must stop shipping
};

using fields = std::map<std::string, std::string>;

class engine {
 public:
  virtual ~engine() = default;

  // A one-line description of the endpoint for logs and shmlog info (no password).
  virtual std::string endpoint() const = 0;

  // --- meta --------------------------------------------------------------------------------
  // All fields of K's meta (empty if none).
  virtual fields meta(std::string_view key) = 0;
  // Sets `values` in K's meta if its field `guard_field` currently equals `guard_value` ("" =
  // absent); returns false (and sets nothing) if not. Atomic.
  virtual bool set_meta_if(std::string_view key, std::string_view guard_field,
                           std::string_view guard_value, const fields& values) = 0;
  // Adds `by` to the integer field `field` of K's meta and returns the new value. Atomic.
  virtual std::int64_t increment_meta(std::string_view key, std::string_view field,
                                      std::int64_t by) = 0;

  // --- streams (one per history id) ---------------------------------------------------------
  // Appends `entries` in order to K's stream for `replid`, each only if the meta's replid is
  // `replid` (fencing), and trims the stream to about `max_entries` entries (0: no trim).
  // Returns one result per entry; stops at the first `fenced`.
  virtual std::vector<append_result> append(std::string_view key, std::string_view replid,
                                            std::span<const entry> entries,
                                            std::uint64_t max_entries) = 0;
  // Up to `max` entries of K's stream for `replid` whose first offset is above `after`
  // (std::nullopt: from the beginning), waiting up to `block` for one to arrive if there is none.
  virtual std::vector<entry> read(std::string_view key, std::string_view replid,
                                  std::optional<std::uint64_t> after, std::size_t max,
                                  std::chrono::milliseconds block) = 0;
  // The first offset of the oldest entry still in K's stream for `replid`, if any.
  virtual std::optional<std::uint64_t> oldest(std::string_view key, std::string_view replid) = 0;
  // The end offset of the newest entry, if any.
  virtual std::optional<std::uint64_t> newest_end(std::string_view key,
                                                  std::string_view replid) = 0;

  // The newest entry of K's stream for `replid` whose first offset is at or below `offset`, if
  // any: the entry that holds `offset` when a mirror resumes in the middle of one.
  virtual std::optional<entry> at_or_before(std::string_view key, std::string_view replid,
                                            std::uint64_t offset) = 0;

  // --- snapshots ----------------------------------------------------------------------------
  // Stores chunk `index` of snapshot generation `generation` of K.
  virtual void put_chunk(std::string_view key, std::uint64_t generation, std::uint64_t index,
                         std::string_view bytes) = 0;
  // Chunk `index` of generation `generation`, or nullopt if it is not there.
  virtual std::optional<std::string> get_chunk(std::string_view key, std::uint64_t generation,
                                               std::uint64_t index) = 0;
  // Removes every chunk of generations below `keep_from`.
  virtual void drop_chunks_below(std::string_view key, std::uint64_t keep_from) = 0;
};

}  // namespace shmlog::remote
