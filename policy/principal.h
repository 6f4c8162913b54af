// Who is calling: a role and, for tenanted roles, the tenant (issuer id, USCC or datacenter id).
// Every handler receives one and every query is scoped by it.
#ifndef VCH_POLICY_PRINCIPAL_H_
#define VCH_POLICY_PRINCIPAL_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace vch::policy {

// Values match vch.v1.Role.
enum class Role {
  kPlatformAdmin = 1,
  kIssuerAdmin = 2,
  kReviewer = 3,
  kEnterprise = 4,
  kOperator = 5,
  kAuditor = 6,
};

struct Principal {
  Role role = Role::kAuditor;
  std::string tenant;   // empty for PLATFORM_ADMIN and AUDITOR
  std::string subject;  // who, for audit entries
};

// "PLATFORM_ADMIN", "ISSUER_ADMIN", ... (the vch.v1.Role names without the ROLE_ prefix).
absl::string_view RoleName(Role role);
std::optional<Role> ParseRole(absl::string_view name);
// Whether the role acts for one tenant (and so must carry one).
bool RoleIsTenanted(Role role);

// Parses the development-mode principal "ROLE[:tenant][/subject]", e.g.
// "ENTERPRISE:91310000MA1FL4XY2K/alice". UNAUTHENTICATED (reason PRINCIPAL_INVALID) when
// malformed, when a tenanted role lacks a tenant or an untenanted role has one.
absl::StatusOr<Principal> ParseDevPrincipal(absl::string_view text);

}  // namespace vch::policy

#endif  // VCH_POLICY_PRINCIPAL_H_
