#include <gtest/gtest.h>

#include "storage/migrator.h"
#include "tests/testing/test_db.h"

namespace vch::storage {
namespace {

using ::vch::testing::StatusIs;

TEST(ParseMigrationsTest, OrdersByVersionAndChecksums) {
  absl::StatusOr<std::vector<Migration>> m =
      ParseMigrations({{"V0002__b.sql", "SELECT 2"}, {"V0001__a.sql", "SELECT 1"}});
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->size(), 2u);
  EXPECT_EQ((*m)[0].version, 1);
  EXPECT_EQ((*m)[0].name, "a");
  EXPECT_EQ((*m)[1].version, 2);
  EXPECT_EQ((*m)[0].sha256_hex, Sha256Hex("SELECT 1"));
  EXPECT_EQ(LatestVersion(*m), 2);
}

TEST(ParseMigrationsTest, RejectsGapsDuplicatesAndBadNames) {
  EXPECT_THAT(ParseMigrations({{"V0001__a.sql", ""}, {"V0003__c.sql", ""}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "MIGRATION_GAP"));
  EXPECT_THAT(ParseMigrations({{"V0002__a.sql", ""}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "MIGRATION_GAP"));
  EXPECT_THAT(ParseMigrations({{"V0001__a.sql", ""}, {"V01__b.sql", ""}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "MIGRATION_NAME_INVALID"));
  EXPECT_THAT(ParseMigrations({{"V0001__a.sql", ""}, {"V00001__b.sql", ""}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "MIGRATION_DUPLICATE"));
  EXPECT_THAT(ParseMigrations({{"V0001__CamelCase.sql", ""}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "MIGRATION_NAME_INVALID"));
}

TEST(Sha256Test, KnownVector) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(EmbeddedMigrationsTest, ParseCleanly) {
  absl::StatusOr<std::vector<Migration>> m = ParseMigrations(EmbeddedMigrationFiles());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_GE(LatestVersion(*m), 1);
}

}  // namespace
}  // namespace vch::storage
