// Conversions shared by the vch.v1 handlers: timestamps, opaque page tokens and the
// idempotency key of a mutating request.
#ifndef VCH_SERVER_CONVERT_H_
#define VCH_SERVER_CONVERT_H_

#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/errors.h"
#include "policy/principal.h"
#include "storage/idempotency.h"

namespace vch::server {

// Requests past this many rows per page are served this many (AIP-158 coerces).
inline constexpr int kMaxPageSize = 1000;
inline constexpr int kDefaultPageSize = 100;

bool IsValidTimestamp(const google::protobuf::Timestamp& t);
// Only for timestamps that passed IsValidTimestamp.
absl::Time FromTimestamp(const google::protobuf::Timestamp& t);
void ToTimestamp(absl::Time t, google::protobuf::Timestamp* out);

// Checks a required timestamp field; adds a violation and returns nullopt when unset/invalid.
std::optional<absl::Time> RequiredTime(const google::protobuf::Timestamp& t, bool has,
                                       absl::string_view field, ViolationCollector& violations);

// page_size 0 -> default; > max -> max; < 0 -> violation.
int PageSize(int32_t requested, ViolationCollector& violations);

// An opaque token carrying the last key of a page and a fingerprint of the request's filters.
std::string EncodePageToken(absl::string_view cursor, absl::string_view filters);
// The cursor ("" for the first page) or nullopt with a violation on page_token.
std::optional<std::string> DecodePageToken(absl::string_view token, absl::string_view filters,
                                           ViolationCollector& violations);

// The idempotency key of a mutating request: scoped by the caller and the method, hashed over
// the request's deterministic serialization without its request_id field.
storage::IdempotencyKey IdempotencyKeyFor(const policy::Principal& principal,
                                          absl::string_view method,
                                          const google::protobuf::Message& request,
                                          const std::string& request_id);

// A lower-case slug id ([a-z0-9][a-z0-9-]{1,62}); adds a violation otherwise.
void CheckSlug(absl::string_view value, absl::string_view field, ViolationCollector& violations);

absl::Status PermissionDenied(absl::string_view message);

// Parses the response bytes a storage mutation returned (fresh or replayed) into `response`.
absl::Status ParseStored(const std::string& bytes, google::protobuf::Message* response);

}  // namespace vch::server

#endif  // VCH_SERVER_CONVERT_H_
