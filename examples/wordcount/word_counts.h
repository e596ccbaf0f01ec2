// A state of the user's own for the word-count example: how often each word was appended.
// Records are words; save() writes "word count" lines; load() reads them back.
#pragma once

#include <shmlog/shmlog.h>

#include <cstdint>
#include <istream>
#include <map>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>

class word_counts : public shmlog::state_machine {
 public:
  void apply(const shmlog::record_view& r) override { ++counts_[std::string(r.text())]; }
  void save(std::ostream& out) const override {
    for (const auto& [word, n] : counts_)
      out << word << ' ' << n << '\n';
  }
  void load(std::istream& in) override {
    std::map<std::string, std::uint64_t, std::less<>> loaded;
    std::string word;
    std::uint64_t n = 0;
    while (in >> word >> n)
      loaded[word] = n;
    if (!in.eof()) throw std::runtime_error("not a word-count state");
    counts_ = std::move(loaded);  // replaced only once all of it was read
  }
  std::uint64_t count(std::string_view word) const {
    const auto it = counts_.find(word);
    return it == counts_.end() ? 0 : it->second;
  }

 private:
  std::map<std::string, std::uint64_t, std::less<>> counts_;
};
