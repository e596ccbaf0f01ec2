// Test hooks: for shmlog's own tests and for users who test code built on shmlog. Not for use
// in production code; not included by shmlog/shmlog.h.
#pragma once

#include <functional>

#include "shmlog/export.h"
#include "shmlog/reader.h"

namespace shmlog::testing {

// Reader thread only. `hook` is called after a poll has read a record (poll_copy: after the
// copy) and before it validates it, so a test can make the writer lap the reader at exactly that
// point. An empty function removes it.
SHMLOG_API void set_validation_hook(reader& r, std::function<void()> hook);

}  // namespace shmlog::testing
