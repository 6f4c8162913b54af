#include "policy/placement.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "policy/programs.h"

namespace vch::policy {
namespace {

// A score change smaller than this is noise from floating-point rounding, not an improvement;
// requiring it keeps the local search from cycling.
constexpr double kMinGain = 1e-9;
// Improvement rounds of the batch search; each round that changes nothing ends it earlier.
constexpr int kMaxImprovementRounds = 50;
// Work budget of the batch search's ejection and swap moves, in (request, pool) evaluations.
// Deterministic (a count, not a clock): small windows never reach it; a 10,000-request window
// stops improving once it is spent, so the batch stays within its latency target.
constexpr int64_t kWorkBudget = 20'000'000;
// Further starting points of the batch search are tried only while less work than this has
// been spent (windows of up to a few hundred requests).
constexpr int64_t kRestartWorkLimit = 3'000'000;

// The effective price ceiling of a request, or 0 for none: the lower of the request's and the
// program's when both are set.
int64_t PriceCeiling(const PlacementRequest& request) {
  int64_t request_max = request.max_price_fen_per_gpu_hour;
  int64_t program_max = request.scope.price_ceiling_fen_per_gpu_hour;
  if (request_max == 0) return program_max;
  if (program_max == 0) return request_max;
  return std::min(request_max, program_max);
}

bool Stale(const PoolState& pool, absl::Time now, const PlacementWeights& weights) {
  // A report exactly max_report_age old is still fresh; one nanosecond older is stale.
  return now - pool.reported_at > weights.max_report_age;
}

bool InScope(const PoolState& pool, const ProgramScope& scope) {
  switch (scope.kind) {
    case ScopeKind::kLocal:
      return RegionWithin(pool.region_code, scope.issuer_region_code,
                          scope.issuer_is_city ? IssuerLevel::kCity : IssuerLevel::kProvince);
    case ScopeKind::kNational:
      return pool.national_network;
    case ScopeKind::kList:
      return std::find(scope.datacenter_ids.begin(), scope.datacenter_ids.end(),
                       pool.datacenter_id) != scope.datacenter_ids.end();
  }
  return false;
}

bool AllowedClass(const PoolState& pool, uint32_t allowed) {
  if (allowed == 0 || (allowed & kAllowFp16Datacenter) != 0) return true;
  return ((allowed & kAllowFp8Capable) != 0 && pool.fp8) ||
         ((allowed & kAllowDomestic) != 0 && pool.domestic);
}

bool AcceleratorMatches(const PoolState& pool, const AcceleratorRequirement& need) {
  if (!AllowedClass(pool, need.allowed_classes)) return false;
  if (!need.model.empty() && need.model != pool.accelerator_model) return false;
  if (need.fp8_required && !pool.fp8) return false;
  if (need.domestic_required && !pool.domestic) return false;
  return pool.memory_gib >= need.min_memory_gib;
}

bool RegionPreferred(const PoolState& pool, const PlacementRequest& request) {
  const std::string& prefix = request.preferred_region_prefix;
  return !prefix.empty() && pool.region_code.compare(0, prefix.size(), prefix) == 0;
}

// The score terms, written once so that the indexed engine below and Score() agree to the last
// bit (ties are broken by pool_id only when scores are exactly equal).
double UtilizationTerm(double weight, int64_t total, int64_t placeable, int64_t gpus) {
  if (total <= 0) return 0.0;
  return weight *
         (1.0 - static_cast<double>(total - placeable + gpus) / static_cast<double>(total));
}

double PriceTerm(double weight, int64_t price_fen_per_gpu_hour) {
  return -weight * static_cast<double>(price_fen_per_gpu_hour) / 100.0;
}

ScoreBreakdown ScoreAt(const PoolState& pool, int64_t placeable, const PlacementRequest& request,
                       const PlacementWeights& weights) {
  ScoreBreakdown score;
  score.utilization_term =
      UtilizationTerm(weights.utilization, pool.gpus_total, placeable, request.gpus);
  score.price_term = PriceTerm(weights.price, pool.price_fen_per_gpu_hour);
  score.region_term = RegionPreferred(pool, request) ? weights.region_preference : 0.0;
  score.total = score.utilization_term + score.price_term + score.region_term;
  return score;
}

// Up to the first 8 bytes of `s`, byte i in bits 8i..8i+7 (independent of endianness), so that
// a region prefix test is one mask and compare.
uint64_t PackPrefix(std::string_view s) {
  uint64_t packed = 0;
  for (size_t i = 0; i < s.size() && i < 8; ++i) {
    packed |= static_cast<uint64_t>(static_cast<unsigned char>(s[i])) << (8 * i);
  }
  return packed;
}

// --- The indexed engine shared by PlaceGreedy and PlaceBatch. ---
//
// Feasibility is decomposed so that no (request, pool) pair is tested with string work:
// site state and report age are per pool; scope and accelerator requirement are per distinct
// (scope, requirement) "key" (a window has few: requests come from a few programs), whose
// candidate pools are listed once, sorted by price, so a request's price ceiling selects a
// prefix of its key's list; only price and GPU capacity are checked per pair, against integer
// arrays. The key also lists its pools by an upper bound of their score, so a search for the
// best pool can stop early.
class Engine {
 public:
  Engine(const std::vector<PoolState>& pools, const std::vector<PlacementRequest>& requests,
         absl::Time now, const PlacementWeights& weights)
      : pools_(pools), requests_(requests), weights_(weights) {
    IndexPools(now);
    IndexRequests();
  }

  int request_count() const { return static_cast<int>(requests_.size()); }
  int pool_count() const { return static_cast<int>(pool_index_.size()); }
  int32_t gpus(int r) const { return reqs_[r].gpus; }
  // GPUs the engine may place into pool p (in pool_id order) before anything is placed.
  int32_t capacity(int p) const { return capacity_[p]; }
  const std::vector<int32_t>& capacities() const { return capacity_; }

  // Pools (in pool_id order) that pass every check for r except GPU capacity, cheapest first
  // (ties: lower pool_id).
  const int* cand_begin(int r) const { return keys_[reqs_[r].key].cands.data(); }
  const int* cand_end(int r) const { return cand_begin(r) + reqs_[r].cand_count; }
  int cand_count(int r) const { return reqs_[r].cand_count; }
  // Candidates whose capacity (before anything is placed) is enough for r.
  int32_t options(int r) const { return reqs_[r].options; }

  // The pools of r's (scope, accelerator) key by descending score bound (ties: lower pool_id),
  // not cut at r's price ceiling: callers skip pools with !WithinCeiling. No placement of any
  // request of at least 1 GPU on p scores above bound(p), with the pool as reported or with
  // fewer GPUs left, so a scan in this order may stop at the first bound below the best score
  // found when pruning() (all weights that the bound relies on are non-negative).
  const int* bound_begin(int r) const { return keys_[reqs_[r].key].by_bound.data(); }
  const int* bound_end(int r) const { return bound_begin(r) + keys_[reqs_[r].key].by_bound.size(); }
  double bound(int p) const { return bound_[p]; }
  bool pruning() const { return pruning_; }
  bool WithinCeiling(int r, int p) const {
    return reqs_[r].ceiling == 0 || price_[p] <= reqs_[r].ceiling;
  }

  // Whether pool p passes every check for r except GPU capacity.
  bool IsCandidate(int r, int p) const {
    const Req& req = reqs_[r];
    const Key& key = keys_[req.key];
    if (((key.bitmap[p >> 6] >> (p & 63)) & 1) == 0) return false;
    return req.ceiling == 0 || price_[p] <= req.ceiling;
  }

  // Score of r on pool p when p has `placeable` GPUs left.
  double ScoreWith(int r, int p, int32_t placeable) const {
    double region = RegionMatch(r, p) ? weights_.region_preference : 0.0;
    return UtilizationTerm(weights_.utilization, total_[p], placeable, reqs_[r].gpus) +
           price_term_[p] + region;
  }
  // Score of r on pool p as reported (the batch objective's term).
  double StaticScore(int r, int p) const { return ScoreWith(r, p, placeable_[p]); }

  const PoolState& pool(int p) const { return pools_[pool_index_[p]]; }
  const PlacementRequest& request(int r) const { return requests_[r]; }

  // The decision for r: placed on pool p, scored as if p had `placeable` GPUs left; or, for
  // p < 0, unplaced with its exclusion counts. Those assume what callers guarantee: every
  // candidate within r's price ceiling lacked room for r (INSUFFICIENT_GPUS).
  PlacementDecision Decide(int r, int p, int32_t placeable) const {
    PlacementDecision decision;
    decision.request_id = requests_[r].request_id;
    if (p >= 0) {
      decision.placed = true;
      decision.pool_id = pool(p).pool_id;
      decision.score = ScoreAt(pool(p), placeable, requests_[r], weights_);
      return decision;
    }
    const Req& req = reqs_[r];
    const Key& key = keys_[req.key];
    decision.excluded[static_cast<int>(ExclusionReason::kSiteSuspended)] = suspended_;
    decision.excluded[static_cast<int>(ExclusionReason::kStaleReport)] = stale_;
    decision.excluded[static_cast<int>(ExclusionReason::kOutOfScope)] = key.out_of_scope;
    decision.excluded[static_cast<int>(ExclusionReason::kNoMatchingAccelerator)] =
        key.no_accelerator;
    decision.excluded[static_cast<int>(ExclusionReason::kPriceCeiling)] =
        static_cast<int32_t>(key.cands.size()) - req.cand_count;
    // Callers only leave r unplaced when no candidate within its price ceiling has room.
    decision.excluded[static_cast<int>(ExclusionReason::kInsufficientGpus)] = req.cand_count;
    return decision;
  }

 private:
  struct Key {
    std::vector<int> cands;        // cheapest first, then pool_id
    std::vector<int> by_bound;     // cands by descending bound, then pool_id
    std::vector<uint64_t> bitmap;  // membership of cands, by pool position
    int32_t out_of_scope = 0;      // active, fresh pools outside the scope
    int32_t no_accelerator = 0;    // in scope, accelerator does not match
  };
  struct Req {
    int key = 0;
    int32_t gpus = 0;
    int64_t ceiling = 0;  // 0 = none
    int32_t cand_count = 0;
    int32_t options = 0;
    size_t prefix_len = 0;
    uint64_t prefix_packed = 0;
    uint64_t prefix_mask = 0;
  };

  // RegionPreferred(pool(p), request(r)) without touching the strings in the common case.
  bool RegionMatch(int r, int p) const {
    const Req& req = reqs_[r];
    if (req.prefix_len == 0) return false;
    if (req.prefix_len <= 8) {
      return region_len_[p] >= req.prefix_len &&
             (region_packed_[p] & req.prefix_mask) == req.prefix_packed;
    }
    return RegionPreferred(pool(p), requests_[r]);
  }

  void IndexPools(absl::Time now) {
    int n = static_cast<int>(pools_.size());
    pool_index_.resize(n);
    for (int i = 0; i < n; ++i) pool_index_[i] = i;
    std::sort(pool_index_.begin(), pool_index_.end(),
              [&](int a, int b) { return pools_[a].pool_id < pools_[b].pool_id; });
    total_.resize(n);
    placeable_.resize(n);
    capacity_.resize(n);
    price_.resize(n);
    price_term_.resize(n);
    bound_.resize(n);
    pruning_ = weights_.utilization >= 0;
    region_packed_.resize(n);
    region_len_.resize(n);
    type_.assign(n, -1);
    absl::flat_hash_map<std::string, int> type_ids;
    for (int p = 0; p < n; ++p) {
      const PoolState& ps = pool(p);
      total_[p] = ps.gpus_total;
      placeable_[p] = PlaceableGpus(ps);
      capacity_[p] = ps.gpus_total > 0 ? placeable_[p] : 0;
      price_[p] = ps.price_fen_per_gpu_hour;
      price_term_[p] = PriceTerm(weights_.price, ps.price_fen_per_gpu_hour);
      // The same arithmetic as ScoreWith at 1 GPU and the region bonus: monotone in each step,
      // so no larger gang, smaller remaining capacity or missing region match scores above it.
      bound_[p] = UtilizationTerm(weights_.utilization, total_[p], placeable_[p], 1) +
                  price_term_[p] + std::max(0.0, weights_.region_preference);
      region_packed_[p] = PackPrefix(ps.region_code);
      region_len_[p] = ps.region_code.size();
      if (!ps.site_active) {
        ++suspended_;
      } else if (Stale(ps, now, weights_)) {
        ++stale_;
      } else {
        usable_.push_back(p);
        std::string type_key =
            absl::StrCat(ps.accelerator_model, "|", ps.fp8, ps.domestic, "|", ps.memory_gib);
        auto [it, inserted] = type_ids.try_emplace(type_key, static_cast<int>(type_pools_.size()));
        if (inserted) type_pools_.push_back(p);  // a representative pool of the type
        type_[p] = it->second;
      }
    }
  }

  void IndexRequests() {
    int n = request_count();
    reqs_.resize(n);
    absl::flat_hash_map<std::string, int> scope_ids, accel_ids;
    absl::flat_hash_map<std::pair<int, int>, int> key_ids;
    std::vector<std::vector<int>> scope_pools;     // per scope: usable pools in scope
    std::vector<std::vector<char>> accel_matches;  // per requirement: match per pool type
    for (int r = 0; r < n; ++r) {
      const PlacementRequest& request = requests_[r];
      const ProgramScope& scope = request.scope;
      std::string scope_key = absl::StrCat(static_cast<int>(scope.kind), "|");
      if (scope.kind == ScopeKind::kLocal) {
        absl::StrAppend(&scope_key, scope.issuer_is_city, "|", scope.issuer_region_code);
      } else if (scope.kind == ScopeKind::kList) {
        for (const std::string& id : scope.datacenter_ids) {
          absl::StrAppend(&scope_key, id.size(), ":", id);
        }
      }
      auto [scope_it, new_scope] = scope_ids.try_emplace(scope_key, scope_pools.size());
      if (new_scope) {
        std::vector<int>& in_scope = scope_pools.emplace_back();
        for (int p : usable_) {
          if (InScope(pool(p), scope)) in_scope.push_back(p);
        }
      }
      const AcceleratorRequirement& need = request.accelerator;
      std::string accel_key =
          absl::StrCat(need.fp8_required, need.domestic_required, "|", need.allowed_classes, "|",
                       need.min_memory_gib, "|", need.model);
      auto [accel_it, new_accel] = accel_ids.try_emplace(accel_key, accel_matches.size());
      if (new_accel) {
        std::vector<char>& matches = accel_matches.emplace_back(type_pools_.size());
        for (size_t t = 0; t < type_pools_.size(); ++t) {
          matches[t] = AcceleratorMatches(pool(type_pools_[t]), need);
        }
      }
      auto [key_it, new_key] =
          key_ids.try_emplace(std::make_pair(scope_it->second, accel_it->second), keys_.size());
      if (new_key) {
        const std::vector<int>& in_scope = scope_pools[scope_it->second];
        const std::vector<char>& matches = accel_matches[accel_it->second];
        Key& key = keys_.emplace_back();
        key.bitmap.assign((pools_.size() + 63) / 64, 0);
        for (int p : in_scope) {
          if (matches[type_[p]]) {
            key.cands.push_back(p);
            key.bitmap[p >> 6] |= uint64_t{1} << (p & 63);
          }
        }
        key.out_of_scope = static_cast<int32_t>(usable_.size() - in_scope.size());
        key.no_accelerator = static_cast<int32_t>(in_scope.size() - key.cands.size());
        key.by_bound = key.cands;  // in pool_id order
        std::stable_sort(key.cands.begin(), key.cands.end(),
                         [&](int a, int b) { return price_[a] < price_[b]; });
        std::stable_sort(key.by_bound.begin(), key.by_bound.end(),
                         [&](int a, int b) { return bound_[a] > bound_[b]; });
      }
      Req& req = reqs_[r];
      req.key = key_it->second;
      req.gpus = request.gpus;
      req.ceiling = PriceCeiling(request);
      const std::vector<int>& cands = keys_[req.key].cands;
      if (req.ceiling == 0) {
        req.cand_count = static_cast<int32_t>(cands.size());
      } else {
        auto end = std::upper_bound(cands.begin(), cands.end(), req.ceiling,
                                    [&](int64_t ceiling, int p) { return ceiling < price_[p]; });
        req.cand_count = static_cast<int32_t>(end - cands.begin());
      }
      for (int i = 0; i < req.cand_count; ++i) req.options += capacity_[cands[i]] >= req.gpus;
      if (req.gpus < 1) req.options = 0;
      req.prefix_len = request.preferred_region_prefix.size();
      req.prefix_packed = PackPrefix(request.preferred_region_prefix);
      req.prefix_mask =
          req.prefix_len >= 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * req.prefix_len)) - 1;
    }
  }

  const std::vector<PoolState>& pools_;
  const std::vector<PlacementRequest>& requests_;
  const PlacementWeights& weights_;
  // Per pool, indexed by position in pool_id order.
  std::vector<int> pool_index_;  // position -> index into pools_
  std::vector<int32_t> total_, placeable_, capacity_;
  std::vector<int64_t> price_;
  std::vector<double> price_term_;
  std::vector<double> bound_;
  bool pruning_ = false;
  std::vector<uint64_t> region_packed_;
  std::vector<size_t> region_len_;
  std::vector<int> type_;        // accelerator type id of a usable pool
  std::vector<int> type_pools_;  // a pool of each accelerator type
  std::vector<int> usable_;      // active and fresh
  int32_t suspended_ = 0, stale_ = 0;
  std::vector<Key> keys_;
  std::vector<Req> reqs_;
};

// Greedy on the engine: requests in order, each on its best pool given what earlier ones took,
// scored against the GPUs left then: exactly PlaceOne against the updated pools. Returns each
// request's pool (-1: unplaced) and, in *placeable_at, what that pool had left when the request
// was scored.
std::vector<int> RunGreedy(const Engine& engine, std::vector<int32_t>* placeable_at) {
  std::vector<int32_t> residual = engine.capacities();
  std::vector<int> pool_of(engine.request_count(), -1);
  placeable_at->assign(engine.request_count(), 0);
  for (int r = 0; r < engine.request_count(); ++r) {
    int32_t gpus = engine.gpus(r);
    if (engine.options(r) == 0) continue;
    int best = -1;
    double best_score = 0;
    for (const int* it = engine.bound_begin(r); it != engine.bound_end(r); ++it) {
      int p = *it;
      if (best >= 0 && engine.pruning() && engine.bound(p) < best_score) break;
      if (residual[p] < gpus || !engine.WithinCeiling(r, p)) continue;
      double score = engine.ScoreWith(r, p, residual[p]);
      if (best < 0 || score > best_score || (score == best_score && p < best)) {
        best = p;
        best_score = score;
      }
    }
    if (best >= 0) {
      pool_of[r] = best;
      (*placeable_at)[r] = residual[best];
      residual[best] -= gpus;
    }
  }
  return pool_of;
}

// The batch search. A constructive pass (see StartOrder; each request on its best-scoring pool
// with room), then rounds of improving moves until none applies:
//   insert   an unplaced request into a pool with room, or into a pool where room is made by
//            moving placed requests elsewhere (an ejection chain up to kEjectionDepth deep:
//            a moved request may itself make room by moving others) — one more placed;
//   move     a placed request to a better-scoring pool with room;
//   swap     two placed requests between their pools when both fit and the sum improves;
//   replace  a placed request by an unplaced one no larger that scores better there;
// and, when those are exhausted, two larger neighbourhoods:
//   ruin and recreate  around an unplaced request: empty every pool it could use, place it,
//            re-insert the evicted and the other unplaced requests (with ejection chains);
//   chain move  a placed request to a better pool without room, making room by ejection.
// Every accepted move increases (requests placed, total score) lexicographically, which is
// the objective's order (the bonus makes a placement worth more than any score difference),
// so the search terminates. Tentative moves go through a journal and are rolled back; the
// best attempt's steps are replayed. Everything is deterministic: orders are fixed, ties go
// to lower indices, and the work budget is a count.
// Orders of the constructive pass: small gangs first (places the most requests), the most
// constrained first (fewest pools with capacity), large gangs first; ties by fewer options, then
// request index.
enum class StartOrder { kSmallFirst, kConstrainedFirst, kLargeFirst };

class BatchSearch {
 public:
  // One journaled change of a request's pool.
  struct Step {
    int r;
    int from;  // pool before the step, -1 unplaced
    int to;    // pool after the step, -1 unplaced
  };

  // `work` counts (request, pool) evaluations across searches, against kWorkBudget.
  BatchSearch(const Engine& engine, int64_t* work)
      : work_(*work),
        e_(engine),
        pool_of_(engine.request_count(), -1),
        slot_(engine.request_count(), -1),
        residual_(engine.capacities()),
        members_(engine.pool_count()),
        locked_(engine.pool_count(), 0) {}

  void Construct(StartOrder order) {
    struct Item {
      int r;
      int32_t gpus;
      int32_t options;
    };
    std::vector<Item> items;
    for (int r = 0; r < e_.request_count(); ++r) {
      if (e_.options(r) > 0) items.push_back({r, e_.gpus(r), e_.options(r)});
    }
    std::sort(items.begin(), items.end(), [order](const Item& a, const Item& b) {
      switch (order) {
        case StartOrder::kSmallFirst:
          if (a.gpus != b.gpus) return a.gpus < b.gpus;
          if (a.options != b.options) return a.options < b.options;
          break;
        case StartOrder::kConstrainedFirst:
          if (a.options != b.options) return a.options < b.options;
          if (a.gpus != b.gpus) return a.gpus < b.gpus;
          break;
        case StartOrder::kLargeFirst:
          if (a.gpus != b.gpus) return a.gpus > b.gpus;
          if (a.options != b.options) return a.options < b.options;
          break;
      }
      return a.r < b.r;
    });
    for (const Item& item : items) {
      double score;
      int p = BestWithRoom(item.r, -1, &score);
      if (p >= 0) Place(item.r, p);
    }
  }

  void Load(const std::vector<int>& pool_of) {
    for (int r = 0; r < e_.request_count(); ++r) {
      if (pool_of[r] >= 0) Place(r, pool_of[r]);
    }
  }

  void Improve() {
    std::vector<int> unplaced;
    for (int round = 0; round < kMaxImprovementRounds; ++round) {
      bool changed = false;
      CollectUnplaced(&unplaced);
      for (int u : unplaced) changed |= TryInsert(u);
      for (int r = 0; r < e_.request_count(); ++r) {
        if (pool_of_[r] >= 0) changed |= TryMoveOrSwap(r);
      }
      CollectUnplaced(&unplaced);
      for (int u : unplaced) changed |= TryReplace(u);
      if (!changed) {
        CollectUnplaced(&unplaced);
        for (int u : unplaced) {
          if (pool_of_[u] < 0) changed |= TryRuinAndRecreate(u);
        }
      }
      if (!changed) {
        for (int r = 0; r < e_.request_count(); ++r) {
          if (pool_of_[r] >= 0) changed |= TryChainMove(r);
        }
      }
      // Past the budget, even the cheap moves stop: each round scans every request.
      if (!changed || work_ > kWorkBudget) break;
    }
    // Whatever the budget left undone, no unplaced request may fit where there is room.
    CollectUnplaced(&unplaced);
    for (int u : unplaced) {
      double score;
      int p = BestWithRoom(u, -1, &score);
      if (p >= 0) Place(u, p);
    }
  }

  const std::vector<int>& pool_of() const { return pool_of_; }

  // (placed, total score): the objective's lexicographic order.
  std::pair<int, double> Value() const {
    int placed = 0;
    double score = 0;
    for (int r = 0; r < e_.request_count(); ++r) {
      if (pool_of_[r] < 0) continue;
      ++placed;
      score += e_.StaticScore(r, pool_of_[r]);
    }
    return {placed, score};
  }

 private:
  // Ejection chains: inserting u may move requests out of its pool, and each of those may
  // move others out of its new pool, this many levels down.
  static constexpr int kEjectionDepth = 2;
  // Ruin and recreate only around requests with at most this many pools: emptying more is a
  // restart, not a neighbourhood (on the bench's 50 x 20 instances, no cap gives the same).
  static constexpr int kMaxRuinedPools = 10;

  void Place(int r, int p) {
    pool_of_[r] = p;
    residual_[p] -= e_.gpus(r);
    slot_[r] = static_cast<int>(members_[p].size());
    members_[p].push_back(r);
  }

  void Unplace(int r) {
    int p = pool_of_[r];
    residual_[p] += e_.gpus(r);
    std::vector<int>& members = members_[p];
    int last = members.back();
    members[slot_[r]] = last;
    slot_[last] = slot_[r];
    members.pop_back();
    pool_of_[r] = -1;
    slot_[r] = -1;
  }

  // A journaled change of r's pool (-1: unplaced); gain_ accumulates the score change.
  void Assign(int r, int to) {
    int from = pool_of_[r];
    journal_.push_back({r, from, to});
    if (from >= 0) {
      gain_ -= e_.StaticScore(r, from);
      Unplace(r);
    }
    if (to >= 0) {
      gain_ += e_.StaticScore(r, to);
      Place(r, to);
    }
  }

  void Rollback(size_t mark) {
    while (journal_.size() > mark) {
      auto [r, from, to] = journal_.back();
      journal_.pop_back();
      if (pool_of_[r] >= 0) {
        gain_ -= e_.StaticScore(r, pool_of_[r]);
        Unplace(r);
      }
      if (from >= 0) {
        gain_ += e_.StaticScore(r, from);
        Place(r, from);
      }
    }
  }

  // Re-applies steps recorded from the journal, starting from the state they started from.
  void Replay(const std::vector<Step>& steps) {
    for (const Step& step : steps) Assign(step.r, step.to);
  }

  void CollectUnplaced(std::vector<int>* unplaced) const {
    unplaced->clear();
    for (int r = 0; r < e_.request_count(); ++r) {
      if (pool_of_[r] < 0 && e_.options(r) > 0) unplaced->push_back(r);
    }
    std::stable_sort(unplaced->begin(), unplaced->end(),
                     [&](int a, int b) { return e_.gpus(a) < e_.gpus(b); });
  }

  // The best-scoring candidate of r other than `exclude` and locked pools with room for it, or
  // -1.
  int BestWithRoom(int r, int exclude, double* best_score) {
    int32_t gpus = e_.gpus(r);
    int best = -1;
    const int* it = e_.bound_begin(r);
    for (; it != e_.bound_end(r); ++it) {
      int p = *it;
      if (best >= 0 && e_.pruning() && e_.bound(p) < *best_score) break;
      if (p == exclude || residual_[p] < gpus || locked_[p] || !e_.WithinCeiling(r, p)) continue;
      double score = e_.StaticScore(r, p);
      if (best < 0 || score > *best_score || (score == *best_score && p < best)) {
        best = p;
        *best_score = score;
      }
    }
    work_ += 1 + (it - e_.bound_begin(r));
    return best;
  }

  // Moves q (placed) to another unlocked pool: one with room, or, when depth > 0, one where
  // room is made by moving others. Picks the best gain; false (nothing changed) if impossible.
  bool Relocate(int q, int depth) {
    double score;
    int target = BestWithRoom(q, pool_of_[q], &score);
    if (target >= 0) {
      Assign(q, target);
      return true;
    }
    if (depth == 0 || work_ > kWorkBudget) return false;
    int32_t gpus = e_.gpus(q);
    int from = pool_of_[q];
    size_t mark = journal_.size();
    double base = gain_;
    double best_gain = -std::numeric_limits<double>::infinity();
    std::vector<Step> best_steps;
    for (const int* it = e_.cand_begin(q); it != e_.cand_end(q); ++it) {
      int t = *it;
      if (t == from || locked_[t] || e_.capacity(t) < gpus) continue;
      if (MakeRoomAndAssign(q, t, depth - 1) && gain_ - base > best_gain) {
        best_gain = gain_ - base;
        best_steps.assign(journal_.begin() + mark, journal_.end());
      }
      Rollback(mark);
    }
    Replay(best_steps);
    return !best_steps.empty();
  }

  // Puts r on pool p (unlocked, capacity enough), first moving requests out of p (each with
  // Relocate at `depth`) until r fits. False (nothing changed) if impossible.
  bool MakeRoomAndAssign(int r, int p, int depth) {
    int32_t gpus = e_.gpus(r);
    if (residual_[p] >= gpus) {
      Assign(r, p);
      return true;
    }
    size_t mark = journal_.size();
    locked_[p] = 1;
    bool ok = MakeRoom(p, gpus, depth);
    locked_[p] = 0;
    if (!ok) {
      Rollback(mark);
      return false;
    }
    Assign(r, p);
    return true;
  }

  // Frees pool p (locked by the caller) until it has `gpus` left: the single member whose move
  // gains most among those large enough, else members largest first.
  bool MakeRoom(int p, int32_t gpus, int depth) {
    int32_t shortfall = gpus - residual_[p];
    work_ += static_cast<int64_t>(members_[p].size());
    std::vector<int> members = members_[p];  // Relocate changes members_[p]
    size_t mark = journal_.size();
    double base = gain_;
    double best_gain = -std::numeric_limits<double>::infinity();
    std::vector<Step> best_steps;
    for (int q : members) {
      if (e_.gpus(q) < shortfall) continue;
      if (Relocate(q, depth) && gain_ - base > best_gain) {
        best_gain = gain_ - base;
        best_steps.assign(journal_.begin() + mark, journal_.end());
      }
      Rollback(mark);
    }
    if (!best_steps.empty()) {
      Replay(best_steps);
      return true;
    }
    std::stable_sort(members.begin(), members.end(),
                     [&](int a, int b) { return e_.gpus(a) > e_.gpus(b); });
    for (int q : members) {
      if (residual_[p] >= gpus) break;
      Relocate(q, depth);
    }
    if (residual_[p] >= gpus) return true;
    Rollback(mark);
    return false;
  }

  // Inserts u (unplaced): directly into its best pool with room, else into the pool where an
  // ejection chain gains most. Journaled; false (nothing changed) if impossible.
  bool InsertWithChains(int u) {
    double score;
    int p = BestWithRoom(u, -1, &score);
    if (p >= 0) {
      Assign(u, p);
      return true;
    }
    if (work_ > kWorkBudget) return false;
    int32_t gpus = e_.gpus(u);
    size_t mark = journal_.size();
    double base = gain_;
    double best_gain = -std::numeric_limits<double>::infinity();
    std::vector<Step> best_steps;
    for (const int* it = e_.cand_begin(u); it != e_.cand_end(u); ++it) {
      int p = *it;
      if (e_.capacity(p) < gpus || locked_[p]) continue;
      if (MakeRoomAndAssign(u, p, kEjectionDepth - 1) && gain_ - base > best_gain) {
        best_gain = gain_ - base;
        best_steps.assign(journal_.begin() + mark, journal_.end());
      }
      Rollback(mark);
    }
    Replay(best_steps);
    return !best_steps.empty();
  }

  bool TryInsert(int u) {
    journal_.clear();
    bool inserted = InsertWithChains(u);
    journal_.clear();
    return inserted;
  }

  // Ruin and recreate around an unplaced request u: empty every pool u could use, put u first,
  // then re-insert the evicted requests and the unplaced ones that could use those pools, small
  // gangs first, each with ejection chains. Kept when it places more (or as many, scoring
  // better); rolled back otherwise.
  bool TryRuinAndRecreate(int u) {
    if (work_ > kWorkBudget) return false;
    int32_t gpus = e_.gpus(u);
    if (e_.options(u) > kMaxRuinedPools) return false;
    journal_.clear();
    gain_ = 0;
    std::vector<int> ruined;
    std::vector<int> again;
    for (const int* it = e_.cand_begin(u); it != e_.cand_end(u); ++it) {
      if (e_.capacity(*it) < gpus) continue;
      ruined.push_back(*it);
      std::vector<int> members = members_[*it];
      for (int q : members) {
        Assign(q, -1);
        again.push_back(q);
      }
    }
    int delta = -static_cast<int>(again.size());
    double score;
    int p = BestWithRoom(u, -1, &score);
    if (p < 0) {
      Rollback(0);
      return false;
    }
    Assign(u, p);
    ++delta;
    work_ += static_cast<int64_t>(e_.request_count()) * static_cast<int64_t>(ruined.size());
    for (int v = 0; v < e_.request_count(); ++v) {
      if (pool_of_[v] >= 0 || v == u || e_.gpus(v) < 1) continue;
      bool evicted = std::find(again.begin(), again.end(), v) != again.end();
      if (evicted) continue;
      for (int t : ruined) {
        if (e_.IsCandidate(v, t) && e_.capacity(t) >= e_.gpus(v)) {
          again.push_back(v);
          break;
        }
      }
    }
    std::stable_sort(again.begin(), again.end(),
                     [&](int a, int b) { return e_.gpus(a) < e_.gpus(b); });
    for (int v : again) {
      if (InsertWithChains(v)) ++delta;
    }
    bool better = delta > 0 || (delta == 0 && gain_ > kMinGain);
    if (!better) Rollback(0);
    journal_.clear();
    return better;
  }

  // Moves placed r to a better-scoring pool without room, making room there with ejection
  // chains (the others moved may also go to r's old pool). Kept when the total score improves.
  bool TryChainMove(int r) {
    if (work_ > kWorkBudget) return false;
    int from = pool_of_[r];
    int32_t gpus = e_.gpus(r);
    double current = e_.StaticScore(r, from);
    journal_.clear();
    gain_ = 0;
    Assign(r, -1);
    size_t mark = journal_.size();
    double best_gain = kMinGain;
    std::vector<Step> best_steps;
    for (const int* it = e_.bound_begin(r); it != e_.bound_end(r); ++it) {
      int p = *it;
      if (e_.pruning() && e_.bound(p) - current <= kMinGain) break;
      ++work_;
      if (p == from || e_.capacity(p) < gpus || residual_[p] >= gpus) continue;
      if (!e_.WithinCeiling(r, p) || e_.StaticScore(r, p) - current <= kMinGain) continue;
      if (MakeRoomAndAssign(r, p, kEjectionDepth - 1) && gain_ > best_gain) {
        best_gain = gain_;
        best_steps.assign(journal_.begin() + mark, journal_.end());
      }
      Rollback(mark);
    }
    if (best_steps.empty()) {
      Rollback(0);
    } else {
      Replay(best_steps);
    }
    journal_.clear();
    return !best_steps.empty();
  }

  bool TryMoveOrSwap(int r) {
    int from = pool_of_[r];
    int32_t gpus = e_.gpus(r);
    double current = e_.StaticScore(r, from);
    double best_gain = kMinGain;
    int best_pool = -1, best_partner = -1;
    bool budget_left = work_ <= kWorkBudget;
    const int* it = e_.bound_begin(r);
    for (; it != e_.bound_end(r); ++it) {
      int p = *it;
      if (e_.pruning() && e_.bound(p) - current <= kMinGain) break;
      if (p == from || !e_.WithinCeiling(r, p)) continue;
      double gain_r = e_.StaticScore(r, p) - current;
      // A swap that improves the sum improves one side; it is found from that side.
      if (gain_r <= kMinGain) continue;
      if (residual_[p] >= gpus) {
        if (gain_r > best_gain) {
          best_gain = gain_r;
          best_pool = p;
          best_partner = -1;
        }
        continue;
      }
      if (!budget_left) continue;
      work_ += static_cast<int64_t>(members_[p].size());
      for (int q : members_[p]) {
        int32_t q_gpus = e_.gpus(q);
        if (residual_[p] + q_gpus < gpus || residual_[from] + gpus < q_gpus) continue;
        if (!e_.IsCandidate(q, from)) continue;
        double gain = gain_r + e_.StaticScore(q, from) - e_.StaticScore(q, p);
        if (gain > best_gain) {
          best_gain = gain;
          best_pool = p;
          best_partner = q;
        }
      }
    }
    work_ += 1 + (it - e_.bound_begin(r));
    if (best_pool < 0) return false;
    Unplace(r);
    if (best_partner >= 0) {
      Unplace(best_partner);
      Place(best_partner, from);
    }
    Place(r, best_pool);
    return true;
  }

  // An unplaced request takes the place of a placed one that is at least as large (so no room
  // is lost for later insertions) and scores less there.
  bool TryReplace(int u) {
    if (work_ > kWorkBudget) return false;
    int32_t gpus = e_.gpus(u);
    double best_gain = kMinGain;
    int best_victim = -1;
    for (const int* it = e_.cand_begin(u); it != e_.cand_end(u); ++it) {
      int p = *it;
      if (e_.capacity(p) < gpus) continue;
      double score = e_.StaticScore(u, p);
      work_ += 1 + static_cast<int64_t>(members_[p].size());
      for (int r : members_[p]) {
        if (e_.gpus(r) < gpus) continue;
        double gain = score - e_.StaticScore(r, p);
        if (gain > best_gain) {
          best_gain = gain;
          best_victim = r;
        }
      }
    }
    if (best_victim < 0) return false;
    int p = pool_of_[best_victim];
    Unplace(best_victim);
    Place(u, p);
    return true;
  }

  int64_t& work_;
  const Engine& e_;
  std::vector<int> pool_of_;       // per request: pool position, -1 unplaced
  std::vector<int> slot_;          // per placed request: index in members_[pool]
  std::vector<int32_t> residual_;  // per pool: GPUs left
  std::vector<std::vector<int>> members_;
  std::vector<char> locked_;  // per pool: being emptied by an ejection chain
  std::vector<Step> journal_;
  double gain_ = 0;  // score change of the journaled steps
};

bool Better(const std::pair<int, double>& a, const std::pair<int, double>& b) {
  return a.first != b.first ? a.first > b.first : a.second > b.second;
}

}  // namespace

const char* ExclusionReasonName(ExclusionReason reason) {
  switch (reason) {
    case ExclusionReason::kSiteSuspended:
      return "SITE_SUSPENDED";
    case ExclusionReason::kStaleReport:
      return "STALE_REPORT";
    case ExclusionReason::kOutOfScope:
      return "OUT_OF_SCOPE";
    case ExclusionReason::kNoMatchingAccelerator:
      return "NO_MATCHING_ACCELERATOR";
    case ExclusionReason::kPriceCeiling:
      return "PRICE_CEILING";
    case ExclusionReason::kInsufficientGpus:
      return "INSUFFICIENT_GPUS";
  }
  return "UNKNOWN";
}

int32_t PlaceableGpus(const PoolState& pool) {
  return std::max<int32_t>(0, pool.gpus_free - pool.gpus_held);
}

bool Excluded(const PoolState& pool, const PlacementRequest& request, absl::Time now,
              const PlacementWeights& weights, ExclusionReason* reason) {
  if (!pool.site_active) {
    *reason = ExclusionReason::kSiteSuspended;
  } else if (Stale(pool, now, weights)) {
    *reason = ExclusionReason::kStaleReport;
  } else if (!InScope(pool, request.scope)) {
    *reason = ExclusionReason::kOutOfScope;
  } else if (!AcceleratorMatches(pool, request.accelerator)) {
    *reason = ExclusionReason::kNoMatchingAccelerator;
  } else if (int64_t ceiling = PriceCeiling(request);
             ceiling != 0 && pool.price_fen_per_gpu_hour > ceiling) {
    *reason = ExclusionReason::kPriceCeiling;
  } else if (request.gpus < 1 || pool.gpus_total <= 0 || PlaceableGpus(pool) < request.gpus) {
    *reason = ExclusionReason::kInsufficientGpus;
  } else {
    return false;
  }
  return true;
}

ScoreBreakdown Score(const PoolState& pool, const PlacementRequest& request,
                     const PlacementWeights& weights) {
  return ScoreAt(pool, PlaceableGpus(pool), request, weights);
}

PlacementDecision PlaceOne(const std::vector<PoolState>& pools, const PlacementRequest& request,
                           absl::Time now, const PlacementWeights& weights) {
  PlacementDecision decision;
  decision.request_id = request.request_id;
  const PoolState* best = nullptr;
  for (const PoolState& pool : pools) {
    ExclusionReason reason;
    if (Excluded(pool, request, now, weights, &reason)) {
      ++decision.excluded[static_cast<int>(reason)];
      continue;
    }
    ScoreBreakdown score = Score(pool, request, weights);
    if (best == nullptr || score.total > decision.score.total ||
        (score.total == decision.score.total && pool.pool_id < best->pool_id)) {
      best = &pool;
      decision.score = score;
    }
  }
  if (best != nullptr) {
    decision.placed = true;
    decision.pool_id = best->pool_id;
    std::fill(std::begin(decision.excluded), std::end(decision.excluded), 0);
  }
  return decision;
}

std::vector<PlacementDecision> PlaceGreedy(std::vector<PoolState> pools,
                                           const std::vector<PlacementRequest>& requests,
                                           absl::Time now, const PlacementWeights& weights) {
  Engine engine(pools, requests, now, weights);
  std::vector<int32_t> placeable_at;
  std::vector<int> pool_of = RunGreedy(engine, &placeable_at);
  std::vector<PlacementDecision> decisions;
  decisions.reserve(requests.size());
  for (int r = 0; r < engine.request_count(); ++r) {
    // An unplaced request's counts are as PlaceOne saw the pools when its turn came; pools
    // filled later do not change them, and every candidate had too little room then.
    decisions.push_back(engine.Decide(r, pool_of[r], placeable_at[r]));
  }
  return decisions;
}

std::vector<PlacementDecision> PlaceBatch(std::vector<PoolState> pools,
                                          const std::vector<PlacementRequest>& requests,
                                          absl::Time now, const PlacementWeights& weights) {
  Engine engine(pools, requests, now, weights);
  int64_t work = 0;
  // Several starting points, each improved: small gangs first (most placements), most
  // constrained first, large gangs first, and the greedy order, so the batch never loses to
  // one-at-a-time placement. Later starts run only while the work budget allows, so a large
  // window gets the first start and the greedy one.
  std::vector<int32_t> unused_placeable;
  std::vector<int> greedy = RunGreedy(engine, &unused_placeable);
  std::vector<int> best;
  std::pair<int, double> best_value{-1, 0};
  auto consider = [&](BatchSearch& search) {
    search.Improve();
    std::pair<int, double> value = search.Value();
    if (Better(value, best_value)) {
      best = search.pool_of();
      best_value = value;
    }
  };
  {
    BatchSearch search(engine, &work);
    search.Construct(StartOrder::kSmallFirst);
    consider(search);
  }
  for (StartOrder order : {StartOrder::kConstrainedFirst, StartOrder::kLargeFirst}) {
    if (work > kRestartWorkLimit) break;
    BatchSearch search(engine, &work);
    search.Construct(order);
    consider(search);
  }
  {
    BatchSearch search(engine, &work);
    search.Load(greedy);
    if (work <= kRestartWorkLimit || Better(search.Value(), best_value)) consider(search);
  }
  std::vector<PlacementDecision> decisions;
  decisions.reserve(requests.size());
  for (int r = 0; r < engine.request_count(); ++r) {
    int p = best[r];
    decisions.push_back(engine.Decide(r, p, p >= 0 ? engine.capacity(p) : 0));
  }
  return decisions;
}

double PlacementBonus(const std::vector<PoolState>& pools, size_t request_count,
                      const PlacementWeights& weights) {
  // Every score term of a feasible placement is bounded in magnitude: the utilization term by
  // |w_u| * placeable / total, the price term by |w_p| * price / 100, the region term by |w_r|.
  // With T the sum of those bounds, any two solutions' total scores differ by less than
  // 2 * n * T (n requests), so a bonus above that makes one more placement always win.
  double max_idle = 1.0;
  double max_price = 0;
  for (const PoolState& pool : pools) {
    if (pool.gpus_total > 0) {
      max_idle = std::max(max_idle, static_cast<double>(PlaceableGpus(pool)) / pool.gpus_total);
    }
    max_price = std::max(max_price, std::abs(static_cast<double>(pool.price_fen_per_gpu_hour)));
  }
  double term_bound = std::abs(weights.utilization) * max_idle +
                      std::abs(weights.price) * max_price / 100.0 +
                      std::abs(weights.region_preference);
  return 1.0 + 2.0 * static_cast<double>(std::max<size_t>(request_count, 1)) * term_bound;
}

double Objective(const std::vector<PoolState>& pools, const std::vector<PlacementRequest>& requests,
                 const std::vector<PlacementDecision>& decisions, const PlacementWeights& weights) {
  double bonus = PlacementBonus(pools, requests.size(), weights);
  absl::flat_hash_map<std::string_view, const PoolState*> by_id;
  by_id.reserve(pools.size());
  for (const PoolState& pool : pools) by_id.try_emplace(pool.pool_id, &pool);
  double total = 0;
  size_t n = std::min(requests.size(), decisions.size());
  for (size_t i = 0; i < n; ++i) {
    if (!decisions[i].placed) continue;
    auto it = by_id.find(decisions[i].pool_id);
    if (it == by_id.end()) continue;
    total += bonus + Score(*it->second, requests[i], weights).total;
  }
  return total;
}

}  // namespace vch::policy
