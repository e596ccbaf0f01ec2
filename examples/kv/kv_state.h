// A Redis-like key-value state replicated through a shmlog log: the producer's example state
// machine, used by examples/kv, by `shmlog produce`, `shmlog replica`, `shmlog demo`, and by
// the tests.
//
// Records are commands, one per record, as text (what `shmlog produce` reads from stdin):
//   SET key value    value: the rest of the line after one space (may contain spaces)
//   DEL key
//   INCR key         the value must be a decimal 64-bit integer (absent counts as 0)
// Keys are 1-512 bytes without spaces or control characters.
#pragma once

#include <cstdint>
#include <istream>
#include <map>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>

#include "shmlog/state_machine.h"

namespace shmlog::kv {

// A command that cannot be applied: the message says why; nothing was changed.
class invalid_command : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class kv_state : public state_machine {
 public:
  // Producer side: checks `command` against this state and applies it; returns the record to
  // append (the command, normalised). Throws invalid_command, changing nothing, if it cannot
  // be applied: the producer appends only what its own state accepted, so every replica can
  // apply every record.
  std::string execute(std::string_view command);

  // Replica side (state_machine): applies a record the producer appended.
  void apply(const record_view& record) override;
  // Length-prefixed, binary-safe, keys in order: the same state always saves the same bytes.
  void save(std::ostream& out) const override;
  void load(std::istream& in) override;

  std::optional<std::string> get(std::string_view key) const;
  std::size_t size() const noexcept { return data_.size(); }
  const std::map<std::string, std::string, std::less<>>& entries() const noexcept { return data_; }
  // CRC-32C of save()'s bytes: equal states have equal checksums.
  std::uint32_t checksum() const;
  // One "key value" line per key, sorted by key (the --dump format of shmlog replica).
  void dump(std::ostream& out) const;

 private:
  std::map<std::string, std::string, std::less<>> data_;
};

}  // namespace shmlog::kv
