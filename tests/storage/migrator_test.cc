#include "storage/migrator.h"

#include <gtest/gtest.h>

#include <pqxx/pqxx>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/testing/test_db.h"

namespace vch::storage {
namespace {

using ::vch::testing::CreateTestDatabase;
using ::vch::testing::StatusIs;

// Migrations of our own, so the test does not depend on the real schema.
std::vector<Migration> Sample(const std::string& second_sql = "CREATE TABLE b (x int)") {
  return *ParseMigrations(
      {{"V0001__create_a.sql", "CREATE TABLE a (x int)"}, {"V0002__create_b.sql", second_sql}});
}

// An empty database: the template is already migrated, so start from a fresh one.
std::string EmptyDatabase() {
  std::string dsn = CreateTestDatabase();
  pqxx::connection c(dsn);
  pqxx::nontransaction tx(c);
  tx.exec0("DROP SCHEMA public CASCADE");
  tx.exec0("CREATE SCHEMA public");
  return dsn;
}

TEST(MigratorTest, AppliesAllThenSecondRunIsANoOp) {
  pqxx::connection c(EmptyDatabase());
  EXPECT_EQ(*CurrentSchemaVersion(c), 0);
  absl::StatusOr<MigrationReport> first = Migrate(c, Sample());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->from_version, 0);
  EXPECT_EQ(first->to_version, 2);
  EXPECT_EQ(first->applied, (std::vector<int64_t>{1, 2}));
  absl::StatusOr<MigrationReport> second = Migrate(c, Sample());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->from_version, 2);
  EXPECT_TRUE(second->applied.empty());
  pqxx::nontransaction tx(c);
  EXPECT_EQ(tx.exec("SELECT count(*) FROM schema_migrations")[0][0].as<int>(), 2);
  EXPECT_EQ(
      tx.exec("SELECT sha256 FROM schema_migrations WHERE version = 2")[0][0].as<std::string>(),
      Sha256Hex("CREATE TABLE b (x int)"));
}

TEST(MigratorTest, AppliesOnlyTheMissingOnes) {
  pqxx::connection c(EmptyDatabase());
  std::vector<Migration> all = Sample();
  ASSERT_TRUE(Migrate(c, {all[0]}).ok());
  absl::StatusOr<MigrationReport> report = Migrate(c, all);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->applied, (std::vector<int64_t>{2}));
}

TEST(MigratorTest, RejectsAnEditedAppliedMigration) {
  pqxx::connection c(EmptyDatabase());
  ASSERT_TRUE(Migrate(c, Sample()).ok());
  EXPECT_THAT(Migrate(c, Sample("CREATE TABLE b (x bigint)")),
              StatusIs(absl::StatusCode::kFailedPrecondition, "MIGRATION_MISMATCH"));
}

TEST(MigratorTest, RejectsADatabaseNewerThanTheBinary) {
  pqxx::connection c(EmptyDatabase());
  ASSERT_TRUE(Migrate(c, Sample()).ok());
  EXPECT_THAT(Migrate(c, {Sample()[0]}),
              StatusIs(absl::StatusCode::kFailedPrecondition, "MIGRATION_MISMATCH"));
}

TEST(MigratorTest, RejectsAGapInAppliedVersions) {
  pqxx::connection c(EmptyDatabase());
  ASSERT_TRUE(Migrate(c, Sample()).ok());
  {
    pqxx::work tx(c);
    tx.exec0("DELETE FROM schema_migrations WHERE version = 1");
    tx.commit();
  }
  EXPECT_THAT(Migrate(c, Sample()),
              StatusIs(absl::StatusCode::kFailedPrecondition, "MIGRATION_MISMATCH"));
}

TEST(MigratorTest, AFailingMigrationLeavesNothingOfItself) {
  pqxx::connection c(EmptyDatabase());
  absl::StatusOr<MigrationReport> report =
      Migrate(c, Sample("CREATE TABLE b (x int); SELECT no_such_function()"));
  EXPECT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find("migration 2 failed"), absl::string_view::npos)
      << report.status();
  EXPECT_EQ(*CurrentSchemaVersion(c), 1);
  pqxx::nontransaction tx(c);
  EXPECT_TRUE(tx.exec("SELECT to_regclass('b') IS NULL")[0][0].as<bool>());
}

TEST(MigratorTest, ConcurrentRunnersApplyEachVersionOnce) {
  const std::string dsn = EmptyDatabase();
  std::vector<absl::StatusOr<MigrationReport>> reports(4, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      pqxx::connection c(dsn);
      reports[i] = Migrate(c, Sample());
    });
  }
  for (std::thread& t : threads) t.join();
  size_t applied = 0;
  for (const auto& r : reports) {
    ASSERT_TRUE(r.ok()) << r.status();
    applied += r->applied.size();
  }
  EXPECT_EQ(applied, 2u);
}

TEST(SchemaVersionTest, TooOldAndTooNewAreClearErrors) {
  pqxx::connection c(EmptyDatabase());
  EXPECT_THAT(CheckSchemaVersion(c, 2),
              StatusIs(absl::StatusCode::kFailedPrecondition, "SCHEMA_TOO_OLD"));
  ASSERT_TRUE(Migrate(c, Sample()).ok());
  EXPECT_TRUE(CheckSchemaVersion(c, 2).ok());
  EXPECT_THAT(CheckSchemaVersion(c, 1),
              StatusIs(absl::StatusCode::kFailedPrecondition, "SCHEMA_TOO_NEW"));
}

TEST(RealMigrationsTest, TemplateIsAtTheBinarysVersion) {
  pqxx::connection c(CreateTestDatabase());
  EXPECT_TRUE(
      CheckSchemaVersion(c, LatestVersion(*ParseMigrations(EmbeddedMigrationFiles()))).ok());
}

TEST(RealMigrationsTest, ApplyFromScratchTwice) {
  pqxx::connection c(EmptyDatabase());
  std::vector<Migration> real = *ParseMigrations(EmbeddedMigrationFiles());
  absl::StatusOr<MigrationReport> first = Migrate(c, real);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->to_version, LatestVersion(real));
  absl::StatusOr<MigrationReport> second = Migrate(c, real);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->applied.empty());
}

TEST(MigratorTest, V0007GivesEachPlacedRedemptionItsRequestHash) {
  // Redemptions placed before V0007 kept their RequestCompute's key in idempotency_keys; V0007
  // copies each key's request hash onto its redemption (a replacement, placed under its
  // rejection's key, gets none), so that their retries are answered from the redemption.
  pqxx::connection c(EmptyDatabase());
  absl::StatusOr<std::vector<Migration>> all = ParseMigrations(EmbeddedMigrationFiles());
  ASSERT_TRUE(all.ok()) << all.status();
  std::vector<Migration> before;
  for (const Migration& m : *all) {
    if (m.version < 7) before.push_back(m);
  }
  ASSERT_EQ(before.size(), 6u);
  ASSERT_TRUE(Migrate(c, before).ok());
  {
    // Rows as V0006's code wrote them, without the parents their checks want (replica: no
    // triggers, no foreign keys).
    pqxx::work tx(c);
    tx.exec0("SET LOCAL session_replication_role = replica");
    for (int id : {1, 2, 3}) {
      // 1 was rejected and replaced by 3; 2 is placed.
      const std::string key = id == 3 ? "'system.redemption', 'replace-1'"
                                      : absl::StrCat("'ENTERPRISE:u/RequestCompute', 'r", id, "'");
      tx.exec0(absl::StrCat(
          "INSERT INTO redemptions (id, program_id, issuer_id, uscc, datacenter_id, pool_id, "
          "gpus, hours, price_fen_per_gpu_hour, ratio_bps, settlement_style, estimated_bill_fen, "
          "held_fen, hold_transfer_id, capacity_hold_id, expires_at, state, replaces, generation, "
          "voucher_key_id, voucher_signature, request_scope, request_id, created_at, updated_at) "
          "VALUES (",
          id, ", 'p', 'i', 'u', 'dc', 'pool', 1, 1, 1500, 8000, 1, 1500, 1200, ", 100 + id, ", ",
          200 + id, ", now(), ", id == 1 ? 7 : 1, ", ", id == 3 ? "1, 1" : "NULL, 0",
          ", 'k', decode(repeat('ab', 64), 'hex'), ", key, ", now(), now())"));
    }
    tx.exec0(
        "INSERT INTO idempotency_keys (scope, request_id, request_hash, response) VALUES "
        "('ENTERPRISE:u/RequestCompute', 'r1', 'hash-1', '\\x00'), "
        "('ENTERPRISE:u/RequestCompute', 'r2', 'hash-2', '\\x00'), "
        "('ENTERPRISE:u/RequestCompute', 'r9', 'hash-9', '\\x00')");
    tx.commit();
  }
  absl::StatusOr<MigrationReport> report = Migrate(c, *all);
  ASSERT_TRUE(report.ok()) << report.status();
  pqxx::nontransaction tx(c);
  pqxx::result rows =
      tx.exec("SELECT id, COALESCE(request_hash, '-') FROM redemptions ORDER BY id");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0][1].as<std::string>(), "hash-1");
  EXPECT_EQ(rows[1][1].as<std::string>(), "hash-2");
  EXPECT_EQ(rows[2][1].as<std::string>(), "-");
  // The guard is back on: the hash is one of the terms.
  EXPECT_THROW(tx.exec0("UPDATE redemptions SET request_hash = 'other' WHERE id = 2"),
               pqxx::sql_error);
}

}  // namespace
}  // namespace vch::storage
