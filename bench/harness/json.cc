#include "json.h"

#include <cmath>
#include <cstdio>

namespace shmlog::bench {

std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  // 12 significant digits: rates like 25303456.7 stay readable and exact enough.
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.12g", v);
  return buf;
}

void json_object::put(const std::string& key, field f) {
  f.key = key;
  for (field& existing : fields_) {
    if (existing.key == key) {
      existing = std::move(f);
      return;
    }
  }
  fields_.push_back(std::move(f));
}

void json_object::set_string(const std::string& key, std::string_view value) {
  put(key, {.raw = json_quote(value), .plain = std::string(value)});
}
void json_object::set_u64(const std::string& key, std::uint64_t value) {
  put(key, {.raw = std::to_string(value), .numeric = double(value)});
}
void json_object::set_f64(const std::string& key, double value) {
  put(key, {.raw = json_number(value), .numeric = value});
}
void json_object::set_bool(const std::string& key, bool value) {
  put(key, {.raw = value ? "true" : "false"});
}
void json_object::set_raw(const std::string& key, std::string raw_json) {
  put(key, {.raw = std::move(raw_json)});
}

const json_object::field* json_object::find(std::string_view key) const {
  for (const field& f : fields_)
    if (f.key == key) return &f;
  return nullptr;
}

std::optional<double> json_object::number(std::string_view key) const {
  const field* f = find(key);
  return f ? f->numeric : std::nullopt;
}

std::string json_object::text(std::string_view key) const {
  const field* f = find(key);
  return f ? f->plain : std::string();
}

std::string json_object::raw(std::string_view key) const {
  const field* f = find(key);
  return f ? f->raw : std::string();
}

std::string json_object::dump() const {
  std::string out = "{";
  for (std::size_t i = 0; i < fields_.size(); ++i) {
    if (i) out += ", ";
    out += json_quote(fields_[i].key) + ": " + fields_[i].raw;
  }
  return out + "}";
}

}  // namespace shmlog::bench
