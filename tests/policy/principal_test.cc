#include "policy/principal.h"

#include <gtest/gtest.h>

#include "tests/testing/test_db.h"

namespace vch::policy {
namespace {

using ::vch::testing::StatusIs;

TEST(ParseDevPrincipalTest, ParsesRoleTenantAndSubject) {
  absl::StatusOr<Principal> p = ParseDevPrincipal("ENTERPRISE:91310000MA1FL4XY2K/alice");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->role, Role::kEnterprise);
  EXPECT_EQ(p->tenant, "91310000MA1FL4XY2K");
  EXPECT_EQ(p->subject, "alice");
}

TEST(ParseDevPrincipalTest, DefaultsSubjectToRoleAndTenant) {
  EXPECT_EQ(ParseDevPrincipal("ISSUER_ADMIN:shanghai")->subject, "ISSUER_ADMIN:shanghai");
  EXPECT_EQ(ParseDevPrincipal("AUDITOR")->subject, "AUDITOR");
  EXPECT_EQ(ParseDevPrincipal("AUDITOR")->tenant, "");
}

class BadPrincipalTest : public ::testing::TestWithParam<const char*> {};

TEST_P(BadPrincipalTest, IsUnauthenticated) {
  EXPECT_THAT(ParseDevPrincipal(GetParam()),
              StatusIs(absl::StatusCode::kUnauthenticated, "PRINCIPAL_INVALID"));
}

INSTANTIATE_TEST_SUITE_P(Table, BadPrincipalTest,
                         ::testing::Values("", "WIZARD", "enterprise:x", "ENTERPRISE",
                                           "ENTERPRISE:", "PLATFORM_ADMIN:x", "OPERATOR:dc 1",
                                           "OPERATOR:dc1/", "REVIEWER:a;b"));

TEST(RoleTest, NamesRoundTripAndTenancy) {
  for (Role role : {Role::kPlatformAdmin, Role::kIssuerAdmin, Role::kReviewer, Role::kEnterprise,
                    Role::kOperator, Role::kAuditor}) {
    EXPECT_EQ(ParseRole(RoleName(role)), role);
  }
  EXPECT_FALSE(RoleIsTenanted(Role::kPlatformAdmin));
  EXPECT_FALSE(RoleIsTenanted(Role::kAuditor));
  EXPECT_TRUE(RoleIsTenanted(Role::kOperator));
}

}  // namespace
}  // namespace vch::policy
