#include "storage/pg_error.h"

#include <pqxx/except>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "base/errors.h"

namespace vch::storage {
namespace {

// Named database constraints whose violation is a domain error with its own reason.
// Later migrations add their constraints here.
struct ConstraintReason {
  absl::string_view constraint;
  absl::StatusCode code;
  absl::string_view reason;
};
constexpr ConstraintReason kConstraintReasons[] = {
    {"idempotency_keys_pkey", absl::StatusCode::kAlreadyExists, "IDEMPOTENCY_KEY_REUSED"},
    {"accounts_no_overdraft", absl::StatusCode::kFailedPrecondition, "INSUFFICIENT_FUNDS"},
    {"issuers_pkey", absl::StatusCode::kAlreadyExists, "ISSUER_EXISTS"},
    {"programs_pkey", absl::StatusCode::kAlreadyExists, "PROGRAM_EXISTS"},
    {"enterprises_pkey", absl::StatusCode::kAlreadyExists, "ENTERPRISE_EXISTS"},
    {"enterprises_uscc_valid", absl::StatusCode::kInvalidArgument, "USCC_INVALID"},
    {"program_enterprises_within_cap", absl::StatusCode::kFailedPrecondition, "CAP_EXCEEDED"},
    {"clawbacks_reason_nonempty", absl::StatusCode::kInvalidArgument, "REASON_REQUIRED"},
    {"applications_rejection_has_reason", absl::StatusCode::kInvalidArgument, "REASON_REQUIRED"},
    {"datacenters_pkey", absl::StatusCode::kAlreadyExists, "DATACENTER_EXISTS"},
    {"gpu_pools_pkey", absl::StatusCode::kAlreadyExists, "POOL_EXISTS"},
    {"gpu_pools_free_within_total", absl::StatusCode::kInvalidArgument, "GPUS_FREE_EXCEEDS_TOTAL"},
    {"redemptions_request_once", absl::StatusCode::kAlreadyExists, "IDEMPOTENCY_KEY_REUSED"},
    {"usage_records_pkey", absl::StatusCode::kAlreadyExists, "USAGE_ID_REUSED"},
    {"usage_records_one_final", absl::StatusCode::kFailedPrecondition, "REDEMPTION_SETTLED"},
    {"program_monthly_spend_within_limit", absl::StatusCode::kFailedPrecondition,
     "MONTHLY_LIMIT_REACHED"},
    {"payout_lines_paid_once", absl::StatusCode::kAlreadyExists, "ALREADY_PAID"},
};

// Our triggers raise SQLSTATE class "VC" with a message "REASON: text".
constexpr absl::string_view kVchSqlStatePrefix = "VC";

}  // namespace

std::string OneLine(absl::string_view message) {
  std::string flat = absl::StrReplaceAll(absl::StripAsciiWhitespace(message), {{"\n", " "}});
  return flat;
}

std::string ConstraintNameFromMessage(absl::string_view message) {
  size_t at = message.find("constraint \"");
  if (at == absl::string_view::npos) return "";
  at += absl::string_view("constraint \"").size();
  size_t end = message.find('"', at);
  if (end == absl::string_view::npos) return "";
  return std::string(message.substr(at, end - at));
}

absl::Status StatusFromException(const std::exception& e) {
  const std::string message = OneLine(e.what());
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
    return DomainError(absl::StatusCode::kUnavailable, "OUTCOME_UNKNOWN",
                       "database connection lost during commit: outcome unknown");
  }
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    return DomainError(absl::StatusCode::kUnavailable, "DATABASE_UNAVAILABLE",
                       absl::StrCat("database unavailable: ", message));
  }
  if (dynamic_cast<const pqxx::serialization_failure*>(&e) != nullptr ||
      dynamic_cast<const pqxx::deadlock_detected*>(&e) != nullptr) {
    return DomainError(absl::StatusCode::kAborted, "CONCURRENT_UPDATE",
                       "concurrent update; retry the request");
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e); sql != nullptr) {
    const std::string& state = sql->sqlstate();
    if (state == "57014") {
      return DomainError(absl::StatusCode::kDeadlineExceeded, "DEADLINE_EXCEEDED",
                         "database statement cancelled by its deadline");
    }
    if (absl::StartsWith(state, kVchSqlStatePrefix)) {
      absl::string_view text = message;
      absl::ConsumePrefix(&text, "ERROR:");
      text = absl::StripLeadingAsciiWhitespace(text);
      size_t colon = text.find(':');
      std::string reason(colon == absl::string_view::npos ? "FAILED_PRECONDITION"
                                                          : text.substr(0, colon));
      return DomainError(absl::StatusCode::kFailedPrecondition, reason, text);
    }
    const std::string constraint = ConstraintNameFromMessage(message);
    for (const ConstraintReason& known : kConstraintReasons) {
      if (constraint == known.constraint) {
        return DomainError(known.code, known.reason,
                           absl::StrCat("violates constraint ", constraint));
      }
    }
    if (dynamic_cast<const pqxx::unique_violation*>(&e) != nullptr) {
      return DomainError(absl::StatusCode::kAlreadyExists, "ALREADY_EXISTS",
                         absl::StrCat("already exists (", constraint, ")"));
    }
    if (dynamic_cast<const pqxx::integrity_constraint_violation*>(&e) != nullptr) {
      return DomainError(absl::StatusCode::kFailedPrecondition, "CONSTRAINT_VIOLATED",
                         absl::StrCat("violates constraint ", constraint));
    }
    if (absl::StartsWith(state, "08") || absl::StartsWith(state, "57P")) {
      return DomainError(absl::StatusCode::kUnavailable, "DATABASE_UNAVAILABLE",
                         absl::StrCat("database unavailable: ", message));
    }
  }
  return absl::InternalError(absl::StrCat("database error: ", message));
}

absl::Status StatusFromCurrentException() {
  try {
    throw;
  } catch (const std::exception& e) {
    return StatusFromException(e);
  } catch (...) {
    return absl::InternalError("unknown exception");
  }
}

}  // namespace vch::storage
