// placement_bench: speed and quality of the placement engine (policy/placement.h). Driven by
// bench/placement.
//
//   placement_bench [--seed 1] [--big-requests 10000] [--big-pools 2000] [--reps 5]
//                   [--instances 200] [--requests 50] [--pools 20] [--glpk-limit-ms 20000]
//
// (1) Speed: wall time of PlaceBatch (and, for comparison, PlaceGreedy) on one window of
//     10,000 requests against 2,000 pools, single-threaded, median of --reps runs after a
//     warm-up; instance generation is not timed.
// (2) Quality: on --instances random instances of 50 requests x 20 pools, the objective
//     (policy::Objective) of PlaceBatch and of PlaceGreedy divided by the exact optimum of the
//     same objective, found by GLPK's branch and cut (glp_intopt, presolve on). An instance whose
//     solve hits the time limit is reported and left out of the statistics.
//
// Instances are realistic by construction: eastern hubs busy and expensive, western hubs idle
// and cheap, mixed imported and domestic accelerators, gangs of 1-16 GPUs, some stale reports
// and suspended sites, LOCAL/NATIONAL/LIST program scopes with price ceilings, and more demand
// than idle capacity, so that choices matter.
//
// Last line: RESULT batch_10k_x_2k_ms=N batch_quality_mean=R batch_quality_min=R
//            greedy_quality_mean=R
#include <glpk.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "policy/placement.h"

namespace vch::bench {
namespace {

using policy::AcceleratorRequirement;
using policy::ExclusionReason;
using policy::NationalHub;
using policy::PlacementDecision;
using policy::PlacementRequest;
using policy::PlacementWeights;
using policy::PoolState;
using policy::ProgramScope;
using policy::ScopeKind;

using Clock = std::chrono::steady_clock;

struct Options {
  uint64_t seed = 1;
  int big_requests = 10000;
  int big_pools = 2000;
  int reps = 5;
  int instances = 200;
  int requests = 50;
  int pools = 20;
  int glpk_limit_ms = 20000;
};

// --- Realistic random instances. ---

struct City {
  const char* region_code;  // GB/T 2260, city level
  NationalHub hub;
  bool west;    // idle, cheap
  bool middle;  // Chengdu-Chongqing: in between
};

// Cities hosting datacenters, by hub of the "East Data, West Computing" plan.
constexpr City kCities[] = {
    {"110100", NationalHub::kBeijingTianjinHebei, false, false},     // Beijing
    {"120100", NationalHub::kBeijingTianjinHebei, false, false},     // Tianjin
    {"130700", NationalHub::kBeijingTianjinHebei, false, false},     // Zhangjiakou
    {"131000", NationalHub::kBeijingTianjinHebei, false, false},     // Langfang
    {"310100", NationalHub::kYangtzeRiverDelta, false, false},       // Shanghai
    {"320500", NationalHub::kYangtzeRiverDelta, false, false},       // Suzhou
    {"330100", NationalHub::kYangtzeRiverDelta, false, false},       // Hangzhou
    {"340200", NationalHub::kYangtzeRiverDelta, false, false},       // Wuhu
    {"440300", NationalHub::kGuangdongHongKongMacao, false, false},  // Shenzhen
    {"440200", NationalHub::kGuangdongHongKongMacao, false, false},  // Shaoguan
    {"510100", NationalHub::kChengduChongqing, false, true},         // Chengdu
    {"500100", NationalHub::kChengduChongqing, false, true},         // Chongqing
    {"150100", NationalHub::kInnerMongolia, true, false},            // Hohhot
    {"150900", NationalHub::kInnerMongolia, true, false},            // Ulanqab
    {"520100", NationalHub::kGuizhou, true, false},                  // Guiyang / Gui'an
    {"620100", NationalHub::kGansu, true, false},                    // Lanzhou
    {"621000", NationalHub::kGansu, true, false},                    // Qingyang
    {"640500", NationalHub::kNingxia, true, false},                  // Zhongwei
};
constexpr int kCityCount = sizeof(kCities) / sizeof(kCities[0]);

struct Accelerator {
  const char* model;
  bool domestic, fp8;
  int32_t memory_gib;
  int weight;  // relative frequency among pools and named requirements
};
constexpr Accelerator kAccelerators[] = {
    {"H800", false, true, 80, 20},        {"H20", false, true, 96, 15},
    {"A800", false, false, 80, 20},       {"L20", false, true, 48, 10},
    {"Ascend 910B", true, false, 64, 25}, {"Hygon K100", true, false, 64, 10},
};
constexpr int kAcceleratorCount = sizeof(kAccelerators) / sizeof(kAccelerators[0]);

// Issuers of voucher programs: mostly the rich eastern cities and provinces, some western.
constexpr const char* kIssuerCities[] = {"310100", "110100", "440300", "330100",
                                         "320500", "510100", "520100", "640500"};
constexpr const char* kIssuerProvinces[] = {"310000", "440000", "330000", "320000",
                                            "510000", "520000", "150000", "620000"};

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}

  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  double Real(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng_); }
  bool Chance(double p) { return Real(0, 1) < p; }

  const Accelerator& PickAccelerator() {
    int total = 0;
    for (const Accelerator& a : kAccelerators) total += a.weight;
    int x = Uniform(0, total - 1);
    for (const Accelerator& a : kAccelerators) {
      if (x < a.weight) return a;
      x -= a.weight;
    }
    return kAccelerators[0];
  }

  // `pool_count` pools in datacenters of 1-3 pools each; pools of 8 x [1, max_nodes] GPUs.
  std::vector<PoolState> Pools(int pool_count, int max_nodes, absl::Time now) {
    std::vector<PoolState> pools;
    int dc = 0;
    while (static_cast<int>(pools.size()) < pool_count) {
      const City& city = kCities[Uniform(0, kCityCount - 1)];
      std::string datacenter_id = absl::StrCat("dc-", dc++);
      bool active = !Chance(0.04);
      bool national = city.west || Chance(0.8);
      int pools_here = std::min(Uniform(1, 3), pool_count - static_cast<int>(pools.size()));
      for (int i = 0; i < pools_here; ++i) {
        const Accelerator& accel = PickAccelerator();
        PoolState pool;
        pool.pool_id = absl::StrCat(datacenter_id, "-p", i);
        pool.datacenter_id = datacenter_id;
        pool.region_code = city.region_code;
        pool.hub = city.hub;
        pool.national_network = national;
        pool.site_active = active;
        pool.accelerator_model = accel.model;
        pool.domestic = accel.domestic;
        pool.fp8 = accel.fp8;
        pool.memory_gib = accel.memory_gib;
        pool.gpus_total = 8 * Uniform(1, max_nodes);
        double utilization = city.west     ? Real(0.20, 0.30)
                             : city.middle ? Real(0.50, 0.70)
                                           : Real(0.70, 0.95);
        pool.gpus_free = static_cast<int32_t>(pool.gpus_total * (1 - utilization) + 0.5);
        pool.gpus_held = Chance(0.3) ? Uniform(0, pool.gpus_free / 5) : 0;
        double price = city.west     ? Real(1200, 2000)
                       : city.middle ? Real(1800, 2800)
                                     : Real(2500, 4000);
        if (accel.domestic) price *= 0.85;
        pool.price_fen_per_gpu_hour = static_cast<int64_t>(price / 10) * 10;
        pool.reported_at = now - (Chance(0.05) ? absl::Minutes(Uniform(16, 90))
                                               : absl::Seconds(Uniform(0, 14 * 60)));
        pools.push_back(std::move(pool));
      }
    }
    return pools;
  }

  ProgramScope Program(const std::vector<PoolState>& pools) {
    ProgramScope scope;
    double x = Real(0, 1);
    if (x < 0.30) {
      scope.kind = ScopeKind::kLocal;
      scope.issuer_is_city = Chance(0.5);
      scope.issuer_region_code =
          scope.issuer_is_city ? kIssuerCities[Uniform(0, std::size(kIssuerCities) - 1)]
                               : kIssuerProvinces[Uniform(0, std::size(kIssuerProvinces) - 1)];
    } else if (x < 0.85) {
      scope.kind = ScopeKind::kNational;
    } else {
      scope.kind = ScopeKind::kList;
      int n = Uniform(3, 8);
      for (int i = 0; i < n; ++i) {
        scope.datacenter_ids.push_back(pools[Uniform(0, pools.size() - 1)].datacenter_id);
      }
    }
    scope.price_ceiling_fen_per_gpu_hour = 100 * Uniform(18, 45);
    return scope;
  }

  int32_t Gang() {
    double x = Real(0, 1);
    if (x < 0.25) return 1;
    if (x < 0.45) return 2;
    if (x < 0.65) return 4;
    if (x < 0.85) return 8;
    if (x < 0.95) return 16;
    return Uniform(1, 16);
  }

  std::vector<PlacementRequest> Requests(int request_count, int program_count,
                                         const std::vector<PoolState>& pools) {
    std::vector<ProgramScope> programs;
    for (int i = 0; i < program_count; ++i) programs.push_back(Program(pools));
    std::vector<PlacementRequest> requests;
    for (int i = 0; i < request_count; ++i) {
      PlacementRequest request;
      request.request_id = absl::StrCat("req-", i);
      request.scope = programs[Uniform(0, program_count - 1)];
      double x = Real(0, 1);
      AcceleratorRequirement& need = request.accelerator;
      if (x < 0.40) {
        need.model = PickAccelerator().model;
      } else if (x < 0.60) {
        need.fp8_required = true;
      } else if (x < 0.75) {
        need.domestic_required = true;
      } else if (x < 0.80) {
        need.min_memory_gib = Chance(0.5) ? 64 : 80;
      }  // else: any accelerator
      request.gpus = Gang();
      if (Chance(0.4)) request.max_price_fen_per_gpu_hour = 100 * Uniform(13, 40);
      if (Chance(0.25)) {
        request.preferred_region_prefix =
            std::string(kCities[Uniform(0, kCityCount - 1)].region_code, 2);
      }
      requests.push_back(std::move(request));
    }
    return requests;
  }

 private:
  std::mt19937_64 rng_;
};

// --- Exact optimum with GLPK. ---

struct ExactResult {
  bool optimal = false;
  double objective = 0;
  double seconds = 0;
  std::vector<PlacementDecision> decisions;
};

// The generalized assignment ILP: maximize sum x_rp (bonus + score_rp) subject to
// sum_p x_rp <= 1 per request, sum_r gpus_r x_rp <= placeable_p per pool, x binary, and x_rp
// only for pairs that pass every check (Excluded() false), which include gpus_r <= placeable_p.
//
// Because the bonus exceeds any difference in total score, the optimum is lexicographic: the
// most requests placed, then the best total score. Solved that way, in two exact stages on the
// same model: (1) maximize sum x (all coefficients 1: GLPK then rounds node bounds down to
// integers and prunes hard); (2) fix sum x to that count and maximize sum score_rp x_rp. One
// ILP with the bonus in its coefficients has the same optimum, but its bounds are fractional
// counts times the bonus and branch and cut needs minutes on some 50 x 20 instances instead of
// milliseconds. Both stages use glp_intopt with presolve and cuts on, and share the time limit.
ExactResult SolveExact(const std::vector<PoolState>& pools,
                       const std::vector<PlacementRequest>& requests, absl::Time now,
                       const PlacementWeights& weights, int time_limit_ms) {
  ExactResult result;
  int n_req = static_cast<int>(requests.size());
  int n_pool = static_cast<int>(pools.size());
  result.decisions.resize(n_req);
  for (int r = 0; r < n_req; ++r) result.decisions[r].request_id = requests[r].request_id;
  std::vector<std::pair<int, int>> vars;
  std::vector<double> scores{0};
  std::vector<int> ia{0}, ja{0};
  std::vector<double> ar{0};
  for (int r = 0; r < n_req; ++r) {
    for (int p = 0; p < n_pool; ++p) {
      ExclusionReason reason;
      if (policy::Excluded(pools[p], requests[r], now, weights, &reason)) continue;
      vars.emplace_back(r, p);
      int col = static_cast<int>(vars.size());
      scores.push_back(policy::Score(pools[p], requests[r], weights).total);
      ia.push_back(1 + r);
      ja.push_back(col);
      ar.push_back(1);
      ia.push_back(1 + n_req + p);
      ja.push_back(col);
      ar.push_back(requests[r].gpus);
    }
  }
  if (vars.empty()) {
    result.optimal = true;
    return result;
  }
  int n_var = static_cast<int>(vars.size());
  glp_prob* lp = glp_create_prob();
  glp_set_obj_dir(lp, GLP_MAX);
  glp_add_rows(lp, n_req + n_pool + 1);
  for (int r = 0; r < n_req; ++r) glp_set_row_bnds(lp, 1 + r, GLP_UP, 0, 1);
  for (int p = 0; p < n_pool; ++p) {
    glp_set_row_bnds(lp, 1 + n_req + p, GLP_UP, 0, policy::PlaceableGpus(pools[p]));
  }
  int count_row = n_req + n_pool + 1;  // sum x, free in stage 1, fixed in stage 2
  glp_set_row_bnds(lp, count_row, GLP_FR, 0, 0);
  glp_add_cols(lp, n_var);
  for (int col = 1; col <= n_var; ++col) {
    glp_set_col_kind(lp, col, GLP_BV);
    glp_set_obj_coef(lp, col, 1);
    ia.push_back(count_row);
    ja.push_back(col);
    ar.push_back(1);
  }
  glp_load_matrix(lp, static_cast<int>(ia.size()) - 1, ia.data(), ja.data(), ar.data());
  glp_iocp params;
  glp_init_iocp(&params);
  params.presolve = GLP_ON;
  params.msg_lev = GLP_MSG_OFF;
  params.gmi_cuts = GLP_ON;
  params.mir_cuts = GLP_ON;
  params.cov_cuts = GLP_ON;
  params.clq_cuts = GLP_ON;
  auto start = Clock::now();
  auto left_ms = [&] {
    return time_limit_ms -
           static_cast<int>(
               std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  };
  params.tm_lim = time_limit_ms;
  bool optimal = glp_intopt(lp, &params) == 0 && glp_mip_status(lp) == GLP_OPT;
  if (optimal && left_ms() > 0) {
    double count = std::round(glp_mip_obj_val(lp));
    glp_set_row_bnds(lp, count_row, GLP_FX, count, count);
    for (int col = 1; col <= n_var; ++col) glp_set_obj_coef(lp, col, scores[col]);
    params.tm_lim = left_ms();
    optimal = glp_intopt(lp, &params) == 0 && glp_mip_status(lp) == GLP_OPT;
  } else {
    optimal = false;
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.optimal = optimal;
  if (optimal) {
    for (int col = 1; col <= n_var; ++col) {
      if (glp_mip_col_val(lp, col) > 0.5) {
        PlacementDecision& d = result.decisions[vars[col - 1].first];
        d.placed = true;
        d.pool_id = pools[vars[col - 1].second].pool_id;
      }
    }
    result.objective = policy::Objective(pools, requests, result.decisions, weights);
  }
  glp_delete_prob(lp);
  return result;
}

// --- Checks: a result that breaks a constraint is a bug, not a data point. ---

bool Valid(const std::vector<PoolState>& pools, const std::vector<PlacementRequest>& requests,
           const std::vector<PlacementDecision>& decisions, absl::Time now,
           const PlacementWeights& weights, const char* what) {
  std::vector<int64_t> used(pools.size(), 0);
  for (size_t r = 0; r < requests.size(); ++r) {
    if (!decisions[r].placed) continue;
    size_t p = 0;
    while (p < pools.size() && pools[p].pool_id != decisions[r].pool_id) ++p;
    ExclusionReason reason;
    if (p == pools.size() || policy::Excluded(pools[p], requests[r], now, weights, &reason)) {
      std::fprintf(stderr, "%s placed %s on an infeasible pool\n", what,
                   requests[r].request_id.c_str());
      return false;
    }
    used[p] += requests[r].gpus;
  }
  for (size_t p = 0; p < pools.size(); ++p) {
    if (used[p] > policy::PlaceableGpus(pools[p])) {
      std::fprintf(stderr, "%s over-commits %s\n", what, pools[p].pool_id.c_str());
      return false;
    }
  }
  return true;
}

int Placed(const std::vector<PlacementDecision>& decisions) {
  return static_cast<int>(
      std::count_if(decisions.begin(), decisions.end(), [](auto& d) { return d.placed; }));
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

bool ParseFlag(const char* arg, const char* next, const char* name, int* value, int* consumed) {
  if (std::strcmp(arg, name) != 0 || next == nullptr) return false;
  *consumed = 2;
  return absl::SimpleAtoi(next, value);
}

int Run(const Options& opt) {
  glp_term_out(GLP_OFF);  // the clique cut generator prints even with msg_lev off
  PlacementWeights weights;
  absl::Time now = absl::FromUnixSeconds(1'790'000'000);

  // (1) Speed.
  Generator big_gen(opt.seed);
  std::vector<PoolState> big_pools = big_gen.Pools(opt.big_pools, 8, now);
  std::vector<PlacementRequest> big_requests = big_gen.Requests(opt.big_requests, 80, big_pools);
  int64_t placeable_total = 0, demand_total = 0;
  for (const PoolState& p : big_pools) placeable_total += policy::PlaceableGpus(p);
  for (const PlacementRequest& r : big_requests) demand_total += r.gpus;
  std::printf("== speed: %d requests x %d pools (demand %lld GPUs, placeable %lld GPUs)\n",
              opt.big_requests, opt.big_pools, static_cast<long long>(demand_total),
              static_cast<long long>(placeable_total));
  std::vector<double> batch_ms, greedy_ms;
  if (opt.reps < 1) return 2;
  std::vector<PlacementDecision> batch, greedy;
  for (int rep = 0; rep <= opt.reps; ++rep) {  // rep 0 is the warm-up
    auto t0 = Clock::now();
    batch = policy::PlaceBatch(big_pools, big_requests, now, weights);
    auto t1 = Clock::now();
    greedy = policy::PlaceGreedy(big_pools, big_requests, now, weights);
    auto t2 = Clock::now();
    if (rep == 0) continue;
    batch_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    greedy_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
  }
  if (!Valid(big_pools, big_requests, batch, now, weights, "batch") ||
      !Valid(big_pools, big_requests, greedy, now, weights, "greedy")) {
    return 1;
  }
  double big_batch_obj = policy::Objective(big_pools, big_requests, batch, weights);
  double big_greedy_obj = policy::Objective(big_pools, big_requests, greedy, weights);
  double big_bonus = policy::PlacementBonus(big_pools, big_requests.size(), weights);
  std::printf("batch:  median %.1f ms (min %.1f, max %.1f over %d runs), placed %d, score %.0f\n",
              Median(batch_ms), *std::min_element(batch_ms.begin(), batch_ms.end()),
              *std::max_element(batch_ms.begin(), batch_ms.end()), opt.reps, Placed(batch),
              big_batch_obj - Placed(batch) * big_bonus);
  std::printf("greedy: median %.1f ms, placed %d, score %.0f\n", Median(greedy_ms), Placed(greedy),
              big_greedy_obj - Placed(greedy) * big_bonus);

  // (2) Quality against the exact optimum.
  std::printf("== quality: %d instances of %d requests x %d pools, GLPK %s, limit %d ms each\n",
              opt.instances, opt.requests, opt.pools, glp_version(), opt.glpk_limit_ms);
  std::vector<double> batch_q, greedy_q, exact_s;
  // Score alone (objective minus bonuses) / the optimum's, where as many were placed.
  std::vector<double> batch_score_q, greedy_score_q;
  int timed_out = 0, batch_count_short = 0, greedy_count_short = 0, batch_exact = 0;
  int opt_placed = 0, batch_placed = 0, greedy_placed = 0, requests_total = 0;
  double batch_vs_greedy_score = 0;
  for (int i = 0; i < opt.instances; ++i) {
    Generator gen(opt.seed * 1'000'003 + i);
    std::vector<PoolState> pools = gen.Pools(opt.pools, 8, now);
    std::vector<PlacementRequest> requests = gen.Requests(opt.requests, 6, pools);
    std::vector<PlacementDecision> b = policy::PlaceBatch(pools, requests, now, weights);
    std::vector<PlacementDecision> g = policy::PlaceGreedy(pools, requests, now, weights);
    if (!Valid(pools, requests, b, now, weights, "batch") ||
        !Valid(pools, requests, g, now, weights, "greedy")) {
      std::fprintf(stderr, "instance %d (seed %llu)\n", i,
                   static_cast<unsigned long long>(opt.seed * 1'000'003 + i));
      return 1;
    }
    ExactResult exact = SolveExact(pools, requests, now, weights, opt.glpk_limit_ms);
    if (!exact.optimal) {
      ++timed_out;
      std::printf("instance %d: GLPK hit the %d ms limit; left out\n", i, opt.glpk_limit_ms);
      continue;
    }
    if (!Valid(pools, requests, exact.decisions, now, weights, "exact")) return 1;
    exact_s.push_back(exact.seconds);
    double bonus = policy::PlacementBonus(pools, requests.size(), weights);
    double ob = policy::Objective(pools, requests, b, weights);
    double og = policy::Objective(pools, requests, g, weights);
    double oe = policy::Objective(pools, requests, exact.decisions, weights);
    if (ob > oe * (1 + 1e-9) + 1e-6) {
      std::fprintf(stderr, "instance %d: batch %.3f above the optimum %.3f\n", i, ob, oe);
      return 1;
    }
    double qb = oe > 0 ? ob / oe : 1.0;
    double qg = oe > 0 ? og / oe : 1.0;
    batch_q.push_back(qb);
    greedy_q.push_back(qg);
    int pe = Placed(exact.decisions), pb = Placed(b), pg = Placed(g);
    opt_placed += pe;
    batch_placed += pb;
    greedy_placed += pg;
    requests_total += opt.requests;
    batch_count_short += pb < pe;
    greedy_count_short += pg < pe;
    batch_exact += qb >= 1 - 1e-12;
    batch_vs_greedy_score += (ob - pb * bonus) - (og - pg * bonus);
    if (pb == pe) {
      double score_b = ob - pb * bonus, score_e = oe - pe * bonus, score_g = og - pg * bonus;
      if (score_e > 0) batch_score_q.push_back(score_b / score_e);
      if (pg == pe && score_e > 0) greedy_score_q.push_back(score_g / score_e);
    }
    if (pb < pe || qb < 0.97) {
      std::printf("instance %d: batch %.4f (placed %d of optimum's %d), greedy %.4f (%d)\n", i, qb,
                  pb, pe, qg, pg);
    }
  }
  int solved = static_cast<int>(batch_q.size());
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0.0 : s / v.size();
  };
  double bq_mean = mean(batch_q), gq_mean = mean(greedy_q);
  double bq_min = batch_q.empty() ? 0 : *std::min_element(batch_q.begin(), batch_q.end());
  double gq_min = greedy_q.empty() ? 0 : *std::min_element(greedy_q.begin(), greedy_q.end());
  std::printf(
      "solved exactly: %d, hit the time limit (left out): %d; GLPK median %.3f s, max "
      "%.3f s\n",
      solved, timed_out, Median(exact_s),
      exact_s.empty() ? 0 : *std::max_element(exact_s.begin(), exact_s.end()));
  std::printf("requests placed: optimum %d, batch %d, greedy %d (of %d)\n", opt_placed,
              batch_placed, greedy_placed, requests_total);
  std::printf(
      "instances placing fewer than the optimum: batch %d, greedy %d; batch optimal on %d\n",
      batch_count_short, greedy_count_short, batch_exact);
  std::printf("batch quality:  mean %.4f, min %.4f (targets >= 0.98 mean, >= 0.95 worst: %s)\n",
              bq_mean, bq_min, bq_mean >= 0.98 && bq_min >= 0.95 ? "met" : "MISSED");
  std::printf("greedy quality: mean %.4f, min %.4f\n", gq_mean, gq_min);
  std::printf("mean score (objective minus bonuses) of batch minus greedy: %.1f per instance\n",
              solved ? batch_vs_greedy_score / solved : 0.0);
  std::printf(
      "score alone / optimum's score, where as many requests were placed: batch mean %.4f "
      "min %.4f (%zu instances), greedy mean %.4f (%zu instances)\n",
      mean(batch_score_q),
      batch_score_q.empty() ? 0 : *std::min_element(batch_score_q.begin(), batch_score_q.end()),
      batch_score_q.size(), mean(greedy_score_q), greedy_score_q.size());
  std::printf("batch 10k x 2k: %.1f ms (target <= 200 ms: %s)\n", Median(batch_ms),
              Median(batch_ms) <= 200 ? "met" : "MISSED");
  std::printf(
      "RESULT batch_10k_x_2k_ms=%.0f batch_quality_mean=%.4f batch_quality_min=%.4f "
      "greedy_quality_mean=%.4f\n",
      Median(batch_ms), bq_mean, bq_min, gq_mean);
  return 0;
}

}  // namespace
}  // namespace vch::bench

int main(int argc, char** argv) {
  vch::bench::Options opt;
  for (int i = 1; i < argc;) {
    const char* next = i + 1 < argc ? argv[i + 1] : nullptr;
    int consumed = 0, seed = 0;
    if (std::strcmp(argv[i], "--help") == 0) {
      std::printf(
          "placement_bench [--seed 1] [--big-requests 10000] [--big-pools 2000] [--reps 5]\n"
          "                [--instances 200] [--requests 50] [--pools 20] "
          "[--glpk-limit-ms 20000]\n");
      return 0;
    }
    bool ok =
        vch::bench::ParseFlag(argv[i], next, "--seed", &seed, &consumed) ||
        vch::bench::ParseFlag(argv[i], next, "--big-requests", &opt.big_requests, &consumed) ||
        vch::bench::ParseFlag(argv[i], next, "--big-pools", &opt.big_pools, &consumed) ||
        vch::bench::ParseFlag(argv[i], next, "--reps", &opt.reps, &consumed) ||
        vch::bench::ParseFlag(argv[i], next, "--instances", &opt.instances, &consumed) ||
        vch::bench::ParseFlag(argv[i], next, "--requests", &opt.requests, &consumed) ||
        vch::bench::ParseFlag(argv[i], next, "--pools", &opt.pools, &consumed) ||
        vch::bench::ParseFlag(argv[i], next, "--glpk-limit-ms", &opt.glpk_limit_ms, &consumed);
    if (!ok) {
      std::fprintf(stderr, "placement_bench: bad flag %s (see --help)\n", argv[i]);
      return 2;
    }
    if (std::strcmp(argv[i], "--seed") == 0) opt.seed = static_cast<uint64_t>(seed);
    i += consumed;
  }
  return vch::bench::Run(opt);
}
