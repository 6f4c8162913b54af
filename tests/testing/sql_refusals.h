// Test support for schema tests: run one statement and see whether (and by what) the database
// refused it. Header-only; for test binaries that link vch_storage.
#ifndef VCH_TESTS_TESTING_SQL_REFUSALS_H_
#define VCH_TESTS_TESTING_SQL_REFUSALS_H_

#include <gmock/gmock.h>

#include <pqxx/pqxx>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/pg_error.h"

namespace vch::testing {

// Runs `sql` in a transaction of its own and commits. Returns "" if the database accepted it,
// else "[SQLSTATE] message" of the error that refused it (the transaction is rolled back).
inline std::string SqlErrorOf(pqxx::connection_base& conn, const std::string& sql) {
  try {
    pqxx::work tx(conn);
    tx.exec(sql);
    tx.commit();
    return "";
  } catch (const pqxx::sql_error& e) {
    return absl::StrCat("[", e.sqlstate(), "] ", storage::OneLine(e.what()));
  }
}

// The statement was accepted (SqlErrorOf returned no error).
MATCHER(Accepted, "") {
  if (arg.empty()) return true;
  *result_listener << "refused with: " << arg;
  return false;
}

// The statement was refused by exactly the named constraint.
MATCHER_P(RefusedBy, constraint, "") {
  if (!arg.empty() && storage::ConstraintNameFromMessage(arg) == constraint) return true;
  if (arg.empty()) {
    *result_listener << "the statement was accepted";
  } else {
    *result_listener << "refused with: " << arg;
  }
  return false;
}

// The statement was refused by one of our triggers: SQLSTATE `sqlstate`, message `text`.
MATCHER_P2(RefusedByTrigger, sqlstate, text, "") {
  if (absl::StartsWith(arg, absl::StrCat("[", sqlstate, "] ")) &&
      arg.find(text) != std::string::npos) {
    return true;
  }
  if (arg.empty()) {
    *result_listener << "the statement was accepted";
  } else {
    *result_listener << "refused with: " << arg;
  }
  return false;
}

}  // namespace vch::testing

#endif  // VCH_TESTS_TESTING_SQL_REFUSALS_H_
