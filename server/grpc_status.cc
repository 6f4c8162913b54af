#include "server/grpc_status.h"

#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/errors.h"
#include "base/json_log.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace vch::server {
namespace {

std::string NewIncidentId() {
  static std::atomic<uint64_t> counter{0};
  return absl::StrCat(absl::ToUnixMicros(absl::Now()), "-", counter.fetch_add(1));
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status, absl::string_view method,
                          const policy::Principal* principal) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(status.code());
  std::string reason = ReasonOf(status);
  if (reason.empty()) reason = absl::StatusCodeToString(status.code());
  // absl's names are "INVALID_ARGUMENT"-style already except for a few spellings.
  for (char& c : reason) c = c == ' ' ? '_' : static_cast<char>(std::toupper(c));

  std::string message(status.message());
  const bool scrub = status.code() == absl::StatusCode::kInternal ||
                     status.code() == absl::StatusCode::kUnknown ||
                     status.code() == absl::StatusCode::kDataLoss;
  std::string incident;
  if (scrub) {
    incident = NewIncidentId();
    message = absl::StrCat("internal error (incident ", incident, ")");
  }
  Log(scrub ? LogLevel::kError : LogLevel::kInfo, "rpc failed",
      {{"method", method},
       {"code", absl::StatusCodeToString(status.code())},
       {"reason", reason},
       {"error", status.message()},
       {"incident", incident},
       {"principal", principal == nullptr ? absl::string_view("-") : principal->subject}});

  google::rpc::Status details;
  details.set_code(static_cast<int>(code));
  details.set_message(message);
  google::rpc::ErrorInfo info;
  info.set_reason(reason);
  info.set_domain(std::string(kErrorDomain));
  if (!incident.empty()) (*info.mutable_metadata())["incident"] = incident;
  details.add_details()->PackFrom(info);
  std::vector<FieldViolation> violations = FieldViolationsOf(status);
  if (!violations.empty()) {
    google::rpc::BadRequest bad;
    for (const FieldViolation& v : violations) {
      auto* out = bad.add_field_violations();
      out->set_field(v.field);
      out->set_description(v.description);
    }
    details.add_details()->PackFrom(bad);
  }
  return grpc::Status(code, message, details.SerializeAsString());
}

}  // namespace vch::server
