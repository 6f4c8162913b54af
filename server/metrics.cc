#include "server/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/strings/str_cat.h"

namespace vch::server {
namespace {

const char* CodeName(grpc::StatusCode code) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  int i = static_cast<int>(code);
  return i >= 0 && i <= 16 ? kNames[i] : "UNKNOWN";
}

struct Metrics {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>& rpcs =
      prometheus::BuildCounter()
          .Name("vch_rpcs_total")
          .Help("Finished vch.v1 RPCs by method and status code")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& latency = prometheus::BuildHistogram()
                                                           .Name("vch_rpc_latency_seconds")
                                                           .Help("Latency of vch.v1 RPCs by method")
                                                           .Register(*registry);
  prometheus::Gauge& database_up = prometheus::BuildGauge()
                                       .Name("vch_database_up")
                                       .Help("1 while the database answers at the expected schema")
                                       .Register(*registry)
                                       .Add({});
};

Metrics& GetMetrics() {
  static Metrics* metrics = new Metrics();
  return *metrics;
}

class PrometheusEndpoint : public MetricsEndpoint {
 public:
  explicit PrometheusEndpoint(const std::string& address) : exposer_(address) {
    exposer_.RegisterCollectable(GetMetrics().registry);
  }

 private:
  prometheus::Exposer exposer_;
};

}  // namespace

void RecordRpc(absl::string_view method, grpc::StatusCode code, absl::Duration latency) {
  Metrics& m = GetMetrics();
  const std::string method_name(method);
  m.rpcs.Add({{"method", method_name}, {"code", CodeName(code)}}).Increment();
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
  m.latency.Add({{"method", method_name}}, kBuckets).Observe(absl::ToDoubleSeconds(latency));
}

void SetDatabaseUp(bool up) { GetMetrics().database_up.Set(up ? 1 : 0); }

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> StartMetricsEndpoint(const std::string& address) {
  try {
    return std::unique_ptr<MetricsEndpoint>(new PrometheusEndpoint(address));
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
}

}  // namespace vch::server
