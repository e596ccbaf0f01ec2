// The C API (shmlog/shmlog_c.h) over the C++ one. Each entry point catches everything: a C
// caller cannot unwind a C++ exception, so every failure becomes a status and a thread-local
// message (docs/design.md, "The C API").
#include "shmlog/shmlog_c.h"

#include <chrono>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "shmlog/error.h"
#include "shmlog/reader.h"
#include "shmlog/segment.h"
#include "shmlog/writer.h"

// The handles: a C++ object and what the C view needs beside it. Declared in the global
// namespace because shmlog_c.h names them there.
struct shmlog_writer {
  shmlog::writer log;
  // Declared after `log`, so destroyed before it: a claim points into the writer.
  std::optional<shmlog::claimed_record> claim;
};

struct shmlog_reader {
  shmlog::reader log;
};

namespace {

thread_local std::string last_error;

shmlog_status fail(shmlog_status status, const char* message) noexcept {
  try {
    last_error = message;
  } catch (...) {
    // Out of memory for the message itself: the status still says what happened.
    last_error.clear();
  }
  return status;
}

// The error statuses are the errc values in order, from -1 down: one subtraction maps them, and
// shmlog::to_string(errc) names them. These pin the correspondence (it is ABI: a status is a
// number a C program may have stored).
static_assert(SHMLOG_ERR_INVALID_NAME == -(static_cast<int>(shmlog::errc::invalid_name) + 1));
static_assert(SHMLOG_ERR_INVALID_ARGUMENT ==
              -(static_cast<int>(shmlog::errc::invalid_argument) + 1));
static_assert(SHMLOG_ERR_WRITER_EXISTS == -(static_cast<int>(shmlog::errc::writer_exists) + 1));
static_assert(SHMLOG_ERR_INTERRUPTED_UPDATE ==
              -(static_cast<int>(shmlog::errc::interrupted_update) + 1));
static_assert(SHMLOG_ERR_UNEXPECTED_OFFSET ==
              -(static_cast<int>(shmlog::errc::unexpected_offset) + 1));
static_assert(SHMLOG_ERR_SYSTEM == -(static_cast<int>(shmlog::errc::system_error) + 1));
static_assert(SHMLOG_ERR_OUT_OF_MEMORY == SHMLOG_ERR_SYSTEM - 1);

shmlog_status status_of(shmlog::errc code) noexcept {
  const int c = static_cast<int>(code);
  if (c < 0 || c > static_cast<int>(shmlog::errc::system_error)) return SHMLOG_ERR_INTERNAL;
  return static_cast<shmlog_status>(-(c + 1));
}

// Runs `body` (which returns a shmlog_status) and turns whatever it throws into a status and
// the thread's message. Every entry point that can fail goes through here.
template <typename F>
shmlog_status guarded(F&& body) noexcept {
  try {
    return std::forward<F>(body)();
  } catch (const shmlog::error& e) {
    return fail(status_of(e.code()), e.what());
  } catch (const std::bad_alloc&) {
    return fail(SHMLOG_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return fail(SHMLOG_ERR_INTERNAL, e.what());
  } catch (...) {
    return fail(SHMLOG_ERR_INTERNAL, "unknown exception inside shmlog");
  }
}

// The value of an enum that came from C, as an integer. C may store any int in a C enum; in
// C++, loading a value outside the enumerators' range from an enum object is undefined (UBSan's
// -fsanitize=enum says so), so the bytes are read as the underlying integer instead.
template <typename E>
long long enum_value(const E& e) noexcept {
  std::underlying_type_t<E> v;
  static_assert(sizeof v == sizeof e);
  std::memcpy(&v, &e, sizeof v);
  return static_cast<long long>(v);
}

shmlog_status null_argument(const char* function, const char* parameter) {
  return fail(SHMLOG_ERR_INVALID_ARGUMENT,
              (std::string(function) + ": " + parameter + " is NULL").c_str());
}

shmlog::fence_mode fence_of(const shmlog_fence& fence) {
  switch (enum_value(fence)) {
    case SHMLOG_FENCE_DEFAULT:
    case SHMLOG_FENCE_SEQ_CST:
      return shmlog::fence_mode::seq_cst;
    case SHMLOG_FENCE_MEMBARRIER:
      return shmlog::fence_mode::membarrier;
  }
  throw shmlog::error(shmlog::errc::invalid_argument, "shmlog_create_options.fence is " +
                                                          std::to_string(enum_value(fence)) +
                                                          ": not a shmlog_fence");
}

std::chrono::nanoseconds nanoseconds_of(std::uint64_t ns, const char* field) {
  if (ns > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    throw shmlog::error(shmlog::errc::invalid_argument,
                        std::string(field) + " is " + std::to_string(ns) + ": too large");
  return std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
}

shmlog::create_options create_options_of(const shmlog_create_options* c) {
  shmlog::create_options o;
  if (c == nullptr) return o;
  if (c->capacity != 0) o.capacity = c->capacity;
  if (c->reader_slots != 0) o.reader_slots = c->reader_slots;
  if (c->mode != 0) o.mode = static_cast<mode_t>(c->mode);
  o.writer_fence = fence_of(c->fence);
  o.max_gating_wait =
      nanoseconds_of(c->max_gating_wait_ns, "shmlog_create_options.max_gating_wait_ns");
  return o;
}

shmlog::writer_options writer_options_of(const shmlog_writer_options* c) {
  shmlog::writer_options o;
  if (c == nullptr) return o;
  if (c->state_replid != nullptr) {
    o.state_replid = shmlog::history_id::parse(c->state_replid);
    if (!o.state_replid)
      throw shmlog::error(shmlog::errc::invalid_argument,
                          std::string("shmlog_writer_options.state_replid '") + c->state_replid +
                              "' is not 40 hex characters");
    o.state_offset = c->state_offset;
  }
  if (c->max_gating_wait_ns != 0)
    o.max_gating_wait =
        nanoseconds_of(c->max_gating_wait_ns, "shmlog_writer_options.max_gating_wait_ns");
  return o;
}

shmlog::reader_options reader_options_of(const shmlog_reader_options* c) {
  shmlog::reader_options o;
  if (c == nullptr) return o;
  switch (enum_value(c->start)) {
    case SHMLOG_START_LATEST:
      o.start = shmlog::start_position::latest();
      break;
    case SHMLOG_START_OLDEST:
      o.start = shmlog::start_position::oldest();
      break;
    case SHMLOG_START_OFFSET:
      o.start = shmlog::start_position::at(c->start_offset);
      break;
    default:
      throw shmlog::error(shmlog::errc::invalid_argument, "shmlog_reader_options.start is " +
                                                              std::to_string(enum_value(c->start)) +
                                                              ": not a shmlog_start");
  }
  switch (enum_value(c->wait_mode)) {
    case SHMLOG_WAIT_ADAPTIVE:
      o.wait.mode = shmlog::wait_mode::adaptive;
      break;
    case SHMLOG_WAIT_SPIN:
      o.wait.mode = shmlog::wait_mode::spin;
      break;
    case SHMLOG_WAIT_YIELD:
      o.wait.mode = shmlog::wait_mode::yield;
      break;
    case SHMLOG_WAIT_SLEEP:
      o.wait.mode = shmlog::wait_mode::sleep;
      break;
    default:
      throw shmlog::error(shmlog::errc::invalid_argument,
                          "shmlog_reader_options.wait_mode is " +
                              std::to_string(enum_value(c->wait_mode)) +
                              ": not a shmlog_wait_mode");
  }
  if (c->label != nullptr) o.label = c->label;
  o.wait_for_creation = std::chrono::milliseconds(c->wait_for_creation_ms);
  o.gating = c->gating;
  return o;
}

shmlog_lap lap_of(const shmlog::lap_report& r) noexcept {
  return {.wanted_offset = r.wanted_offset,
          .oldest_offset = r.oldest_offset,
          .master_offset = r.master_offset,
          .resume_offset = r.resume_offset,
          .bytes_lost = r.bytes_lost()};
}

// The poll's outcome as a status, with its details in *out.
shmlog_status result_of(const shmlog::poll_result& p, shmlog_poll_result* out) noexcept {
  *out = shmlog_poll_result{};
  switch (p.status) {
    case shmlog::poll_status::record:
      out->record = {.offset = p.record.offset,
                     .next_offset = p.record.next_offset,
                     .data = p.record.payload.data(),
                     .size = p.record.payload.size(),
                     .type = p.record.type};
      return SHMLOG_RECORD;
    case shmlog::poll_status::empty:
      return SHMLOG_EMPTY;
    case shmlog::poll_status::lapped:
      out->lap = lap_of(p.lap);
      return SHMLOG_LAPPED;
    case shmlog::poll_status::corrupt:
      out->corrupt_offset = p.corruption.offset;
      out->corrupt_reason = p.corruption.reason;
      return SHMLOG_CORRUPT;
    case shmlog::poll_status::history_changed:
      return SHMLOG_HISTORY_CHANGED;
    case shmlog::poll_status::too_small:
      out->needed_size = p.needed_size;
      return SHMLOG_TOO_SMALL;
  }
  return fail(SHMLOG_ERR_INTERNAL, "poll returned an unknown status");
}

void copy_replid(const shmlog::history_id& id, char* out) noexcept {
  const std::string_view v = id.view();
  std::memcpy(out, v.data(), v.size());
  out[v.size()] = '\0';
}

}  // namespace

extern "C" {

const char* shmlog_status_name(shmlog_status status) {
  switch (enum_value(status)) {
    case SHMLOG_OK:
      return "ok";
    case SHMLOG_RECORD:
      return "record";
    case SHMLOG_EMPTY:
      return "empty";
    case SHMLOG_LAPPED:
      return "lapped";
    case SHMLOG_HISTORY_CHANGED:
      return "history_changed";
    case SHMLOG_CORRUPT:
      return "corrupt";
    case SHMLOG_TOO_SMALL:
      return "too_small";
    case SHMLOG_TIMEOUT:
      return "timeout";
    case SHMLOG_ERR_OUT_OF_MEMORY:
      return "out_of_memory";
    case SHMLOG_ERR_INTERNAL:
      return "internal";
  }
  const long long v = enum_value(status);
  if (v >= SHMLOG_ERR_SYSTEM && v <= SHMLOG_ERR_INVALID_NAME)
    return shmlog::to_string(static_cast<shmlog::errc>(-v - 1)).data();  // a literal: NUL-ended
  return "unknown";
}

const char* shmlog_last_error(void) {
  return last_error.c_str();
}

// ---- writer

shmlog_status shmlog_writer_create(const char* name, const shmlog_create_options* options,
                                   shmlog_writer** out) {
  return guarded([&] {
    if (out == nullptr) return null_argument("shmlog_writer_create", "out");
    *out = nullptr;
    if (name == nullptr) return null_argument("shmlog_writer_create", "name");
    *out = new shmlog_writer{shmlog::writer::create(name, create_options_of(options)), {}};
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_writer_open(const char* name, const shmlog_writer_options* options,
                                 shmlog_writer** out) {
  return guarded([&] {
    if (out == nullptr) return null_argument("shmlog_writer_open", "out");
    *out = nullptr;
    if (name == nullptr) return null_argument("shmlog_writer_open", "name");
    *out = new shmlog_writer{shmlog::writer::open(name, writer_options_of(options)), {}};
    return SHMLOG_OK;
  });
}

void shmlog_writer_close(shmlog_writer* writer) {
  // ~writer does not throw (it is implicitly noexcept): closing cannot fail.
  delete writer;
}

shmlog_status shmlog_writer_append_typed(shmlog_writer* writer, uint16_t type, const void* data,
                                         size_t size, uint64_t* offset) {
  return guarded([&] {
    if (writer == nullptr) return null_argument("shmlog_writer_append", "writer");
    if (data == nullptr && size != 0) return null_argument("shmlog_writer_append", "data");
    const std::uint64_t at = writer->log.append(
        std::span<const std::byte>(static_cast<const std::byte*>(data), size), type);
    if (offset != nullptr) *offset = at;
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_writer_append(shmlog_writer* writer, const void* data, size_t size,
                                   uint64_t* offset) {
  return shmlog_writer_append_typed(writer, shmlog::default_record_type, data, size, offset);
}

shmlog_status shmlog_writer_claim(shmlog_writer* writer, size_t max_size, void** payload) {
  return guarded([&] {
    if (writer == nullptr) return null_argument("shmlog_writer_claim", "writer");
    if (payload == nullptr) return null_argument("shmlog_writer_claim", "payload");
    *payload = nullptr;
    writer->claim.emplace(writer->log.claim(max_size));
    *payload = writer->claim->payload().data();
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_writer_commit(shmlog_writer* writer, size_t used, uint64_t* offset) {
  return guarded([&] {
    if (writer == nullptr) return null_argument("shmlog_writer_commit", "writer");
    if (!writer->claim || !writer->claim->pending())
      return fail(SHMLOG_ERR_INVALID_ARGUMENT, "shmlog_writer_commit: no claim is open");
    const std::uint64_t at = writer->claim->offset();
    writer->claim->commit(used);  // throws, the claim left open, if used is too large
    writer->claim.reset();
    if (offset != nullptr) *offset = at;
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_writer_abort(shmlog_writer* writer) {
  return guarded([&] {
    if (writer == nullptr) return null_argument("shmlog_writer_abort", "writer");
    if (!writer->claim || !writer->claim->pending())
      return fail(SHMLOG_ERR_INVALID_ARGUMENT, "shmlog_writer_abort: no claim is open");
    writer->claim.reset();  // ~claimed_record aborts it
    return SHMLOG_OK;
  });
}

uint64_t shmlog_writer_master_offset(const shmlog_writer* writer) {
  return writer == nullptr ? 0 : writer->log.master_offset();
}
uint64_t shmlog_writer_capacity(const shmlog_writer* writer) {
  return writer == nullptr ? 0 : writer->log.capacity();
}
uint64_t shmlog_writer_max_payload(const shmlog_writer* writer) {
  return writer == nullptr ? 0 : writer->log.max_payload();
}

shmlog_status shmlog_writer_replid(const shmlog_writer* writer, char replid[SHMLOG_REPLID_SIZE]) {
  return guarded([&] {
    if (writer == nullptr) return null_argument("shmlog_writer_replid", "writer");
    if (replid == nullptr) return null_argument("shmlog_writer_replid", "replid");
    copy_replid(writer->log.history().replid, replid);
    return SHMLOG_OK;
  });
}

// ---- reader

shmlog_status shmlog_reader_attach(const char* name, const shmlog_reader_options* options,
                                   shmlog_reader** out) {
  return guarded([&] {
    if (out == nullptr) return null_argument("shmlog_reader_attach", "out");
    *out = nullptr;
    if (name == nullptr) return null_argument("shmlog_reader_attach", "name");
    *out = new shmlog_reader{shmlog::reader::attach(name, reader_options_of(options))};
    return SHMLOG_OK;
  });
}

void shmlog_reader_close(shmlog_reader* reader) {
  delete reader;
}

shmlog_status shmlog_reader_poll_copy(shmlog_reader* reader, void* buffer, size_t capacity,
                                      shmlog_poll_result* result) {
  return guarded([&] {
    if (reader == nullptr) return null_argument("shmlog_reader_poll_copy", "reader");
    if (result == nullptr) return null_argument("shmlog_reader_poll_copy", "result");
    if (buffer == nullptr && capacity != 0)
      return null_argument("shmlog_reader_poll_copy", "buffer");
    return result_of(
        reader->log.poll_copy(std::span<std::byte>(static_cast<std::byte*>(buffer), capacity)),
        result);
  });
}

shmlog_status shmlog_reader_poll(shmlog_reader* reader, shmlog_poll_result* result) {
  return guarded([&] {
    if (reader == nullptr) return null_argument("shmlog_reader_poll", "reader");
    if (result == nullptr) return null_argument("shmlog_reader_poll", "result");
    return result_of(reader->log.poll(), result);
  });
}

bool shmlog_reader_still_valid(const shmlog_reader* reader, const shmlog_record* record) {
  if (reader == nullptr || record == nullptr) return false;
  const shmlog::record_view view{
      .offset = record->offset,
      .next_offset = record->next_offset,
      .type = record->type,
      .payload = {static_cast<const std::byte*>(record->data), record->size}};
  return reader->log.still_valid(view);
}

shmlog_status shmlog_reader_wait(shmlog_reader* reader, int64_t timeout_ns) {
  return guarded([&] {
    if (reader == nullptr) return null_argument("shmlog_reader_wait", "reader");
    const auto timeout =
        timeout_ns < 0 ? std::chrono::nanoseconds::max() : std::chrono::nanoseconds(timeout_ns);
    return reader->log.wait(timeout) ? SHMLOG_OK : SHMLOG_TIMEOUT;
  });
}

shmlog_status shmlog_reader_recover_from_lap(shmlog_reader* reader, shmlog_lap_policy policy,
                                             shmlog_lap* report) {
  return guarded([&] {
    if (reader == nullptr) return null_argument("shmlog_reader_recover_from_lap", "reader");
    shmlog::lap_policy p = shmlog::lap_policy::oldest_safe;
    switch (enum_value(policy)) {
      case SHMLOG_LAP_OLDEST_SAFE:
        p = shmlog::lap_policy::oldest_safe;
        break;
      case SHMLOG_LAP_OLDEST:
        p = shmlog::lap_policy::oldest;
        break;
      case SHMLOG_LAP_LATEST:
        p = shmlog::lap_policy::latest;
        break;
      default:
        return fail(SHMLOG_ERR_INVALID_ARGUMENT,
                    ("shmlog_reader_recover_from_lap: policy " +
                     std::to_string(enum_value(policy)) + " is not a shmlog_lap_policy")
                        .c_str());
    }
    const shmlog::lap_report r = reader->log.recover_from_lap(p);
    if (report != nullptr) *report = lap_of(r);
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_reader_skip_corruption(shmlog_reader* reader, uint64_t* skipped) {
  return guarded([&] {
    if (reader == nullptr) return null_argument("shmlog_reader_skip_corruption", "reader");
    const std::uint64_t n = reader->log.skip_corruption();
    if (skipped != nullptr) *skipped = n;
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_reader_resync(shmlog_reader* reader, bool* partial) {
  return guarded([&] {
    if (reader == nullptr) return null_argument("shmlog_reader_resync", "reader");
    if (partial == nullptr) return null_argument("shmlog_reader_resync", "partial");
    const shmlog::history_id mine = reader->log.replid();
    *partial = reader->log.resync(mine, reader->log.offset()).is_partial();
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_reader_seek(shmlog_reader* reader, uint64_t offset) {
  return guarded([&] {
    if (reader == nullptr) return null_argument("shmlog_reader_seek", "reader");
    reader->log.seek(offset);
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_reader_seek_oldest(shmlog_reader* reader) {
  return guarded([&] {
    if (reader == nullptr) return null_argument("shmlog_reader_seek_oldest", "reader");
    reader->log.seek_oldest();
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_reader_seek_latest(shmlog_reader* reader) {
  return guarded([&] {
    if (reader == nullptr) return null_argument("shmlog_reader_seek_latest", "reader");
    reader->log.seek_latest();
    return SHMLOG_OK;
  });
}

uint64_t shmlog_reader_offset(const shmlog_reader* reader) {
  return reader == nullptr ? 0 : reader->log.offset();
}
uint64_t shmlog_reader_master_offset(const shmlog_reader* reader) {
  return reader == nullptr ? 0 : reader->log.master_offset();
}
uint64_t shmlog_reader_lapped_count(const shmlog_reader* reader) {
  return reader == nullptr ? 0 : reader->log.lapped_count();
}
uint64_t shmlog_reader_capacity(const shmlog_reader* reader) {
  return reader == nullptr ? 0 : reader->log.capacity();
}
uint64_t shmlog_reader_max_payload(const shmlog_reader* reader) {
  return reader == nullptr ? 0 : reader->log.max_payload();
}

shmlog_status shmlog_reader_replid(const shmlog_reader* reader, char replid[SHMLOG_REPLID_SIZE]) {
  return guarded([&] {
    if (reader == nullptr) return null_argument("shmlog_reader_replid", "reader");
    if (replid == nullptr) return null_argument("shmlog_reader_replid", "replid");
    copy_replid(reader->log.replid(), replid);
    return SHMLOG_OK;
  });
}

// ---- logs by name

shmlog_status shmlog_destroy(const char* name) {
  return guarded([&] {
    if (name == nullptr) return null_argument("shmlog_destroy", "name");
    if (!shmlog::destroy(name))
      return fail(SHMLOG_ERR_NOT_FOUND,
                  ("no shared-memory object named '" + std::string(name) + "'").c_str());
    return SHMLOG_OK;
  });
}

bool shmlog_exists(const char* name) {
  if (name == nullptr) return false;
  try {
    return shmlog::exists(name);
  } catch (...) {
    return false;  // an invalid name names no log
  }
}

}  // extern "C"
