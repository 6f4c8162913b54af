#include "server/placement_rules.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "server/convert.h"
#include "storage/program_store.h"

namespace vch::server {

void CheckRequirement(const vch::v1::ComputeRequirement& r, absl::string_view prefix,
                      ViolationCollector& v) {
  CheckSlug(r.program(), absl::StrCat(prefix, ".program"), v);
  if (r.gpus() <= 0 || r.gpus() > 4096) v.Add(absl::StrCat(prefix, ".gpus"), "must be 1..4096");
  if (r.min_memory_gib() < 0) v.Add(absl::StrCat(prefix, ".min_memory_gib"), "must be >= 0");
  if (r.max_price_fen_per_gpu_hour() < 0) {
    v.Add(absl::StrCat(prefix, ".max_price_fen_per_gpu_hour"), "must be >= 0");
  }
  const std::string& region = r.preferred_region_prefix();
  if (region.size() > 6 ||
      !std::all_of(region.begin(), region.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    v.Add(absl::StrCat(prefix, ".preferred_region_prefix"), "must be up to 6 digits");
  }
}

namespace {

ProgramPlacementRules RulesOf(const storage::ProgramRecord& program,
                              const storage::IssuerRecord& issuer) {
  ProgramPlacementRules out;
  switch (program.rules.datacenter_scope) {
    case policy::DatacenterScope::kLocal:
      out.scope.kind = policy::ScopeKind::kLocal;
      break;
    case policy::DatacenterScope::kNational:
      out.scope.kind = policy::ScopeKind::kNational;
      break;
    case policy::DatacenterScope::kList:
      out.scope.kind = policy::ScopeKind::kList;
      break;
  }
  out.scope.issuer_region_code = issuer.region_code;
  out.scope.issuer_is_city = issuer.level == policy::IssuerLevel::kCity;
  out.scope.datacenter_ids = program.rules.datacenter_ids;
  out.scope.price_ceiling_fen_per_gpu_hour = program.rules.price_ceiling_fen_per_gpu_hour;
  for (policy::AcceleratorClass c : program.rules.allowed_accelerators) {
    switch (c) {
      case policy::AcceleratorClass::kFp8Capable:
        out.allowed_classes |= policy::kAllowFp8Capable;
        break;
      case policy::AcceleratorClass::kFp16Datacenter:
        out.allowed_classes |= policy::kAllowFp16Datacenter;
        break;
      case policy::AcceleratorClass::kDomestic:
        out.allowed_classes |= policy::kAllowDomestic;
        break;
    }
  }
  return out;
}

absl::StatusOr<std::pair<ProgramPlacementRules, policy::ProgramState>> Load(
    storage::PgPool& pool, const std::string& program_id) {
  VCH_ASSIGN_OR_RETURN(storage::ProgramRecord program, storage::GetProgram(pool, program_id));
  VCH_ASSIGN_OR_RETURN(storage::IssuerRecord issuer, storage::GetIssuer(pool, program.issuer_id));
  return std::make_pair(RulesOf(program, issuer), program.state);
}

}  // namespace

absl::StatusOr<ProgramPlacementRules> LoadPlacementRules(storage::PgPool& pool,
                                                         const std::string& program_id,
                                                         bool require_open) {
  VCH_ASSIGN_OR_RETURN(auto loaded, Load(pool, program_id));
  if (require_open && loaded.second != policy::ProgramState::kOpen) {
    return DomainError(absl::StatusCode::kFailedPrecondition, "PROGRAM_NOT_OPEN",
                       absl::StrCat("program ", program_id, " is not open"));
  }
  return loaded.first;
}

policy::PlacementRequest EngineRequest(const vch::v1::ComputeRequirement& r,
                                       const ProgramPlacementRules& rules, std::string request_id) {
  policy::PlacementRequest out;
  out.request_id = std::move(request_id);
  out.accelerator = {.model = r.accelerator_model(),
                     .fp8_required = r.fp8_required(),
                     .domestic_required = r.domestic_required(),
                     .min_memory_gib = r.min_memory_gib(),
                     .allowed_classes = rules.allowed_classes};
  out.gpus = r.gpus();
  out.max_price_fen_per_gpu_hour = r.max_price_fen_per_gpu_hour();
  out.preferred_region_prefix = r.preferred_region_prefix();
  out.scope = rules.scope;
  return out;
}

void ToScore(const policy::ScoreBreakdown& s, vch::v1::ScoreBreakdown* out) {
  out->set_utilization(s.utilization_term);
  out->set_price(s.price_term);
  out->set_region(s.region_term);
  out->set_total(s.total);
}

void ToExclusions(const policy::PlacementDecision& d,
                  google::protobuf::RepeatedPtrField<vch::v1::ExclusionCount>* out) {
  for (int i = 0; i < policy::kExclusionReasonCount; ++i) {
    if (d.excluded[i] == 0) continue;
    vch::v1::ExclusionCount* c = out->Add();
    c->set_reason(policy::ExclusionReasonName(static_cast<policy::ExclusionReason>(i)));
    c->set_pools(d.excluded[i]);
  }
}

absl::StatusOr<ProgramPlacementRules> PlacementRulesCache::Get(storage::PgPool& pool,
                                                               const std::string& program_id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = rules_.find(program_id);
    if (it != rules_.end()) return it->second;
  }
  VCH_ASSIGN_OR_RETURN(auto loaded, Load(pool, program_id));
  if (loaded.second != policy::ProgramState::kDraft) {
    absl::MutexLock lock(&mu_);
    rules_.emplace(program_id, loaded.first);
  }
  return loaded.first;
}

}  // namespace vch::server
