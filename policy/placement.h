// The placement engine (DESIGN §5): picks a GPU pool for each compute request so subsidised
// work fills idle capacity, favouring low-utilization sites (the programs' purpose), then
// price, then region preference, deterministically. Pure: plain structs in, decisions out.
#ifndef VCH_POLICY_PLACEMENT_H_
#define VCH_POLICY_PLACEMENT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace vch::policy {

enum class NationalHub {
  kUnspecified = 0,
  kBeijingTianjinHebei = 1,
  kYangtzeRiverDelta = 2,
  kGuangdongHongKongMacao = 3,
  kChengduChongqing = 4,
  kInnerMongolia = 5,
  kGuizhou = 6,
  kGansu = 7,
  kNingxia = 8,
};

// A GPU pool of an approved datacenter, as last reported by its operator.
struct PoolState {
  std::string pool_id;  // unique; also the deterministic tie-break (ascending)
  std::string datacenter_id;
  std::string region_code;  // GB/T 2260 of the site
  NationalHub hub = NationalHub::kUnspecified;
  bool national_network = false;  // member of the national computing network
  bool site_active = true;        // false: SUSPENDED site, receives nothing
  std::string accelerator_model;  // e.g. "H800", "Ascend 910B"
  bool domestic = false;
  bool fp8 = false;
  int32_t memory_gib = 0;
  int32_t gpus_total = 0;
  int32_t gpus_free = 0;  // as last reported by the operator
  int32_t gpus_held = 0;  // already held by vch placements not yet reflected in reports
  int64_t price_fen_per_gpu_hour = 0;
  absl::Time reported_at;  // time of the last capacity report
};

// What a request needs.
struct AcceleratorRequirement {
  std::string model;  // "" = any model
  bool fp8_required = false;
  bool domestic_required = false;
  int32_t min_memory_gib = 0;
  // The program's allowed accelerator classes (ProgramRules::allowed_accelerators) as a mask of
  // AcceleratorClassBit values; a pool qualifies through any one of them. 0 = any accelerator.
  uint32_t allowed_classes = 0;
};

// Bits of AcceleratorRequirement::allowed_classes: FP8-capable pools, any datacenter GPU with
// dense FP16 (every pool vch lists), domestic pools.
enum AcceleratorClassBit : uint32_t {
  kAllowFp8Capable = 1u << 0,
  kAllowFp16Datacenter = 1u << 1,
  kAllowDomestic = 1u << 2,
};

enum class ScopeKind { kLocal = 1, kNational = 2, kList = 3 };

// The program's datacenter scope: LOCAL = sites whose region is within the issuer's region
// (same first 2 digits for a province-level issuer, same first 4 for a city); NATIONAL = every
// national-network site; LIST = only the listed datacenters.
struct ProgramScope {
  ScopeKind kind = ScopeKind::kNational;
  std::string issuer_region_code;
  bool issuer_is_city = false;
  std::vector<std::string> datacenter_ids;
  int64_t price_ceiling_fen_per_gpu_hour = 0;  // 0 = none
};

struct PlacementRequest {
  std::string request_id;  // caller's id, echoed in results
  AcceleratorRequirement accelerator;
  int32_t gpus = 1;                        // gang: all in one pool
  int64_t max_price_fen_per_gpu_hour = 0;  // 0 = no limit beyond the program's
  std::string preferred_region_prefix;     // "" = none; e.g. "52" (Guizhou), "5101"
  ProgramScope scope;
};

// Configuration of the score (higher is better). Weights are per unit shown.
struct PlacementWeights {
  double utilization = 1000.0;      // x (1 - utilization after placement), utilization in 0..1
  double price = 1.0;               // x -(price / price ceiling reference), see Score docs
  double region_preference = 50.0;  // bonus when the site matches the preferred region prefix
  absl::Duration max_report_age = absl::Minutes(15);  // older reports make a pool ineligible
};

// Why a pool cannot take a request; counts per reason are reported for unplaced requests.
enum class ExclusionReason {
  kSiteSuspended = 0,
  kStaleReport = 1,
  kOutOfScope = 2,
  kNoMatchingAccelerator = 3,
  kPriceCeiling = 4,
  kInsufficientGpus = 5,
};
inline constexpr int kExclusionReasonCount = 6;
// "SITE_SUSPENDED", "STALE_REPORT", "OUT_OF_SCOPE", "NO_MATCHING_ACCELERATOR", "PRICE_CEILING",
// "INSUFFICIENT_GPUS".
const char* ExclusionReasonName(ExclusionReason reason);

struct ScoreBreakdown {
  double utilization_term = 0;
  double price_term = 0;
  double region_term = 0;
  double total = 0;
};

struct PlacementDecision {
  std::string request_id;
  bool placed = false;
  std::string pool_id;  // when placed
  ScoreBreakdown score;
  // When not placed: how many pools were excluded for each reason (each pool counted once,
  // under the first reason in ExclusionReason order that applies to it).
  int32_t excluded[kExclusionReasonCount] = {};
};

// Free GPUs vch may still place into: gpus_free - gpus_held, never below 0.
int32_t PlaceableGpus(const PoolState& pool);

// The first reason (in ExclusionReason order) why `pool` cannot take `request` at `now`, or
// nullopt-equivalent false when it can (returns true and sets *reason when excluded).
bool Excluded(const PoolState& pool, const PlacementRequest& request, absl::Time now,
              const PlacementWeights& weights, ExclusionReason* reason);
// Boundaries: a report exactly max_report_age old is fresh (stale only when older); a price
// equal to the ceiling is allowed; a ceiling of 0 is none; a request for fewer than 1 GPU and a
// pool with gpus_total <= 0 are INSUFFICIENT_GPUS.

// Score of placing `request` on `pool` (assumed feasible), from the pool's state as given (in
// batch mode: as reported before the batch, so the objective is linear in the assignment and an
// exact solver can optimize it): utilization term =
// weights.utilization * (1 - (gpus_total - placeable + request.gpus) / gpus_total), i.e. the
// emptier the site stays after placement the better; price term = -weights.price *
// price_fen_per_gpu_hour / 100 (per CNY per GPU-hour); region term = weights.region_preference
// when the site's region starts with the preferred prefix.
ScoreBreakdown Score(const PoolState& pool, const PlacementRequest& request,
                     const PlacementWeights& weights);

// One request against the pools: the best-scoring feasible pool (ties: lower pool_id).
PlacementDecision PlaceOne(const std::vector<PoolState>& pools, const PlacementRequest& request,
                           absl::Time now, const PlacementWeights& weights);

// Greedy baseline: requests in order, each PlaceOne against capacity left by earlier ones.
std::vector<PlacementDecision> PlaceGreedy(std::vector<PoolState> pools,
                                           const std::vector<PlacementRequest>& requests,
                                           absl::Time now, const PlacementWeights& weights);

// Batch mode: places a window of requests together, maximizing the total objective
// (sum over placed requests of Score, plus a placement bonus large enough that placing more
// requests always beats placing fewer) under every constraint (a pool's placeable GPUs are
// never over-committed). Deterministic. Must beat PlaceGreedy's total objective on typical
// instances and come within 2 % of the exact optimum (see bench/placement).
// decisions[i] is for requests[i]. An unplaced request's counts are taken against the pools as
// the batch leaves them (GPUs taken by the batch count as INSUFFICIENT_GPUS); PlaceGreedy's are
// as PlaceOne saw the pools at that request's turn. Either way they add up to pools.size().
std::vector<PlacementDecision> PlaceBatch(std::vector<PoolState> pools,
                                          const std::vector<PlacementRequest>& requests,
                                          absl::Time now, const PlacementWeights& weights);

// The placement bonus of Objective for a window of `request_count` requests on `pools`:
// 1 + 2 * n * T, where T bounds the magnitude of any feasible placement's score (|w_u| *
// max(1, max placeable/total) + |w_p| * max price / 100 + |w_r|), so that a solution placing
// more requests always has the higher objective, whatever the scores.
double PlacementBonus(const std::vector<PoolState>& pools, size_t request_count,
                      const PlacementWeights& weights);

// The objective PlaceBatch maximizes, for comparing solutions (batch, greedy, exact).
double Objective(const std::vector<PoolState>& pools, const std::vector<PlacementRequest>& requests,
                 const std::vector<PlacementDecision>& decisions, const PlacementWeights& weights);
// (Objective: decisions[i] is for requests[i]; a placed decision contributes PlacementBonus +
// Score against the pool as given; one naming an unknown pool contributes nothing.)

}  // namespace vch::policy

#endif  // VCH_POLICY_PLACEMENT_H_
