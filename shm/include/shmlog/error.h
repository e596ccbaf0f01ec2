// Errors reported by shmlog. Every failure that is the caller's or the environment's fault
// (bad name, bad size, corrupt segment, second writer, oversize record, missing permissions)
// is a shmlog::error whose message names the log and what is wrong. Normal outcomes on the
// read path (no data yet, lapped, refused partial resync) are results, not errors.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "shmlog/export.h"

namespace shmlog {

enum class errc {
  invalid_name,           // the log name breaks the naming rule
  invalid_argument,       // a size, mode, offset or option is out of range
  not_found,              // no log of that name exists
  already_exists,         // create() found a log of that name
  permission_denied,      // the caller may not open the segment in the mode it needs
  bad_magic,              // the object is not a shmlog segment
  unsupported_version,    // a shmlog segment of a layout version this build does not read
  corrupt_header,         // header fields are inconsistent or fail their checksum
  truncated,              // the object is smaller than its header says
  not_initialized,        // creation never finished (creator died or is still running)
  writer_exists,          // another live process holds the writer role
  record_too_large,       // a payload exceeds the log's max_payload
  claim_pending,          // writer misuse: a claimed record is neither committed nor aborted
  not_a_record_boundary,  // an offset inside the held window that does not start a record
  corrupt_record,         // a record header in the ring is wrong although not overwritten
  offset_out_of_range,    // an offset outside [oldest held, master offset]
  no_free_reader_slot,    // every reader slot is held by a live reader
  bad_snapshot,           // a snapshot file is truncated, corrupt, of another history or version
  snapshot_timeout,       // the producer did not answer a snapshot request in time
  // A header block (history, snapshot announcement) was left half-written by a writer that
  // died while changing it (the next writer repairs it), or is held half-written for too long.
  interrupted_update,
  // A record of the log could not be applied to the state being rebuilt (producer recovery):
  // the log was written by another kind of producer.
  apply_failed,
  // A mirror's record would not land at the offset its source gave it (the logs diverged).
  unexpected_offset,
  system_error,  // an operating-system call failed; the message has errno's text
};

SHMLOG_API std::string_view to_string(errc code) noexcept;

class SHMLOG_API error : public std::runtime_error {
 public:
  error(errc code, const std::string& message) : std::runtime_error(message), code_(code) {}
  errc code() const noexcept { return code_; }

 private:
  errc code_;
};

}  // namespace shmlog
