/* A consumer in C: attaches to the log NAME at its oldest record and prints each record as
 * "OFFSET<TAB>TEXT", waiting for more until COUNT records were printed (if given) or nothing
 * arrives for a second. A lap is reported and the consumer goes on a quarter ring past the
 * oldest record; a record larger than its buffer is read into a larger one.
 *
 *   build/examples/c_consumer quotes [COUNT] */
#include <stdio.h>
#include <stdlib.h>

#include "shmlog/shmlog_c.h"

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s NAME [COUNT]\n", argv[0]);
    return 2;
  }
  const long count = argc == 3 ? atol(argv[2]) : -1;
  shmlog_reader* r = NULL;
  if (shmlog_reader_attach(argv[1], &(shmlog_reader_options){.start = SHMLOG_START_OLDEST}, &r) !=
      SHMLOG_OK) {
    fprintf(stderr, "c_consumer: %s\n", shmlog_last_error());
    return 1;
  }
  size_t capacity = 256;
  char* buf = malloc(capacity);
  long printed = 0;
  int status = 0;
  while (buf != NULL && printed != count) {
    shmlog_poll_result p = {0};
    const shmlog_status s = shmlog_reader_poll_copy(r, buf, capacity, &p);
    if (s == SHMLOG_RECORD) {
      printf("%llu\t%.*s\n", (unsigned long long)p.record.offset, (int)p.record.size, buf);
      ++printed;
    } else if (s == SHMLOG_EMPTY) {
      if (shmlog_reader_wait(r, 1000000000) == SHMLOG_TIMEOUT) break; /* quiet for 1 s */
    } else if (s == SHMLOG_TOO_SMALL) {
      char* larger = realloc(buf, p.needed_size);
      if (larger == NULL) break;
      buf = larger;
      capacity = p.needed_size;
    } else if (s == SHMLOG_LAPPED) {
      shmlog_lap lap = {0};
      if (shmlog_reader_recover_from_lap(r, SHMLOG_LAP_OLDEST_SAFE, &lap) < 0) {
        fprintf(stderr, "c_consumer: %s\n", shmlog_last_error());
        status = 1;
        break;
      }
      fprintf(stderr, "c_consumer: lapped, %llu bytes lost\n", (unsigned long long)lap.bytes_lost);
    } else if (s == SHMLOG_HISTORY_CHANGED) {
      bool partial = false;
      /* no state to keep when it is not partial: read the new history from its oldest record */
      if (shmlog_reader_resync(r, &partial) < 0 || (!partial && shmlog_reader_seek_oldest(r) < 0)) {
        fprintf(stderr, "c_consumer: %s\n", shmlog_last_error());
        status = 1;
        break;
      }
    } else if (s == SHMLOG_CORRUPT) {
      fprintf(stderr, "c_consumer: corrupt record at offset %llu: %s\n",
              (unsigned long long)p.corrupt_offset, p.corrupt_reason);
      status = 1;
      break;
    } else {
      fprintf(stderr, "c_consumer: %s: %s\n", shmlog_status_name(s), shmlog_last_error());
      status = 1;
      break;
    }
  }
  if (buf == NULL) {
    fprintf(stderr, "c_consumer: out of memory\n");
    status = 1;
  }
  free(buf);
  shmlog_reader_close(r);
  return status;
}
