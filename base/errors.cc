#include "base/errors.h"

#include <optional>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace vch {
namespace {

// Payload type URLs private to vch; server/ converts them to google.rpc details.
constexpr absl::string_view kReasonPayload = "vch.dev/reason";
constexpr absl::string_view kViolationsPayload = "vch.dev/field_violations";

// Violations travel as "field\x1f" "description\x1e" records: both separators are
// control characters that never occur in field paths or our descriptions.
constexpr char kUnitSep = '\x1f';
constexpr char kRecordSep = '\x1e';

}  // namespace

absl::Status DomainError(absl::StatusCode code, absl::string_view reason,
                         absl::string_view message) {
  absl::Status status(code, message);
  if (!reason.empty()) status.SetPayload(kReasonPayload, absl::Cord(reason));
  return status;
}

absl::Status InvalidArgument(std::vector<FieldViolation> violations, absl::string_view reason) {
  std::string message;
  std::string encoded;
  for (const FieldViolation& v : violations) {
    if (!message.empty()) message += "; ";
    absl::StrAppend(&message, v.field, ": ", v.description);
    absl::StrAppend(&encoded, v.field, std::string(1, kUnitSep), v.description,
                    std::string(1, kRecordSep));
  }
  absl::Status status = DomainError(absl::StatusCode::kInvalidArgument, reason, message);
  status.SetPayload(kViolationsPayload, absl::Cord(encoded));
  return status;
}

std::string ReasonOf(const absl::Status& status) {
  auto payload = status.GetPayload(kReasonPayload);
  return payload ? std::string(*payload) : std::string();
}

std::vector<FieldViolation> FieldViolationsOf(const absl::Status& status) {
  std::vector<FieldViolation> out;
  auto payload = status.GetPayload(kViolationsPayload);
  if (!payload) return out;
  std::string encoded(*payload);
  for (absl::string_view record : absl::StrSplit(encoded, kRecordSep, absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> parts =
        absl::StrSplit(record, absl::MaxSplits(kUnitSep, 1));
    out.push_back({std::string(parts.first), std::string(parts.second)});
  }
  return out;
}

absl::Status ViolationCollector::Finish(absl::string_view reason) const {
  if (violations_.empty()) return absl::OkStatus();
  return InvalidArgument(violations_, reason);
}

}  // namespace vch
