#include "kv_state.h"

#include <charconv>
#include <limits>
#include <sstream>

#include "shmlog/crc32c.h"

namespace shmlog::kv {
namespace {

constexpr std::size_t max_key = 512;

struct command {
  std::string_view verb;
  std::string_view key;
  std::string_view value;  // SET only
};

std::string_view trim_end(std::string_view s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

void check_key(std::string_view key) {
  if (key.empty()) throw invalid_command("missing key");
  if (key.size() > max_key)
    throw invalid_command("key of " + std::to_string(key.size()) + " bytes; at most " +
                          std::to_string(max_key));
  for (unsigned char c : key)
    if (c <= ' ' || c == 0x7F)
      throw invalid_command("keys may not contain spaces or control bytes");
}

// "VERB key [value]": one space between the parts; SET's value is the rest of the line.
command parse(std::string_view text) {
  text = trim_end(text);
  command c;
  const auto first = text.find(' ');
  c.verb = text.substr(0, first);
  if (c.verb.empty()) throw invalid_command("empty command");
  if (first == std::string_view::npos) {
    if (c.verb == "SET" || c.verb == "DEL" || c.verb == "INCR")
      throw invalid_command("missing key");
    throw invalid_command("unknown command '" + std::string(c.verb) + "' (SET, DEL, INCR)");
  }
  std::string_view rest = text.substr(first + 1);
  const auto second = rest.find(' ');
  c.key = rest.substr(0, second);
  check_key(c.key);
  if (c.verb == "SET") {
    if (second == std::string_view::npos) throw invalid_command("SET needs a value");
    c.value = rest.substr(second + 1);
  } else if (c.verb == "DEL" || c.verb == "INCR") {
    if (second != std::string_view::npos)
      throw invalid_command(std::string(c.verb) + " takes a key only");
  } else {
    throw invalid_command("unknown command '" + std::string(c.verb) + "' (SET, DEL, INCR)");
  }
  return c;
}

std::int64_t parse_integer(std::string_view s) {
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty())
    throw invalid_command("value is not an integer or out of range");
  return v;
}

}  // namespace

std::string kv_state::execute(std::string_view text) {
  const command c = parse(text);
  if (c.verb == "SET") {
    data_.insert_or_assign(std::string(c.key), std::string(c.value));
  } else if (c.verb == "DEL") {
    if (const auto it = data_.find(c.key); it != data_.end()) data_.erase(it);
  } else {  // INCR
    const auto it = data_.find(c.key);
    const std::int64_t v = it == data_.end() ? 0 : parse_integer(it->second);
    if (v == std::numeric_limits<std::int64_t>::max())
      throw invalid_command("increment would overflow");
    const std::string next = std::to_string(v + 1);
    if (it == data_.end()) {
      data_.emplace(std::string(c.key), next);
    } else {
      it->second = next;
    }
  }
  std::string record(c.verb);
  record += ' ';
  record += c.key;
  if (c.verb == "SET") {
    record += ' ';
    record += c.value;
  }
  return record;
}

void kv_state::apply(const record_view& record) {
  execute(record.text());
}

void kv_state::save(std::ostream& out) const {
  out << data_.size() << '\n';
  for (const auto& [k, v] : data_) {
    out << k.size() << ' ' << v.size() << ' ';
    out.write(k.data(), static_cast<std::streamsize>(k.size()));
    out.write(v.data(), static_cast<std::streamsize>(v.size()));
  }
}

void kv_state::load(std::istream& in) {
  std::size_t n = 0;
  if (!(in >> n) || in.get() != '\n') throw std::runtime_error("kv_state: bad entry count");
  std::map<std::string, std::string, std::less<>> loaded;
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t klen = 0, vlen = 0;
    if (!(in >> klen >> vlen) || in.get() != ' ') throw std::runtime_error("kv_state: bad entry");
    std::string k(klen, '\0'), v(vlen, '\0');
    if (!in.read(k.data(), static_cast<std::streamsize>(klen)) ||
        !in.read(v.data(), static_cast<std::streamsize>(vlen)))
      throw std::runtime_error("kv_state: entry cut short");
    loaded.emplace(std::move(k), std::move(v));
  }
  data_ = std::move(loaded);
}

std::optional<std::string> kv_state::get(std::string_view key) const {
  const auto it = data_.find(key);
  if (it == data_.end()) return std::nullopt;
  return it->second;
}

std::uint32_t kv_state::checksum() const {
  std::ostringstream out;
  save(out);
  const std::string bytes = out.str();
  return crc32c(bytes.data(), bytes.size());
}

void kv_state::dump(std::ostream& out) const {
  for (const auto& [k, v] : data_)
    out << k << ' ' << v << '\n';
}

}  // namespace shmlog::kv
