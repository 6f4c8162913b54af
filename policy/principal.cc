#include "policy/principal.h"

#include "absl/strings/str_cat.h"
#include "base/errors.h"

namespace vch::policy {
namespace {

constexpr Role kRoles[] = {Role::kPlatformAdmin, Role::kIssuerAdmin, Role::kReviewer,
                           Role::kEnterprise,    Role::kOperator,    Role::kAuditor};

absl::Status Invalid(absl::string_view message) {
  return DomainError(absl::StatusCode::kUnauthenticated, "PRINCIPAL_INVALID", message);
}

bool ValidTenantChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kPlatformAdmin:
      return "PLATFORM_ADMIN";
    case Role::kIssuerAdmin:
      return "ISSUER_ADMIN";
    case Role::kReviewer:
      return "REVIEWER";
    case Role::kEnterprise:
      return "ENTERPRISE";
    case Role::kOperator:
      return "OPERATOR";
    case Role::kAuditor:
      return "AUDITOR";
  }
  return "UNKNOWN";
}

std::optional<Role> ParseRole(absl::string_view name) {
  for (Role role : kRoles) {
    if (RoleName(role) == name) return role;
  }
  return std::nullopt;
}

bool RoleIsTenanted(Role role) { return role != Role::kPlatformAdmin && role != Role::kAuditor; }

absl::StatusOr<Principal> ParseDevPrincipal(absl::string_view text) {
  if (text.empty()) return Invalid("principal is empty");
  if (text.size() > 200) return Invalid("principal is longer than 200 characters");
  absl::string_view subject;
  if (size_t slash = text.find('/'); slash != absl::string_view::npos) {
    subject = text.substr(slash + 1);
    text = text.substr(0, slash);
    if (subject.empty()) return Invalid("principal subject after '/' is empty");
  }
  absl::string_view role_name = text;
  absl::string_view tenant;
  if (size_t colon = text.find(':'); colon != absl::string_view::npos) {
    role_name = text.substr(0, colon);
    tenant = text.substr(colon + 1);
  }
  std::optional<Role> role = ParseRole(role_name);
  if (!role) return Invalid(absl::StrCat("unknown role '", role_name, "'"));
  if (RoleIsTenanted(*role) && tenant.empty()) {
    return Invalid(absl::StrCat("role ", role_name, " needs a tenant (ROLE:tenant)"));
  }
  if (!RoleIsTenanted(*role) && !tenant.empty()) {
    return Invalid(absl::StrCat("role ", role_name, " takes no tenant"));
  }
  for (char c : tenant) {
    if (!ValidTenantChar(c)) return Invalid("tenant may hold only letters, digits, '-', '_', '.'");
  }
  Principal p;
  p.role = *role;
  p.tenant = std::string(tenant);
  p.subject = subject.empty() ? absl::StrCat(role_name, tenant.empty() ? "" : ":", tenant)
                              : std::string(subject);
  return p;
}

}  // namespace vch::policy
