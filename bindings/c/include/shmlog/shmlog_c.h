/* shmlog's C API: a writer and readers of a log from C11 (or any language with a C FFI).
 *
 *   shmlog_writer* w;
 *   if (shmlog_writer_create("quotes", &(shmlog_create_options){.capacity = 1 << 20}, &w) < 0)
 *     fprintf(stderr, "%s\n", shmlog_last_error());
 *   shmlog_writer_append(w, "hello", 5, NULL);
 *
 *   shmlog_reader* r;
 *   shmlog_reader_attach("quotes", &(shmlog_reader_options){.start = SHMLOG_START_OLDEST}, &r);
 *   char buf[256];
 *   shmlog_poll_result p;
 *   switch (shmlog_reader_poll_copy(r, buf, sizeof buf, &p)) {
 *     case SHMLOG_RECORD: use(p.record.data, p.record.size); break;
 *     case SHMLOG_EMPTY: shmlog_reader_wait(r, 1000000000); break;
 *     case SHMLOG_LAPPED: shmlog_reader_recover_from_lap(r, SHMLOG_LAP_OLDEST_SAFE, NULL); break;
 *     ...
 *   }
 *
 * A thin layer over the C++ API (shmlog/writer.h, shmlog/reader.h), compiled into the same
 * library: link with -lshmlog (and -lstdc++, -lhiredis for the static library). Reference and
 * error model: docs/bindings.md.
 *
 * Results. Every function that can fail returns a shmlog_status: SHMLOG_OK or one of the read
 * outcomes (all >= 0), or an error (< 0). After an error, shmlog_last_error() returns a message
 * naming what went wrong, for the calling thread. No C++ exception crosses this boundary.
 *
 * Threads. A writer handle belongs to one thread at a time, as does a reader handle (the C++
 * "writer thread only" and "reader thread only"); different handles may be used from different
 * threads at once. Functions marked "any thread" may be called concurrently with the owner. */
#ifndef SHMLOG_SHMLOG_C_H
#define SHMLOG_SHMLOG_C_H

#include <stddef.h>
#include <stdint.h>
#ifndef __cplusplus
#include <stdbool.h> /* C++ has bool; C++20 dropped <cstdbool> */
#endif

/* Exported whatever the library's default symbol visibility is. */
#if defined(__GNUC__)
#define SHMLOG_C_API __attribute__((visibility("default")))
#else
#define SHMLOG_C_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum shmlog_status {
  SHMLOG_OK = 0,
  /* Read outcomes (shmlog_reader_poll, shmlog_reader_poll_copy, shmlog_reader_wait). */
  SHMLOG_RECORD = 1,          /* result->record holds the next record */
  SHMLOG_EMPTY = 2,           /* caught up with the writer */
  SHMLOG_LAPPED = 3,          /* result->lap says what was lost; the reader did not move */
  SHMLOG_HISTORY_CHANGED = 4, /* a new writer changed the history: shmlog_reader_resync */
  SHMLOG_CORRUPT = 5,         /* result->corrupt_*; the reader did not move */
  SHMLOG_TOO_SMALL = 6,       /* result->needed_size bytes needed; nothing was consumed */
  SHMLOG_TIMEOUT = 7,         /* shmlog_reader_wait: nothing was published in time */
  /* Errors: the C++ shmlog::errc of the same name (shmlog/error.h), then the C layer's own. */
  SHMLOG_ERR_INVALID_NAME = -1,
  SHMLOG_ERR_INVALID_ARGUMENT = -2, /* includes a NULL where a pointer is required */
  SHMLOG_ERR_NOT_FOUND = -3,
  SHMLOG_ERR_ALREADY_EXISTS = -4,
  SHMLOG_ERR_PERMISSION_DENIED = -5,
  SHMLOG_ERR_BAD_MAGIC = -6,
  SHMLOG_ERR_UNSUPPORTED_VERSION = -7,
  SHMLOG_ERR_CORRUPT_HEADER = -8,
  SHMLOG_ERR_TRUNCATED = -9,
  SHMLOG_ERR_NOT_INITIALIZED = -10,
  SHMLOG_ERR_WRITER_EXISTS = -11,
  SHMLOG_ERR_RECORD_TOO_LARGE = -12,
  SHMLOG_ERR_CLAIM_PENDING = -13,
  SHMLOG_ERR_NOT_A_RECORD_BOUNDARY = -14,
  SHMLOG_ERR_CORRUPT_RECORD = -15,
  SHMLOG_ERR_OFFSET_OUT_OF_RANGE = -16,
  SHMLOG_ERR_NO_FREE_READER_SLOT = -17,
  SHMLOG_ERR_BAD_SNAPSHOT = -18,
  SHMLOG_ERR_SNAPSHOT_TIMEOUT = -19,
  SHMLOG_ERR_INTERRUPTED_UPDATE = -20,
  SHMLOG_ERR_APPLY_FAILED = -21,
  SHMLOG_ERR_UNEXPECTED_OFFSET = -22,
  SHMLOG_ERR_SYSTEM = -23,
  SHMLOG_ERR_OUT_OF_MEMORY = -24,
  SHMLOG_ERR_INTERNAL = -25 /* an unexpected failure inside the library; see the message */
} shmlog_status;

/* Any thread. The enumerator's name without its prefix ("lapped", "not_found"); "unknown" for a
 * value outside the enum. Never NULL; a static string. */
SHMLOG_C_API const char* shmlog_status_name(shmlog_status status);

/* Any thread. The message of the last call on this thread that returned an error (< 0), e.g.
 * "log 'quotes' does not exist (no /dev/shm/quotes)"; "" if none has. Calls that succeed leave it
 * as it was, so that the read path never writes it. Valid until the next failing call on this
 * thread. */
SHMLOG_C_API const char* shmlog_last_error(void);

/* A history id (Redis replid): 40 hex characters and a NUL. */
#define SHMLOG_REPLID_SIZE 41

/* ---------------------------------------------------------------------------------------------
 * The writer: the one process that appends to a log. */

typedef struct shmlog_writer shmlog_writer;

typedef enum shmlog_fence {
  SHMLOG_FENCE_DEFAULT = 0, /* seq_cst */
  SHMLOG_FENCE_SEQ_CST = 1,
  SHMLOG_FENCE_MEMBARRIER = 2
} shmlog_fence;

/* Zero in any field means the default (shmlog::create_options). */
typedef struct shmlog_create_options {
  uint64_t capacity;           /* ring bytes, a power of two in [4 KiB, 1 TiB]; 0: 1 MiB */
  uint32_t reader_slots;       /* most readers attached at once; 0: 64 */
  uint32_t mode;               /* permissions of /dev/shm/<name>, exactly; 0: 0600 */
  shmlog_fence fence;          /* docs/design.md, "No lost wake-up" */
  uint64_t max_gating_wait_ns; /* how long a writer waits for a gating reader; 0: 100 ms */
} shmlog_create_options;

/* Zero in any field means the default (shmlog::writer_options). */
typedef struct shmlog_writer_options {
  /* The history the producer's own state reflects (40 hex characters), and the offset up to
   * which it holds the log's records; NULL: the producer keeps no state and the log goes on as
   * it is. A state of another history, or behind the log, changes the log's history: readers'
   * next poll says SHMLOG_HISTORY_CHANGED (docs/design.md, "History across restarts"). */
  const char* state_replid;
  uint64_t state_offset;
  /* How long this writer waits for a gating reader before it laps it; 0: the log's setting. */
  uint64_t max_gating_wait_ns;
} shmlog_writer_options;

/* Any thread. Creates the log `name` and opens it as its writer; `options` may be NULL. On
 * success *out is a new handle, to be closed with shmlog_writer_close; on error *out is NULL.
 * SHMLOG_ERR_ALREADY_EXISTS if a log of that name exists. */
SHMLOG_C_API shmlog_status shmlog_writer_create(const char* name,
                                                const shmlog_create_options* options,
                                                shmlog_writer** out);
/* Any thread. Opens an existing log as its writer, going on at its master offset; `options` may
 * be NULL. SHMLOG_ERR_WRITER_EXISTS (the message names the pid) if another process is its
 * writer. */
SHMLOG_C_API shmlog_status shmlog_writer_open(const char* name,
                                              const shmlog_writer_options* options,
                                              shmlog_writer** out);
/* The writer's thread. Closes the log cleanly (a pending claim is aborted) and frees the handle.
 * NULL is ignored. */
SHMLOG_C_API void shmlog_writer_close(shmlog_writer* writer);

/* The writer's thread. Appends one record of `size` bytes (type 1) and publishes it; its offset
 * goes to *offset unless that is NULL. SHMLOG_ERR_RECORD_TOO_LARGE beyond max_payload: nothing
 * is appended. `data` may be NULL only when size is 0. */
SHMLOG_C_API shmlog_status shmlog_writer_append(shmlog_writer* writer, const void* data,
                                                size_t size, uint64_t* offset);
/* The same with a record type (1 to 0xFEFF; readers see it in shmlog_record.type). */
SHMLOG_C_API shmlog_status shmlog_writer_append_typed(shmlog_writer* writer, uint16_t type,
                                                      const void* data, size_t size,
                                                      uint64_t* offset);

/* The writer's thread. Reserves room for a record of up to `max_size` bytes, straight in the
 * ring: *payload points at it. Nothing is visible to readers until shmlog_writer_commit. One
 * claim at a time: append and claim say SHMLOG_ERR_CLAIM_PENDING while one is open. */
SHMLOG_C_API shmlog_status shmlog_writer_claim(shmlog_writer* writer, size_t max_size,
                                               void** payload);
/* The writer's thread. Publishes the first `used` bytes of the claim as a record (offset to
 * *offset unless NULL). SHMLOG_ERR_INVALID_ARGUMENT if used > max_size: the claim stays open. */
SHMLOG_C_API shmlog_status shmlog_writer_commit(shmlog_writer* writer, size_t used,
                                                uint64_t* offset);
/* The writer's thread. Drops the open claim; nothing becomes visible. Commit and abort with no
 * claim open say SHMLOG_ERR_INVALID_ARGUMENT. */
SHMLOG_C_API shmlog_status shmlog_writer_abort(shmlog_writer* writer);

/* The writer's thread (its own view, always current); 0 for a NULL handle. */
SHMLOG_C_API uint64_t shmlog_writer_master_offset(const shmlog_writer* writer);
SHMLOG_C_API uint64_t shmlog_writer_capacity(const shmlog_writer* writer);
SHMLOG_C_API uint64_t shmlog_writer_max_payload(const shmlog_writer* writer);
/* The writer's thread. The log's current history id, NUL-terminated, into `replid`. */
SHMLOG_C_API shmlog_status shmlog_writer_replid(const shmlog_writer* writer,
                                                char replid[SHMLOG_REPLID_SIZE]);

/* ---------------------------------------------------------------------------------------------
 * Readers: any number of processes, each with its own offset. */

typedef struct shmlog_reader shmlog_reader;

typedef enum shmlog_start {
  SHMLOG_START_LATEST = 0, /* the next record appended */
  SHMLOG_START_OLDEST = 1, /* the oldest record the ring holds */
  SHMLOG_START_OFFSET = 2  /* shmlog_reader_options.start_offset, a record boundary held */
} shmlog_start;

typedef enum shmlog_wait_mode {
  SHMLOG_WAIT_ADAPTIVE = 0, /* spin 50 us, yield 2 ms, then sleep on a futex */
  SHMLOG_WAIT_SPIN = 1,
  SHMLOG_WAIT_YIELD = 2,
  SHMLOG_WAIT_SLEEP = 3
} shmlog_wait_mode;

/* Zero in any field means the default (shmlog::reader_options). */
typedef struct shmlog_reader_options {
  shmlog_start start;
  uint64_t start_offset;         /* with SHMLOG_START_OFFSET */
  const char* label;             /* shown by `shmlog info`; 15 bytes kept; NULL: none */
  uint32_t wait_for_creation_ms; /* wait this long for a log that does not exist yet */
  bool gating;                   /* the writer waits (boundedly) rather than lap this reader */
  shmlog_wait_mode wait_mode;    /* how shmlog_reader_wait waits */
} shmlog_reader_options;

/* A record as a poll hands it over. */
typedef struct shmlog_record {
  uint64_t offset;      /* where it starts */
  uint64_t next_offset; /* where the next one starts */
  const void* data;     /* poll_copy: in the caller's buffer; poll: in shared memory */
  size_t size;
  uint16_t type;
} shmlog_record;

/* What a lap cost (shmlog::lap_report). */
typedef struct shmlog_lap {
  uint64_t wanted_offset; /* where the reader stood */
  uint64_t oldest_offset; /* oldest record still held */
  uint64_t master_offset;
  uint64_t resume_offset; /* recover_from_lap: where it now stands; poll: the oldest record */
  uint64_t bytes_lost;    /* resume_offset - wanted_offset */
} shmlog_lap;

/* The details of a poll's outcome; only the part the status names is set. */
typedef struct shmlog_poll_result {
  shmlog_record record;       /* SHMLOG_RECORD */
  size_t needed_size;         /* SHMLOG_TOO_SMALL: the record's size */
  shmlog_lap lap;             /* SHMLOG_LAPPED */
  uint64_t corrupt_offset;    /* SHMLOG_CORRUPT: where */
  const char* corrupt_reason; /* SHMLOG_CORRUPT: why (a static string) */
} shmlog_poll_result;

typedef enum shmlog_lap_policy {
  SHMLOG_LAP_OLDEST_SAFE = 0, /* a quarter ring past the oldest: not lapped again at once */
  SHMLOG_LAP_OLDEST = 1,      /* the oldest record held: loses the least */
  SHMLOG_LAP_LATEST = 2       /* the master offset: skips everything held */
} shmlog_lap_policy;

/* Any thread. Attaches to the log `name` and takes a reader slot; `options` may be NULL. On
 * error *out is NULL (SHMLOG_ERR_NOT_FOUND, SHMLOG_ERR_NO_FREE_READER_SLOT, ...). */
SHMLOG_C_API shmlog_status shmlog_reader_attach(const char* name,
                                                const shmlog_reader_options* options,
                                                shmlog_reader** out);
/* The reader's thread. Gives the slot back and frees the handle. NULL is ignored. */
SHMLOG_C_API void shmlog_reader_close(shmlog_reader* reader);

/* The reader's thread. Copies the next record into buffer[0, capacity) and validates it: a
 * SHMLOG_RECORD is exactly what was appended, result->record.data == buffer. A record larger
 * than `capacity` is not consumed: SHMLOG_TOO_SMALL with result->needed_size. Otherwise
 * SHMLOG_EMPTY, SHMLOG_LAPPED, SHMLOG_HISTORY_CHANGED or SHMLOG_CORRUPT, the reader not moved. */
SHMLOG_C_API shmlog_status shmlog_reader_poll_copy(shmlog_reader* reader, void* buffer,
                                                   size_t capacity, shmlog_poll_result* result);
/* The reader's thread. The next record in place, in shared memory (no copy): intact when this
 * returned, but the writer may overwrite it at any time after; check shmlog_reader_still_valid
 * after using the bytes. Same outcomes as poll_copy, never SHMLOG_TOO_SMALL. */
SHMLOG_C_API shmlog_status shmlog_reader_poll(shmlog_reader* reader, shmlog_poll_result* result);
/* The reader's thread. Whether the writer had not yet come round to a record from poll. */
SHMLOG_C_API bool shmlog_reader_still_valid(const shmlog_reader* reader,
                                            const shmlog_record* record);

/* The reader's thread. Waits until a record is published beyond the reader's offset (SHMLOG_OK)
 * or `timeout_ns` nanoseconds pass (SHMLOG_TIMEOUT); a negative timeout waits for ever. */
SHMLOG_C_API shmlog_status shmlog_reader_wait(shmlog_reader* reader, int64_t timeout_ns);

/* The reader's thread. After SHMLOG_LAPPED: moves to where `policy` says and reports what was
 * lost into *report unless NULL. A reader that is not lapped stays put. */
SHMLOG_C_API shmlog_status shmlog_reader_recover_from_lap(shmlog_reader* reader,
                                                          shmlog_lap_policy policy,
                                                          shmlog_lap* report);
/* The reader's thread. After SHMLOG_CORRUPT: moves past the damage (*skipped bytes, unless
 * NULL). */
SHMLOG_C_API shmlog_status shmlog_reader_skip_corruption(shmlog_reader* reader, uint64_t* skipped);
/* The reader's thread. After SHMLOG_HISTORY_CHANGED: the PSYNC decision for the reader's own
 * history and offset. *partial true: the new history shares the reader's position and it reads
 * on; false: the records it was given are not the new history's (a full resync is due); it has
 * not moved, and a reader with no state of its own goes on with a seek. */
SHMLOG_C_API shmlog_status shmlog_reader_resync(shmlog_reader* reader, bool* partial);
/* The reader's thread. Moves to `offset`, a record boundary the ring holds
 * (SHMLOG_ERR_OFFSET_OUT_OF_RANGE, SHMLOG_ERR_NOT_A_RECORD_BOUNDARY otherwise; it stays put), to
 * the oldest record held, or to the master offset; each takes the log's current history. */
SHMLOG_C_API shmlog_status shmlog_reader_seek(shmlog_reader* reader, uint64_t offset);
SHMLOG_C_API shmlog_status shmlog_reader_seek_oldest(shmlog_reader* reader);
SHMLOG_C_API shmlog_status shmlog_reader_seek_latest(shmlog_reader* reader);

/* The reader's thread: the next byte it will read. */
SHMLOG_C_API uint64_t shmlog_reader_offset(const shmlog_reader* reader);
/* Any thread: a fresh load of the master offset, may be stale. */
SHMLOG_C_API uint64_t shmlog_reader_master_offset(const shmlog_reader* reader);
/* The reader's thread: times this reader was lapped. */
SHMLOG_C_API uint64_t shmlog_reader_lapped_count(const shmlog_reader* reader);
SHMLOG_C_API uint64_t shmlog_reader_capacity(const shmlog_reader* reader);
SHMLOG_C_API uint64_t shmlog_reader_max_payload(const shmlog_reader* reader);
/* The reader's thread. The history its records belong to, NUL-terminated, into `replid`. */
SHMLOG_C_API shmlog_status shmlog_reader_replid(const shmlog_reader* reader,
                                                char replid[SHMLOG_REPLID_SIZE]);

/* ---------------------------------------------------------------------------------------------
 * Logs by name. */

/* Any thread. Removes the log's name (processes that have it mapped keep their mapping). Only a
 * shmlog segment is removed (SHMLOG_ERR_BAD_MAGIC otherwise); SHMLOG_ERR_NOT_FOUND if there is
 * no object of that name. */
SHMLOG_C_API shmlog_status shmlog_destroy(const char* name);
/* Any thread. Whether an object of that name exists in /dev/shm; false for an invalid name. */
SHMLOG_C_API bool shmlog_exists(const char* name);

#ifdef __cplusplus
}
#endif

#endif /* SHMLOG_SHMLOG_C_H */
