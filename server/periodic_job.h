// A background task run every interval on its own thread until stopped; failures are logged
// once per outage rather than on every run.
#ifndef VCH_SERVER_PERIODIC_JOB_H_
#define VCH_SERVER_PERIODIC_JOB_H_

#include <functional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/json_log.h"

namespace vch::server {

class PeriodicJob {
 public:
  // interval <= 0 disables the job.
  PeriodicJob(std::string name, absl::Duration interval, std::function<absl::Status()> run)
      : name_(std::move(name)), interval_(interval), run_(std::move(run)) {
    if (interval_ > absl::ZeroDuration()) thread_ = std::thread([this] { Loop(); });
  }
  ~PeriodicJob() { Stop(); }

  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    bool failing = false;
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (mu_.AwaitWithTimeout(absl::Condition(&stop_), interval_)) return;
      }
      absl::Status status = run_();
      if (!status.ok() && !failing) {
        Log(LogLevel::kWarning, "background job failing",
            {{"job", name_}, {"error", status.message()}});
      } else if (status.ok() && failing) {
        Log(LogLevel::kInfo, "background job recovered", {{"job", name_}});
      }
      failing = !status.ok();
    }
  }

  const std::string name_;
  const absl::Duration interval_;
  const std::function<absl::Status()> run_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace vch::server

#endif  // VCH_SERVER_PERIODIC_JOB_H_
