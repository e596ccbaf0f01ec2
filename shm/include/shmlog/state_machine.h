// What a producer's state must offer so that readers can replicate it (docs/design.md, "Full
// resync"). The producer applies its own commands and appends them as records; a replica
// applies the same records in log order. A replica that is new, or was lapped, loads the whole
// state from a snapshot file the producer saved at an exact offset, then applies the records
// from that offset on.
#pragma once

#include <istream>
#include <ostream>

#include "shmlog/export.h"
#include "shmlog/record.h"

namespace shmlog {

class SHMLOG_API state_machine {
 public:
  virtual ~state_machine() = default;

  // Replica side, in log order: applies one record. A record the state cannot apply (an
  // unknown command) is for the state to judge; an exception stops the replica.
  virtual void apply(const record_view& record) = 0;

  // Producer side: writes the whole state. Called between appends, so no record is half
  // applied: from the writer's thread (inline snapshots) or from a forked child that has a
  // copy-on-write image of the process (fork snapshots; see snapshot_service).
  virtual void save(std::ostream& out) const = 0;

  // Replica side: replaces the whole state by what save() wrote. The stream has been verified
  // (length and CRC-32C) before load() is called; a failure here is the state's own.
  virtual void load(std::istream& in) = 0;
};

}  // namespace shmlog
