// vchd configuration: every option is a flag and an environment variable; flags win.
#ifndef VCH_SERVER_CONFIG_H_
#define VCH_SERVER_CONFIG_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace vch::server {

enum class VchdCommand { kServe, kMigrate, kHelp, kVersion };

struct VchdConfig {
  VchdCommand command = VchdCommand::kServe;
  std::string listen = "127.0.0.1:50051";
  std::string dsn;
  int pool_size = 8;
  int max_threads = 256;
  // RequestCompute / ReportUsage calls waiting for a batch, per path.
  int max_queued_requests = 4096;
  std::string metrics_listen;  // empty = no metrics endpoint
  int64_t max_message_bytes = 4 << 20;
  absl::Duration health_interval = absl::Seconds(1);
  absl::Duration shutdown_grace = absl::Seconds(10);
  absl::Duration award_expiry_interval = absl::Seconds(10);
  // Placement: score weights, freshness of capacity reports, lifetime of capacity holds.
  double placement_weight_utilization = 1000.0;
  double placement_weight_price = 1.0;
  double placement_weight_region = 50.0;
  absl::Duration placement_max_report_age = absl::Minutes(15);
  absl::Duration capacity_hold_ttl = absl::Minutes(30);
  // Vouchers: the Ed25519 private key (PEM) and its id; no file = a fresh key per start.
  std::string voucher_key_file;
  std::string voucher_key_id;
  std::string auth = "dev";  // only "dev" in this version: plain principal header, loopback only
  std::string port_file;     // if set, the bound port is written here once serving
  std::string log_level = "info";
};

// Parses `vchd [serve|migrate] [--flag=value | --flag value]...`. `getenv` reads VCH_*
// variables (tests pass their own). INVALID_ARGUMENT with a one-line message naming the
// offending flag or value.
absl::StatusOr<VchdConfig> ParseVchdArgs(const std::vector<std::string>& args,
                                         const std::function<const char*(const char*)>& getenv);

// The text of `vchd --help`: every option, its variable and its default.
std::string VchdHelpText();

// Whether host:port names a loopback address (127.0.0.0/8, [::1], localhost).
bool IsLoopbackAddress(absl::string_view address);

}  // namespace vch::server

#endif  // VCH_SERVER_CONFIG_H_
