// Prometheus metrics of vchd (prometheus-cpp), served on --metrics-listen.
#ifndef VCH_SERVER_METRICS_H_
#define VCH_SERVER_METRICS_H_

#include <grpcpp/support/status_code_enum.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace vch::server {

// Counts one finished RPC by method and code and observes its latency. Thread-safe.
void RecordRpc(absl::string_view method, grpc::StatusCode code, absl::Duration latency);

// Sets the vch_database_up gauge (1 = reachable at the expected schema).
void SetDatabaseUp(bool up);

// Serves /metrics on `address` until the returned handle is destroyed. Fails with a one-line
// message when the address cannot be bound.
class MetricsEndpoint {
 public:
  virtual ~MetricsEndpoint() = default;
};
absl::StatusOr<std::unique_ptr<MetricsEndpoint>> StartMetricsEndpoint(const std::string& address);

}  // namespace vch::server

#endif  // VCH_SERVER_METRICS_H_
