/* The C API through the installed header and library only, from C11. */
#include <shmlog/shmlog_c.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
  char name[64];
  snprintf(name, sizeof name, "shmlog-c-consumer-%ld", (long)getpid());
  shmlog_writer* w = NULL;
  shmlog_reader* r = NULL;
  char buf[16];
  shmlog_poll_result p;
  int ok =
      shmlog_writer_create(name, &(shmlog_create_options){.capacity = 4096}, &w) == SHMLOG_OK &&
      shmlog_reader_attach(name, &(shmlog_reader_options){.start = SHMLOG_START_OLDEST}, &r) ==
          SHMLOG_OK &&
      shmlog_writer_append(w, "installed", 9, NULL) == SHMLOG_OK &&
      shmlog_reader_poll_copy(r, buf, sizeof buf, &p) == SHMLOG_RECORD && p.record.size == 9 &&
      memcmp(buf, "installed", 9) == 0;
  if (!ok) fprintf(stderr, "c_consumer: %s\n", shmlog_last_error());
  shmlog_reader_close(r);
  shmlog_writer_close(w);
  shmlog_destroy(name);
  printf("c_consumer: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
