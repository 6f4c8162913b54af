// Forward-only schema migrations: versioned SQL files, SHA-256 checksums recorded in
// schema_migrations, an advisory lock against concurrent runners, one transaction per file.
#ifndef VCH_STORAGE_MIGRATOR_H_
#define VCH_STORAGE_MIGRATOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/sha256.h"

namespace pqxx {
class connection_base;
}

namespace vch::storage {

// A migration file as shipped: `V0001__snake_case_name.sql` and its text.
struct MigrationFile {
  std::string file_name;
  std::string sql;
};

struct Migration {
  int64_t version = 0;
  std::string name;
  std::string sql;
  std::string sha256_hex;
};

// The migrations compiled into this binary (generated from migrations/ at build time).
const std::vector<MigrationFile>& EmbeddedMigrationFiles();

// Parses file names and checksums; the versions must run 1, 2, 3, ... without gaps or
// duplicates, else INVALID_ARGUMENT naming the file.
absl::StatusOr<std::vector<Migration>> ParseMigrations(const std::vector<MigrationFile>& files);

// The highest version in `migrations` (0 if none): the schema version a binary expects.
int64_t LatestVersion(const std::vector<Migration>& migrations);

struct MigrationReport {
  int64_t from_version = 0;
  int64_t to_version = 0;
  std::vector<int64_t> applied;
};

// Applies the missing migrations in order. Hard errors (FAILED_PRECONDITION, reason
// MIGRATION_MISMATCH) when an applied migration's checksum differs from the file, when the
// database holds a version this binary does not have, or when applied versions have a gap.
absl::StatusOr<MigrationReport> Migrate(pqxx::connection_base& conn,
                                        const std::vector<Migration>& migrations);

// The highest applied version, 0 for a database never migrated.
absl::StatusOr<int64_t> CurrentSchemaVersion(pqxx::connection_base& conn);

// OK when the database is at exactly `expected`; FAILED_PRECONDITION (reason
// SCHEMA_TOO_OLD / SCHEMA_TOO_NEW) with a message saying what to run otherwise.
absl::Status CheckSchemaVersion(pqxx::connection_base& conn, int64_t expected);

using ::vch::Sha256Hex;

}  // namespace vch::storage

#endif  // VCH_STORAGE_MIGRATOR_H_
