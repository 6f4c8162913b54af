// What placement needs of a request and its program, shared by PlacementService and
// RedemptionService: request validation, the program's scope and accelerator classes, and the
// engine's request.
#ifndef VCH_SERVER_PLACEMENT_RULES_H_
#define VCH_SERVER_PLACEMENT_RULES_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "base/errors.h"
#include "policy/placement.h"
#include "storage/pg_pool.h"
#include "vch/v1/placement.pb.h"

namespace vch::server {

// Field checks of a ComputeRequirement, paths under `prefix`.
void CheckRequirement(const vch::v1::ComputeRequirement& r, absl::string_view prefix,
                      ViolationCollector& violations);

// A program's datacenter scope and allowed accelerator classes, as the engine takes them.
struct ProgramPlacementRules {
  policy::ProgramScope scope;
  uint32_t allowed_classes = 0;  // policy::AcceleratorClassBit mask; 0 = any
};

// Reads the program and its issuer. NOT_FOUND for an unknown program; with `require_open`,
// FAILED_PRECONDITION PROGRAM_NOT_OPEN unless it is open.
absl::StatusOr<ProgramPlacementRules> LoadPlacementRules(storage::PgPool& pool,
                                                         const std::string& program_id,
                                                         bool require_open);

// The engine's request for `r` under `rules`.
policy::PlacementRequest EngineRequest(const vch::v1::ComputeRequirement& r,
                                       const ProgramPlacementRules& rules, std::string request_id);

void ToScore(const policy::ScoreBreakdown& s, vch::v1::ScoreBreakdown* out);
// The exclusion counts of an unplaced decision, one entry per reason that excluded any pool.
void ToExclusions(const policy::PlacementDecision& d,
                  google::protobuf::RepeatedPtrField<vch::v1::ExclusionCount>* out);

// Rules of programs that have left DRAFT (fixed from then on, so safe to keep); callers check
// the program's state where it matters. Thread-safe.
class PlacementRulesCache {
 public:
  absl::StatusOr<ProgramPlacementRules> Get(storage::PgPool& pool, const std::string& program_id);

 private:
  absl::Mutex mu_;
  std::map<std::string, ProgramPlacementRules> rules_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vch::server

#endif  // VCH_SERVER_PLACEMENT_RULES_H_
