#include "storage/migrator.h"

#include <gtest/gtest.h>

#include <pqxx/pqxx>
#include <thread>

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

}  // namespace
}  // namespace vch::storage
