// Just enough JSON for the harness's output: an ordered object of scalars and nested raw
// values, written compactly (one case per line in the suite's file, easy to diff and grep).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmlog::bench {

std::string json_quote(std::string_view s);
std::string json_number(double v);  // "null" for NaN and infinities

class json_object {
 public:
  void set_string(const std::string& key, std::string_view value);
  void set_u64(const std::string& key, std::uint64_t value);
  void set_f64(const std::string& key, double value);
  void set_bool(const std::string& key, bool value);
  void set_raw(const std::string& key, std::string raw_json);

  bool has(std::string_view key) const { return find(key) != nullptr; }
  // The number stored under `key`, if it is one.
  std::optional<double> number(std::string_view key) const;
  // The string stored under `key`, or "" if none.
  std::string text(std::string_view key) const;
  // The JSON text stored under `key` (any value: an array, say), or "" if none.
  std::string raw(std::string_view key) const;

  std::string dump() const;

 private:
  struct field {
    std::string key;
    std::string raw;                // the JSON text of the value
    std::optional<double> numeric;  // set for numbers
    std::string plain;              // set for strings (unquoted)
  };
  void put(const std::string& key, field f);
  const field* find(std::string_view key) const;
  std::vector<field> fields_;
};

}  // namespace shmlog::bench
