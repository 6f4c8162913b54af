#include "storage/db_probe.h"

#include <pqxx/pqxx>

#include "storage/migrator.h"
#include "storage/pg_error.h"

namespace vch::storage {

DbProbe::DbProbe(std::string dsn, int64_t expected_schema_version)
    : dsn_(std::move(dsn)), expected_version_(expected_schema_version) {}

DbProbe::~DbProbe() = default;

absl::Status DbProbe::Probe() {
  try {
    if (connection_ == nullptr || !connection_->is_open()) {
      connection_ = std::make_unique<pqxx::connection>(dsn_);
    }
  } catch (const std::exception& e) {
    connection_.reset();
    return StatusFromException(e);
  }
  absl::Status status = CheckSchemaVersion(*connection_, expected_version_);
  if (status.code() == absl::StatusCode::kUnavailable) connection_.reset();
  return status;
}

}  // namespace vch::storage
