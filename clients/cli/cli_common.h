// What every vch command shares: global options, flag checks, error printing, request ids,
// and the formatting of money, times and messages.
#ifndef VCH_CLIENTS_CLI_CLI_COMMON_H_
#define VCH_CLIENTS_CLI_CLI_COMMON_H_

#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace vch::cli {

struct Options {
  std::string server = "127.0.0.1:50051";
  std::string principal;
  int timeout_ms = 10000;
  bool json = false;
};

// Flags that belong to one command (--account, --kind, ...), by name without the dashes.
using CommandFlags = std::map<std::string, std::string>;

// The positional arguments and flags of one command, and where to send it.
struct Invocation {
  std::shared_ptr<grpc::Channel> channel;
  Options options;
  std::vector<std::string> args;
  CommandFlags flags;
};

// Prints "vch: message (see vch help)" to stderr; returns exit code 2.
int Usage(const std::string& message);

// Prints a failed call: code, message, and the ErrorInfo reason / field violations if present.
// With a request id (mutating calls), also prints it, so the call can be retried with it.
// Returns exit code 1.
int PrintError(const grpc::Status& status, bool json, const std::string& request_id = "");

// Deadline and development-mode principal of one call.
void PrepareContext(grpc::ClientContext* context, const Options& options);

// Usage error unless every flag given is one the command takes.
bool OnlyFlags(const CommandFlags& flags, const std::set<std::string>& allowed,
               const std::string& command, int* exit_code);

// The flag's value, or nullopt when it was not given.
std::optional<std::string> Flag(const CommandFlags& flags, const std::string& name);

// A random UUID v4 from /dev/urandom ("" if it cannot be read).
std::string NewRequestId();

// The --request-id flag if given (checked: 1..128 characters), else a new UUID. Returns false
// with *exit_code set on a usage error.
bool RequestIdFrom(const CommandFlags& flags, std::string* request_id, int* exit_code);

// "2800.00" for 280000 fen; exact for every int64.
std::string FormatCny(int64_t fen);
// "80.00 %" for 8000 basis points.
std::string FormatBps(int32_t bps);

absl::Time FromTimestamp(const google::protobuf::Timestamp& t);
// RFC 3339 in UTC with a "Z" and only the fractional digits needed, as in vchd's logs.
std::string FormatUtc(absl::Time t);
// FormatUtc of the timestamp, or "" when it is unset.
std::string FormatTimestamp(bool set, const google::protobuf::Timestamp& t);

// The enum value's name without its prefix: "WALLET" for ACCOUNT_KIND_WALLET.
std::string ShortName(const std::string& name, absl::string_view prefix);

// The message as JSON (proto field names, every field printed, int64 as strings as the proto3
// JSON mapping has it), on one line.
std::string MessageJson(const google::protobuf::Message& message);

// Prints the response of a read: the message as JSON.
void PrintMessageJson(const google::protobuf::Message& message);
// Prints the response of a mutating call: the message as JSON with a top-level "request_id"
// added (no response message has a field of that name).
void PrintMutationJson(const google::protobuf::Message& message, const std::string& request_id);

// Builds one JSON object field by field, in order.
class JsonObject {
 public:
  JsonObject& String(absl::string_view key, absl::string_view value);
  JsonObject& Int(absl::string_view key, int64_t value);
  JsonObject& Bool(absl::string_view key, bool value);
  // `json` must already be valid JSON (a nested object or array).
  JsonObject& Raw(absl::string_view key, absl::string_view json);
  std::string Finish() const { return out_ + "}"; }

 private:
  void Key(absl::string_view key);
  std::string out_ = "{";
};

// --- Shared by the command groups (workflow_commands.cc, capacity_commands.cc). ---

// One "label  value" line of a details block.
void Line(absl::string_view label, absl::string_view value);

// "2800.00 CNY" for 280000 fen.
std::string Cny(int64_t fen);

// The enum value's short name ("SME"), or its number when this client does not know it.
template <typename NameFn>
std::string EnumName(int value, NameFn name, absl::string_view prefix) {
  std::string full = name(value);
  return full.empty() ? absl::StrCat(value) : ShortName(full, prefix);
}

// "more: --page-token T" under a table when there is a next page.
void PrintNextPage(const std::string& token);

// Makes one call and prints its outcome: the error (exit 1), or the response as JSON or text.
// `request_id` is set for mutating calls, which print it with the result.
template <typename Response, typename Rpc, typename Text>
int Finish(const Invocation& in, const std::string& request_id, Rpc rpc, Text print_text) {
  grpc::ClientContext context;
  PrepareContext(&context, in.options);
  Response response;
  grpc::Status status = rpc(&context, &response);
  if (!status.ok()) return PrintError(status, in.options.json, request_id);
  if (in.options.json) {
    if (request_id.empty()) {
      PrintMessageJson(response);
    } else {
      PrintMutationJson(response, request_id);
    }
    return 0;
  }
  print_text(response);
  if (!request_id.empty()) Line("request_id", request_id);
  return 0;
}

// Checks the flags; says which are missing. Returns false with *code set on a usage error.
bool Flags(const Invocation& in, const std::string& command, const std::set<std::string>& allowed,
           const std::vector<std::string>& required, int* code);

bool ParseInt64Flag(const Invocation& in, const std::string& name, int64_t* out, int* code);

bool ParsePageFlags(const Invocation& in, int32_t* page_size, std::string* page_token, int* code);

// Parses an enum flag given by its short name in any case ("city", "RESEARCH"), or its full
// name; `aliases` maps short forms to short names.
template <typename Enum, typename ParseFn>
bool ParseEnumFlag(const std::string& flag, const std::string& text, absl::string_view prefix,
                   ParseFn parse, const std::map<std::string, std::string>& aliases,
                   absl::string_view choices, Enum* out, int* code) {
  std::string upper = absl::StrReplaceAll(absl::AsciiStrToUpper(text), {{"-", "_"}});
  if (auto it = aliases.find(upper); it != aliases.end()) upper = it->second;
  const std::string full = absl::StartsWith(upper, prefix) ? upper : absl::StrCat(prefix, upper);
  if (!parse(full, out) || static_cast<int>(*out) == 0) {
    *code = Usage(absl::StrCat("--", flag, " must be one of ", choices, ", got '", text, "'"));
    return false;
  }
  return true;
}

}  // namespace vch::cli

#endif  // VCH_CLIENTS_CLI_CLI_COMMON_H_
