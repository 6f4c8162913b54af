// Health: probes the database every interval and flips grpc.health.v1 between SERVING and
// NOT_SERVING on transitions, without restarting anything.
#ifndef VCH_SERVER_HEALTH_H_
#define VCH_SERVER_HEALTH_H_

#include <functional>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "storage/db_probe.h"

namespace vch::server {

class HealthWatcher {
 public:
  // Starts probing at once. `set_serving` is called with the first result and on every change.
  HealthWatcher(std::string dsn, int64_t expected_schema_version, absl::Duration interval,
                std::function<void(bool)> set_serving);
  ~HealthWatcher();  // stops and joins

 private:
  void Run();

  storage::DbProbe probe_;  // used by the watcher thread only
  const absl::Duration interval_;
  const std::function<void(bool)> set_serving_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace vch::server

#endif  // VCH_SERVER_HEALTH_H_
