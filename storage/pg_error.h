// The one place where pqxx exceptions become absl::Status (see docs/ARCHITECTURE.md).
#ifndef VCH_STORAGE_PG_ERROR_H_
#define VCH_STORAGE_PG_ERROR_H_

#include <exception>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace vch::storage {

// Maps an exception thrown by pqxx (or the standard library) to a Status:
// - unique violation -> ALREADY_EXISTS; named CHECK / exclusion / trigger errors -> the domain
//   error registered for the constraint name (FAILED_PRECONDITION by default);
// - serialization failure / deadlock -> ABORTED; statement timeout -> DEADLINE_EXCEEDED;
// - broken connection -> UNAVAILABLE; commit of unknown outcome -> UNAVAILABLE "outcome unknown";
// - anything else -> INTERNAL (the message stays in the server log, never on the wire).
absl::Status StatusFromException(const std::exception& e);

// Same, for the exception currently being handled (call only inside a catch block).
absl::Status StatusFromCurrentException();

// The constraint name quoted in a PostgreSQL error message ("... constraint \"name\""), or "".
std::string ConstraintNameFromMessage(absl::string_view message);

// A libpq/pqxx message flattened to one line (libpq messages end in newlines).
std::string OneLine(absl::string_view message);

}  // namespace vch::storage

#endif  // VCH_STORAGE_PG_ERROR_H_
