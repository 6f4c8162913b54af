// Who may read which ledger accounts: the object-level authorization rule for LedgerService.
#ifndef VCH_POLICY_LEDGER_ACCESS_H_
#define VCH_POLICY_LEDGER_ACCESS_H_

#include <string>
#include <vector>

#include "policy/principal.h"

namespace vch::policy {

// An account is visible when `all`, or its issuer is `issuer`, or its owner is `owner` and its
// kind is one of `owner_kinds`.
struct LedgerReadScope {
  bool all = false;
  std::string issuer;                    // ISSUER_ADMIN, REVIEWER: their issuer's accounts
  std::string owner;                     // ENTERPRISE: their USCC; OPERATOR: their datacenter
  std::vector<std::string> owner_kinds;  // the account kinds such an owner holds
};

inline LedgerReadScope LedgerReadScopeFor(const Principal& principal) {
  switch (principal.role) {
    case Role::kPlatformAdmin:
    case Role::kAuditor:
      return {.all = true};
    case Role::kIssuerAdmin:
    case Role::kReviewer:
      return {.issuer = principal.tenant};
    case Role::kEnterprise:
      return {.owner = principal.tenant, .owner_kinds = {"WALLET", "PAYABLE"}};
    case Role::kOperator:
      return {.owner = principal.tenant, .owner_kinds = {"RECEIVABLE", "PAID"}};
  }
  return {};
}

// Whole-ledger verification reads everything: platform admins and auditors only.
inline bool MayVerifyLedger(const Principal& principal) {
  return principal.role == Role::kPlatformAdmin || principal.role == Role::kAuditor;
}

}  // namespace vch::policy

#endif  // VCH_POLICY_LEDGER_ACCESS_H_
