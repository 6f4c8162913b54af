// A dedicated connection that answers "is the database up, at the schema we expect?" for the
// health check, so that a busy pool never makes a healthy database look down. Not thread-safe.
#ifndef VCH_STORAGE_DB_PROBE_H_
#define VCH_STORAGE_DB_PROBE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"

namespace pqxx {
class connection_base;
}

namespace vch::storage {

class DbProbe {
 public:
  DbProbe(std::string dsn, int64_t expected_schema_version);
  ~DbProbe();

  // Reconnects if needed and checks the schema version. OK = healthy; otherwise UNAVAILABLE
  // (database unreachable) or FAILED_PRECONDITION (schema version differs).
  absl::Status Probe();

 private:
  const std::string dsn_;
  const int64_t expected_version_;
  std::unique_ptr<pqxx::connection_base> connection_;
};

}  // namespace vch::storage

#endif  // VCH_STORAGE_DB_PROBE_H_
