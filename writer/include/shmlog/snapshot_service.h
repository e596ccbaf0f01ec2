// The producer's side of full resynchronisation (docs/design.md, "Full resync"): readers that
// need a snapshot ask for one through the segment; the producer notices between appends,
// saves its state at the exact current offset into a file, and publishes the file in the
// segment. Many readers asking at once are served by one snapshot.
//
//   shmlog::snapshot_service snapshots(w, state, {.dir = "/var/lib/quotes"});
//   for (;;) {
//     apply_and_append(w, state, next_command());
//     snapshots.poll();   // between appends: usually a counter decrement
//   }
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "shmlog/export.h"
#include "shmlog/snapshot.h"
#include "shmlog/state_machine.h"
#include "shmlog/writer.h"

namespace shmlog {

enum class snapshot_mode {
  // Save on the writer's thread inside poll(): appends wait while the state is saved.
  inline_save,
  // Like Redis's BGSAVE: fork(), the child saves its copy-on-write image of the state and
  // exits; the writer keeps appending and publishes the file once the child is done. Only the
  // calling thread exists in the child, so no other thread of the producer may be changing
  // the state, or holding a lock the state's save() needs, when poll() forks.
  fork,
};

// What a snapshot_service did, for the producer's log and monitoring (like replica_event).
struct snapshot_event {
  enum class kind {
    started,    // requests were pending: saving the state at snapshot.offset (inline, or a child)
    published,  // a snapshot was saved and announced: `snapshot` is it, with its generation
    failed,     // saving failed; retried after `retry_in` while requests are pending
  };
  kind what = kind::published;
  snapshot_meta snapshot;                 // started: the offset; published: all of it
  std::chrono::milliseconds retry_in{0};  // failed
  std::string message;                    // one line for a log
};

SHMLOG_API std::string_view to_string(snapshot_event::kind k) noexcept;

struct snapshot_options {
  std::filesystem::path dir;  // must exist and be writable; checked when the service starts
  snapshot_mode mode = snapshot_mode::inline_save;
  std::size_t keep = 3;            // snapshot files of this log kept in dir
  std::uint32_t check_every = 64;  // poll() calls between looks at the request counter
  // Mode of the snapshot files. 0: the log's own mode without execute bits, so that every
  // process that may attach to the log as a reader may also load its snapshots.
  mode_t file_mode = 0;
  // Told about each save started, each snapshot published and each failure (a failed save is
  // retried while requests are pending, after 100 ms, then doubling up to 5 s). Called on the
  // writer's thread, inside poll() or snapshot_now().
  std::function<void(const snapshot_event&)> on_event;
};

class SHMLOG_API snapshot_service {
 public:
  // Writer thread. Throws error naming the directory if it is missing, not a directory or not
  // writable, and removes temporary files left by writers of this log that died mid-save.
  snapshot_service(writer& w, const state_machine& state, snapshot_options options);
  ~snapshot_service();  // waits for a child still saving (fork mode), then publishes its file
  snapshot_service(const snapshot_service&) = delete;
  snapshot_service& operator=(const snapshot_service&) = delete;

  // Writer thread only, between appends: serves pending snapshot requests, and in fork mode
  // publishes a child's file once it is done.
  void poll();

  // Writer thread only: saves and publishes a snapshot now, on this thread, whatever the
  // mode and whether or not anyone asked (e.g. before a planned shutdown).
  snapshot_meta snapshot_now();

  bool in_progress() const noexcept { return child_ > 0; }
  std::uint64_t published() const noexcept { return published_; }  // by this service
  const std::filesystem::path& dir() const noexcept { return options_.dir; }

 private:
  void start(std::uint64_t requests);
  void publish(const snapshot_meta& info, std::uint64_t requests);
  void reap(bool block);
  void failed(const std::string& why);
  std::uint64_t next_generation() const;

  writer& writer_;
  const state_machine& state_;
  snapshot_options options_;
  std::uint32_t countdown_ = 1;
  std::uint64_t served_ = 0;  // the request count the newest snapshot answers
  std::uint64_t published_ = 0;
  // After a failed save: no new attempt before retry_at_ (read only while a request is pending
  // and a save has failed, so the clock is never read on the common path).
  std::chrono::milliseconds retry_backoff_{0};
  std::chrono::steady_clock::time_point retry_at_;
  // fork mode: the child writing a snapshot, and what it is writing
  pid_t child_ = 0;
  std::uint64_t child_requests_ = 0;
  std::uint64_t child_offset_ = 0;
  std::uint64_t child_generation_ = 0;
  history_id child_replid_;
};

}  // namespace shmlog
