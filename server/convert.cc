#include "server/convert.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/sha256.h"

namespace vch::server {
namespace {

// google.protobuf.Timestamp's valid range: 0001-01-01 .. 9999-12-31T23:59:59.999999999Z.
constexpr int64_t kMinTimestampSeconds = -62135596800;
constexpr int64_t kMaxTimestampSeconds = 253402300799;

}  // namespace

bool IsValidTimestamp(const google::protobuf::Timestamp& t) {
  return t.seconds() >= kMinTimestampSeconds && t.seconds() <= kMaxTimestampSeconds &&
         t.nanos() >= 0 && t.nanos() <= 999999999;
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

void ToTimestamp(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t seconds = absl::ToUnixSeconds(t);  // rounds toward the infinite past
  out->set_seconds(seconds);
  out->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(seconds))));
}

std::optional<absl::Time> RequiredTime(const google::protobuf::Timestamp& t, bool has,
                                       absl::string_view field, ViolationCollector& violations) {
  if (!has) {
    violations.Add(std::string(field), "required");
    return std::nullopt;
  }
  if (!IsValidTimestamp(t)) {
    violations.Add(std::string(field), "is not a valid timestamp");
    return std::nullopt;
  }
  return FromTimestamp(t);
}

int PageSize(int32_t requested, ViolationCollector& violations) {
  if (requested < 0) {
    violations.Add("page_size", "must not be negative");
    return kDefaultPageSize;
  }
  if (requested == 0) return kDefaultPageSize;
  return std::min(requested, kMaxPageSize);
}

std::string EncodePageToken(absl::string_view cursor, absl::string_view filters) {
  return absl::WebSafeBase64Escape(absl::StrCat("v1\x1f", filters, "\x1f", cursor));
}

std::optional<std::string> DecodePageToken(absl::string_view token, absl::string_view filters,
                                           ViolationCollector& violations) {
  if (token.empty()) return std::string();
  std::string raw;
  if (absl::WebSafeBase64Unescape(token, &raw)) {
    std::vector<std::string> parts = absl::StrSplit(raw, absl::MaxSplits('\x1f', 2));
    if (parts.size() == 3 && parts[0] == "v1") {
      if (parts[1] == filters) return parts[2];
      violations.Add("page_token", "was issued for different filters; keep them while paging");
      return std::nullopt;
    }
  }
  violations.Add("page_token", "is not a page token returned by this method");
  return std::nullopt;
}

storage::IdempotencyKey IdempotencyKeyFor(const policy::Principal& principal,
                                          absl::string_view method,
                                          const google::protobuf::Message& request,
                                          const std::string& request_id) {
  std::unique_ptr<google::protobuf::Message> copy(request.New());
  copy->CopyFrom(request);
  if (const auto* field = copy->GetDescriptor()->FindFieldByName("request_id")) {
    copy->GetReflection()->ClearField(copy.get(), field);
  }
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    copy->SerializeToCodedStream(&coded);
  }
  return {
      .scope = absl::StrCat(policy::RoleName(principal.role), ":", principal.tenant, "/", method),
      .request_id = request_id,
      .request_hash = Sha256Hex(bytes)};
}

void CheckSlug(absl::string_view value, absl::string_view field, ViolationCollector& violations) {
  bool ok = value.size() >= 2 && value.size() <= 63;
  for (size_t i = 0; ok && i < value.size(); ++i) {
    const char c = value[i];
    ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0);
  }
  if (!ok) {
    violations.Add(std::string(field),
                   "must be 2-63 characters of lower-case letters, digits and '-', not starting "
                   "with '-'");
  }
}

absl::Status ParseStored(const std::string& bytes, google::protobuf::Message* response) {
  if (!response->ParseFromString(bytes)) return absl::InternalError("stored response unreadable");
  return absl::OkStatus();
}

absl::Status PermissionDenied(absl::string_view message) {
  return DomainError(absl::StatusCode::kPermissionDenied, "PERMISSION_DENIED", message);
}

}  // namespace vch::server
