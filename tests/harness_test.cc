// The test harness itself: what tests/CMakeLists.txt asks ctest to give every test arrives.
#include <gtest/gtest.h>

#include <cstdlib>

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr const char* sanitizer_options[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS"};
#elif defined(__SANITIZE_THREAD__)
constexpr const char* sanitizer_options[] = {"TSAN_OPTIONS"};
#else
constexpr const char* sanitizer_options[] = {"SHMLOG_TEST_ENV"};
#endif

// Before the fix, ctest passed a test only the first variable of its ENVIRONMENT list (and, in
// the same mistake, no TIMEOUT): UBSAN_OPTIONS never reached the ASan build's tests.
TEST(test_harness, CtestPassesTheWholeEnvironment) {
  if (std::getenv("SHMLOG_TEST_ENV") == nullptr) GTEST_SKIP() << "not run by ctest";
  for (const char* name : sanitizer_options)
    EXPECT_NE(std::getenv(name), nullptr) << name << " is not set";
}

}  // namespace
