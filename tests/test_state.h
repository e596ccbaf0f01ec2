// A state machine for tests: it keeps every record's payload, in order, so that a replica's
// state can be compared with the producer's exactly. save() writes a count then each payload
// as <length> <bytes>; load() throws on anything else.
#pragma once

#include <cstdint>
#include <istream>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "shmlog/state_machine.h"

namespace shmlog::test {

class list_state : public state_machine {
 public:
  std::vector<std::string> items;
  std::size_t loads = 0;

  void apply(const record_view& record) override { items.emplace_back(record.text()); }
  void save(std::ostream& out) const override {
    out << items.size() << '\n';
    for (const std::string& s : items) {
      out << s.size() << ' ';
      out.write(s.data(), static_cast<std::streamsize>(s.size()));
    }
  }
  void load(std::istream& in) override {
    std::size_t n = 0;
    if (!(in >> n)) throw std::runtime_error("list_state: no count");
    std::vector<std::string> loaded;
    for (std::size_t i = 0; i < n; ++i) {
      std::size_t len = 0;
      if (!(in >> len) || in.get() != ' ') throw std::runtime_error("list_state: bad length");
      std::string s(len, '\0');
      if (!in.read(s.data(), static_cast<std::streamsize>(len)))
        throw std::runtime_error("list_state: short item");
      loaded.push_back(std::move(s));
    }
    items = std::move(loaded);
    ++loads;
  }
};

// A producer's state that applies what it appends: append through this, not the writer.
template <class Writer>
std::uint64_t append_and_apply(Writer& w, list_state& state, const std::string& payload) {
  const std::uint64_t offset = w.append(payload);
  state.items.push_back(payload);
  return offset;
}

}  // namespace shmlog::test
