#include "clients/cli/cli_common.h"

#include <google/protobuf/util/json_util.h>

#include <chrono>
#include <cstdio>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/json_log.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace vch::cli {

int Usage(const std::string& message) {
  std::fprintf(stderr, "vch: %s (see vch help)\n", message.c_str());
  return 2;
}

int PrintError(const grpc::Status& status, bool json, const std::string& request_id) {
  std::string reason;
  std::vector<std::pair<std::string, std::string>> violations;
  google::rpc::Status details;
  if (!status.error_details().empty() && details.ParseFromString(status.error_details())) {
    for (const auto& any : details.details()) {
      google::rpc::ErrorInfo info;
      google::rpc::BadRequest bad;
      if (any.UnpackTo(&info)) reason = info.reason();
      if (any.UnpackTo(&bad)) {
        for (const auto& v : bad.field_violations())
          violations.emplace_back(v.field(), v.description());
      }
    }
  }
  if (json) {
    std::string out = absl::StrCat("{\"error\":{\"code\":", static_cast<int>(status.error_code()),
                                   ",\"message\":");
    vch::AppendJsonString(&out, status.error_message());
    out += ",\"reason\":";
    vch::AppendJsonString(&out, reason);
    out += ",\"field_violations\":[";
    for (size_t i = 0; i < violations.size(); ++i) {
      out += i ? ",{\"field\":" : "{\"field\":";
      vch::AppendJsonString(&out, violations[i].first);
      out += ",\"description\":";
      vch::AppendJsonString(&out, violations[i].second);
      out += "}";
    }
    out += "]";
    if (!request_id.empty()) {
      out += ",\"request_id\":";
      vch::AppendJsonString(&out, request_id);
    }
    out += "}}\n";
    std::fputs(out.c_str(), stdout);
  } else {
    std::fprintf(stderr, "vch: error %d: %s%s\n", static_cast<int>(status.error_code()),
                 status.error_message().c_str(),
                 reason.empty() ? "" : absl::StrCat(" [", reason, "]").c_str());
    for (const auto& [field, description] : violations) {
      std::fprintf(stderr, "  %s: %s\n", field.c_str(), description.c_str());
    }
    if (!request_id.empty()) {
      // After these the call may or may not have taken effect; the same request id tells.
      const grpc::StatusCode code = status.error_code();
      const bool retryable =
          code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED ||
          code == grpc::StatusCode::ABORTED || code == grpc::StatusCode::UNKNOWN ||
          code == grpc::StatusCode::RESOURCE_EXHAUSTED;
      std::fprintf(stderr, "  request_id: %s%s\n", request_id.c_str(),
                   retryable
                       ? absl::StrCat(" (retry safely with --request-id ", request_id, ")").c_str()
                       : "");
    }
  }
  return 1;
}

void PrepareContext(grpc::ClientContext* context, const Options& options) {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(options.timeout_ms));
  if (!options.principal.empty()) context->AddMetadata("x-vch-principal", options.principal);
}

bool OnlyFlags(const CommandFlags& flags, const std::set<std::string>& allowed,
               const std::string& command, int* exit_code) {
  for (const auto& [name, value] : flags) {
    if (!allowed.contains(name)) {
      *exit_code = Usage(absl::StrCat(command, " does not take --", name));
      return false;
    }
  }
  return true;
}

std::optional<std::string> Flag(const CommandFlags& flags, const std::string& name) {
  auto it = flags.find(name);
  if (it == flags.end()) return std::nullopt;
  return it->second;
}

std::string NewRequestId() {
  unsigned char bytes[16];
  std::FILE* random = std::fopen("/dev/urandom", "rb");
  if (random == nullptr) return "";
  const size_t got = std::fread(bytes, 1, sizeof(bytes), random);
  std::fclose(random);
  if (got != sizeof(bytes)) return "";
  bytes[6] = (bytes[6] & 0x0f) | 0x40;  // version 4
  bytes[8] = (bytes[8] & 0x3f) | 0x80;  // variant 10
  std::string out;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    absl::StrAppendFormat(&out, "%02x", bytes[i]);
  }
  return out;
}

bool RequestIdFrom(const CommandFlags& flags, std::string* request_id, int* exit_code) {
  if (std::optional<std::string> given = Flag(flags, "request-id")) {
    if (given->empty() || given->size() > 128) {
      *exit_code = Usage("--request-id needs 1 to 128 characters");
      return false;
    }
    *request_id = *given;
    return true;
  }
  *request_id = NewRequestId();
  if (request_id->empty()) {
    std::fprintf(stderr, "vch: cannot read /dev/urandom for a request id; pass --request-id\n");
    *exit_code = 1;
    return false;
  }
  return true;
}

std::string FormatCny(int64_t fen) {
  const uint64_t magnitude = fen < 0 ? 0 - static_cast<uint64_t>(fen) : static_cast<uint64_t>(fen);
  const uint64_t cents = magnitude % 100;
  return absl::StrCat(fen < 0 ? "-" : "", magnitude / 100, cents < 10 ? ".0" : ".", cents);
}

std::string FormatBps(int32_t bps) {
  // Basis points are hundredths of a percent: the same two decimals as fen.
  return absl::StrCat(FormatCny(bps), " %");
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

std::string FormatUtc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

std::string FormatTimestamp(bool set, const google::protobuf::Timestamp& t) {
  return set ? FormatUtc(FromTimestamp(t)) : std::string();
}

std::string ShortName(const std::string& name, absl::string_view prefix) {
  return absl::StartsWith(name, prefix) ? name.substr(prefix.size()) : name;
}

std::string MessageJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) {
    // Only malformed messages (e.g. a timestamp out of range) fail; say so in valid JSON.
    out = "{\"error\":{\"message\":\"the response cannot be printed as JSON\"}}";
  }
  return out;
}

void PrintMessageJson(const google::protobuf::Message& message) {
  std::printf("%s\n", MessageJson(message).c_str());
}

void PrintMutationJson(const google::protobuf::Message& message, const std::string& request_id) {
  const std::string body = MessageJson(message);
  std::string out = "{\"request_id\":";
  vch::AppendJsonString(&out, request_id);
  // body is "{...}": splice its fields in after the request id.
  if (body.size() > 2) {
    absl::StrAppend(&out, ",", absl::string_view(body).substr(1));
  } else {
    out += "}";
  }
  std::printf("%s\n", out.c_str());
}

JsonObject& JsonObject::String(absl::string_view key, absl::string_view value) {
  Key(key);
  vch::AppendJsonString(&out_, value);
  return *this;
}

JsonObject& JsonObject::Int(absl::string_view key, int64_t value) {
  Key(key);
  absl::StrAppend(&out_, value);
  return *this;
}

JsonObject& JsonObject::Bool(absl::string_view key, bool value) {
  Key(key);
  out_ += value ? "true" : "false";
  return *this;
}

JsonObject& JsonObject::Raw(absl::string_view key, absl::string_view json) {
  Key(key);
  absl::StrAppend(&out_, json);
  return *this;
}

void JsonObject::Key(absl::string_view key) {
  if (out_.size() > 1) out_ += ",";
  vch::AppendJsonString(&out_, key);
  out_ += ":";
}

void Line(absl::string_view label, absl::string_view value) {
  std::printf("%-19s %s\n", std::string(label).c_str(), std::string(value).c_str());
}

std::string Cny(int64_t fen) { return absl::StrCat(FormatCny(fen), " CNY"); }

void PrintNextPage(const std::string& token) {
  if (!token.empty()) std::printf("more: --page-token %s\n", token.c_str());
}

bool Flags(const Invocation& in, const std::string& command, const std::set<std::string>& allowed,
           const std::vector<std::string>& required, int* code) {
  if (!OnlyFlags(in.flags, allowed, command, code)) return false;
  for (const std::string& name : required) {
    if (!in.flags.contains(name)) {
      *code = Usage(absl::StrCat(command, " needs --", name));
      return false;
    }
  }
  return true;
}

bool ParseInt64Flag(const Invocation& in, const std::string& name, int64_t* out, int* code) {
  const std::string text = in.flags.at(name);
  if (!absl::SimpleAtoi(text, out)) {
    *code = Usage(absl::StrCat("--", name, " needs an integer, got '", text, "'"));
    return false;
  }
  return true;
}

bool ParsePageFlags(const Invocation& in, int32_t* page_size, std::string* page_token, int* code) {
  if (std::optional<std::string> size = Flag(in.flags, "page-size")) {
    if (!absl::SimpleAtoi(*size, page_size) || *page_size < 0) {
      *code = Usage("--page-size needs a number >= 0");
      return false;
    }
  }
  *page_token = Flag(in.flags, "page-token").value_or("");
  return true;
}

}  // namespace vch::cli
