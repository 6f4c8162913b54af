// vch: command-line client of vchd. Human-readable output by default, --json for scripts.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/json_log.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "vch/v1/identity.grpc.pb.h"

namespace {

constexpr char kHelp[] =
    "vch - command-line client of the vch compute-voucher clearinghouse\n"
    "\n"
    "Usage: vch [global options] COMMAND [args]\n"
    "\n"
    "Commands:\n"
    "  health            the server's grpc.health.v1 status (exit 0 only when SERVING)\n"
    "  whoami            the principal the server authenticates you as\n"
    "  help              this text\n"
    "\n"
    "Global options (each also read from its environment variable):\n"
    "  --server=HOST:PORT    VCH_SERVER     vchd address (default 127.0.0.1:50051)\n"
    "  --principal=P         VCH_PRINCIPAL  development-mode principal ROLE[:tenant][/subject],\n"
    "                                       e.g. PLATFORM_ADMIN or ENTERPRISE:91310000MA1FL4XY2K\n"
    "  --timeout-ms=MS                      per-call deadline (default 10000)\n"
    "  --json                               print JSON instead of text\n"
    "\n"
    "Exit codes: 0 ok, 1 the call failed (the error and its reason are printed), 2 bad usage.\n";

struct Options {
  std::string server = "127.0.0.1:50051";
  std::string principal;
  int timeout_ms = 10000;
  bool json = false;
};

int Usage(const std::string& message) {
  std::fprintf(stderr, "vch: %s (see vch help)\n", message.c_str());
  return 2;
}

// Prints a failed call: code, message, and the ErrorInfo reason / field violations if present.
int PrintError(const grpc::Status& status, bool json) {
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
    out += "]}}\n";
    std::fputs(out.c_str(), stdout);
  } else {
    std::fprintf(stderr, "vch: error %d: %s%s\n", static_cast<int>(status.error_code()),
                 status.error_message().c_str(),
                 reason.empty() ? "" : absl::StrCat(" [", reason, "]").c_str());
    for (const auto& [field, description] : violations) {
      std::fprintf(stderr, "  %s: %s\n", field.c_str(), description.c_str());
    }
  }
  return 1;
}

void PrepareContext(grpc::ClientContext* context, const Options& options) {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(options.timeout_ms));
  if (!options.principal.empty()) context->AddMetadata("x-vch-principal", options.principal);
}

int Health(const std::shared_ptr<grpc::Channel>& channel, const Options& options) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  PrepareContext(&context, options);
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return PrintError(status, options.json);
  const std::string name =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
  if (options.json) {
    std::printf("{\"status\":\"%s\"}\n", name.c_str());
  } else {
    std::printf("%s\n", name.c_str());
  }
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

int WhoAmI(const std::shared_ptr<grpc::Channel>& channel, const Options& options) {
  auto stub = vch::v1::IdentityService::NewStub(channel);
  grpc::ClientContext context;
  PrepareContext(&context, options);
  vch::v1::WhoAmIResponse response;
  grpc::Status status = stub->WhoAmI(&context, vch::v1::WhoAmIRequest(), &response);
  if (!status.ok()) return PrintError(status, options.json);
  std::string role = vch::v1::Role_Name(response.principal().role());
  if (absl::StartsWith(role, "ROLE_")) role = role.substr(5);
  if (options.json) {
    std::string out = "{\"role\":";
    vch::AppendJsonString(&out, role);
    out += ",\"tenant\":";
    vch::AppendJsonString(&out, response.principal().tenant());
    out += ",\"subject\":";
    vch::AppendJsonString(&out, response.principal().subject());
    absl::StrAppend(&out, ",\"schema_version\":", response.schema_version(),
                    ",\"server_version\":");
    vch::AppendJsonString(&out, response.server_version());
    out += "}\n";
    std::fputs(out.c_str(), stdout);
  } else {
    std::printf(
        "role            %s\ntenant          %s\nsubject         %s\n"
        "schema_version  %lld\nserver_version  %s\n",
        role.c_str(), response.principal().tenant().c_str(), response.principal().subject().c_str(),
        static_cast<long long>(response.schema_version()), response.server_version().c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (const char* v = std::getenv("VCH_SERVER"); v != nullptr && *v) options.server = v;
  if (const char* v = std::getenv("VCH_PRINCIPAL"); v != nullptr && *v) options.principal = v;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value_of = [&](absl::string_view flag, std::string* out) {
      if (absl::StartsWith(arg, absl::StrCat(flag, "="))) {
        *out = arg.substr(flag.size() + 1);
        return true;
      }
      if (arg == flag && i + 1 < argc) {
        *out = argv[++i];
        return true;
      }
      return false;
    };
    std::string value;
    if (arg == "--json") {
      options.json = true;
    } else if (arg == "--help" || arg == "-h") {
      positional.insert(positional.begin(), "help");
    } else if (value_of("--server", &value)) {
      options.server = value;
    } else if (value_of("--principal", &value)) {
      options.principal = value;
    } else if (value_of("--timeout-ms", &value)) {
      options.timeout_ms = std::atoi(value.c_str());
      if (options.timeout_ms <= 0) return Usage("--timeout-ms needs a positive number");
    } else if (absl::StartsWith(arg, "--")) {
      return Usage(absl::StrCat("unknown flag ", arg));
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.empty() || positional[0] == "help") {
    std::fputs(kHelp, stdout);
    return positional.empty() ? 2 : 0;
  }
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(options.server, grpc::InsecureChannelCredentials());
  const std::string& command = positional[0];
  if (command == "health") return Health(channel, options);
  if (command == "whoami") return WhoAmI(channel, options);
  return Usage(absl::StrCat("unknown command '", command, "'"));
}
