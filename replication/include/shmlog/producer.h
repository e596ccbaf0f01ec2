// A producer that restarts: rebuild the state from the newest snapshot and what the backlog
// still holds after it, then open the log as its writer with the history that state reflects
// (docs/design.md, "Producer recovery"). One call does all of it:
//
//   my_state state;
//   shmlog::recovered_producer p =
//       shmlog::open_producer("quotes", state, {.snapshot_dir = "/var/lib/quotes",
//                                               .create = shmlog::create_options{}});
//   std::fprintf(stderr, "%s\n", p.report.describe().c_str());
//   shmlog::snapshot_service snapshots(p.log, state, {.dir = "/var/lib/quotes"});
//   for (;;) { p.log.append(state.execute(next_command())); snapshots.poll(); }
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shmlog/export.h"
#include "shmlog/history.h"
#include "shmlog/segment.h"
#include "shmlog/snapshot.h"
#include "shmlog/state_machine.h"
#include "shmlog/writer.h"

namespace shmlog {

struct producer_options {
  // Where this producer's snapshots are (its snapshot_service writes them there too). Must
  // exist; if the log announces snapshots in another directory, recovery refuses rather than
  // take the state back to whatever is here.
  std::filesystem::path snapshot_dir;
  // If set and the log does not exist, it is created with these options (and the state of a
  // snapshot left by an earlier log of that name, if any, starts a new history). Unset: the log
  // must exist (not_found otherwise).
  std::optional<create_options> create;
};

// What recovery found and did, for the producer's log line.
struct SHMLOG_API recovery_report {
  bool created = false;  // the log did not exist and was created
  // The snapshot the state was loaded from, or nullopt: an empty state at offset 0.
  std::optional<snapshot_meta> snapshot;
  // Snapshot files that did not verify or load, newest first: "PATH: why". The next older one
  // was tried after each.
  std::vector<std::string> skipped_snapshots;
  // The PSYNC decision for the state's (history, offset) against the backlog: partial when the
  // backlog still held everything after it (then it was replayed), else why not.
  std::optional<resync_decision> backlog;
  std::uint64_t replayed_records = 0;
  std::uint64_t replayed_bytes = 0;
  // Set when the log's history block was left half-written by a writer that died changing it:
  // the backlog's history is unknown, so nothing of it was replayed (the writer repaired the
  // block with a new history). The error's message.
  std::string history_lost;
  // Snapshot files in the directory that the log never announced (left by an earlier log of
  // that name, or saved by a fork-mode child after its producer died): they would outrank the
  // snapshots this log announces from now on, so the recovered state was saved as this log's
  // next snapshot and they were removed.
  std::vector<std::filesystem::path> retired_snapshots;
  std::optional<snapshot_meta> saved;  // that save

  // One line: what was recovered and how the writer continues, e.g. "recovered snapshot P
  // (offset 48) and 2 records (32 bytes) of the backlog; same history, continuing at offset 80
  // (history R)".
  std::string describe(const writer& log) const;
};

struct recovered_producer {
  writer log;
  recovery_report report;
};

// Rebuilds `state` (which must be empty) and opens log `name` as its writer:
//  1. the newest snapshot in options.snapshot_dir that verifies and loads (this log's announced
//     ones first, newest first; then files it never announced); damaged ones are skipped, each
//     with its reason in the report;
//  2. the PSYNC decision for the snapshot's (history, offset), or for offset 0 of the log's
//     history without one: if the backlog still holds it, the records after it are applied to
//     the state (replayed) up to the master offset;
//  3. writer::open (or create) with the state's history and offset, so the writer keeps,
//     branches or restarts the log's history by the PSYNC2 rules (writer.h, takeover_info);
//  4. snapshot files the log never announced are retired (see recovery_report).
// Throws what writer::open/create throw (writer_exists: checked before anything is loaded),
// invalid_argument if the log announces its snapshots in another directory, and
// errc::apply_failed if a backlog record cannot be applied to the state (the log was written
// by another kind of producer).
SHMLOG_API recovered_producer open_producer(std::string_view name, state_machine& state,
                                            const producer_options& options);

}  // namespace shmlog
