#include "policy/placement.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace vch::policy {
namespace {

using ::testing::ElementsAre;

const absl::Time kNow = absl::FromUnixSeconds(1'790'000'000);

constexpr int kSuspended = static_cast<int>(ExclusionReason::kSiteSuspended);
constexpr int kStale = static_cast<int>(ExclusionReason::kStaleReport);
constexpr int kOutOfScope = static_cast<int>(ExclusionReason::kOutOfScope);
constexpr int kNoAccelerator = static_cast<int>(ExclusionReason::kNoMatchingAccelerator);
constexpr int kPrice = static_cast<int>(ExclusionReason::kPriceCeiling);
constexpr int kInsufficient = static_cast<int>(ExclusionReason::kInsufficientGpus);

// An idle H800 pool in Gui'an (Guizhou hub), on the national network, reported a minute ago.
PoolState Pool(const std::string& id) {
  PoolState pool;
  pool.pool_id = id;
  pool.datacenter_id = "dc-" + id;
  pool.region_code = "520100";
  pool.hub = NationalHub::kGuizhou;
  pool.national_network = true;
  pool.accelerator_model = "H800";
  pool.fp8 = true;
  pool.memory_gib = 80;
  pool.gpus_total = 64;
  pool.gpus_free = 32;
  pool.price_fen_per_gpu_hour = 2000;
  pool.reported_at = kNow - absl::Minutes(1);
  return pool;
}

// A busy, expensive pool in Shanghai (Yangtze River Delta hub).
PoolState EasternPool(const std::string& id) {
  PoolState pool = Pool(id);
  pool.region_code = "310100";
  pool.hub = NationalHub::kYangtzeRiverDelta;
  pool.gpus_free = 6;  // 90 % busy
  pool.price_fen_per_gpu_hour = 3500;
  return pool;
}

PlacementRequest Request(const std::string& id, int32_t gpus) {
  PlacementRequest request;
  request.request_id = id;
  request.gpus = gpus;
  request.scope.kind = ScopeKind::kNational;
  return request;
}

std::vector<int32_t> Counts(const PlacementDecision& d) {
  return std::vector<int32_t>(std::begin(d.excluded), std::end(d.excluded));
}

int32_t Sum(const PlacementDecision& d) {
  int32_t sum = 0;
  for (int32_t c : d.excluded) sum += c;
  return sum;
}

TEST(PlacementTest, ReasonNames) {
  EXPECT_STREQ(ExclusionReasonName(ExclusionReason::kSiteSuspended), "SITE_SUSPENDED");
  EXPECT_STREQ(ExclusionReasonName(ExclusionReason::kStaleReport), "STALE_REPORT");
  EXPECT_STREQ(ExclusionReasonName(ExclusionReason::kOutOfScope), "OUT_OF_SCOPE");
  EXPECT_STREQ(ExclusionReasonName(ExclusionReason::kNoMatchingAccelerator),
               "NO_MATCHING_ACCELERATOR");
  EXPECT_STREQ(ExclusionReasonName(ExclusionReason::kPriceCeiling), "PRICE_CEILING");
  EXPECT_STREQ(ExclusionReasonName(ExclusionReason::kInsufficientGpus), "INSUFFICIENT_GPUS");
}

// --- Each exclusion reason alone: 3 pools excluded for it, 2 fine but for another reason. ---

struct ReasonCase {
  std::string name;
  ExclusionReason reason;
  std::function<void(PoolState&)> break_pool;
  std::function<void(PlacementRequest&)> shape_request = [](PlacementRequest&) {};
  // Makes a pool that suits the shaped request.
  std::function<void(PoolState&)> make_good = [](PoolState&) {};
};

void PrintTo(const ReasonCase& c, std::ostream* os) { *os << c.name; }

class ExclusionReasonTest : public ::testing::TestWithParam<ReasonCase> {};

TEST_P(ExclusionReasonTest, CountsEveryPoolUnderItsReason) {
  const ReasonCase& c = GetParam();
  std::vector<PoolState> pools;
  for (int i = 0; i < 3; ++i) {
    pools.push_back(Pool(absl::StrCat("bad-", i)));
    c.break_pool(pools.back());
  }
  PlacementRequest request = Request("r", 8);
  c.shape_request(request);
  for (const PoolState& pool : pools) {
    ExclusionReason reason;
    ASSERT_TRUE(Excluded(pool, request, kNow, PlacementWeights{}, &reason)) << pool.pool_id;
    EXPECT_EQ(reason, c.reason) << pool.pool_id;
  }
  std::vector<int32_t> expected(kExclusionReasonCount, 0);
  expected[static_cast<int>(c.reason)] = 3;
  PlacementDecision one = PlaceOne(pools, request, kNow, PlacementWeights{});
  EXPECT_FALSE(one.placed);
  EXPECT_EQ(one.request_id, "r");
  EXPECT_EQ(Counts(one), expected);
  for (const auto& decisions : {PlaceGreedy(pools, {request}, kNow, PlacementWeights{}),
                                PlaceBatch(pools, {request}, kNow, PlacementWeights{})}) {
    ASSERT_EQ(decisions.size(), 1u);
    EXPECT_FALSE(decisions[0].placed);
    EXPECT_EQ(Counts(decisions[0]), expected);
  }
  // One suitable pool makes the request placeable there.
  pools.push_back(Pool("good"));
  c.make_good(pools.back());
  PlacementDecision placed = PlaceOne(pools, request, kNow, PlacementWeights{});
  EXPECT_TRUE(placed.placed);
  EXPECT_EQ(placed.pool_id, "good");
  EXPECT_EQ(Counts(placed), std::vector<int32_t>(kExclusionReasonCount, 0));
}

INSTANTIATE_TEST_SUITE_P(
    Reasons, ExclusionReasonTest,
    ::testing::Values(
        ReasonCase{"SiteSuspended", ExclusionReason::kSiteSuspended,
                   [](PoolState& p) { p.site_active = false; }},
        ReasonCase{"StaleReport", ExclusionReason::kStaleReport,
                   [](PoolState& p) { p.reported_at = kNow - absl::Minutes(16); }},
        ReasonCase{"NeverReported", ExclusionReason::kStaleReport,
                   [](PoolState& p) { p.reported_at = absl::InfinitePast(); }},
        ReasonCase{"NotOnNationalNetwork", ExclusionReason::kOutOfScope,
                   [](PoolState& p) { p.national_network = false; }},
        ReasonCase{"OutsideLocalScope", ExclusionReason::kOutOfScope,
                   [](PoolState& p) { p.region_code = "310100"; },
                   [](PlacementRequest& r) {
                     r.scope.kind = ScopeKind::kLocal;
                     r.scope.issuer_region_code = "520000";
                   }},
        ReasonCase{"NotListed", ExclusionReason::kOutOfScope, [](PoolState&) {},
                   [](PlacementRequest& r) {
                     r.scope.kind = ScopeKind::kList;
                     r.scope.datacenter_ids = {"dc-elsewhere", "dc-good"};
                   }},
        ReasonCase{"OtherModel", ExclusionReason::kNoMatchingAccelerator, [](PoolState&) {},
                   [](PlacementRequest& r) { r.accelerator.model = "Ascend 910B"; },
                   [](PoolState& p) { p.accelerator_model = "Ascend 910B"; }},
        ReasonCase{"NoFp8", ExclusionReason::kNoMatchingAccelerator,
                   [](PoolState& p) {
                     p.accelerator_model = "A800";
                     p.fp8 = false;
                   },
                   [](PlacementRequest& r) { r.accelerator.fp8_required = true; }},
        ReasonCase{"NotDomestic", ExclusionReason::kNoMatchingAccelerator, [](PoolState&) {},
                   [](PlacementRequest& r) { r.accelerator.domestic_required = true; },
                   [](PoolState& p) { p.domestic = true; }},
        ReasonCase{"TooLittleMemory", ExclusionReason::kNoMatchingAccelerator, [](PoolState&) {},
                   [](PlacementRequest& r) { r.accelerator.min_memory_gib = 96; },
                   [](PoolState& p) { p.memory_gib = 96; }},
        ReasonCase{"RequestPriceCeiling", ExclusionReason::kPriceCeiling, [](PoolState&) {},
                   [](PlacementRequest& r) { r.max_price_fen_per_gpu_hour = 1999; },
                   [](PoolState& p) { p.price_fen_per_gpu_hour = 1999; }},
        ReasonCase{"ProgramPriceCeiling", ExclusionReason::kPriceCeiling, [](PoolState&) {},
                   [](PlacementRequest& r) { r.scope.price_ceiling_fen_per_gpu_hour = 1999; },
                   [](PoolState& p) { p.price_fen_per_gpu_hour = 1999; }},
        ReasonCase{"LowerOfBothCeilings", ExclusionReason::kPriceCeiling, [](PoolState&) {},
                   [](PlacementRequest& r) {
                     r.max_price_fen_per_gpu_hour = 5000;
                     r.scope.price_ceiling_fen_per_gpu_hour = 1999;
                   },
                   [](PoolState& p) { p.price_fen_per_gpu_hour = 1999; }},
        ReasonCase{"TooFewFree", ExclusionReason::kInsufficientGpus,
                   [](PoolState& p) { p.gpus_free = 7; }},
        ReasonCase{"HeldByVch", ExclusionReason::kInsufficientGpus,
                   [](PoolState& p) { p.gpus_held = 25; }},
        ReasonCase{"NoGpusAtAll", ExclusionReason::kInsufficientGpus,
                   [](PoolState& p) {
                     p.gpus_total = 0;
                     p.gpus_free = 0;
                   }}),
    [](const ::testing::TestParamInfo<ReasonCase>& info) { return info.param.name; });

// A request for no GPUs is malformed; it is never placed.
TEST(PlacementTest, ZeroGpuGangIsNeverPlaced) {
  PlacementRequest request = Request("r", 0);
  PlacementDecision d = PlaceOne({Pool("a")}, request, kNow, PlacementWeights{});
  EXPECT_FALSE(d.placed);
  EXPECT_EQ(d.excluded[kInsufficient], 1);
}

// --- Ordering of reasons: each pool is counted once, under the first that applies. ---

TEST(PlacementTest, FirstReasonWinsInOrder) {
  PlacementRequest request = Request("r", 40);
  request.accelerator.model = "Ascend 910B";
  request.max_price_fen_per_gpu_hour = 1000;
  PoolState pool = Pool("p");
  pool.national_network = false;             // out of scope
  pool.gpus_free = 8;                        // insufficient
  pool.reported_at = kNow - absl::Hours(2);  // stale
  pool.site_active = false;                  // suspended
  // Fix one cause at a time, from the first; the next one takes over.
  std::vector<ExclusionReason> seen;
  std::vector<std::function<void()>> fixes = {
      [&] { pool.site_active = true; },
      [&] { pool.reported_at = kNow; },
      [&] { pool.national_network = true; },
      [&] { pool.accelerator_model = "Ascend 910B"; },
      [&] { pool.price_fen_per_gpu_hour = 1000; },
      [&] { pool.gpus_free = 40; },
  };
  for (const auto& fix : fixes) {
    ExclusionReason reason;
    ASSERT_TRUE(Excluded(pool, request, kNow, PlacementWeights{}, &reason));
    seen.push_back(reason);
    PlacementDecision d = PlaceOne({pool}, request, kNow, PlacementWeights{});
    EXPECT_EQ(d.excluded[static_cast<int>(reason)], 1);
    EXPECT_EQ(Sum(d), 1);
    fix();
  }
  ExclusionReason reason;
  EXPECT_FALSE(Excluded(pool, request, kNow, PlacementWeights{}, &reason));
  EXPECT_THAT(seen,
              ElementsAre(ExclusionReason::kSiteSuspended, ExclusionReason::kStaleReport,
                          ExclusionReason::kOutOfScope, ExclusionReason::kNoMatchingAccelerator,
                          ExclusionReason::kPriceCeiling, ExclusionReason::kInsufficientGpus));
}

TEST(PlacementTest, MixedReasonsAddUpToAllPools) {
  std::vector<PoolState> pools;
  for (int i = 0; i < 2; ++i) pools.push_back(Pool(absl::StrCat("susp", i)));
  for (auto& p : pools) p.site_active = false;
  pools.push_back(Pool("stale"));
  pools.back().reported_at = kNow - absl::Hours(1);
  for (int i = 0; i < 3; ++i) {
    pools.push_back(Pool(absl::StrCat("east", i)));
    pools.back().national_network = false;
  }
  pools.push_back(Pool("ascend"));
  pools.back().accelerator_model = "Ascend 910B";
  pools.back().domestic = true;
  pools.back().fp8 = false;
  pools.back().memory_gib = 64;
  for (int i = 0; i < 4; ++i) {
    pools.push_back(Pool(absl::StrCat("dear", i)));
    pools.back().price_fen_per_gpu_hour = 4000;
  }
  pools.push_back(Pool("small"));
  pools.back().gpus_free = 4;
  PlacementRequest request = Request("r", 8);
  request.accelerator.model = "H800";
  request.scope.price_ceiling_fen_per_gpu_hour = 3000;
  PlacementDecision d = PlaceOne(pools, request, kNow, PlacementWeights{});
  ASSERT_FALSE(d.placed);
  EXPECT_THAT(Counts(d), ElementsAre(2, 1, 3, 1, 4, 1));
  for (const auto& decisions : {PlaceGreedy(pools, {request}, kNow, PlacementWeights{}),
                                PlaceBatch(pools, {request}, kNow, PlacementWeights{})}) {
    EXPECT_THAT(Counts(decisions[0]), ElementsAre(2, 1, 3, 1, 4, 1));
  }
}

// --- Boundaries. ---

TEST(PlacementTest, ReportExactlyMaxAgeOldIsFresh) {
  PlacementWeights weights;
  weights.max_report_age = absl::Minutes(5);
  PoolState pool = Pool("p");
  PlacementRequest request = Request("r", 1);
  ExclusionReason reason;
  pool.reported_at = kNow - absl::Minutes(5);
  EXPECT_FALSE(Excluded(pool, request, kNow, weights, &reason));
  EXPECT_TRUE(PlaceOne({pool}, request, kNow, weights).placed);
  pool.reported_at = kNow - absl::Minutes(5) - absl::Nanoseconds(1);
  ASSERT_TRUE(Excluded(pool, request, kNow, weights, &reason));
  EXPECT_EQ(reason, ExclusionReason::kStaleReport);
  // A report from the future (operator clock ahead) is fresh.
  pool.reported_at = kNow + absl::Minutes(1);
  EXPECT_FALSE(Excluded(pool, request, kNow, weights, &reason));
  // The default age is 15 minutes.
  pool.reported_at = kNow - absl::Minutes(15);
  EXPECT_FALSE(Excluded(pool, request, kNow, PlacementWeights{}, &reason));
}

TEST(PlacementTest, PriceEqualToCeilingIsAllowed) {
  PoolState pool = Pool("p");
  PlacementRequest request = Request("r", 1);
  request.max_price_fen_per_gpu_hour = 2000;
  request.scope.price_ceiling_fen_per_gpu_hour = 2000;
  ExclusionReason reason;
  EXPECT_FALSE(Excluded(pool, request, kNow, PlacementWeights{}, &reason));
}

TEST(PlacementTest, GpusExactlyPlaceableFit) {
  PoolState pool = Pool("p");
  pool.gpus_free = 12;
  pool.gpus_held = 4;
  ExclusionReason reason;
  EXPECT_FALSE(Excluded(pool, Request("r", 8), kNow, PlacementWeights{}, &reason));
  ASSERT_TRUE(Excluded(pool, Request("r", 9), kNow, PlacementWeights{}, &reason));
  EXPECT_EQ(reason, ExclusionReason::kInsufficientGpus);
}

TEST(PlacementTest, PlaceableGpusSubtractsHeldAndNeverGoesNegative) {
  PoolState pool = Pool("p");
  pool.gpus_free = 16;
  pool.gpus_held = 10;
  EXPECT_EQ(PlaceableGpus(pool), 6);
  pool.gpus_held = 20;  // holds not yet reflected in a newer report
  EXPECT_EQ(PlaceableGpus(pool), 0);
}

TEST(PlacementTest, HeldGpusReduceCapacity) {
  PoolState pool = Pool("p");
  pool.gpus_free = 16;
  pool.gpus_held = 10;
  PlacementDecision d = PlaceOne({pool}, Request("r", 8), kNow, PlacementWeights{});
  EXPECT_FALSE(d.placed);
  EXPECT_EQ(d.excluded[kInsufficient], 1);
  EXPECT_TRUE(PlaceOne({pool}, Request("r", 6), kNow, PlacementWeights{}).placed);
  // Batch and greedy never put more than 6 there either.
  std::vector<PlacementRequest> requests = {Request("a", 4), Request("b", 4), Request("c", 2)};
  for (const auto& decisions : {PlaceGreedy({pool}, requests, kNow, PlacementWeights{}),
                                PlaceBatch({pool}, requests, kNow, PlacementWeights{})}) {
    int32_t used = 0;
    for (size_t i = 0; i < requests.size(); ++i) {
      if (decisions[i].placed) used += requests[i].gpus;
    }
    EXPECT_EQ(used, 6);
  }
}

// --- Scope. ---

TEST(PlacementTest, LocalScopeOfACityIssuer) {
  PlacementRequest request = Request("r", 1);
  request.scope.kind = ScopeKind::kLocal;
  request.scope.issuer_region_code = "520100";  // Guiyang
  request.scope.issuer_is_city = true;
  PoolState guiyang = Pool("guiyang");
  PoolState zunyi = Pool("zunyi");
  zunyi.region_code = "520300";
  PoolState off_network = Pool("guiyang-local");
  off_network.national_network = false;  // LOCAL is about region only
  ExclusionReason reason;
  EXPECT_FALSE(Excluded(guiyang, request, kNow, PlacementWeights{}, &reason));
  EXPECT_FALSE(Excluded(off_network, request, kNow, PlacementWeights{}, &reason));
  ASSERT_TRUE(Excluded(zunyi, request, kNow, PlacementWeights{}, &reason));
  EXPECT_EQ(reason, ExclusionReason::kOutOfScope);
}

TEST(PlacementTest, LocalScopeOfAProvinceIssuer) {
  PlacementRequest request = Request("r", 1);
  request.scope.kind = ScopeKind::kLocal;
  request.scope.issuer_region_code = "520000";  // Guizhou
  request.scope.issuer_is_city = false;
  PoolState zunyi = Pool("zunyi");
  zunyi.region_code = "520300";
  PoolState shanghai = EasternPool("shanghai");
  ExclusionReason reason;
  EXPECT_FALSE(Excluded(Pool("guiyang"), request, kNow, PlacementWeights{}, &reason));
  EXPECT_FALSE(Excluded(zunyi, request, kNow, PlacementWeights{}, &reason));
  ASSERT_TRUE(Excluded(shanghai, request, kNow, PlacementWeights{}, &reason));
  EXPECT_EQ(reason, ExclusionReason::kOutOfScope);
  PlacementDecision d = PlaceOne({shanghai, zunyi}, request, kNow, PlacementWeights{});
  EXPECT_EQ(d.pool_id, "zunyi");
}

TEST(PlacementTest, ListScopeAdmitsOnlyListedDatacenters) {
  PlacementRequest request = Request("r", 1);
  request.scope.kind = ScopeKind::kList;
  request.scope.datacenter_ids = {"dc-b", "dc-c"};
  PoolState a = Pool("a"), b = Pool("b"), c = Pool("c");
  c.national_network = false;  // listed sites need not be on the national network
  ExclusionReason reason;
  ASSERT_TRUE(Excluded(a, request, kNow, PlacementWeights{}, &reason));
  EXPECT_EQ(reason, ExclusionReason::kOutOfScope);
  EXPECT_FALSE(Excluded(b, request, kNow, PlacementWeights{}, &reason));
  EXPECT_FALSE(Excluded(c, request, kNow, PlacementWeights{}, &reason));
  std::vector<PlacementRequest> requests(5, request);
  for (const auto& decisions : {PlaceGreedy({a, b, c}, requests, kNow, PlacementWeights{}),
                                PlaceBatch({a, b, c}, requests, kNow, PlacementWeights{})}) {
    for (const PlacementDecision& d : decisions) {
      EXPECT_TRUE(d.placed);
      EXPECT_NE(d.pool_id, "a");
    }
  }
}

// --- Score terms and tie-breaks. ---

TEST(PlacementTest, ScoreTerms) {
  PoolState pool = Pool("p");  // 64 GPUs, 32 free, 2000 fen, region 520100
  PlacementRequest request = Request("r", 8);
  ScoreBreakdown s = Score(pool, request, PlacementWeights{});
  // Utilization after placement (64 - 32 + 8) / 64 = 0.625: 1000 * 0.375.
  EXPECT_DOUBLE_EQ(s.utilization_term, 375.0);
  EXPECT_DOUBLE_EQ(s.price_term, -20.0);  // 20 CNY per GPU-hour
  EXPECT_DOUBLE_EQ(s.region_term, 0.0);
  EXPECT_DOUBLE_EQ(s.total, 355.0);
  request.preferred_region_prefix = "52";
  s = Score(pool, request, PlacementWeights{});
  EXPECT_DOUBLE_EQ(s.region_term, 50.0);
  EXPECT_DOUBLE_EQ(s.total, 405.0);
  request.preferred_region_prefix = "5203";
  EXPECT_DOUBLE_EQ(Score(pool, request, PlacementWeights{}).region_term, 0.0);
  // Held GPUs count as used: (64 - 24 + 8) / 64 = 0.75.
  pool.gpus_held = 8;
  request.preferred_region_prefix.clear();
  EXPECT_DOUBLE_EQ(Score(pool, request, PlacementWeights{}).utilization_term, 250.0);
  // The weights scale each term.
  PlacementWeights weights;
  weights.utilization = 2;
  weights.price = 3;
  weights.region_preference = 7;
  request.preferred_region_prefix = "520100";
  s = Score(pool, request, weights);
  EXPECT_DOUBLE_EQ(s.utilization_term, 0.5);
  EXPECT_DOUBLE_EQ(s.price_term, -60.0);
  EXPECT_DOUBLE_EQ(s.region_term, 7.0);
  EXPECT_DOUBLE_EQ(s.total, 0.5 - 60.0 + 7.0);
}

TEST(PlacementTest, LowUtilizationBeatsPriceAndRegion) {
  PoolState idle = Pool("idle");
  idle.gpus_free = 48;
  idle.price_fen_per_gpu_hour = 3900;
  PoolState busy = Pool("busy");
  busy.gpus_free = 12;
  busy.price_fen_per_gpu_hour = 1200;
  busy.region_code = "310100";
  PlacementRequest request = Request("r", 4);
  request.preferred_region_prefix = "31";
  EXPECT_EQ(PlaceOne({busy, idle}, request, kNow, PlacementWeights{}).pool_id, "idle");
  // With the utilization weight off, price decides.
  PlacementWeights price_only;
  price_only.utilization = 0;
  price_only.region_preference = 0;
  EXPECT_EQ(PlaceOne({busy, idle}, request, kNow, price_only).pool_id, "busy");
}

TEST(PlacementTest, PriceBreaksEqualUtilization) {
  PoolState cheap = Pool("z-cheap");
  cheap.price_fen_per_gpu_hour = 1500;
  PoolState dear = Pool("a-dear");
  dear.price_fen_per_gpu_hour = 1600;
  PlacementDecision d = PlaceOne({dear, cheap}, Request("r", 2), kNow, PlacementWeights{});
  EXPECT_EQ(d.pool_id, "z-cheap");
  EXPECT_DOUBLE_EQ(d.score.price_term, -15.0);
}

TEST(PlacementTest, RegionBreaksEqualUtilizationAndPrice) {
  PoolState guizhou = Pool("z-guizhou");
  PoolState gansu = Pool("a-gansu");
  gansu.region_code = "620100";
  PlacementRequest request = Request("r", 2);
  request.preferred_region_prefix = "52";
  EXPECT_EQ(PlaceOne({gansu, guizhou}, request, kNow, PlacementWeights{}).pool_id, "z-guizhou");
  request.preferred_region_prefix = "62";
  EXPECT_EQ(PlaceOne({gansu, guizhou}, request, kNow, PlacementWeights{}).pool_id, "a-gansu");
}

TEST(PlacementTest, ExactTieGoesToLowerPoolId) {
  std::vector<PoolState> pools = {Pool("pool-c"), Pool("pool-a"), Pool("pool-b")};
  PlacementRequest request = Request("r", 2);
  EXPECT_EQ(PlaceOne(pools, request, kNow, PlacementWeights{}).pool_id, "pool-a");
  EXPECT_EQ(PlaceGreedy(pools, {request}, kNow, PlacementWeights{})[0].pool_id, "pool-a");
  EXPECT_EQ(PlaceBatch(pools, {request}, kNow, PlacementWeights{})[0].pool_id, "pool-a");
}

TEST(PlacementTest, PlaceOnePicksTheIdleWesternSiteOverTheBusyEasternOne) {
  // A Shanghai program's request preferring Shanghai still goes west: the programs exist to
  // fill idle capacity, and utilization outweighs region preference.
  PoolState shanghai = EasternPool("a-shanghai");
  PoolState ningxia = Pool("z-zhongwei");
  ningxia.region_code = "640500";
  ningxia.hub = NationalHub::kNingxia;
  ningxia.gpus_free = 48;  // 25 % busy
  ningxia.price_fen_per_gpu_hour = 1500;
  PlacementRequest request = Request("r", 4);
  request.preferred_region_prefix = "31";
  PlacementDecision d = PlaceOne({shanghai, ningxia}, request, kNow, PlacementWeights{});
  ASSERT_TRUE(d.placed);
  EXPECT_EQ(d.pool_id, "z-zhongwei");
  EXPECT_DOUBLE_EQ(d.score.utilization_term, 1000.0 * 44 / 64);
  EXPECT_DOUBLE_EQ(d.score.price_term, -15.0);
  EXPECT_DOUBLE_EQ(d.score.region_term, 0.0);
}

// --- Gangs. ---

TEST(PlacementTest, GangsAreNeverSplit) {
  std::vector<PoolState> pools = {Pool("a"), Pool("b")};
  pools[0].gpus_free = 10;
  pools[1].gpus_free = 10;
  PlacementDecision d = PlaceOne(pools, Request("r", 16), kNow, PlacementWeights{});
  EXPECT_FALSE(d.placed);
  EXPECT_EQ(d.excluded[kInsufficient], 2);
  // Of gangs of 8, 8 and 4 only two fit (each pool can take one 8 and then 2 more), though 4
  // GPUs stay free in all; the third finds room nowhere and says so.
  std::vector<PlacementRequest> requests = {Request("x", 8), Request("y", 8), Request("z", 4)};
  for (const auto& decisions : {PlaceGreedy(pools, requests, kNow, PlacementWeights{}),
                                PlaceBatch(pools, requests, kNow, PlacementWeights{})}) {
    std::map<std::string, int32_t> used;
    int placed = 0;
    for (size_t i = 0; i < requests.size(); ++i) {
      if (!decisions[i].placed) {
        EXPECT_EQ(decisions[i].excluded[kInsufficient], 2);
        continue;
      }
      ++placed;
      used[decisions[i].pool_id] += requests[i].gpus;
    }
    EXPECT_EQ(placed, 2);
    EXPECT_EQ(used.size(), 2u);
    for (const auto& [id, gpus] : used) EXPECT_LE(gpus, 10) << id;
  }
  // Greedy takes them in order; the batch keeps the smaller gang (same count, better score).
  EXPECT_FALSE(PlaceGreedy(pools, requests, kNow, PlacementWeights{})[2].placed);
  EXPECT_TRUE(PlaceBatch(pools, requests, kNow, PlacementWeights{})[2].placed);
}

// --- Greedy and batch. ---

TEST(PlacementTest, GreedyScoresAgainstCapacityLeftByEarlierRequests) {
  // Two equal pools: the first request takes a, which then looks busier, so the second goes
  // to b; scores are those PlaceOne gives against the updated pools.
  std::vector<PoolState> pools = {Pool("a"), Pool("b")};
  std::vector<PlacementRequest> requests = {Request("x", 8), Request("y", 8)};
  std::vector<PlacementDecision> d = PlaceGreedy(pools, requests, kNow, PlacementWeights{});
  EXPECT_EQ(d[0].pool_id, "a");
  EXPECT_EQ(d[1].pool_id, "b");
  EXPECT_DOUBLE_EQ(d[0].score.utilization_term, 375.0);
  EXPECT_DOUBLE_EQ(d[1].score.utilization_term, 375.0);
  requests.push_back(Request("z", 8));
  d = PlaceGreedy(pools, requests, kNow, PlacementWeights{});
  EXPECT_EQ(d[2].pool_id, "a");
  EXPECT_DOUBLE_EQ(d[2].score.utilization_term, 1000.0 * 16 / 64);  // 24 left before it
}

TEST(PlacementTest, BatchPlacesWhatGreedyStrands) {
  // Greedy puts the small flexible request on the idle pool, where the big one, which can
  // only go there, then no longer fits. The batch places both.
  PoolState idle = Pool("idle");
  idle.gpus_free = 8;
  idle.gpus_total = 16;
  PoolState busy = EasternPool("busy");
  busy.gpus_free = 2;
  PlacementRequest small = Request("small", 2);
  PlacementRequest big = Request("big", 8);
  big.scope.kind = ScopeKind::kList;
  big.scope.datacenter_ids = {"dc-idle"};
  std::vector<PoolState> pools = {idle, busy};
  std::vector<PlacementRequest> requests = {small, big};
  std::vector<PlacementDecision> greedy = PlaceGreedy(pools, requests, kNow, PlacementWeights{});
  EXPECT_EQ(greedy[0].pool_id, "idle");
  EXPECT_FALSE(greedy[1].placed);
  EXPECT_EQ(greedy[1].excluded[kOutOfScope], 1);
  EXPECT_EQ(greedy[1].excluded[kInsufficient], 1);
  std::vector<PlacementDecision> batch = PlaceBatch(pools, requests, kNow, PlacementWeights{});
  ASSERT_TRUE(batch[0].placed);
  ASSERT_TRUE(batch[1].placed);
  EXPECT_EQ(batch[0].pool_id, "busy");
  EXPECT_EQ(batch[1].pool_id, "idle");
  EXPECT_EQ(batch[0].request_id, "small");
  EXPECT_GT(Objective(pools, requests, batch, PlacementWeights{}),
            Objective(pools, requests, greedy, PlacementWeights{}));
}

TEST(PlacementTest, BatchUnplacedCountsPoolsFilledByTheBatch) {
  std::vector<PoolState> pools = {Pool("a")};
  pools[0].gpus_free = 8;
  std::vector<PlacementRequest> requests = {Request("x", 8), Request("y", 8)};
  std::vector<PlacementDecision> d = PlaceBatch(pools, requests, kNow, PlacementWeights{});
  EXPECT_TRUE(d[0].placed != d[1].placed);
  const PlacementDecision& unplaced = d[0].placed ? d[1] : d[0];
  EXPECT_THAT(Counts(unplaced), ElementsAre(0, 0, 0, 0, 0, 1));
}

TEST(PlacementTest, ObjectivePrefersMorePlacementsOverBetterScores) {
  // One request on an idle pool scores far more than two on nearly full ones; two still win.
  PoolState idle = Pool("idle");
  idle.gpus_free = 60;
  PoolState full = EasternPool("full");
  full.gpus_free = 2;
  full.price_fen_per_gpu_hour = 4000;
  std::vector<PoolState> pools = {idle, full};
  std::vector<PlacementRequest> requests = {Request("x", 1), Request("y", 1)};
  PlacementDecision on_idle{.request_id = "x", .placed = true, .pool_id = "idle"};
  PlacementDecision on_full{.request_id = "x", .placed = true, .pool_id = "full"};
  PlacementDecision none{.request_id = "y"};
  PlacementWeights w;
  double one = Objective(pools, requests, {on_idle, none}, w);
  double two = Objective(pools, requests, {on_full, on_full}, w);
  EXPECT_GT(two, one);
  double bonus = PlacementBonus(pools, requests.size(), w);
  EXPECT_DOUBLE_EQ(one, bonus + Score(idle, requests[0], w).total);
  EXPECT_DOUBLE_EQ(Objective(pools, requests, {none, none}, w), 0.0);
}

TEST(PlacementTest, EmptyInputs) {
  EXPECT_TRUE(PlaceBatch({}, {}, kNow, PlacementWeights{}).empty());
  EXPECT_TRUE(PlaceGreedy({Pool("a")}, {}, kNow, PlacementWeights{}).empty());
  std::vector<PlacementDecision> d = PlaceBatch({}, {Request("r", 1)}, kNow, PlacementWeights{});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_FALSE(d[0].placed);
  EXPECT_EQ(Sum(d[0]), 0);
}

// --- Random instances. ---

// Small realistic instances: a few hubs, accelerators, scopes, ceilings, stale reports and
// suspended sites, with more demand than room.
struct Instance {
  std::vector<PoolState> pools;
  std::vector<PlacementRequest> requests;
};

Instance RandomInstance(uint64_t seed, int pool_count, int request_count) {
  std::mt19937_64 rng(seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  const char* regions[] = {"520100", "620100", "640500", "150900", "310100", "440300", "110100"};
  struct Accel {
    const char* model;
    bool fp8, domestic;
    int memory;
  };
  const Accel accels[] = {{"H800", true, false, 80},
                          {"A800", false, false, 80},
                          {"Ascend 910B", false, true, 64},
                          {"L20", true, false, 48}};
  Instance inst;
  for (int i = 0; i < pool_count; ++i) {
    int region = uniform(0, 6);
    bool west = region < 4;
    const Accel& a = accels[uniform(0, 3)];
    PoolState p;
    p.pool_id = absl::StrCat("p", uniform(0, 9), "-", i);  // ids not in input order
    p.datacenter_id = absl::StrCat("dc", i / 2);
    p.region_code = regions[region];
    p.national_network = west || chance(0.7);
    p.site_active = !chance(0.05);
    p.accelerator_model = a.model;
    p.fp8 = a.fp8;
    p.domestic = a.domestic;
    p.memory_gib = a.memory;
    p.gpus_total = 8 * uniform(1, 6);
    p.gpus_free = west ? p.gpus_total * uniform(70, 80) / 100 : p.gpus_total * uniform(5, 30) / 100;
    p.gpus_held = chance(0.3) ? uniform(0, 6) : 0;
    p.price_fen_per_gpu_hour = west ? uniform(1200, 2000) : uniform(2500, 4000);
    p.reported_at = kNow - (chance(0.07) ? absl::Minutes(uniform(16, 60)) : absl::Minutes(1));
    inst.pools.push_back(p);
  }
  for (int i = 0; i < request_count; ++i) {
    PlacementRequest r;
    r.request_id = absl::StrCat("r", i);
    const int gangs[] = {1, 1, 2, 2, 4, 4, 8, 8, 16, 3};
    r.gpus = gangs[uniform(0, 9)];
    int scope = uniform(0, 9);
    if (scope < 3) {
      r.scope.kind = ScopeKind::kLocal;
      r.scope.issuer_is_city = chance(0.5);
      r.scope.issuer_region_code = r.scope.issuer_is_city
                                       ? regions[uniform(0, 6)]
                                       : std::string(regions[uniform(0, 6)], 2) + "0000";
    } else if (scope < 8) {
      r.scope.kind = ScopeKind::kNational;
    } else {
      r.scope.kind = ScopeKind::kList;
      for (int k = 0; k < 3; ++k) {
        r.scope.datacenter_ids.push_back(absl::StrCat("dc", uniform(0, pool_count / 2)));
      }
    }
    r.scope.price_ceiling_fen_per_gpu_hour = chance(0.7) ? uniform(1800, 4000) : 0;
    if (chance(0.3)) r.max_price_fen_per_gpu_hour = uniform(1300, 3500);
    int need = uniform(0, 9);
    if (need < 3) r.accelerator.model = accels[uniform(0, 3)].model;
    if (need == 3) r.accelerator.fp8_required = true;
    if (need == 4) r.accelerator.domestic_required = true;
    if (need == 5) r.accelerator.min_memory_gib = 64;
    if (chance(0.3)) r.preferred_region_prefix = std::string(regions[uniform(0, 6)], 2);
    inst.requests.push_back(r);
  }
  return inst;
}

// Every placement feasible, no pool over-committed, every unplaced request's counts add up
// to the pools and name only pools that really cannot take it now.
void ExpectValid(const Instance& inst, const std::vector<PlacementDecision>& decisions,
                 bool maximal) {
  ASSERT_EQ(decisions.size(), inst.requests.size());
  std::map<std::string, const PoolState*> by_id;
  for (const PoolState& p : inst.pools) by_id[p.pool_id] = &p;
  std::map<std::string, int32_t> used;
  for (size_t i = 0; i < decisions.size(); ++i) {
    const PlacementDecision& d = decisions[i];
    EXPECT_EQ(d.request_id, inst.requests[i].request_id);
    if (!d.placed) continue;
    ASSERT_TRUE(by_id.count(d.pool_id)) << d.pool_id;
    ExclusionReason reason;
    EXPECT_FALSE(Excluded(*by_id[d.pool_id], inst.requests[i], kNow, PlacementWeights{}, &reason))
        << d.request_id << " on " << d.pool_id << ": " << ExclusionReasonName(reason);
    used[d.pool_id] += inst.requests[i].gpus;
  }
  for (const auto& [id, gpus] : used) {
    EXPECT_LE(gpus, PlaceableGpus(*by_id[id])) << "over-committed " << id;
  }
  for (size_t i = 0; i < decisions.size(); ++i) {
    const PlacementDecision& d = decisions[i];
    if (d.placed) continue;
    EXPECT_EQ(Sum(d), static_cast<int32_t>(inst.pools.size())) << d.request_id;
    if (!maximal) continue;
    // Nothing left with room for it (after the batch's own placements).
    for (const PoolState& p : inst.pools) {
      PoolState after = p;
      after.gpus_held += used[p.pool_id];
      ExclusionReason reason;
      EXPECT_TRUE(Excluded(after, inst.requests[i], kNow, PlacementWeights{}, &reason))
          << d.request_id << " fits " << p.pool_id;
    }
  }
}

uint64_t BaseSeed() {
  const char* env = std::getenv("VCH_TEST_SEED");
  return env != nullptr ? std::strtoull(env, nullptr, 10) : 20261124;
}

TEST(PlacementPropertyTest, BatchAndGreedyRespectEveryConstraintAndBatchWins) {
  const uint64_t base = BaseSeed();
  std::cout << "base seed " << base << " (set VCH_TEST_SEED to reproduce)\n";
  PlacementWeights w;
  int batch_better = 0;
  for (int i = 0; i < 300; ++i) {
    uint64_t seed = base + i;
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    Instance inst = RandomInstance(seed, 4 + i % 17, 5 + i % 40);
    std::vector<PlacementDecision> batch = PlaceBatch(inst.pools, inst.requests, kNow, w);
    std::vector<PlacementDecision> greedy = PlaceGreedy(inst.pools, inst.requests, kNow, w);
    ExpectValid(inst, batch, /*maximal=*/true);
    ExpectValid(inst, greedy, /*maximal=*/false);
    double ob = Objective(inst.pools, inst.requests, batch, w);
    double og = Objective(inst.pools, inst.requests, greedy, w);
    EXPECT_GE(ob, og - 1e-9 * std::abs(og));
    batch_better += ob > og + 1e-6;
    // Batch decisions carry their score against the pools as given.
    for (size_t r = 0; r < batch.size(); ++r) {
      if (!batch[r].placed) continue;
      for (const PoolState& p : inst.pools) {
        if (p.pool_id == batch[r].pool_id) {
          EXPECT_EQ(batch[r].score.total, Score(p, inst.requests[r], w).total);
        }
      }
    }
    if (HasFailure()) break;
  }
  // Not a tautology: on these tight instances the batch is strictly better fairly often.
  std::cout << "batch strictly better than greedy on " << batch_better << " of 300\n";
  EXPECT_GT(batch_better, 30);
}

TEST(PlacementPropertyTest, GreedyIsPlaceOneInOrderAgainstUpdatedPools) {
  const uint64_t base = BaseSeed() + 1000;
  PlacementWeights w;
  for (int i = 0; i < 100; ++i) {
    uint64_t seed = base + i;
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    Instance inst = RandomInstance(seed, 3 + i % 12, 4 + i % 25);
    std::vector<PlacementDecision> greedy = PlaceGreedy(inst.pools, inst.requests, kNow, w);
    std::vector<PoolState> pools = inst.pools;
    for (size_t r = 0; r < inst.requests.size(); ++r) {
      PlacementDecision one = PlaceOne(pools, inst.requests[r], kNow, w);
      EXPECT_EQ(greedy[r].placed, one.placed);
      EXPECT_EQ(greedy[r].pool_id, one.pool_id);
      EXPECT_EQ(greedy[r].score.total, one.score.total);
      EXPECT_EQ(Counts(greedy[r]), Counts(one));
      for (PoolState& p : pools) {
        if (one.placed && p.pool_id == one.pool_id) p.gpus_held += inst.requests[r].gpus;
      }
    }
    if (HasFailure()) break;
  }
}

TEST(PlacementPropertyTest, BatchIsDeterministicAndIgnoresPoolOrder) {
  const uint64_t base = BaseSeed() + 2000;
  PlacementWeights w;
  for (int i = 0; i < 50; ++i) {
    uint64_t seed = base + i;
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    Instance inst = RandomInstance(seed, 12, 30);
    std::vector<PlacementDecision> first = PlaceBatch(inst.pools, inst.requests, kNow, w);
    std::vector<PoolState> shuffled = inst.pools;
    std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937_64(seed));
    std::vector<PlacementDecision> second = PlaceBatch(shuffled, inst.requests, kNow, w);
    for (size_t r = 0; r < first.size(); ++r) {
      EXPECT_EQ(first[r].placed, second[r].placed);
      EXPECT_EQ(first[r].pool_id, second[r].pool_id);
      EXPECT_EQ(Counts(first[r]), Counts(second[r]));
    }
    if (HasFailure()) break;
  }
}

// The exact optimum of the batch objective by enumerating every assignment (each request on
// one of the pools or nowhere), for small instances.
double BruteForceOptimum(const Instance& inst, const PlacementWeights& w) {
  size_t n = inst.requests.size(), m = inst.pools.size();
  std::vector<size_t> choice(n, 0);  // 0 = unplaced, k = pools[k - 1]
  double best = 0;
  while (true) {
    std::vector<int32_t> used(m, 0);
    bool ok = true;
    std::vector<PlacementDecision> decisions(n);
    for (size_t r = 0; r < n && ok; ++r) {
      decisions[r].request_id = inst.requests[r].request_id;
      if (choice[r] == 0) continue;
      const PoolState& p = inst.pools[choice[r] - 1];
      ExclusionReason reason;
      if (Excluded(p, inst.requests[r], kNow, w, &reason)) ok = false;
      used[choice[r] - 1] += inst.requests[r].gpus;
      if (used[choice[r] - 1] > PlaceableGpus(p)) ok = false;
      decisions[r].placed = true;
      decisions[r].pool_id = p.pool_id;
    }
    if (ok) best = std::max(best, Objective(inst.pools, inst.requests, decisions, w));
    size_t r = 0;
    while (r < n && ++choice[r] == m + 1) choice[r++] = 0;
    if (r == n) break;
  }
  return best;
}

TEST(PlacementPropertyTest, BatchIsNearTheBruteForceOptimum) {
  const uint64_t base = BaseSeed() + 3000;
  PlacementWeights w;
  double sum = 0;
  int instances = 0, optimal = 0;
  for (int i = 0; i < 60; ++i) {
    uint64_t seed = base + i;
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    Instance inst = RandomInstance(seed, 3, 6);
    for (PoolState& p : inst.pools) {  // all usable, tight: choices matter
      p.site_active = true;
      p.reported_at = kNow;
      p.national_network = true;
      p.gpus_free = std::min(p.gpus_free, 12);
      p.gpus_held = 0;
    }
    double exact = BruteForceOptimum(inst, w);
    double batch =
        Objective(inst.pools, inst.requests, PlaceBatch(inst.pools, inst.requests, kNow, w), w);
    EXPECT_LE(batch, exact * (1 + 1e-12) + 1e-9);
    if (exact <= 0) continue;
    EXPECT_GE(batch / exact, 0.95);
    sum += batch / exact;
    ++instances;
    optimal += batch >= exact * (1 - 1e-12);
  }
  ASSERT_GT(instances, 30);
  std::cout << "batch / optimum: mean " << sum / instances << ", optimal on " << optimal << " of "
            << instances << "\n";
  EXPECT_GE(sum / instances, 0.98);
}

}  // namespace
}  // namespace vch::policy

namespace vch::policy {
namespace {

// A program's allowed accelerator classes admit a pool through any one class; FP16 datacenter
// admits every pool; no class means any accelerator.
TEST(PlacementTest, ProgramAcceleratorClassesAdmitThroughAnyClass) {
  PoolState fp8 = Pool("fp8");  // H800, FP8, imported
  PoolState domestic = Pool("ascend");
  domestic.accelerator_model = "Ascend 910B";
  domestic.fp8 = false;
  domestic.domestic = true;
  PoolState plain = Pool("a800");
  plain.accelerator_model = "A800";
  plain.fp8 = false;
  struct Case {
    uint32_t allowed;
    bool fp8, domestic, plain;
  };
  for (const Case& c : {Case{0, true, true, true}, Case{kAllowFp8Capable, true, false, false},
                        Case{kAllowDomestic, false, true, false},
                        Case{kAllowFp8Capable | kAllowDomestic, true, true, false},
                        Case{kAllowFp16Datacenter, true, true, true}}) {
    PlacementRequest request = Request("r", 1);
    request.accelerator.allowed_classes = c.allowed;
    ExclusionReason reason = ExclusionReason::kSiteSuspended;
    SCOPED_TRACE(c.allowed);
    EXPECT_EQ(!Excluded(fp8, request, kNow, PlacementWeights{}, &reason), c.fp8);
    EXPECT_EQ(!Excluded(domestic, request, kNow, PlacementWeights{}, &reason), c.domestic);
    const bool plain_ok = !Excluded(plain, request, kNow, PlacementWeights{}, &reason);
    EXPECT_EQ(plain_ok, c.plain);
    if (!plain_ok) {
      EXPECT_EQ(reason, ExclusionReason::kNoMatchingAccelerator);
    }
  }
  // Batch mode honours it too: with only FP8-capable allowed, the A800 stays empty.
  PlacementRequest fp8_only = Request("b", 4);
  fp8_only.accelerator.allowed_classes = kAllowFp8Capable;
  plain.gpus_free = 64;
  fp8.gpus_free = 8;
  std::vector<PlacementDecision> d =
      PlaceBatch({plain, fp8}, {fp8_only, fp8_only, fp8_only}, kNow, PlacementWeights{});
  int placed = 0;
  for (const PlacementDecision& x : d) {
    if (!x.placed) continue;
    ++placed;
    EXPECT_EQ(x.pool_id, "fp8");
  }
  EXPECT_EQ(placed, 2);
}

}  // namespace
}  // namespace vch::policy
