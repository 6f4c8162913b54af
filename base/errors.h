// Domain errors: an absl::Status with a stable reason (ErrorInfo.reason on the wire) and,
// for INVALID_ARGUMENT, field violations. Layers below server/ build errors only through
// these functions; server/ turns them into google.rpc details in one place.
#ifndef VCH_BASE_ERRORS_H_
#define VCH_BASE_ERRORS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace vch {

// One problem with one request field. `field` is a proto field path ("program.ratio_bps").
struct FieldViolation {
  std::string field;
  std::string description;
  friend bool operator==(const FieldViolation&, const FieldViolation&) = default;
};

// A status with `code`, a stable upper-snake `reason` (e.g. "BUDGET_EXHAUSTED") and a
// human message.
absl::Status DomainError(absl::StatusCode code, absl::string_view reason,
                         absl::string_view message);

// INVALID_ARGUMENT with reason "INVALID_ARGUMENT" (or `reason`) and one violation per problem.
// `violations` must not be empty.
absl::Status InvalidArgument(std::vector<FieldViolation> violations,
                             absl::string_view reason = "INVALID_ARGUMENT");

// The reason attached by DomainError/InvalidArgument, or "" if none.
std::string ReasonOf(const absl::Status& status);

// The field violations attached by InvalidArgument, in order.
std::vector<FieldViolation> FieldViolationsOf(const absl::Status& status);

// Collects field violations while validating a request; Finish() is OK when none were added.
class ViolationCollector {
 public:
  void Add(std::string field, std::string description) {
    violations_.push_back({std::move(field), std::move(description)});
  }
  bool empty() const { return violations_.empty(); }
  absl::Status Finish(absl::string_view reason = "INVALID_ARGUMENT") const;

 private:
  std::vector<FieldViolation> violations_;
};

}  // namespace vch

#endif  // VCH_BASE_ERRORS_H_
