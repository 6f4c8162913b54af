#include "storage/migrator.h"

#include <map>
#include <pqxx/pqxx>
#include <regex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/errors.h"
#include "base/sha256.h"
#include "storage/pg_error.h"

namespace vch::storage {
namespace {

// Arbitrary but fixed: every vchd migrating the same database takes the same lock.
constexpr int64_t kMigrationLockKey = 0x7663686d6967;  // "vchmig"

constexpr char kCreateMigrationsTable[] = R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
  version     bigint PRIMARY KEY CONSTRAINT schema_migrations_version_positive CHECK (version > 0),
  name        text NOT NULL,
  sha256      text NOT NULL CONSTRAINT schema_migrations_sha256_hex CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  applied_at  timestamptz NOT NULL DEFAULT now()
))sql";

absl::Status Mismatch(std::string message) {
  return DomainError(absl::StatusCode::kFailedPrecondition, "MIGRATION_MISMATCH", message);
}

}  // namespace

absl::StatusOr<std::vector<Migration>> ParseMigrations(const std::vector<MigrationFile>& files) {
  static const std::regex kPattern(R"(V(\d{4,})__([a-z0-9_]+)\.sql)");
  std::map<int64_t, Migration> by_version;
  for (const MigrationFile& file : files) {
    std::smatch match;
    if (!std::regex_match(file.file_name, match, kPattern)) {
      return DomainError(absl::StatusCode::kInvalidArgument, "MIGRATION_NAME_INVALID",
                         absl::StrCat("migration file name ", file.file_name,
                                      " is not V<4+ digits>__snake_case_name.sql"));
    }
    int64_t version = 0;
    if (!absl::SimpleAtoi(match[1].str(), &version) || version <= 0) {
      return DomainError(absl::StatusCode::kInvalidArgument, "MIGRATION_NAME_INVALID",
                         absl::StrCat("migration ", file.file_name, " has an invalid version"));
    }
    Migration m{version, match[2].str(), file.sql, Sha256Hex(file.sql)};
    if (!by_version.emplace(version, std::move(m)).second) {
      return DomainError(absl::StatusCode::kInvalidArgument, "MIGRATION_DUPLICATE",
                         absl::StrCat("two migration files have version ", version));
    }
  }
  std::vector<Migration> out;
  int64_t expected = 1;
  for (auto& [version, migration] : by_version) {
    if (version != expected) {
      return DomainError(
          absl::StatusCode::kInvalidArgument, "MIGRATION_GAP",
          absl::StrCat("migration version ", expected, " is missing (next is ", version, ")"));
    }
    ++expected;
    out.push_back(std::move(migration));
  }
  return out;
}

int64_t LatestVersion(const std::vector<Migration>& migrations) {
  return migrations.empty() ? 0 : migrations.back().version;
}

absl::StatusOr<int64_t> CurrentSchemaVersion(pqxx::connection_base& conn) {
  try {
    pqxx::nontransaction tx(conn);
    pqxx::result exists = tx.exec("SELECT to_regclass('schema_migrations') IS NOT NULL");
    if (!exists[0][0].as<bool>()) return 0;
    pqxx::result r = tx.exec("SELECT COALESCE(max(version), 0) FROM schema_migrations");
    return r[0][0].as<int64_t>();
  } catch (const std::exception& e) {
    return StatusFromException(e);
  }
}

absl::Status CheckSchemaVersion(pqxx::connection_base& conn, int64_t expected) {
  absl::StatusOr<int64_t> current = CurrentSchemaVersion(conn);
  if (!current.ok()) return current.status();
  if (*current < expected) {
    return DomainError(
        absl::StatusCode::kFailedPrecondition, "SCHEMA_TOO_OLD",
        absl::StrCat("database schema is at version ", *current, " but this vchd needs version ",
                     expected, "; run `vchd migrate` first"));
  }
  if (*current > expected) {
    return DomainError(
        absl::StatusCode::kFailedPrecondition, "SCHEMA_TOO_NEW",
        absl::StrCat("database schema is at version ", *current,
                     " but this vchd only knows up to version ", expected, "; run a newer vchd"));
  }
  return absl::OkStatus();
}

absl::StatusOr<MigrationReport> Migrate(pqxx::connection_base& conn,
                                        const std::vector<Migration>& migrations) {
  MigrationReport report;
  int64_t current_version = 0;  // the migration being applied, for error messages
  auto run = [&]() -> absl::Status {
    std::map<int64_t, std::pair<std::string, std::string>> applied;  // version -> name, sha
    {
      pqxx::nontransaction session(conn);
      session.exec0("SET client_min_messages = warning");
      session.exec_params("SELECT pg_advisory_lock($1)", kMigrationLockKey);
      session.exec0(kCreateMigrationsTable);
      for (const pqxx::row& row :
           session.exec("SELECT version, name, sha256 FROM schema_migrations ORDER BY version")) {
        applied[row[0].as<int64_t>()] = {row[1].as<std::string>(), row[2].as<std::string>()};
      }
    }
    int64_t expected = 1;
    for (const auto& [version, name_sha] : applied) {
      if (version != expected) {
        return Mismatch(absl::StrCat("database has migration ", version, " but not ", expected));
      }
      ++expected;
      if (version > LatestVersion(migrations)) {
        return Mismatch(absl::StrCat("database has migration ", version, " (", name_sha.first,
                                     ") which this binary does not know"));
      }
      const Migration& m = migrations[version - 1];
      if (m.sha256_hex != name_sha.second) {
        return Mismatch(absl::StrCat("applied migration ", version, " (", name_sha.first,
                                     ") was edited: checksum ", name_sha.second.substr(0, 12),
                                     "... in the database, ", m.sha256_hex.substr(0, 12),
                                     "... in the file"));
      }
    }
    report.from_version = static_cast<int64_t>(applied.size());
    report.to_version = report.from_version;
    for (const Migration& m : migrations) {
      if (m.version <= report.from_version) continue;
      current_version = m.version;
      pqxx::work tx(conn, absl::StrCat("migrate_", m.version));
      tx.exec0(m.sql);
      tx.exec_params0("INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
                      m.version, m.name, m.sha256_hex);
      tx.commit();
      report.applied.push_back(m.version);
      report.to_version = m.version;
    }
    return absl::OkStatus();
  };
  absl::Status outcome;
  try {
    outcome = run();
  } catch (const std::exception& e) {
    absl::Status status = StatusFromException(e);
    outcome = absl::Status(
        status.code(), current_version > 0 ? absl::StrCat("migration ", current_version,
                                                          " failed: ", OneLine(e.what()))
                                           : absl::StrCat("migration failed: ", OneLine(e.what())));
  }
  try {
    pqxx::nontransaction session(conn);
    session.exec_params("SELECT pg_advisory_unlock($1)", kMigrationLockKey);
  } catch (const std::exception&) {
    // The connection is gone, and the session lock with it.
  }
  if (!outcome.ok()) return outcome;
  return report;
}

}  // namespace vch::storage
