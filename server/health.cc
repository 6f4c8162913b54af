#include "server/health.h"

#include <optional>

#include "base/errors.h"
#include "base/json_log.h"
#include "server/metrics.h"

namespace vch::server {

HealthWatcher::HealthWatcher(std::string dsn, int64_t expected_schema_version,
                             absl::Duration interval, std::function<void(bool)> set_serving)
    : probe_(std::move(dsn), expected_schema_version),
      interval_(interval),
      set_serving_(std::move(set_serving)),
      thread_([this] { Run(); }) {}

HealthWatcher::~HealthWatcher() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void HealthWatcher::Run() {
  std::optional<bool> last;
  while (true) {
    absl::Status status = probe_.Probe();
    const bool healthy = status.ok();
    if (!last || *last != healthy) {
      if (healthy) {
        Log(LogLevel::kInfo, "database healthy: SERVING");
      } else {
        Log(LogLevel::kWarning, "database unhealthy: NOT_SERVING",
            {{"reason", ReasonOf(status)}, {"error", status.message()}});
      }
      SetDatabaseUp(healthy);
      set_serving_(healthy);
      last = healthy;
    }
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&stop_), interval_)) return;
  }
}

}  // namespace vch::server
