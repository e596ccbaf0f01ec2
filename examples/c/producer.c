/* A producer in C: creates the log NAME (1 MiB) unless it exists, opens it as its writer and
 * appends each argument as a record, or each line of its standard input if there is none.
 *
 *   build/examples/c_producer quotes "AAPL 189.91" "MSFT 411.2"
 *   printf 'a\nb\n' | build/examples/c_producer quotes */
#include <stdio.h>
#include <string.h>

#include "shmlog/shmlog_c.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s NAME [RECORD...]\n", argv[0]);
    return 2;
  }
  shmlog_writer* w = NULL;
  shmlog_status s = shmlog_writer_open(argv[1], NULL, &w);
  if (s == SHMLOG_ERR_NOT_FOUND)
    s = shmlog_writer_create(argv[1], &(shmlog_create_options){.capacity = 1 << 20}, &w);
  if (s != SHMLOG_OK) {
    fprintf(stderr, "c_producer: %s\n", shmlog_last_error());
    return 1;
  }
  uint64_t offset = 0;
  if (argc > 2) {
    for (int i = 2; i < argc && s == SHMLOG_OK; ++i)
      s = shmlog_writer_append(w, argv[i], strlen(argv[i]), &offset);
  } else {
    /* Lines are built in place in the ring: a claim as large as the longest line allowed,
     * committed with the bytes used. */
    char line[4096];
    while (s == SHMLOG_OK && fgets(line, sizeof line, stdin) != NULL) {
      const size_t n = strcspn(line, "\n");
      void* room = NULL;
      s = shmlog_writer_claim(w, n, &room);
      if (s != SHMLOG_OK) break;
      memcpy(room, line, n);
      s = shmlog_writer_commit(w, n, &offset);
    }
  }
  if (s != SHMLOG_OK) fprintf(stderr, "c_producer: %s\n", shmlog_last_error());
  shmlog_writer_close(w);
  return s == SHMLOG_OK ? 0 : 1;
}
