/* The C API (shmlog/shmlog_c.h) from C11, compiled as C: a writer and readers through every
 * read outcome (record, empty, too_small, lapped, history_changed), claims, waits, bad input,
 * and a writer in another process (this program re-executed with --child-writer).
 *
 *   c_api_test                          runs every test; exit status 0 if all pass
 *   c_api_test --child-writer NAME N    opens NAME as its writer and appends N records */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmlog/shmlog_c.h"

static int failures = 0;

/* Reports a failed check with the C API's last message (useful when a call failed). */
#define CHECK(cond)                                                                             \
  do {                                                                                          \
    if (!(cond)) {                                                                              \
      fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: '%s'\n", __FILE__, __LINE__, #cond, \
              shmlog_last_error());                                                             \
      ++failures;                                                                               \
      return;                                                                                   \
    }                                                                                           \
  } while (0)

#define CHECK_STATUS(call, expected)                                                            \
  do {                                                                                          \
    shmlog_status check_status_ = (call);                                                       \
    if (check_status_ != (expected)) {                                                          \
      fprintf(stderr, "%s:%d: %s returned %s, expected %s; last error: '%s'\n", __FILE__,       \
              __LINE__, #call, shmlog_status_name(check_status_), shmlog_status_name(expected), \
              shmlog_last_error());                                                             \
      ++failures;                                                                               \
      return;                                                                                   \
    }                                                                                           \
  } while (0)

/* A log name unique to this process and test, removed before and after the test. */
static void log_name(char* out, size_t size, const char* test) {
  snprintf(out, size, "c-api-test-%ld-%s", (long)getpid(), test);
  shmlog_destroy(out);
}

static void test_bad_input(void) {
  shmlog_writer* w = (shmlog_writer*)1;
  CHECK_STATUS(shmlog_writer_create(NULL, NULL, &w), SHMLOG_ERR_INVALID_ARGUMENT);
  CHECK(w == NULL);
  CHECK(strstr(shmlog_last_error(), "name is NULL") != NULL);

  CHECK_STATUS(shmlog_writer_create("bad/name", NULL, &w), SHMLOG_ERR_INVALID_NAME);
  CHECK(w == NULL);
  CHECK(strstr(shmlog_last_error(), "bad/name") != NULL);
  CHECK(strcmp(shmlog_status_name(SHMLOG_ERR_INVALID_NAME), "invalid_name") == 0);

  char name[96];
  log_name(name, sizeof name, "bad");
  CHECK_STATUS(shmlog_writer_create(name, &(shmlog_create_options){.capacity = 5000}, &w),
               SHMLOG_ERR_INVALID_ARGUMENT);
  CHECK(strstr(shmlog_last_error(), "5000") != NULL);
  CHECK(!shmlog_exists(name));

  shmlog_reader* r = (shmlog_reader*)1;
  CHECK_STATUS(shmlog_reader_attach(name, NULL, &r), SHMLOG_ERR_NOT_FOUND);
  CHECK(r == NULL);
  CHECK(strstr(shmlog_last_error(), name) != NULL);
  /* Waiting for a log that nobody creates ends in the same error, after the time given. */
  CHECK_STATUS(shmlog_reader_attach(name, &(shmlog_reader_options){.wait_for_creation_ms = 20}, &r),
               SHMLOG_ERR_NOT_FOUND);
  CHECK(strstr(shmlog_last_error(), name) != NULL);
  CHECK_STATUS(shmlog_reader_attach(name, &(shmlog_reader_options){.start = 7}, &r),
               SHMLOG_ERR_INVALID_ARGUMENT);
  CHECK(strstr(shmlog_last_error(), "shmlog_reader_options.start is 7") != NULL);
  CHECK_STATUS(shmlog_reader_attach(name, &(shmlog_reader_options){.wait_mode = 9}, &r),
               SHMLOG_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(shmlog_writer_create(name, &(shmlog_create_options){.fence = 7}, &w),
               SHMLOG_ERR_INVALID_ARGUMENT);
  CHECK(strstr(shmlog_last_error(), "fence is 7") != NULL);
  CHECK(!shmlog_exists(name));
  CHECK(strcmp(shmlog_status_name((shmlog_status)100), "unknown") == 0);

  CHECK_STATUS(shmlog_writer_append(NULL, "x", 1, NULL), SHMLOG_ERR_INVALID_ARGUMENT);
  CHECK(strstr(shmlog_last_error(), "writer is NULL") != NULL);
  CHECK_STATUS(shmlog_reader_wait(NULL, 0), SHMLOG_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(shmlog_destroy(name), SHMLOG_ERR_NOT_FOUND);
  shmlog_writer_close(NULL); /* both ignore NULL */
  shmlog_reader_close(NULL);
}

static void test_write_and_read(void) {
  char name[96];
  log_name(name, sizeof name, "rw");
  shmlog_writer* w = NULL;
  CHECK_STATUS(shmlog_writer_create(name, &(shmlog_create_options){.capacity = 1 << 16}, &w),
               SHMLOG_OK);
  CHECK(shmlog_writer_capacity(w) == 1 << 16);
  CHECK(shmlog_writer_max_payload(w) == (1 << 14) - 8);

  /* A second writer of the same log, even in this process, is refused. */
  shmlog_writer* second = NULL;
  CHECK_STATUS(shmlog_writer_open(name, NULL, &second), SHMLOG_ERR_WRITER_EXISTS);
  CHECK(second == NULL);

  uint64_t at = 99;
  CHECK_STATUS(shmlog_writer_append(w, "hello", 5, &at), SHMLOG_OK);
  CHECK(at == 0);

  void* room = NULL;
  CHECK_STATUS(shmlog_writer_claim(w, 64, &room), SHMLOG_OK);
  CHECK(room != NULL);
  CHECK_STATUS(shmlog_writer_append(w, "x", 1, NULL), SHMLOG_ERR_CLAIM_PENDING);
  memcpy(room, "claimed", 7);
  CHECK_STATUS(shmlog_writer_commit(w, 65, NULL), SHMLOG_ERR_INVALID_ARGUMENT); /* stays open */
  CHECK_STATUS(shmlog_writer_commit(w, 7, &at), SHMLOG_OK);
  CHECK(at == 16);
  CHECK_STATUS(shmlog_writer_commit(w, 7, NULL), SHMLOG_ERR_INVALID_ARGUMENT);
  CHECK(strstr(shmlog_last_error(), "no claim is open") != NULL);
  CHECK_STATUS(shmlog_writer_claim(w, 32, &room), SHMLOG_OK);
  CHECK_STATUS(shmlog_writer_abort(w), SHMLOG_OK); /* nothing becomes visible */
  CHECK(shmlog_writer_master_offset(w) == 32);

  shmlog_reader* r = NULL;
  CHECK_STATUS(shmlog_reader_attach(
                   name, &(shmlog_reader_options){.start = SHMLOG_START_OLDEST, .label = "c"}, &r),
               SHMLOG_OK);
  char buf[128];
  shmlog_poll_result p;
  CHECK_STATUS(shmlog_reader_poll_copy(r, buf, sizeof buf, &p), SHMLOG_RECORD);
  CHECK(p.record.data == buf && p.record.size == 5 && memcmp(buf, "hello", 5) == 0);
  CHECK(p.record.offset == 0 && p.record.next_offset == 16 && p.record.type == 1);
  CHECK_STATUS(shmlog_reader_poll_copy(r, buf, sizeof buf, &p), SHMLOG_RECORD);
  CHECK(p.record.size == 7 && memcmp(buf, "claimed", 7) == 0 && p.record.offset == 16);
  CHECK_STATUS(shmlog_reader_poll_copy(r, buf, sizeof buf, &p), SHMLOG_EMPTY);

  /* A record larger than the buffer is not consumed: the status says the size it needs. */
  char big[100];
  memset(big, 'b', sizeof big);
  CHECK_STATUS(shmlog_writer_append(w, big, sizeof big, NULL), SHMLOG_OK);
  CHECK_STATUS(shmlog_reader_poll_copy(r, buf, 10, &p), SHMLOG_TOO_SMALL);
  CHECK(p.needed_size == 100);
  CHECK(shmlog_reader_offset(r) == 32);
  CHECK_STATUS(shmlog_reader_poll_copy(r, buf, sizeof buf, &p), SHMLOG_RECORD);
  CHECK(p.record.size == 100 && memcmp(buf, big, 100) == 0);

  /* Types, and the in-place poll. */
  CHECK_STATUS(shmlog_writer_append_typed(w, 7, "typed", 5, NULL), SHMLOG_OK);
  CHECK_STATUS(shmlog_reader_poll(r, &p), SHMLOG_RECORD);
  CHECK(p.record.type == 7 && p.record.size == 5 && memcmp(p.record.data, "typed", 5) == 0);
  CHECK(shmlog_reader_still_valid(r, &p.record));

  /* Waiting: nothing comes within 1 ms; a record already published is there at once. */
  CHECK_STATUS(shmlog_reader_wait(r, 1000000), SHMLOG_TIMEOUT);
  CHECK_STATUS(shmlog_writer_append(w, "", 0, NULL), SHMLOG_OK);
  CHECK_STATUS(shmlog_reader_wait(r, -1), SHMLOG_OK);
  CHECK_STATUS(shmlog_reader_poll_copy(r, NULL, 0, &p), SHMLOG_RECORD);
  CHECK(p.record.size == 0);

  /* Too large for the log: nothing appended, and the message says the limit. */
  const size_t too_large = (size_t)shmlog_writer_max_payload(w) + 1;
  char* huge = calloc(too_large, 1);
  CHECK(huge != NULL);
  const uint64_t before = shmlog_writer_master_offset(w);
  const shmlog_status s = shmlog_writer_append(w, huge, too_large, NULL);
  free(huge);
  CHECK_STATUS(s, SHMLOG_ERR_RECORD_TOO_LARGE);
  CHECK(strstr(shmlog_last_error(), "16376") != NULL);
  CHECK(shmlog_writer_master_offset(w) == before);

  /* Seeking outside the held window fails and the reader stays put. */
  CHECK_STATUS(shmlog_reader_seek(r, 8), SHMLOG_ERR_NOT_A_RECORD_BOUNDARY);
  CHECK_STATUS(shmlog_reader_seek(r, 1 << 20), SHMLOG_ERR_OFFSET_OUT_OF_RANGE);
  CHECK(shmlog_reader_offset(r) == before);
  CHECK_STATUS(shmlog_reader_seek(r, 16), SHMLOG_OK);
  CHECK_STATUS(shmlog_reader_poll_copy(r, buf, sizeof buf, &p), SHMLOG_RECORD);
  CHECK(memcmp(buf, "claimed", 7) == 0);

  shmlog_reader_close(r);
  shmlog_writer_close(w);
  CHECK_STATUS(shmlog_destroy(name), SHMLOG_OK);
  CHECK(!shmlog_exists(name));
}

static void test_lap(void) {
  char name[96];
  log_name(name, sizeof name, "lap");
  shmlog_writer* w = NULL;
  CHECK_STATUS(shmlog_writer_create(name, &(shmlog_create_options){.capacity = 4096}, &w),
               SHMLOG_OK);
  shmlog_reader* r = NULL;
  CHECK_STATUS(
      shmlog_reader_attach(name, &(shmlog_reader_options){.start = SHMLOG_START_OLDEST}, &r),
      SHMLOG_OK);
  /* Five rings' worth, which the reader never reads. */
  char record[200];
  for (int i = 0; i < 100; ++i) {
    memset(record, 'a' + i % 26, sizeof record);
    CHECK_STATUS(shmlog_writer_append(w, record, sizeof record, NULL), SHMLOG_OK);
  }
  char buf[256];
  shmlog_poll_result p;
  CHECK_STATUS(shmlog_reader_poll_copy(r, buf, sizeof buf, &p), SHMLOG_LAPPED);
  CHECK(p.lap.wanted_offset == 0);
  CHECK(p.lap.oldest_offset > 0 && p.lap.oldest_offset == p.lap.resume_offset);
  CHECK(p.lap.bytes_lost == p.lap.oldest_offset);
  CHECK(p.lap.master_offset == shmlog_writer_master_offset(w));
  CHECK(shmlog_reader_offset(r) == 0); /* a lap does not move the reader */

  shmlog_lap report;
  CHECK_STATUS(shmlog_reader_recover_from_lap(r, (shmlog_lap_policy)9, &report),
               SHMLOG_ERR_INVALID_ARGUMENT);
  CHECK(shmlog_reader_offset(r) == 0);
  CHECK_STATUS(shmlog_reader_recover_from_lap(r, SHMLOG_LAP_OLDEST, &report), SHMLOG_OK);
  CHECK(report.wanted_offset == 0 && report.resume_offset >= p.lap.oldest_offset);
  CHECK(shmlog_reader_offset(r) == report.resume_offset);
  CHECK(shmlog_reader_lapped_count(r) == 1);
  CHECK_STATUS(shmlog_reader_poll_copy(r, buf, sizeof buf, &p), SHMLOG_RECORD);
  CHECK(p.record.offset == report.resume_offset && p.record.size == 200);
  /* Every record from there on, whole, up to the newest. */
  int records = 1;
  shmlog_status s;
  while ((s = shmlog_reader_poll_copy(r, buf, sizeof buf, &p)) == SHMLOG_RECORD)
    ++records;
  CHECK_STATUS(s, SHMLOG_EMPTY);
  CHECK(records >= 2);
  CHECK(shmlog_reader_offset(r) == shmlog_writer_master_offset(w));
  CHECK(buf[0] == 'a' + 99 % 26); /* the last record read was the last appended */

  shmlog_reader_close(r);
  shmlog_writer_close(w);
  CHECK_STATUS(shmlog_destroy(name), SHMLOG_OK);
}

static void test_history_change(void) {
  char name[96];
  log_name(name, sizeof name, "history");
  shmlog_writer* w = NULL;
  CHECK_STATUS(shmlog_writer_create(name, NULL, &w), SHMLOG_OK);
  uint64_t third = 0;
  CHECK_STATUS(shmlog_writer_append(w, "one", 3, NULL), SHMLOG_OK);
  CHECK_STATUS(shmlog_writer_append(w, "two", 3, NULL), SHMLOG_OK);
  CHECK_STATUS(shmlog_writer_append(w, "three", 5, &third), SHMLOG_OK);
  char first_history[SHMLOG_REPLID_SIZE];
  CHECK_STATUS(shmlog_writer_replid(w, first_history), SHMLOG_OK);
  CHECK(strlen(first_history) == 40);

  shmlog_reader* r = NULL;
  CHECK_STATUS(
      shmlog_reader_attach(name, &(shmlog_reader_options){.start = SHMLOG_START_OLDEST}, &r),
      SHMLOG_OK);
  char buf[64];
  shmlog_poll_result p;
  CHECK_STATUS(shmlog_reader_poll_copy(r, buf, sizeof buf, &p), SHMLOG_RECORD);
  CHECK_STATUS(shmlog_reader_poll_copy(r, buf, sizeof buf, &p), SHMLOG_RECORD);
  CHECK(shmlog_reader_offset(r) == third);
  shmlog_writer_close(w);

  /* A producer whose state holds the log up to `third` only: the log branches there (its
   * master offset goes back), and this reader, at `third`, reads on in the new history. */
  CHECK_STATUS(
      shmlog_writer_open(
          name, &(shmlog_writer_options){.state_replid = first_history, .state_offset = third}, &w),
      SHMLOG_OK);
  char second_history[SHMLOG_REPLID_SIZE];
  CHECK_STATUS(shmlog_writer_replid(w, second_history), SHMLOG_OK);
  CHECK(strcmp(first_history, second_history) != 0);
  CHECK(shmlog_writer_master_offset(w) == third);
  CHECK_STATUS(shmlog_reader_poll_copy(r, buf, sizeof buf, &p), SHMLOG_HISTORY_CHANGED);
  bool partial = false;
  CHECK_STATUS(shmlog_reader_resync(r, &partial), SHMLOG_OK);
  CHECK(partial);
  char reader_history[SHMLOG_REPLID_SIZE];
  CHECK_STATUS(shmlog_reader_replid(r, reader_history), SHMLOG_OK);
  CHECK(strcmp(reader_history, second_history) == 0);
  CHECK_STATUS(shmlog_writer_append(w, "THREE", 5, NULL), SHMLOG_OK);
  CHECK_STATUS(shmlog_reader_poll_copy(r, buf, sizeof buf, &p), SHMLOG_RECORD);
  CHECK(p.record.offset == third && memcmp(buf, "THREE", 5) == 0);
  shmlog_writer_close(w);

  /* A producer whose state is of a history the log never had: nothing is shared, and the
   * reader's records are not the new history's. It goes on from the newest. */
  CHECK_STATUS(
      shmlog_writer_open(
          name,
          &(shmlog_writer_options){.state_replid = "0123456789abcdef0123456789abcdef01234567"}, &w),
      SHMLOG_OK);
  CHECK_STATUS(shmlog_reader_poll_copy(r, buf, sizeof buf, &p), SHMLOG_HISTORY_CHANGED);
  CHECK_STATUS(shmlog_reader_resync(r, &partial), SHMLOG_OK);
  CHECK(!partial);
  CHECK_STATUS(shmlog_reader_seek_latest(r), SHMLOG_OK);
  char third_history[SHMLOG_REPLID_SIZE];
  CHECK_STATUS(shmlog_writer_replid(w, third_history), SHMLOG_OK);
  CHECK_STATUS(shmlog_reader_replid(r, reader_history), SHMLOG_OK);
  CHECK(strcmp(reader_history, third_history) == 0);
  CHECK_STATUS(shmlog_writer_append(w, "new", 3, NULL), SHMLOG_OK);
  CHECK_STATUS(shmlog_reader_poll_copy(r, buf, sizeof buf, &p), SHMLOG_RECORD);
  CHECK(p.record.size == 3 && memcmp(buf, "new", 3) == 0);

  /* A state id that is not one. */
  shmlog_writer* bad = NULL;
  CHECK_STATUS(shmlog_writer_open(name, &(shmlog_writer_options){.state_replid = "xyz"}, &bad),
               SHMLOG_ERR_INVALID_ARGUMENT);
  CHECK(strstr(shmlog_last_error(), "'xyz'") != NULL);

  shmlog_reader_close(r);
  shmlog_writer_close(w);
  CHECK_STATUS(shmlog_destroy(name), SHMLOG_OK);
}

/* The writer in another process: this program, re-executed. The reader attached first, at the
 * oldest record, so it must see all `count` records in order, waiting for each. */
static void test_writer_in_another_process(const char* self) {
  enum { count = 500 };
  char name[96];
  log_name(name, sizeof name, "process");
  shmlog_writer* w = NULL;
  CHECK_STATUS(shmlog_writer_create(name, &(shmlog_create_options){.capacity = 1 << 20}, &w),
               SHMLOG_OK);
  shmlog_writer_close(w); /* the child opens it */
  shmlog_reader* r = NULL;
  CHECK_STATUS(shmlog_reader_attach(name,
                                    &(shmlog_reader_options){.start = SHMLOG_START_OLDEST,
                                                             .wait_mode = SHMLOG_WAIT_SLEEP},
                                    &r),
               SHMLOG_OK);

  char count_arg[16];
  snprintf(count_arg, sizeof count_arg, "%d", count);
  const pid_t child = fork();
  CHECK(child >= 0);
  if (child == 0) {
    execl(self, self, "--child-writer", name, count_arg, (char*)NULL);
    _exit(127);
  }
  char buf[64];
  char expected[64];
  shmlog_poll_result p;
  int seen = 0;
  while (seen < count) {
    const shmlog_status s = shmlog_reader_poll_copy(r, buf, sizeof buf, &p);
    if (s == SHMLOG_EMPTY) {
      /* 30 s: the child appends at once; only a hung child takes this long. */
      const shmlog_status waited = shmlog_reader_wait(r, 30000000000LL);
      if (waited != SHMLOG_OK) kill(child, SIGKILL);
      CHECK_STATUS(waited, SHMLOG_OK);
      continue;
    }
    CHECK_STATUS(s, SHMLOG_RECORD);
    const int n = snprintf(expected, sizeof expected, "record %d from the child", seen);
    CHECK(p.record.size == (size_t)n && memcmp(buf, expected, (size_t)n) == 0);
    ++seen;
  }
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK_STATUS(shmlog_reader_poll_copy(r, buf, sizeof buf, &p), SHMLOG_EMPTY);
  shmlog_reader_close(r);
  CHECK_STATUS(shmlog_destroy(name), SHMLOG_OK);
}

static int child_writer(const char* name, int count) {
  shmlog_writer* w = NULL;
  if (shmlog_writer_open(name, NULL, &w) != SHMLOG_OK) {
    fprintf(stderr, "child: %s\n", shmlog_last_error());
    return 1;
  }
  char record[64];
  for (int i = 0; i < count; ++i) {
    const int n = snprintf(record, sizeof record, "record %d from the child", i);
    if (shmlog_writer_append(w, record, (size_t)n, NULL) != SHMLOG_OK) {
      fprintf(stderr, "child: %s\n", shmlog_last_error());
      shmlog_writer_close(w);
      return 1;
    }
  }
  shmlog_writer_close(w);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[1], "--child-writer") == 0)
    return child_writer(argv[2], atoi(argv[3]));
  if (argc != 1) {
    fprintf(stderr, "usage: %s [--child-writer NAME COUNT]\n", argv[0]);
    return 2;
  }
  test_bad_input();
  test_write_and_read();
  test_lap();
  test_history_change();
  test_writer_in_another_process("/proc/self/exe");
  if (failures != 0) {
    fprintf(stderr, "c_api_test: %d test(s) failed\n", failures);
    return 1;
  }
  printf("c_api_test: all tests passed\n");
  return 0;
}
