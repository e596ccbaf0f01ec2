// The Python module `shmlog`: Writer and Reader over the C++ API (docs/bindings.md).
//
// Read outcomes other than a record or "nothing yet" are exceptions here (Lapped,
// HistoryChanged, Corrupt, TooSmall), and errors are shmlog.Error with the C++ errc's name as
// .code: a loop over records cannot miss a lap by forgetting to look at a status
// (docs/design.md, "The Python module").
#include <pybind11/eval.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "shmlog/error.h"
#include "shmlog/reader.h"
#include "shmlog/segment.h"
#include "shmlog/version.h"
#include "shmlog/writer.h"

namespace py = pybind11;

namespace {

// The exception classes and Record, defined in Python at import (below) and kept for the
// process's life: a reference is leaked on purpose, so that nothing is released after the
// interpreter has finalized.
struct module_types {
  PyObject* error = nullptr;
  PyObject* lapped = nullptr;
  PyObject* history_changed = nullptr;
  PyObject* corrupt = nullptr;
  PyObject* too_small = nullptr;
  PyObject* record = nullptr;
};
module_types types;

[[noreturn]] void raise(PyObject* type, const py::object& instance) {
  PyErr_SetObject(type, instance.ptr());
  throw py::error_already_set();
}

[[noreturn]] void raise_outcome(const shmlog::reader& r, const shmlog::poll_result& p) {
  const std::string where = "log '" + r.name() + "' at offset " + std::to_string(r.offset());
  switch (p.status) {
    case shmlog::poll_status::lapped:
      raise(types.lapped,
            py::handle(types.lapped)("reader lapped: " + where + "; the oldest record held is at " +
                                         std::to_string(p.lap.oldest_offset) + " (" +
                                         std::to_string(p.lap.bytes_lost()) + " bytes lost)",
                                     p.lap.wanted_offset, p.lap.oldest_offset, p.lap.master_offset,
                                     p.lap.resume_offset, p.lap.bytes_lost()));
    case shmlog::poll_status::history_changed:
      raise(types.history_changed, py::handle(types.history_changed)(
                                       "the log's history changed: " + where + "; call resync()"));
    case shmlog::poll_status::corrupt:
      raise(types.corrupt, py::handle(types.corrupt)(
                               "corrupt record in log '" + r.name() + "' at offset " +
                                   std::to_string(p.corruption.offset) + ": " + p.corruption.reason,
                               p.corruption.offset, std::string(p.corruption.reason)));
    case shmlog::poll_status::too_small:
      raise(types.too_small,
            py::handle(types.too_small)("the next record of log '" + r.name() + "' needs " +
                                            std::to_string(p.needed_size) + " bytes",
                                        p.needed_size));
    case shmlog::poll_status::record:
    case shmlog::poll_status::empty:
      break;
  }
  throw std::logic_error("raise_outcome called for a record or empty");
}

std::chrono::nanoseconds seconds_to_ns(double seconds) {
  if (!(seconds >= 0)) throw py::value_error("a timeout must be a number of seconds >= 0");
  if (seconds >= 1e9) return std::chrono::nanoseconds::max();
  return std::chrono::nanoseconds(static_cast<std::int64_t>(seconds * 1e9));
}

// The payload as bytes-like: anything with a C-contiguous buffer (bytes, bytearray,
// memoryview, array, numpy) without a copy.
class input_buffer {
 public:
  explicit input_buffer(const py::handle& object) {
    if (PyObject_GetBuffer(object.ptr(), &view_, PyBUF_C_CONTIGUOUS) != 0)
      throw py::error_already_set();
  }
  input_buffer(const input_buffer&) = delete;
  input_buffer& operator=(const input_buffer&) = delete;
  ~input_buffer() { PyBuffer_Release(&view_); }
  std::span<const std::byte> bytes() const {
    return {static_cast<const std::byte*>(view_.buf), static_cast<std::size_t>(view_.len)};
  }

 private:
  Py_buffer view_{};
};

class output_buffer {
 public:
  explicit output_buffer(const py::handle& object) {
    if (PyObject_GetBuffer(object.ptr(), &view_, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) != 0) {
      PyErr_Clear();
      throw py::type_error(std::string("a writable C-contiguous bytes-like object is required "
                                       "(bytearray, memoryview, ...), not '") +
                           Py_TYPE(object.ptr())->tp_name + "'");
    }
  }
  output_buffer(const output_buffer&) = delete;
  output_buffer& operator=(const output_buffer&) = delete;
  ~output_buffer() { PyBuffer_Release(&view_); }
  std::span<std::byte> bytes() const {
    return {static_cast<std::byte*>(view_.buf), static_cast<std::size_t>(view_.len)};
  }

 private:
  Py_buffer view_{};
};

// ---- Writer

struct py_claim;

class py_writer {
 public:
  explicit py_writer(shmlog::writer w) : log_(std::move(w)) {}

  // Any Python thread; the GIL serialises them, and no writer method releases it.
  shmlog::writer& get() {
    if (!log_) throw py::value_error("operation on a closed shmlog.Writer");
    return *log_;
  }

  std::uint64_t append(const py::handle& data, shmlog::record_type type) {
    shmlog::writer& w = get();
    const input_buffer in(data);
    return w.append(in.bytes(), type);
  }

  bool claim_pending(std::uint64_t generation) const {
    return claim_ && claim_->pending() && generation == generation_;
  }
  void check_claim(std::uint64_t generation) const {
    if (!claim_pending(generation))
      throw py::value_error("this claim was already committed or aborted");
  }
  std::span<std::byte> claimed(std::uint64_t generation) {
    check_claim(generation);
    return claim_->payload();
  }
  std::uint64_t claim_offset(std::uint64_t generation) {
    check_claim(generation);
    return claim_->offset();
  }

  // Returns the new claim's generation; `holder` is the Claim object that will hold it.
  std::uint64_t open_claim(std::size_t max_size, shmlog::record_type type, py_claim* holder) {
    shmlog::writer& w = get();
    claim_.emplace(w.claim(max_size, type));
    holder_ = holder;
    return ++generation_;
  }
  std::uint64_t commit(std::uint64_t generation, std::optional<std::size_t> used) {
    check_claim(generation);
    const std::uint64_t at = claim_->offset();
    claim_->commit(used.value_or(claim_->payload().size()));  // throws, the claim left open
    end_claim();
    return at;
  }
  void abort(std::uint64_t generation) {
    check_claim(generation);
    end_claim();
  }
  // The Claim object is going away: it no longer holds the claim.
  void forget_holder(const py_claim* holder) noexcept {
    if (holder_ == holder) holder_ = nullptr;
  }

  void close();

 private:
  void end_claim() noexcept {
    claim_.reset();
    holder_ = nullptr;
  }

  // Declared in this order so that the claim goes before the writer it points into.
  std::optional<shmlog::writer> log_;
  std::optional<shmlog::claimed_record> claim_;
  py_claim* holder_ = nullptr;  // the Claim object of the open claim, while it lives
  std::uint64_t generation_ = 0;
};

// A claim as Python holds it: the writer (kept alive by this reference, and so by any buffer
// exported from the claim) and which claim of it this is. It exports the claimed bytes through
// the buffer protocol and counts the exports, so that the claim ends (commit, abort, close)
// only when no memoryview can write into the ring any more: what a memoryview of it does after
// the commit would change a published record.
struct py_claim {
  py::object writer_object;
  py_writer* writer = nullptr;
  std::uint64_t generation = 0;
  // .payload, made on first use, by a weak reference: a strong one would make a cycle (the view
  // holds the claim that exported its buffer) that keeps an abandoned claim open for ever.
  py::object view_ref = py::none();
  Py_ssize_t exports = 0;

  py_claim(py::object w, py_writer* pw, std::uint64_t g)
      : writer_object(std::move(w)), writer(pw), generation(g) {}
  py_claim(const py_claim&) = delete;
  py_claim& operator=(const py_claim&) = delete;
  // Like ~claimed_record: a claim dropped uncommitted is aborted. No buffer of it can be alive
  // (each holds a reference to this object).
  ~py_claim() {
    if (writer->claim_pending(generation)) writer->abort(generation);
    writer->forget_holder(this);
  }

  py::object payload_view(const py::handle& self) {
    if (!view_ref.is_none()) {
      py::object alive = view_ref();
      if (!alive.is_none()) return alive;
    }
    auto made = py::reinterpret_steal<py::object>(PyMemoryView_FromObject(self.ptr()));
    if (!made) throw py::error_already_set();
    view_ref = py::weakref(made);
    return made;
  }

  // Releases .payload, then refuses (BufferError, the claim still open) if a buffer of the
  // claim is still held elsewhere.
  void release_buffers() {
    if (!view_ref.is_none()) {
      py::object alive = view_ref();
      // BufferError if something holds a buffer exported by the view itself.
      if (!alive.is_none()) alive.attr("release")();
      view_ref = py::none();
    }
    if (exports > 0) {
      PyErr_SetString(PyExc_BufferError,
                      "a memoryview of the claim is still alive: release it (or use `with "
                      "memoryview(claim) as m:`) before commit(), abort() or close()");
      throw py::error_already_set();
    }
  }
};

void py_writer::close() {
  if (!log_) return;
  if (claim_ && holder_ != nullptr) holder_->release_buffers();
  end_claim();
  log_.reset();
}

// The claim's buffer slots (installed on the Claim type at import).
int claim_getbuffer(PyObject* self, Py_buffer* view, int flags) {
  try {
    py_claim& c = py::handle(self).cast<py_claim&>();
    const std::span<std::byte> s = c.writer->claimed(c.generation);
    if (PyBuffer_FillInfo(view, self, s.data(), static_cast<Py_ssize_t>(s.size()), 0, flags) != 0)
      return -1;
    ++c.exports;
    return 0;
  } catch (const py::value_error& e) {
    PyErr_SetString(PyExc_BufferError, e.what());
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_BufferError, e.what());
  }
  view->obj = nullptr;
  return -1;
}

void claim_releasebuffer(PyObject* self, Py_buffer*) {
  --py::handle(self).cast<py_claim&>().exports;
}

// ---- Reader

class py_reader {
 public:
  py_reader(shmlog::reader r, const shmlog::wait_policy& policy)
      : log_(std::move(r)), policy_(policy) {}

  // With the GIL held. A reader is for one thread at a time; wait() lets other threads run
  // meanwhile, so every other method refuses while it is inside.
  shmlog::reader& get() {
    if (in_wait_)
      throw std::runtime_error(
          "shmlog.Reader is in wait() in another thread; a reader serves "
          "one thread at a time");
    if (!log_) throw py::value_error("operation on a closed shmlog.Reader");
    return *log_;
  }

  py::object poll() {
    shmlog::reader& r = get();
    const shmlog::poll_result p = r.poll_copy(buffer_);
    if (p.status == shmlog::poll_status::record)
      return py::bytes(reinterpret_cast<const char*>(p.record.payload.data()),
                       p.record.payload.size());
    if (p.status == shmlog::poll_status::empty) return py::none();
    raise_outcome(r, p);
  }

  py::object poll_record() {
    shmlog::reader& r = get();
    const shmlog::poll_result p = r.poll_copy(buffer_);
    if (p.status == shmlog::poll_status::record)
      return py::handle(types.record)(
          p.record.offset, p.record.next_offset, p.record.type,
          py::bytes(reinterpret_cast<const char*>(p.record.payload.data()),
                    p.record.payload.size()));
    if (p.status == shmlog::poll_status::empty) return py::none();
    raise_outcome(r, p);
  }

  py::object poll_into(const py::handle& buffer) {
    shmlog::reader& r = get();
    const output_buffer out(buffer);
    const shmlog::poll_result p = r.poll_copy(out.bytes());
    if (p.status == shmlog::poll_status::record) return py::int_(p.record.payload.size());
    if (p.status == shmlog::poll_status::empty) return py::none();
    raise_outcome(r, p);
  }

  // Waits in slices with the GIL released, taking it back between slices to let Python
  // handle signals (Ctrl-C): the C++ wait does not return for a signal. After the first slice
  // the reader sleeps on the futex only: the spin and yield phases of its policy are for the
  // first moments of a wait, not for every slice.
  bool wait(std::optional<double> timeout) {
    shmlog::reader& r = get();
    constexpr std::chrono::nanoseconds slice = std::chrono::milliseconds(100);
    const auto start = std::chrono::steady_clock::now();
    const std::chrono::nanoseconds total =
        timeout ? seconds_to_ns(*timeout) : std::chrono::nanoseconds::max();
    in_wait_ = true;
    struct restore {
      py_reader& self;
      ~restore() {
        self.in_wait_ = false;
        if (self.log_) self.log_->set_wait_policy(self.policy_);
      }
    } guard{*this};
    for (bool first = true;; first = false) {
      const std::chrono::nanoseconds elapsed = std::chrono::steady_clock::now() - start;
      const std::chrono::nanoseconds left =
          total == std::chrono::nanoseconds::max() ? total : std::max(total - elapsed, {});
      bool published = false;
      {
        py::gil_scoped_release release;
        published = r.wait(std::min(left, slice));
      }
      if (published) return true;
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
      if (left <= slice) return false;
      if (first) {
        shmlog::wait_policy sleeping = policy_;
        sleeping.mode = shmlog::wait_mode::sleep;
        r.set_wait_policy(sleeping);
      }
    }
  }

  py::dict recover_from_lap(const std::string& policy) {
    shmlog::lap_policy p;
    if (policy == "oldest_safe")
      p = shmlog::lap_policy::oldest_safe;
    else if (policy == "oldest")
      p = shmlog::lap_policy::oldest;
    else if (policy == "latest")
      p = shmlog::lap_policy::latest;
    else
      throw py::value_error("lap policy '" + policy +
                            "': expected 'oldest_safe', 'oldest' or 'latest'");
    const shmlog::lap_report rep = get().recover_from_lap(p);
    py::dict d;
    d["wanted_offset"] = rep.wanted_offset;
    d["oldest_offset"] = rep.oldest_offset;
    d["master_offset"] = rep.master_offset;
    d["resume_offset"] = rep.resume_offset;
    d["bytes_lost"] = rep.bytes_lost();
    return d;
  }

  bool resync() {
    shmlog::reader& r = get();
    const shmlog::history_id mine = r.replid();
    return r.resync(mine, r.offset()).is_partial();
  }

  void close() {
    if (in_wait_) get();  // refuses: another thread is inside wait()
    log_.reset();
  }

  // With the GIL held: whether a thread is inside wait() (or follow()).
  bool in_wait() const noexcept { return in_wait_; }

 private:
  std::optional<shmlog::reader> log_;
  shmlog::wait_policy policy_;
  bool in_wait_ = false;
  std::vector<std::byte> buffer_;
};

// Iterates over records as they arrive, waiting between them; stops once none has arrived for
// `idle` seconds (never, if None).
struct py_follow {
  py::object reader_object;
  py_reader* reader = nullptr;
  std::optional<double> idle;

  py::object next() {
    for (;;) {
      py::object record = reader->poll();
      if (!record.is_none()) return record;
      if (!reader->wait(idle)) throw py::stop_iteration();
    }
  }
};

constexpr const char* python_types = R"(
import collections

class Error(Exception):
    """A shmlog error; .code is the C++ shmlog::errc's name ('not_found', ...)."""
    def __init__(self, message, code="internal"):
        super().__init__(message)
        self.code = code

class Lapped(Error):
    """The writer overwrote records this reader had not read; it did not move.
    recover_from_lap() moves it on."""
    def __init__(self, message, wanted_offset, oldest_offset, master_offset, resume_offset,
                 bytes_lost):
        super().__init__(message, "lapped")
        self.wanted_offset = wanted_offset
        self.oldest_offset = oldest_offset
        self.master_offset = master_offset
        self.resume_offset = resume_offset
        self.bytes_lost = bytes_lost

class HistoryChanged(Error):
    """A new writer changed the log's history; the reader did not move. resync() decides."""
    def __init__(self, message):
        super().__init__(message, "history_changed")

class Corrupt(Error):
    """A record header is wrong though not overwritten; skip_corruption() moves past it."""
    def __init__(self, message, offset, reason):
        super().__init__(message, "corrupt")
        self.offset = offset
        self.reason = reason

class TooSmall(Error):
    """poll_into(): the next record needs needed_size bytes; it was not consumed."""
    def __init__(self, message, needed_size):
        super().__init__(message, "too_small")
        self.needed_size = needed_size

Record = collections.namedtuple("Record", "offset next_offset type data")
Record.__doc__ = "A record with where it lies: offset, next_offset, type and data (bytes)."
)";

}  // namespace

PYBIND11_MODULE(shmlog, m) {
  m.doc() = "shmlog: a shared-memory replication log (docs/bindings.md)";
  m.attr("__version__") = SHMLOG_VERSION;
  m.attr("DEFAULT_RECORD_TYPE") = shmlog::default_record_type;

  py::exec(python_types, m.attr("__dict__"));
  types.error = py::object(m.attr("Error")).release().ptr();
  types.lapped = py::object(m.attr("Lapped")).release().ptr();
  types.history_changed = py::object(m.attr("HistoryChanged")).release().ptr();
  types.corrupt = py::object(m.attr("Corrupt")).release().ptr();
  types.too_small = py::object(m.attr("TooSmall")).release().ptr();
  types.record = py::object(m.attr("Record")).release().ptr();

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const shmlog::error& e) {
      const py::object instance =
          py::handle(types.error)(e.what(), std::string(shmlog::to_string(e.code())));
      PyErr_SetObject(types.error, instance.ptr());
    }
  });

  py::class_<py_claim> claim_class(m, "Claim", py::buffer_protocol(),
                                   "Room for one record in the ring, from Writer.claim(). Fill "
                                   ".payload (or memoryview(claim)), then commit(used); leaving "
                                   "a `with` block without commit aborts it.");
  // Our own buffer slots in place of pybind11's, which cannot count exports.
  auto* claim_type = reinterpret_cast<PyHeapTypeObject*>(claim_class.ptr());
  claim_type->as_buffer.bf_getbuffer = claim_getbuffer;
  claim_type->as_buffer.bf_releasebuffer = claim_releasebuffer;
  PyType_Modified(&claim_type->ht_type);
  claim_class
      .def_property_readonly(
          "payload",
          [](py::object self) {
            py_claim& c = self.cast<py_claim&>();
            c.writer->check_claim(c.generation);
            return c.payload_view(self);
          },
          "A writable memoryview of the claimed bytes; released by commit() and abort().")
      .def_property_readonly("offset",
                             [](py_claim& c) { return c.writer->claim_offset(c.generation); })
      .def_property_readonly("pending",
                             [](py_claim& c) { return c.writer->claim_pending(c.generation); })
      .def(
          "commit",
          [](py_claim& c, std::optional<std::size_t> used) {
            c.writer->check_claim(c.generation);
            c.release_buffers();
            return c.writer->commit(c.generation, used);
          },
          py::arg("used") = py::none(),
          "Publishes the first `used` bytes (default: all) as a record; returns its offset.")
      .def("abort",
           [](py_claim& c) {
             c.writer->check_claim(c.generation);
             c.release_buffers();
             c.writer->abort(c.generation);
           })
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](py_claim& c, const py::args&) {
        if (c.writer->claim_pending(c.generation)) {
          c.release_buffers();
          c.writer->abort(c.generation);
        }
        return false;
      });

  py::class_<py_writer>(m, "Writer",
                        "The one writer of a log: Writer.create() or Writer.open(). One thread "
                        "at a time; close() or a `with` block closes the log cleanly.")
      .def_static(
          "create",
          [](const std::string& name, std::uint64_t capacity, std::uint32_t reader_slots,
             std::uint32_t mode, const std::string& fence) {
            shmlog::create_options o;
            o.capacity = capacity;
            o.reader_slots = reader_slots;
            o.mode = static_cast<mode_t>(mode);
            if (fence == "seq_cst")
              o.writer_fence = shmlog::fence_mode::seq_cst;
            else if (fence == "membarrier")
              o.writer_fence = shmlog::fence_mode::membarrier;
            else
              throw py::value_error("fence '" + fence + "': expected 'seq_cst' or 'membarrier'");
            return std::make_unique<py_writer>(shmlog::writer::create(name, o));
          },
          py::arg("name"), py::kw_only(), py::arg("capacity") = shmlog::create_options{}.capacity,
          py::arg("reader_slots") = shmlog::create_options{}.reader_slots,
          py::arg("mode") = static_cast<std::uint32_t>(shmlog::create_options{}.mode),
          py::arg("fence") = "seq_cst", "Creates the log and opens it as its writer.")
      .def_static(
          "open",
          [](const std::string& name, std::optional<std::string> state_replid,
             std::uint64_t state_offset) {
            shmlog::writer_options o;
            if (state_replid) {
              o.state_replid = shmlog::history_id::parse(*state_replid);
              if (!o.state_replid)
                throw py::value_error("state_replid '" + *state_replid +
                                      "' is not 40 hex characters");
              o.state_offset = state_offset;
            }
            return std::make_unique<py_writer>(shmlog::writer::open(name, o));
          },
          py::arg("name"), py::kw_only(), py::arg("state_replid") = py::none(),
          py::arg("state_offset") = 0,
          "Opens an existing log as its writer. With state_replid, the history and offset the "
          "producer's state reflects (docs/design.md, 'History across restarts').")
      .def("append", &py_writer::append, py::arg("data"),
           py::arg("type") = shmlog::default_record_type,
           "Appends a bytes-like object as one record; returns its offset.")
      .def(
          "claim",
          [](py::object self, std::size_t max_size, shmlog::record_type type) {
            py_writer& w = self.cast<py_writer&>();
            auto claim = std::make_unique<py_claim>(self, &w, 0);
            claim->generation = w.open_claim(max_size, type, claim.get());
            return claim;
          },
          py::arg("max_size"), py::arg("type") = shmlog::default_record_type,
          "Reserves room for a record of up to max_size bytes in the ring: a Claim.")
      .def("close", &py_writer::close)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__",
           [](py_writer& w, const py::args&) {
             w.close();
             return false;
           })
      .def_property_readonly("closed",
                             [](py_writer& w) {
                               try {
                                 w.get();
                                 return false;
                               } catch (const py::value_error&) {
                                 return true;
                               }
                             })
      .def_property_readonly("name", [](py_writer& w) { return w.get().name(); })
      .def_property_readonly("master_offset", [](py_writer& w) { return w.get().master_offset(); })
      .def_property_readonly("capacity", [](py_writer& w) { return w.get().capacity(); })
      .def_property_readonly("max_payload", [](py_writer& w) { return w.get().max_payload(); })
      .def_property_readonly("replid", [](py_writer& w) { return w.get().history().replid.str(); });

  py::class_<py_follow>(m, "Follow", "Iterator from Reader.follow().")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", &py_follow::next);

  py::class_<py_reader>(m, "Reader",
                        "A reader of a log with its own offset: Reader.attach(). One thread at a "
                        "time; close() or a `with` block gives its slot back.")
      .def_static(
          "attach",
          [](const std::string& name, const py::object& start, const std::string& label,
             double wait_for_creation, bool gating, const std::string& wait_mode) {
            shmlog::reader_options o;
            if (py::isinstance<py::str>(start)) {
              const auto s = start.cast<std::string>();
              if (s == "latest")
                o.start = shmlog::start_position::latest();
              else if (s == "oldest")
                o.start = shmlog::start_position::oldest();
              else
                throw py::value_error("start '" + s +
                                      "': expected 'oldest', 'latest' or an offset");
            } else {
              o.start = shmlog::start_position::at(start.cast<std::uint64_t>());
            }
            if (wait_mode == "adaptive")
              o.wait.mode = shmlog::wait_mode::adaptive;
            else if (wait_mode == "spin")
              o.wait.mode = shmlog::wait_mode::spin;
            else if (wait_mode == "yield")
              o.wait.mode = shmlog::wait_mode::yield;
            else if (wait_mode == "sleep")
              o.wait.mode = shmlog::wait_mode::sleep;
            else
              throw py::value_error("wait_mode '" + wait_mode +
                                    "': expected 'adaptive', 'spin', 'yield' or 'sleep'");
            o.label = label;
            o.wait_for_creation = std::chrono::duration_cast<std::chrono::milliseconds>(
                seconds_to_ns(wait_for_creation));
            o.gating = gating;
            // A wait for creation blocks for a while: let other Python threads run meanwhile.
            std::optional<shmlog::reader> r;
            {
              py::gil_scoped_release release;
              r.emplace(shmlog::reader::attach(name, o));
            }
            return std::make_unique<py_reader>(std::move(*r), o.wait);
          },
          py::arg("name"), py::kw_only(), py::arg("start") = "latest", py::arg("label") = "",
          py::arg("wait_for_creation") = 0.0, py::arg("gating") = false,
          py::arg("wait_mode") = "adaptive",
          "Attaches to the log. start: 'latest' (default), 'oldest' or an offset.")
      .def("poll", &py_reader::poll,
           "The next record as bytes, or None if there is none yet. Raises Lapped, "
           "HistoryChanged or Corrupt (the reader does not move).")
      .def("poll_record", &py_reader::poll_record,
           "As poll(), as a Record(offset, next_offset, type, data).")
      .def("poll_into", &py_reader::poll_into, py::arg("buffer"),
           "Copies the next record into a writable bytes-like object; returns its size, or None "
           "if there is none yet. TooSmall (nothing consumed) if it does not fit.")
      .def("wait", &py_reader::wait, py::arg("timeout") = py::none(),
           "Waits with the GIL released until a record is published beyond the reader's offset "
           "(True) or `timeout` seconds pass (False; None: for ever).")
      .def(
          "follow",
          [](py::object self, std::optional<double> idle) {
            return py_follow{self, &self.cast<py_reader&>(), idle};
          },
          py::arg("idle") = py::none(),
          "Iterates over records as they arrive, waiting between them; stops once none has "
          "arrived for `idle` seconds (None: never).")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__",
           [](py_reader& r) {
             py::object record = r.poll();
             if (record.is_none()) throw py::stop_iteration();
             return record;
           })
      .def("recover_from_lap", &py_reader::recover_from_lap, py::arg("policy") = "oldest_safe",
           "After Lapped: moves on ('oldest_safe', 'oldest' or 'latest'); returns what was lost "
           "as a dict.")
      .def(
          "skip_corruption", [](py_reader& r) { return r.get().skip_corruption(); },
          "After Corrupt: moves past the damage; returns the bytes skipped.")
      .def("resync", &py_reader::resync,
           "After HistoryChanged: True if the reader reads on where it stood (partial resync), "
           "False if its records are not the new history's (it did not move; seek to go on).")
      .def(
          "seek", [](py_reader& r, std::uint64_t offset) { r.get().seek(offset); },
          py::arg("offset"))
      .def("seek_oldest", [](py_reader& r) { r.get().seek_oldest(); })
      .def("seek_latest", [](py_reader& r) { r.get().seek_latest(); })
      .def("close", &py_reader::close)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__",
           [](py_reader& r, const py::args&) {
             r.close();
             return false;
           })
      .def_property_readonly("in_wait", &py_reader::in_wait,
                             "True while a thread is inside wait() (or follow()).")
      .def_property_readonly("name", [](py_reader& r) { return r.get().name(); })
      .def_property_readonly("offset", [](py_reader& r) { return r.get().offset(); })
      .def_property_readonly("master_offset", [](py_reader& r) { return r.get().master_offset(); })
      .def_property_readonly("lapped_count", [](py_reader& r) { return r.get().lapped_count(); })
      .def_property_readonly("capacity", [](py_reader& r) { return r.get().capacity(); })
      .def_property_readonly("max_payload", [](py_reader& r) { return r.get().max_payload(); })
      .def_property_readonly("replid", [](py_reader& r) { return r.get().replid().str(); });

  m.def(
      "destroy", [](const std::string& name) { return shmlog::destroy(name); }, py::arg("name"),
      "Removes the log's name; False if there was none. Only a shmlog segment is removed.");
  m.def(
      "exists", [](const std::string& name) { return shmlog::exists(name); }, py::arg("name"));
}
