// Test support: a database of one's own, copied from the migrated template of the CTest `pg`
// fixture (see tests/CMakeLists.txt), and Status matchers.
#ifndef VCH_TESTS_TESTING_TEST_DB_H_
#define VCH_TESTS_TESTING_TEST_DB_H_

#include <gmock/gmock.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/errors.h"

namespace vch::testing {

// Creates a new database from the template named by VCH_TEST_DSN and returns its DSN.
// Fails the test (fatally) if VCH_TEST_DSN is unset: db tests never skip.
std::string CreateTestDatabase();

// DSN of the template itself with dbname replaced (for admin connections: "postgres").
std::string TestDsnForDatabase(const std::string& dbname);

// A seed for randomized tests: VCH_TEST_SEED if set, else time-based; logged to the test output.
uint64_t TestSeed();

namespace internal {
inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}
}  // namespace internal

MATCHER_P(StatusIs, code, "") {
  const absl::Status& status = ::vch::testing::internal::GetStatus(arg);
  if (status.code() == code) return true;
  *result_listener << "status is " << status;
  return false;
}

MATCHER_P2(StatusIs, code, reason, "") {
  const absl::Status& status = ::vch::testing::internal::GetStatus(arg);
  if (status.code() == code && ::vch::ReasonOf(status) == reason) return true;
  *result_listener << "status is " << status << " with reason '" << ::vch::ReasonOf(status) << "'";
  return false;
}

MATCHER(IsOk, "") {
  const absl::Status& status = ::vch::testing::internal::GetStatus(arg);
  if (status.ok()) return true;
  *result_listener << "status is " << status << " with reason '" << ::vch::ReasonOf(status) << "'";
  return false;
}

}  // namespace vch::testing

#endif  // VCH_TESTS_TESTING_TEST_DB_H_
