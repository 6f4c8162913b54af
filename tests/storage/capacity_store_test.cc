// Datacenters, GPU pools, capacity reports and holds against a real PostgreSQL: registration and
// its refusals, every named constraint and trigger of migrations/V0004__capacity.sql driven to
// a violation in plain SQL, ReportCapacity updating the pool and appending history (and writing
// nothing when one pool is not the datacenter's), idempotent replay, exact utilization per
// pool / site / hub over buckets, suspension, and the pool states the placement engine loads.
#include "storage/capacity_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "storage/pg_error.h"
#include "storage/pg_pool.h"
#include "tests/testing/sql_refusals.h"
#include "tests/testing/test_db.h"

namespace vch::storage {
namespace {

using policy::NationalHub;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAreArray;
using ::vch::testing::Accepted;
using ::vch::testing::CreateTestDatabase;
using ::vch::testing::IsOk;
using ::vch::testing::RefusedBy;
using ::vch::testing::RefusedByTrigger;
using ::vch::testing::StatusIs;

constexpr absl::StatusCode kNotFound = absl::StatusCode::kNotFound;
constexpr absl::StatusCode kAlreadyExists = absl::StatusCode::kAlreadyExists;
constexpr absl::StatusCode kFailedPrecondition = absl::StatusCode::kFailedPrecondition;
constexpr absl::StatusCode kInvalidArgument = absl::StatusCode::kInvalidArgument;

// Encoders write checkable, '|'-joined fields.
std::string EncodeDatacenter(const DatacenterRecord& d) {
  return absl::StrCat(d.id, "|", d.display_name, "|", d.operator_name, "|", d.region_code, "|",
                      static_cast<int>(d.hub), "|", d.national_network ? "national" : "local", "|",
                      d.active ? "ACTIVE" : "SUSPENDED", "|", d.state_reason);
}

std::string EncodePool(const PoolRecord& p) {
  return absl::StrCat(p.datacenter_id, "/", p.id, "|", p.accelerator_model, "|", p.vendor, "|",
                      p.domestic ? "domestic" : "foreign", "|", p.fp8 ? "fp8" : "no-fp8", "|",
                      p.memory_gib, "|", p.fp16_tflops, "|", p.fp8_tflops, "|", p.gpus_total, "|",
                      p.gpus_free, "|", p.gpus_held, "|", p.price_fen_per_gpu_hour, "|",
                      p.reported_at ? absl::StrCat(absl::ToUnixMicros(*p.reported_at)) : "never");
}

std::string EncodePools(const std::vector<PoolRecord>& pools) {
  std::vector<std::string> parts;
  for (const PoolRecord& p : pools) parts.push_back(EncodePool(p));
  return absl::StrJoin(parts, ";");
}

// "start:total/busy" for comparing utilization series.
std::string Point(absl::Time start, int64_t total, int64_t busy) {
  return absl::StrCat(absl::FormatTime("%H:%M", start, absl::UTCTimeZone()), ":", total, "/", busy);
}

std::vector<std::string> Points(const absl::StatusOr<std::vector<UtilizationPoint>>& points) {
  std::vector<std::string> out;
  if (!points.ok()) {
    out.push_back(points.status().ToString());
    return out;
  }
  for (const UtilizationPoint& p : *points) {
    out.push_back(Point(p.bucket_start, p.gpus_total, p.gpus_busy));
  }
  return out;
}

// A valid pool of 100 GPUs (an H800-class FP8 pool).
PoolRecord H800(const std::string& datacenter, const std::string& id, int32_t total = 100) {
  return {.datacenter_id = datacenter,
          .id = id,
          .accelerator_model = "H800",
          .vendor = "NVIDIA",
          .domestic = false,
          .fp8 = true,
          .memory_gib = 80,
          .fp16_tflops = 989,
          .fp8_tflops = 1979,
          .gpus_total = total,
          .price_fen_per_gpu_hour = 2'800};
}

// A valid domestic pool without FP8.
PoolRecord Ascend(const std::string& datacenter, const std::string& id, int32_t total) {
  return {.datacenter_id = datacenter,
          .id = id,
          .accelerator_model = "Ascend 910B",
          .vendor = "Huawei",
          .domestic = true,
          .fp8 = false,
          .memory_gib = 64,
          .fp16_tflops = 320,
          .fp8_tflops = 0,
          .gpus_total = total,
          .price_fen_per_gpu_hour = 1'500};
}

class CapacityStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = CreateTestDatabase();
    pool_ = std::move(*PgPool::Create({.dsn = dsn_, .size = 4}));
    conn_ = std::make_unique<pqxx::connection>(dsn_);
    // Whole seconds, so times round-trip through microsecond columns exactly.
    now_ = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
  }

  IdempotencyKey Key(const std::string& op, const std::string& hash = "") {
    const std::string id = absl::StrCat(op, "-", ++key_counter_);
    return {.scope = absl::StrCat("test/", op), .request_id = id, .request_hash = hash + id};
  }

  absl::StatusOr<std::string> AddDatacenter(const std::string& id, NationalHub hub,
                                            const std::string& region, bool national = true) {
    return RegisterDatacenter(*pool_, Key("RegisterDatacenter"),
                              {.id = id,
                               .display_name = absl::StrCat("Site ", id),
                               .operator_name = "Operator Co.",
                               .region_code = region,
                               .hub = hub,
                               .national_network = national},
                              EncodeDatacenter);
  }

  absl::StatusOr<std::string> AddPool(const PoolRecord& p) {
    return RegisterPool(*pool_, Key("RegisterPool"), p, EncodePool);
  }

  absl::StatusOr<std::string> Report(const std::string& datacenter,
                                     const std::vector<PoolReport>& reports, absl::Time at) {
    return ReportCapacity(*pool_, Key("ReportCapacity"), datacenter, reports, at, EncodePools);
  }

  // Three sites: dc-gz (Guizhou, 520100) with pools pa (100) and pb (28), dc-gy (Guizhou, 520100)
  // with pool pc (64), dc-gs (Gansu, 620100, not in the national network) with pool pd (40).
  void AddSites() {
    ASSERT_THAT(AddDatacenter("dc-gz", NationalHub::kGuizhou, "520100"), IsOk());
    ASSERT_THAT(AddDatacenter("dc-gy", NationalHub::kGuizhou, "520100"), IsOk());
    ASSERT_THAT(AddDatacenter("dc-gs", NationalHub::kGansu, "620100", false), IsOk());
    ASSERT_THAT(AddPool(H800("dc-gz", "pa", 100)), IsOk());
    ASSERT_THAT(AddPool(Ascend("dc-gz", "pb", 28)), IsOk());
    ASSERT_THAT(AddPool(H800("dc-gy", "pc", 64)), IsOk());
    ASSERT_THAT(AddPool(Ascend("dc-gs", "pd", 40)), IsOk());
  }

  std::string ErrorOf(const std::string& sql) { return ::vch::testing::SqlErrorOf(*conn_, sql); }

  // Runs `sql` through storage::RunTransaction and returns the mapped status.
  absl::Status RunSql(const std::string& sql) {
    return RunTransaction(*pool_, [&sql](pqxx::dbtransaction& tx) {
      tx.exec(sql);
      return absl::OkStatus();
    });
  }

  pqxx::result Query(const std::string& sql) {
    pqxx::nontransaction tx(*conn_);
    return tx.exec(sql);
  }

  template <typename T>
  T Scalar(const std::string& sql) {
    return Query(sql)[0][0].as<T>();
  }

  int64_t Count(const std::string& table) {
    return Scalar<int64_t>(absl::StrCat("SELECT count(*) FROM ", table));
  }

  // A datacenters row in SQL (values are SQL expressions).
  std::string DatacenterSql(const std::string& id, const std::string& region = "'520100'",
                            const std::string& hub = "6", const std::string& display = "'Site'",
                            const std::string& state = "1") {
    return absl::StrCat(
        "INSERT INTO datacenters (id, display_name, region_code, hub, national_network, state) "
        "VALUES (",
        id, ", ", display, ", ", region, ", ", hub, ", true, ", state, ")");
  }

  // A gpu_pools row in SQL of datacenter 'dc1'; valid as is.
  struct PoolRow {
    std::string datacenter = "'dc1'";
    std::string id = "'p1'";
    std::string model = "'H800'";
    bool fp8 = true;
    int memory_gib = 80;
    int fp16_tflops = 989;
    int fp8_tflops = 1979;
    int gpus_total = 8;
    int gpus_free = 0;
    int gpus_held = 0;
    int64_t price = 2800;
  };
  std::string PoolSql(const PoolRow& r) {
    return absl::StrCat(
        "INSERT INTO gpu_pools (datacenter_id, id, accelerator_model, domestic, fp8, memory_gib, "
        "fp16_tflops, fp8_tflops, gpus_total, gpus_free, gpus_held, price_fen_per_gpu_hour) "
        "VALUES (",
        r.datacenter, ", ", r.id, ", ", r.model, ", false, ", r.fp8 ? "true" : "false", ", ",
        r.memory_gib, ", ", r.fp16_tflops, ", ", r.fp8_tflops, ", ", r.gpus_total, ", ",
        r.gpus_free, ", ", r.gpus_held, ", ", r.price, ")");
  }

  std::string ReportSql(const std::string& pool, int total, int free) {
    return absl::StrCat(
        "INSERT INTO capacity_reports (datacenter_id, pool_id, hub, gpus_total, gpus_free) "
        "VALUES ('dc1', ",
        pool, ", 6, ", total, ", ", free, ")");
  }

  std::string HoldSql(int gpus, int state, const std::string& resolved_at,
                      const std::string& pool = "'p1'") {
    return absl::StrCat(
        "INSERT INTO capacity_holds (datacenter_id, pool_id, gpus, owner, purpose, state, "
        "expires_at, resolved_at) VALUES ('dc1', ",
        pool, ", ", gpus, ", 'ENTERPRISE:91310000MA1FL4XY2K', 'redemptions/r1', ", state,
        ", now() + interval '15 minutes', ", resolved_at, ") RETURNING id");
  }

  // For the schema tests: datacenter dc1 with pool p1 of 8 GPUs.
  void AddSchemaFixture() {
    ASSERT_THAT(ErrorOf(DatacenterSql("'dc1'")), Accepted());
    ASSERT_THAT(ErrorOf(PoolSql({})), Accepted());
  }

  std::string dsn_;
  std::unique_ptr<PgPool> pool_;
  std::unique_ptr<pqxx::connection> conn_;
  absl::Time now_;
  int key_counter_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Datacenters and pools.

TEST_F(CapacityStoreTest, RegistersDatacenterAndReadsItBack) {
  absl::StatusOr<std::string> bytes = AddDatacenter("dc-gz", NationalHub::kGuizhou, "520100");
  ASSERT_THAT(bytes, IsOk());
  EXPECT_EQ(*bytes, "dc-gz|Site dc-gz|Operator Co.|520100|6|national|ACTIVE|");
  absl::StatusOr<DatacenterRecord> dc = GetDatacenter(*pool_, "dc-gz");
  ASSERT_THAT(dc, IsOk());
  EXPECT_EQ(EncodeDatacenter(*dc), *bytes);
  EXPECT_LE(absl::AbsDuration(dc->created_at - absl::Now()), absl::Minutes(1));
  EXPECT_THAT(GetDatacenter(*pool_, "dc-none"), StatusIs(kNotFound, "DATACENTER_NOT_FOUND"));
}

TEST_F(CapacityStoreTest, ListsDatacentersByHubInIdOrderWithPaging) {
  ASSERT_NO_FATAL_FAILURE(AddSites());
  ASSERT_THAT(AddDatacenter("dc-bj", NationalHub::kBeijingTianjinHebei, "110000"), IsOk());
  auto ids = [](const absl::StatusOr<std::vector<DatacenterRecord>>& rows) {
    std::vector<std::string> out;
    if (!rows.ok()) return std::vector<std::string>{rows.status().ToString()};
    for (const DatacenterRecord& r : *rows) out.push_back(r.id);
    return out;
  };
  EXPECT_THAT(ids(ListDatacenters(*pool_, NationalHub::kUnspecified, "", 10)),
              ElementsAre("dc-bj", "dc-gs", "dc-gy", "dc-gz"));
  EXPECT_THAT(ids(ListDatacenters(*pool_, NationalHub::kGuizhou, "", 10)),
              ElementsAre("dc-gy", "dc-gz"));
  EXPECT_THAT(ids(ListDatacenters(*pool_, NationalHub::kGuizhou, "", 1)), ElementsAre("dc-gy"));
  EXPECT_THAT(ids(ListDatacenters(*pool_, NationalHub::kGuizhou, "dc-gy", 1)),
              ElementsAre("dc-gz"));
  EXPECT_THAT(ids(ListDatacenters(*pool_, NationalHub::kGuizhou, "dc-gz", 1)), IsEmpty());
  EXPECT_THAT(ids(ListDatacenters(*pool_, NationalHub::kNingxia, "", 10)), IsEmpty());
}

TEST_F(CapacityStoreTest, DuplicateDatacenterIsRefusedAndStoresNoKey) {
  ASSERT_THAT(AddDatacenter("dc-gz", NationalHub::kGuizhou, "520100"), IsOk());
  const int64_t keys = Count("idempotency_keys");
  EXPECT_THAT(AddDatacenter("dc-gz", NationalHub::kGansu, "620100"),
              StatusIs(kAlreadyExists, "DATACENTER_EXISTS"));
  EXPECT_EQ(Count("idempotency_keys"), keys);
  EXPECT_EQ(Count("datacenters"), 1);
  // The first registration stands.
  EXPECT_EQ(GetDatacenter(*pool_, "dc-gz")->hub, NationalHub::kGuizhou);
}

TEST_F(CapacityStoreTest, RegisterDatacenterReplaysItsKey) {
  const IdempotencyKey key{
      .scope = "OPERATOR:dc-gz/RegisterDatacenter", .request_id = "r-1", .request_hash = "h1"};
  const DatacenterRecord dc{.id = "dc-gz",
                            .display_name = "Gui'an",
                            .region_code = "520100",
                            .hub = NationalHub::kGuizhou,
                            .national_network = true};
  absl::StatusOr<std::string> first = RegisterDatacenter(*pool_, key, dc, EncodeDatacenter);
  ASSERT_THAT(first, IsOk());
  absl::StatusOr<std::string> again = RegisterDatacenter(*pool_, key, dc, EncodeDatacenter);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(*again, *first);
  EXPECT_EQ(Count("datacenters"), 1);
  IdempotencyKey other_hash = key;
  other_hash.request_hash = "h2";
  EXPECT_THAT(RegisterDatacenter(*pool_, other_hash, dc, EncodeDatacenter),
              StatusIs(kAlreadyExists, "IDEMPOTENCY_KEY_REUSED"));
  IdempotencyKey no_id = key;
  no_id.request_id = "";
  EXPECT_THAT(RegisterDatacenter(*pool_, no_id, dc, EncodeDatacenter),
              StatusIs(kInvalidArgument, "INVALID_ARGUMENT"));
}

TEST_F(CapacityStoreTest, RegistersPoolsAndListsThemWithoutReports) {
  ASSERT_THAT(AddDatacenter("dc-gz", NationalHub::kGuizhou, "520100"), IsOk());
  absl::StatusOr<std::string> a = AddPool(H800("dc-gz", "h800-a", 256));
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(*a, "dc-gz/h800-a|H800|NVIDIA|foreign|fp8|80|989|1979|256|0|0|2800|never");
  ASSERT_THAT(AddPool(Ascend("dc-gz", "ascend", 128)), IsOk());
  absl::StatusOr<std::vector<PoolRecord>> pools = ListPools(*pool_, "dc-gz");
  ASSERT_THAT(pools, IsOk());
  EXPECT_EQ(EncodePools(*pools),
            "dc-gz/ascend|Ascend 910B|Huawei|domestic|no-fp8|64|320|0|128|0|0|1500|never;"
            "dc-gz/h800-a|H800|NVIDIA|foreign|fp8|80|989|1979|256|0|0|2800|never");
  EXPECT_THAT(ListPools(*pool_, "dc-none"), StatusIs(kNotFound, "DATACENTER_NOT_FOUND"));
}

TEST_F(CapacityStoreTest, DuplicatePoolIsRefusedPoolOfUnknownSiteIsNotFound) {
  ASSERT_THAT(AddDatacenter("dc-gz", NationalHub::kGuizhou, "520100"), IsOk());
  ASSERT_THAT(AddDatacenter("dc-gy", NationalHub::kGuizhou, "520100"), IsOk());
  ASSERT_THAT(AddPool(H800("dc-gz", "p1", 100)), IsOk());
  const int64_t keys = Count("idempotency_keys");
  EXPECT_THAT(AddPool(Ascend("dc-gz", "p1", 8)), StatusIs(kAlreadyExists, "POOL_EXISTS"));
  EXPECT_THAT(AddPool(H800("dc-none", "p1")), StatusIs(kNotFound, "DATACENTER_NOT_FOUND"));
  EXPECT_EQ(Count("idempotency_keys"), keys);
  // The same pool id in another datacenter is another pool.
  EXPECT_THAT(AddPool(H800("dc-gy", "p1", 16)), IsOk());
  EXPECT_EQ(Count("gpu_pools"), 2);
  EXPECT_EQ(ListPools(*pool_, "dc-gz")->at(0).gpus_total, 100);
}

// ---------------------------------------------------------------------------------------------
// ReportCapacity.

TEST_F(CapacityStoreTest, ReportUpdatesFreeGpusAndAppendsHistory) {
  ASSERT_NO_FATAL_FAILURE(AddSites());
  const absl::Time t1 = now_ - absl::Minutes(10);
  absl::StatusOr<std::string> first = Report("dc-gz", {{"pa", 70}, {"pb", 28}}, t1);
  ASSERT_THAT(first, IsOk());
  const std::string t1_us = absl::StrCat(absl::ToUnixMicros(t1));
  EXPECT_EQ(
      *first,
      absl::StrCat("dc-gz/pa|H800|NVIDIA|foreign|fp8|80|989|1979|100|70|0|2800|", t1_us,
                   ";dc-gz/pb|Ascend 910B|Huawei|domestic|no-fp8|64|320|0|28|28|0|1500|", t1_us));
  ASSERT_THAT(Report("dc-gz", {{"pa", 20}}, now_), IsOk());
  absl::StatusOr<std::vector<PoolRecord>> pools = ListPools(*pool_, "dc-gz");
  ASSERT_THAT(pools, IsOk());
  ASSERT_EQ(pools->size(), 2u);
  EXPECT_EQ((*pools)[0].gpus_free, 20);
  EXPECT_EQ((*pools)[0].reported_at, now_);
  EXPECT_EQ((*pools)[1].gpus_free, 28);
  EXPECT_EQ((*pools)[1].reported_at, t1);
  // Every report is kept, with the site's hub and the pool's size at the time.
  pqxx::result history = Query(
      "SELECT datacenter_id || '/' || pool_id, hub, gpus_total, gpus_free, vch_us(reported_at) "
      "FROM capacity_reports ORDER BY id");
  std::vector<std::string> rows;
  for (const pqxx::row& r : history) {
    rows.push_back(absl::StrCat(r[0].as<std::string>(), " hub=", r[1].as<int>(), " ",
                                r[2].as<int>(), "/", r[3].as<int>(), " @", r[4].as<int64_t>()));
  }
  EXPECT_THAT(rows, ElementsAre(absl::StrCat("dc-gz/pa hub=6 100/70 @", t1_us),
                                absl::StrCat("dc-gz/pb hub=6 28/28 @", t1_us),
                                absl::StrCat("dc-gz/pa hub=6 100/20 @", absl::ToUnixMicros(now_))));
  // Other sites' pools are untouched.
  EXPECT_FALSE(ListPools(*pool_, "dc-gy")->at(0).reported_at.has_value());
}

TEST_F(CapacityStoreTest, ReportNamingAnotherDatacentersPoolIsNotFoundAndWritesNothing) {
  ASSERT_NO_FATAL_FAILURE(AddSites());
  ASSERT_THAT(Report("dc-gz", {{"pa", 50}}, now_ - absl::Minutes(5)), IsOk());
  const int64_t history = Count("capacity_reports");
  const int64_t keys = Count("idempotency_keys");
  const std::string before = EncodePools(*ListPools(*pool_, "dc-gz"));
  const IdempotencyKey key = Key("ReportCapacity");
  // Pool pc is dc-gy's: dc-gz's report naming it is refused as a whole, including the valid
  // report of its own pool pa that comes first.
  EXPECT_THAT(ReportCapacity(*pool_, key, "dc-gz", {{"pa", 10}, {"pc", 5}}, now_, EncodePools),
              StatusIs(kNotFound, "POOL_NOT_FOUND"));
  EXPECT_THAT(Report("dc-gz", {{"no-such-pool", 5}}, now_), StatusIs(kNotFound, "POOL_NOT_FOUND"));
  EXPECT_THAT(Report("dc-none", {{"pa", 5}}, now_), StatusIs(kNotFound, "DATACENTER_NOT_FOUND"));
  // More free than the pool has: refused by gpu_pools_free_within_total.
  EXPECT_THAT(Report("dc-gz", {{"pb", 29}}, now_),
              StatusIs(absl::StatusCode::kInvalidArgument, "GPUS_FREE_EXCEEDS_TOTAL"));
  EXPECT_THAT(Report("dc-gz", {{"pb", -1}}, now_), Not(IsOk()));
  EXPECT_EQ(Count("capacity_reports"), history);
  EXPECT_EQ(Count("idempotency_keys"), keys);
  EXPECT_EQ(EncodePools(*ListPools(*pool_, "dc-gz")), before);
  EXPECT_EQ(ListPools(*pool_, "dc-gy")->at(0).gpus_free, 0);
  // The refused request consumed nothing: its key works for a valid report.
  EXPECT_THAT(ReportCapacity(*pool_, key, "dc-gz", {{"pa", 10}}, now_, EncodePools), IsOk());
  EXPECT_EQ(Count("capacity_reports"), history + 1);
}

TEST_F(CapacityStoreTest, ReplayedReportReturnsTheStoredResponseAndAppendsOnce) {
  ASSERT_NO_FATAL_FAILURE(AddSites());
  const IdempotencyKey key{.scope = "OPERATOR:dc-gz/ReportCapacity",
                           .request_id = "report-0001",
                           .request_hash = "hash-a"};
  const absl::Time t1 = now_ - absl::Minutes(2);
  absl::StatusOr<std::string> first =
      ReportCapacity(*pool_, key, "dc-gz", {{"pa", 96}}, t1, EncodePools);
  ASSERT_THAT(first, IsOk());
  // A retry arrives later (the handler passes a later `now`): the stored bytes come back and
  // nothing more is written.
  absl::StatusOr<std::string> again =
      ReportCapacity(*pool_, key, "dc-gz", {{"pa", 96}}, now_, EncodePools);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(*again, *first);
  EXPECT_EQ(Count("capacity_reports"), 1);
  EXPECT_EQ(ListPools(*pool_, "dc-gz")->at(0).reported_at, t1);
  IdempotencyKey changed = key;
  changed.request_hash = "hash-b";
  EXPECT_THAT(ReportCapacity(*pool_, changed, "dc-gz", {{"pa", 90}}, now_, EncodePools),
              StatusIs(kAlreadyExists, "IDEMPOTENCY_KEY_REUSED"));
  EXPECT_EQ(ListPools(*pool_, "dc-gz")->at(0).gpus_free, 96);
  EXPECT_EQ(Count("capacity_reports"), 1);
}

// ---------------------------------------------------------------------------------------------
// GetUtilization.

class UtilizationTest : public CapacityStoreTest {
 protected:
  void SetUp() override {
    CapacityStoreTest::SetUp();
    ASSERT_NO_FATAL_FAILURE(AddSites());
    // Reports in time order (ReportCapacity stamps the pool with the latest `now`):
    //   dc-gz/pa (100): 08:00 70 free, 08:30 20 free, 09:10 50 free
    //   dc-gz/pb (28):  08:10 28 free, 10:05 0 free
    //   dc-gy/pc (64):  08:45 32 free
    //   dc-gs/pd (40):  08:15 10 free
    ASSERT_THAT(Report("dc-gz", {{"pa", 70}}, At(0)), IsOk());
    ASSERT_THAT(Report("dc-gz", {{"pb", 28}}, At(10)), IsOk());
    ASSERT_THAT(Report("dc-gs", {{"pd", 10}}, At(15)), IsOk());
    ASSERT_THAT(Report("dc-gz", {{"pa", 20}}, At(30)), IsOk());
    ASSERT_THAT(Report("dc-gy", {{"pc", 32}}, At(45)), IsOk());
    ASSERT_THAT(Report("dc-gz", {{"pa", 50}}, At(70)), IsOk());
    ASSERT_THAT(Report("dc-gz", {{"pb", 0}}, At(125)), IsOk());
  }

  // 2024-03-01 08:00 UTC plus `minutes`.
  static absl::Time At(int minutes) {
    return absl::FromCivil(absl::CivilMinute(2024, 3, 1, 8, 0), absl::UTCTimeZone()) +
           absl::Minutes(minutes);
  }

  std::vector<std::string> Utilization(UtilizationQuery q) {
    return Points(GetUtilization(*pool_, q));
  }
};

TEST_F(UtilizationTest, PoolLastReportInEachBucketWins) {
  // 08:00-09:00: 70 then 20 free -> 80 busy; 09:00-10:00: 50 free -> 50 busy.
  EXPECT_THAT(Utilization({.datacenter_id = "dc-gz",
                           .pool_id = "pa",
                           .start = At(0),
                           .end = At(180),
                           .bucket = absl::Hours(1)}),
              ElementsAre("08:00:100/80", "09:00:100/50"));
  // Half-hour buckets separate the two 08:xx reports.
  EXPECT_THAT(Utilization({.datacenter_id = "dc-gz",
                           .pool_id = "pa",
                           .start = At(0),
                           .end = At(180),
                           .bucket = absl::Minutes(30)}),
              ElementsAre("08:00:100/30", "08:30:100/80", "09:00:100/50"));
  // One bucket over everything: the very last report.
  EXPECT_THAT(Utilization({.datacenter_id = "dc-gz",
                           .pool_id = "pa",
                           .start = At(0),
                           .end = At(24 * 60),
                           .bucket = absl::Hours(24)}),
              ElementsAre("08:00:100/50"));
}

TEST_F(UtilizationTest, WindowIsStartInclusiveEndExclusiveAndBucketsStartAtStart) {
  // Buckets are aligned to the start: [08:30, 09:30) holds the 08:30 and 09:10 reports.
  EXPECT_THAT(Utilization({.datacenter_id = "dc-gz",
                           .pool_id = "pa",
                           .start = At(30),
                           .end = At(90),
                           .bucket = absl::Hours(1)}),
              ElementsAre("08:30:100/50"));
  // The end is exclusive: without the 09:10 report the 08:30 one is the last.
  EXPECT_THAT(Utilization({.datacenter_id = "dc-gz",
                           .pool_id = "pa",
                           .start = At(30),
                           .end = At(70),
                           .bucket = absl::Hours(1)}),
              ElementsAre("08:30:100/80"));
  // The start is inclusive; reports before it are not carried in.
  EXPECT_THAT(Utilization({.datacenter_id = "dc-gz",
                           .pool_id = "pa",
                           .start = At(1),
                           .end = At(30),
                           .bucket = absl::Hours(1)}),
              IsEmpty());
  EXPECT_THAT(Utilization({.datacenter_id = "dc-gz",
                           .pool_id = "pa",
                           .start = At(200),
                           .end = At(300),
                           .bucket = absl::Hours(1)}),
              IsEmpty());
}

TEST_F(UtilizationTest, SiteSumsItsPoolsLastReportsPerBucket) {
  // 08:00: pa 100/80 + pb 28/0; 09:00: pa 100/50; 10:00: pb 28/28.
  EXPECT_THAT(
      Utilization(
          {.datacenter_id = "dc-gz", .start = At(0), .end = At(180), .bucket = absl::Hours(1)}),
      ElementsAre("08:00:128/80", "09:00:100/50", "10:00:28/28"));
  EXPECT_THAT(
      Utilization(
          {.datacenter_id = "dc-gs", .start = At(0), .end = At(180), .bucket = absl::Hours(1)}),
      ElementsAre("08:00:40/30"));
}

TEST_F(UtilizationTest, HubSumsItsSitesPools) {
  // Guizhou = dc-gz + dc-gy. 08:00: pa 100/80 + pb 28/0 + pc 64/32.
  EXPECT_THAT(
      Utilization(
          {.hub = NationalHub::kGuizhou, .start = At(0), .end = At(180), .bucket = absl::Hours(1)}),
      ElementsAre("08:00:192/112", "09:00:100/50", "10:00:28/28"));
  EXPECT_THAT(
      Utilization(
          {.hub = NationalHub::kGansu, .start = At(0), .end = At(180), .bucket = absl::Hours(1)}),
      ElementsAre("08:00:40/30"));
  EXPECT_THAT(
      Utilization(
          {.hub = NationalHub::kNingxia, .start = At(0), .end = At(180), .bucket = absl::Hours(1)}),
      IsEmpty());
}

TEST_F(UtilizationTest, HistoryAgreesWithThePoolWhenOneReportNamesAPoolTwice) {
  // A report naming pool pa twice: whatever the store makes of it, the history's last report
  // and the pool's current free GPUs must agree (or the report must be refused whole).
  absl::StatusOr<std::string> twice = Report("dc-gz", {{"pa", 70}, {"pa", 20}}, At(300));
  absl::StatusOr<std::vector<PoolRecord>> pools = ListPools(*pool_, "dc-gz");
  ASSERT_THAT(pools, IsOk());
  const int32_t free = (*pools)[0].gpus_free;
  if (twice.ok()) {
    EXPECT_EQ(free, 20);
    EXPECT_THAT(Utilization({.datacenter_id = "dc-gz",
                             .pool_id = "pa",
                             .start = At(300),
                             .end = At(360),
                             .bucket = absl::Hours(1)}),
                ElementsAre(Point(At(300), 100, 100 - free)));
  } else {
    EXPECT_EQ(free, 50);
    EXPECT_EQ(Count("capacity_reports"), 7);
  }
}

TEST_F(UtilizationTest, UnknownPoolHasNoPoints) {
  EXPECT_THAT(Utilization({.datacenter_id = "dc-gz",
                           .pool_id = "zz",
                           .start = At(0),
                           .end = At(180),
                           .bucket = absl::Hours(1)}),
              IsEmpty());
  EXPECT_THAT(Utilization({.datacenter_id = "dc-gy",
                           .pool_id = "pa",
                           .start = At(0),
                           .end = At(180),
                           .bucket = absl::Hours(1)}),
              IsEmpty());
}

// ---------------------------------------------------------------------------------------------
// Suspension and the placement engine's view.

TEST_F(CapacityStoreTest, LoadPoolStatesShowsEveryPoolWithItsSite) {
  ASSERT_NO_FATAL_FAILURE(AddSites());
  absl::StatusOr<std::vector<policy::PoolState>> states = LoadPoolStates(*pool_);
  ASSERT_THAT(states, IsOk());
  ASSERT_EQ(states->size(), 4u);
  std::vector<std::string> ids;
  for (const policy::PoolState& s : *states) ids.push_back(s.pool_id);
  EXPECT_THAT(ids, ElementsAre("dc-gs/pd", "dc-gy/pc", "dc-gz/pa", "dc-gz/pb"));
  const policy::PoolState& d = (*states)[0];
  EXPECT_EQ(d.datacenter_id, "dc-gs");
  EXPECT_EQ(d.region_code, "620100");
  EXPECT_EQ(d.hub, NationalHub::kGansu);
  EXPECT_FALSE(d.national_network);
  EXPECT_TRUE(d.site_active);
  EXPECT_EQ(d.accelerator_model, "Ascend 910B");
  EXPECT_TRUE(d.domestic);
  EXPECT_FALSE(d.fp8);
  EXPECT_EQ(d.memory_gib, 64);
  EXPECT_EQ(d.gpus_total, 40);
  EXPECT_EQ(d.gpus_free, 0);
  EXPECT_EQ(d.gpus_held, 0);
  EXPECT_EQ(d.price_fen_per_gpu_hour, 1500);
  for (const policy::PoolState& s : *states) {
    EXPECT_EQ(s.reported_at, absl::InfinitePast()) << s.pool_id;
  }
  const policy::PoolState& a = (*states)[2];
  EXPECT_EQ(a.datacenter_id, "dc-gz");
  EXPECT_EQ(a.region_code, "520100");
  EXPECT_EQ(a.hub, NationalHub::kGuizhou);
  EXPECT_TRUE(a.national_network);
  EXPECT_EQ(a.accelerator_model, "H800");
  EXPECT_FALSE(a.domestic);
  EXPECT_TRUE(a.fp8);
  EXPECT_EQ(a.memory_gib, 80);
  EXPECT_EQ(a.gpus_total, 100);
  EXPECT_EQ(a.price_fen_per_gpu_hour, 2800);

  ASSERT_THAT(Report("dc-gz", {{"pa", 64}}, now_), IsOk());
  // GPUs held by placements (kept with the holds by the caller).
  ASSERT_EQ(Query("UPDATE gpu_pools SET gpus_held = 16 WHERE datacenter_id = 'dc-gz' AND "
                  "id = 'pa' RETURNING 1")
                .size(),
            1u);
  states = LoadPoolStates(*pool_);
  ASSERT_THAT(states, IsOk());
  EXPECT_EQ((*states)[2].gpus_free, 64);
  EXPECT_EQ((*states)[2].gpus_held, 16);
  EXPECT_EQ((*states)[2].reported_at, now_);
  EXPECT_EQ((*states)[3].reported_at, absl::InfinitePast());
}

TEST_F(CapacityStoreTest, SuspendedSiteShowsInactiveToThePlacementEngine) {
  ASSERT_NO_FATAL_FAILURE(AddSites());
  absl::StatusOr<std::string> suspended =
      SetDatacenterState(*pool_, Key("SetDatacenterState"), "dc-gz", false,
                         "cooling failure in hall 2", EncodeDatacenter);
  ASSERT_THAT(suspended, IsOk());
  EXPECT_EQ(*suspended,
            "dc-gz|Site dc-gz|Operator Co.|520100|6|national|SUSPENDED|cooling failure in hall 2");
  absl::StatusOr<DatacenterRecord> dc = GetDatacenter(*pool_, "dc-gz");
  ASSERT_THAT(dc, IsOk());
  EXPECT_FALSE(dc->active);
  EXPECT_EQ(dc->state_reason, "cooling failure in hall 2");
  absl::StatusOr<std::vector<policy::PoolState>> states = LoadPoolStates(*pool_);
  ASSERT_THAT(states, IsOk());
  std::vector<std::string> active;
  for (const policy::PoolState& s : *states) {
    active.push_back(absl::StrCat(s.pool_id, "=", s.site_active ? "active" : "suspended"));
  }
  EXPECT_THAT(active, ElementsAre("dc-gs/pd=active", "dc-gy/pc=active", "dc-gz/pa=suspended",
                                  "dc-gz/pb=suspended"));
  // Resuming makes it active again.
  ASSERT_THAT(
      SetDatacenterState(*pool_, Key("SetDatacenterState"), "dc-gz", true, "", EncodeDatacenter),
      IsOk());
  EXPECT_TRUE(GetDatacenter(*pool_, "dc-gz")->active);
  states = LoadPoolStates(*pool_);
  ASSERT_THAT(states, IsOk());
  for (const policy::PoolState& s : *states) EXPECT_TRUE(s.site_active) << s.pool_id;
}

TEST_F(CapacityStoreTest, SuspendingAnUnknownSiteIsNotFoundAndStoresNoKey) {
  const int64_t keys = Count("idempotency_keys");
  EXPECT_THAT(SetDatacenterState(*pool_, Key("SetDatacenterState"), "dc-none", false, "why",
                                 EncodeDatacenter),
              StatusIs(kNotFound, "DATACENTER_NOT_FOUND"));
  EXPECT_EQ(Count("idempotency_keys"), keys);
}

TEST_F(CapacityStoreTest, SetDatacenterStateReplaysItsKey) {
  ASSERT_NO_FATAL_FAILURE(AddSites());
  const IdempotencyKey key{
      .scope = "AUDITOR:/SetDatacenterState", .request_id = "s-1", .request_hash = "h"};
  absl::StatusOr<std::string> first =
      SetDatacenterState(*pool_, key, "dc-gz", false, "audit finding", EncodeDatacenter);
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(
      SetDatacenterState(*pool_, Key("SetDatacenterState"), "dc-gz", true, "", EncodeDatacenter),
      IsOk());
  // The replay returns the stored response and does not suspend the site again.
  absl::StatusOr<std::string> again =
      SetDatacenterState(*pool_, key, "dc-gz", false, "audit finding", EncodeDatacenter);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(*again, *first);
  EXPECT_TRUE(GetDatacenter(*pool_, "dc-gz")->active);
}

// ---------------------------------------------------------------------------------------------
// The schema refuses what the store must never write.

TEST_F(CapacityStoreTest, SchemaHasExactlyTheConstraintsAndTriggersTestedHere) {
  // A constraint or trigger added to the capacity tables needs a test in this file.
  std::vector<std::string> constraints;
  for (const auto& row :
       Query("SELECT conname FROM pg_constraint WHERE conrelid IN ('datacenters'::regclass, "
             "'gpu_pools'::regclass, 'capacity_reports'::regclass, "
             "'capacity_holds'::regclass)")) {
    constraints.push_back(row[0].as<std::string>());
  }
  EXPECT_THAT(constraints, UnorderedElementsAreArray<std::string>({
                               "datacenters_pkey",
                               "datacenters_id_slug",
                               "datacenters_display_name_nonempty",
                               "datacenters_region_code_format",
                               "datacenters_hub_known",
                               "datacenters_state_known",
                               "gpu_pools_pkey",
                               "gpu_pools_datacenter_id_fkey",
                               "gpu_pools_id_slug",
                               "gpu_pools_model_nonempty",
                               "gpu_pools_memory_positive",
                               "gpu_pools_fp16_nonnegative",
                               "gpu_pools_fp8_nonnegative",
                               "gpu_pools_total_positive",
                               "gpu_pools_price_positive",
                               "gpu_pools_free_within_total",
                               "gpu_pools_held_within_total",
                               "gpu_pools_fp8_tflops_needs_fp8",
                               "capacity_reports_pkey",
                               "capacity_reports_total_positive",
                               "capacity_reports_free_within_total",
                               "capacity_reports_pool_fkey",
                               "capacity_holds_pkey",
                               "capacity_holds_gpus_positive",
                               "capacity_holds_state_known",
                               "capacity_holds_resolution_time",
                           }));
  std::vector<std::string> triggers;
  for (const auto& row :
       Query("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN "
             "('datacenters'::regclass, 'gpu_pools'::regclass, 'capacity_reports'::regclass, "
             "'capacity_holds'::regclass)")) {
    triggers.push_back(row[0].as<std::string>());
  }
  EXPECT_THAT(triggers, UnorderedElementsAreArray<std::string>({
                            "gpu_pools_no_delete",
                            "gpu_pools_key_immutable",
                            "capacity_reports_append_only",
                            "capacity_reports_no_truncate",
                            "capacity_holds_forward_only",
                            "capacity_holds_no_truncate",
                            "capacity_holds_insert_check",
                        }));
}

TEST_F(CapacityStoreTest, DatacenterConstraints) {
  ASSERT_THAT(ErrorOf(DatacenterSql("'dc1'")), Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT state || '/' || state_reason || '/' || operator_name || "
                                "'/' || (created_at IS NOT NULL) FROM datacenters"),
            "1///true");
  EXPECT_THAT(ErrorOf(DatacenterSql("'dc1'")), RefusedBy("datacenters_pkey"));
  for (const char* id : {"'A1'", "'-dc'", "'d'", "'dc_1'", "''"}) {
    EXPECT_THAT(ErrorOf(DatacenterSql(id)), RefusedBy("datacenters_id_slug")) << id;
  }
  EXPECT_THAT(ErrorOf(DatacenterSql("'dc2'", "'520100'", "6", "''")),
              RefusedBy("datacenters_display_name_nonempty"));
  for (const char* region : {"'52010'", "'5201000'", "'52010a'", "''", "' 520100'"}) {
    EXPECT_THAT(ErrorOf(DatacenterSql("'dc2'", region)),
                RefusedBy("datacenters_region_code_format"))
        << region;
  }
  for (const char* hub : {"0", "9", "-1"}) {
    EXPECT_THAT(ErrorOf(DatacenterSql("'dc2'", "'520100'", hub)),
                RefusedBy("datacenters_hub_known"))
        << hub;
  }
  for (const char* hub : {"1", "8"}) {
    EXPECT_THAT(ErrorOf(DatacenterSql(absl::StrCat("'dc-hub-", hub, "'"), "'520100'", hub)),
                Accepted());
  }
  EXPECT_THAT(ErrorOf(DatacenterSql("'dc2'", "'520100'", "6", "'Site'", "3")),
              RefusedBy("datacenters_state_known"));
  EXPECT_THAT(ErrorOf("UPDATE datacenters SET state = 0 WHERE id = 'dc1'"),
              RefusedBy("datacenters_state_known"));
  EXPECT_THAT(ErrorOf("UPDATE datacenters SET state = 2 WHERE id = 'dc1'"), Accepted());
  EXPECT_EQ(Scalar<int>("SELECT state FROM datacenters WHERE id = 'dc1'"), 2);
  EXPECT_EQ(Count("datacenters"), 3);
  // Through the store's transaction runner a check violation is a FAILED_PRECONDITION.
  EXPECT_THAT(RunSql(DatacenterSql("'dc3'", "'5201'")),
              StatusIs(kFailedPrecondition, "CONSTRAINT_VIOLATED"));
}

TEST_F(CapacityStoreTest, PoolConstraints) {
  ASSERT_NO_FATAL_FAILURE(AddSchemaFixture());
  EXPECT_THAT(ErrorOf(PoolSql({})), RefusedBy("gpu_pools_pkey"));
  EXPECT_THAT(ErrorOf(PoolSql({.datacenter = "'dc9'", .id = "'p2'"})),
              RefusedBy("gpu_pools_datacenter_id_fkey"));
  for (const char* id : {"'P2'", "'-p'", "'p'", "'p 2'"}) {
    EXPECT_THAT(ErrorOf(PoolSql({.id = id})), RefusedBy("gpu_pools_id_slug")) << id;
  }
  EXPECT_THAT(ErrorOf(PoolSql({.id = "'p2'", .model = "''"})),
              RefusedBy("gpu_pools_model_nonempty"));
  EXPECT_THAT(ErrorOf(PoolSql({.id = "'p2'", .memory_gib = 0})),
              RefusedBy("gpu_pools_memory_positive"));
  EXPECT_THAT(ErrorOf(PoolSql({.id = "'p2'", .fp16_tflops = -1})),
              RefusedBy("gpu_pools_fp16_nonnegative"));
  EXPECT_THAT(ErrorOf(PoolSql({.id = "'p2'", .fp8_tflops = -1})),
              RefusedBy("gpu_pools_fp8_nonnegative"));
  EXPECT_THAT(ErrorOf(PoolSql({.id = "'p2'", .gpus_total = 0})),
              RefusedBy("gpu_pools_total_positive"));
  EXPECT_THAT(ErrorOf(PoolSql({.id = "'p2'", .price = 0})), RefusedBy("gpu_pools_price_positive"));
  // FP8 TFLOPS need an FP8-capable pool; 0 without FP8 is fine.
  EXPECT_THAT(ErrorOf(PoolSql({.id = "'p2'", .fp8 = false, .fp8_tflops = 1})),
              RefusedBy("gpu_pools_fp8_tflops_needs_fp8"));
  EXPECT_THAT(ErrorOf(PoolSql({.id = "'p2'", .fp8 = false, .fp8_tflops = 0})), Accepted());
  EXPECT_THAT(ErrorOf("UPDATE gpu_pools SET fp8 = false WHERE id = 'p1'"),
              RefusedBy("gpu_pools_fp8_tflops_needs_fp8"));
  // Free and held GPUs stay within 0..total (the bounds themselves are allowed).
  EXPECT_THAT(ErrorOf(PoolSql({.id = "'p3'", .gpus_free = 9})),
              RefusedBy("gpu_pools_free_within_total"));
  EXPECT_THAT(ErrorOf("UPDATE gpu_pools SET gpus_free = 9 WHERE id = 'p1'"),
              RefusedBy("gpu_pools_free_within_total"));
  EXPECT_THAT(ErrorOf("UPDATE gpu_pools SET gpus_free = -1 WHERE id = 'p1'"),
              RefusedBy("gpu_pools_free_within_total"));
  EXPECT_THAT(ErrorOf("UPDATE gpu_pools SET gpus_free = 8 WHERE id = 'p1'"), Accepted());
  EXPECT_THAT(ErrorOf("UPDATE gpu_pools SET gpus_total = 7 WHERE id = 'p1'"),
              RefusedBy("gpu_pools_free_within_total"));
  EXPECT_THAT(ErrorOf(PoolSql({.id = "'p3'", .gpus_held = 9})),
              RefusedBy("gpu_pools_held_within_total"));
  EXPECT_THAT(ErrorOf("UPDATE gpu_pools SET gpus_held = 9 WHERE id = 'p1'"),
              RefusedBy("gpu_pools_held_within_total"));
  EXPECT_THAT(ErrorOf("UPDATE gpu_pools SET gpus_held = -1 WHERE id = 'p1'"),
              RefusedBy("gpu_pools_held_within_total"));
  EXPECT_THAT(ErrorOf("UPDATE gpu_pools SET gpus_held = 8 WHERE id = 'p1'"), Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT gpus_free || '/' || gpus_held FROM gpu_pools WHERE id = "
                                "'p1'"),
            "8/8");
  EXPECT_EQ(Count("gpu_pools"), 2);
  EXPECT_THAT(RunSql("UPDATE gpu_pools SET gpus_free = 100"),
              StatusIs(absl::StatusCode::kInvalidArgument, "GPUS_FREE_EXCEEDS_TOTAL"));
}

TEST_F(CapacityStoreTest, ReportConstraints) {
  ASSERT_NO_FATAL_FAILURE(AddSchemaFixture());
  EXPECT_THAT(ErrorOf(ReportSql("'p1'", 8, 8)), Accepted());
  EXPECT_THAT(ErrorOf(ReportSql("'p1'", 8, 0)), Accepted());
  EXPECT_THAT(ErrorOf(ReportSql("'p1'", 0, 0)), RefusedBy("capacity_reports_total_positive"));
  EXPECT_THAT(ErrorOf(ReportSql("'p1'", 8, 9)), RefusedBy("capacity_reports_free_within_total"));
  EXPECT_THAT(ErrorOf(ReportSql("'p1'", 8, -1)), RefusedBy("capacity_reports_free_within_total"));
  EXPECT_THAT(ErrorOf(ReportSql("'p9'", 8, 1)), RefusedBy("capacity_reports_pool_fkey"));
  EXPECT_EQ(Count("capacity_reports"), 2);
  // Ids are unique.
  const int64_t id = Scalar<int64_t>("SELECT min(id) FROM capacity_reports");
  EXPECT_THAT(ErrorOf(absl::StrCat("INSERT INTO capacity_reports (id, datacenter_id, pool_id, "
                                   "hub, gpus_total, gpus_free) VALUES (",
                                   id, ", 'dc1', 'p1', 6, 8, 1)")),
              RefusedBy("capacity_reports_pkey"));
}

TEST_F(CapacityStoreTest, ReportsAreAppendOnly) {
  ASSERT_NO_FATAL_FAILURE(AddSchemaFixture());
  ASSERT_THAT(ErrorOf(ReportSql("'p1'", 8, 3)), Accepted());
  EXPECT_THAT(ErrorOf("UPDATE capacity_reports SET gpus_free = 4"),
              RefusedByTrigger("VC001", "APPEND_ONLY: capacity_reports is append-only; UPDATE"));
  // Even an update that changes nothing.
  EXPECT_THAT(ErrorOf("UPDATE capacity_reports SET gpus_free = gpus_free"),
              RefusedByTrigger("VC001", "APPEND_ONLY: capacity_reports is append-only; UPDATE"));
  EXPECT_THAT(ErrorOf("DELETE FROM capacity_reports"),
              RefusedByTrigger("VC001", "APPEND_ONLY: capacity_reports is append-only; DELETE"));
  EXPECT_THAT(ErrorOf("TRUNCATE capacity_reports"),
              RefusedByTrigger("VC001", "APPEND_ONLY: capacity_reports is append-only; TRUNCATE"));
  // Truncating the pools (which would take the reports with them by CASCADE) is refused by the
  // pools' own trigger first.
  EXPECT_THAT(ErrorOf("TRUNCATE gpu_pools CASCADE"),
              RefusedByTrigger("VC004", "ROW_UNDELETABLE: rows of gpu_pools are never deleted"));
  EXPECT_THAT(RunSql("DELETE FROM capacity_reports"), StatusIs(kFailedPrecondition, "APPEND_ONLY"));
  EXPECT_THAT(RunSql("TRUNCATE capacity_reports"), StatusIs(kFailedPrecondition, "APPEND_ONLY"));
  EXPECT_EQ(Scalar<std::string>("SELECT pool_id || '/' || gpus_total || '/' || gpus_free FROM "
                                "capacity_reports"),
            "p1/8/3");
  // A pool cannot be deleted out from under its history (nor at all), nor re-keyed.
  EXPECT_THAT(ErrorOf("DELETE FROM gpu_pools WHERE id = 'p1'"),
              RefusedByTrigger("VC004",
                               "ROW_UNDELETABLE: rows of gpu_pools are never deleted; "
                               "DELETE is refused"));
  EXPECT_THAT(ErrorOf("UPDATE gpu_pools SET id = 'p2' WHERE id = 'p1'"),
              RefusedByTrigger("VC005", "KEY_IMMUTABLE: the key of a row of gpu_pools"));
  EXPECT_THAT(ErrorOf("UPDATE gpu_pools SET datacenter_id = 'dc2' WHERE id = 'p1'"),
              RefusedByTrigger("VC005", "KEY_IMMUTABLE: the key of a row of gpu_pools"));
  EXPECT_THAT(ErrorOf("UPDATE gpu_pools SET id = id, gpus_free = 7 WHERE id = 'p1'"), Accepted());
}

TEST_F(CapacityStoreTest, HoldConstraints) {
  ASSERT_NO_FATAL_FAILURE(AddSchemaFixture());
  pqxx::result valid = Query(HoldSql(2, 1, "NULL") + ", state || '/' || gpus || '/' || purpose");
  EXPECT_EQ(valid[0][1].as<std::string>(), "1/2/redemptions/r1");
  EXPECT_THAT(ErrorOf(HoldSql(0, 1, "NULL")), RefusedBy("capacity_holds_gpus_positive"));
  EXPECT_THAT(ErrorOf(HoldSql(1, 0, "now()")), RefusedBy("capacity_holds_state_known"));
  EXPECT_THAT(ErrorOf(HoldSql(1, 4, "now()")), RefusedBy("capacity_holds_state_known"));
  // capacity_holds_insert_check, once per statement: the pool exists.
  EXPECT_THAT(ErrorOf(HoldSql(1, 1, "NULL", "'p9'")),
              RefusedByTrigger("VC031", "CAPACITY_HOLD_POOL_UNKNOWN: capacity hold "));
  EXPECT_THAT(ErrorOf(HoldSql(1, 1, "NULL", "'p9'")),
              RefusedByTrigger("VC031", "names pool dc1/p9, which does not exist"));
  // Resolved exactly when not HELD.
  EXPECT_THAT(ErrorOf(HoldSql(1, 1, "now()")), RefusedBy("capacity_holds_resolution_time"));
  EXPECT_THAT(ErrorOf(HoldSql(1, 2, "NULL")), RefusedBy("capacity_holds_resolution_time"));
  EXPECT_THAT(ErrorOf(HoldSql(1, 3, "NULL")), RefusedBy("capacity_holds_resolution_time"));
  EXPECT_THAT(ErrorOf(HoldSql(1, 2, "now()")), Accepted());
  EXPECT_THAT(ErrorOf(HoldSql(1, 3, "now()")), Accepted());
  EXPECT_EQ(Count("capacity_holds"), 3);
  const int64_t held = Scalar<int64_t>("SELECT min(id) FROM capacity_holds");
  EXPECT_THAT(ErrorOf(absl::StrCat("UPDATE capacity_holds SET state = 2 WHERE id = ", held)),
              RefusedBy("capacity_holds_resolution_time"));
  EXPECT_THAT(ErrorOf(absl::StrCat("INSERT INTO capacity_holds (id, datacenter_id, pool_id, gpus, "
                                   "owner, purpose, expires_at) VALUES (",
                                   held, ", 'dc1', 'p1', 1, 'o', 'x', now())")),
              RefusedBy("capacity_holds_pkey"));
}

TEST_F(CapacityStoreTest, HoldsMoveForwardOnlyAndAreNeverDeleted) {
  ASSERT_NO_FATAL_FAILURE(AddSchemaFixture());
  ASSERT_THAT(ErrorOf(PoolSql({.id = "'p2'"})), Accepted());
  const int64_t h1 = Scalar<int64_t>(HoldSql(2, 1, "NULL"));
  const int64_t h2 = Scalar<int64_t>(HoldSql(3, 1, "NULL"));
  const std::string where1 = absl::StrCat(" WHERE id = ", h1);
  const std::string where2 = absl::StrCat(" WHERE id = ", h2);
  const std::string resolved =
      absl::StrCat("CAPACITY_HOLD_RESOLVED: capacity hold ", h1, " is already resolved");
  // While HELD: what it holds is fixed; its expiry may change.
  EXPECT_THAT(ErrorOf("UPDATE capacity_holds SET gpus = 3" + where1),
              RefusedByTrigger("VC030", absl::StrCat("capacity hold ", h1)));
  EXPECT_THAT(ErrorOf("UPDATE capacity_holds SET pool_id = 'p2'" + where1),
              RefusedByTrigger("VC030", absl::StrCat("capacity hold ", h1)));
  // Redemptions name their capacity hold by id, without a foreign key: it keeps its id.
  EXPECT_THAT(ErrorOf(absl::StrCat("UPDATE capacity_holds SET id = ", h2 + 100) + where1),
              RefusedByTrigger("VC030", absl::StrCat("capacity hold ", h1)));
  EXPECT_THAT(
      ErrorOf("UPDATE capacity_holds SET expires_at = expires_at + interval '1 minute'" + where1),
      Accepted());
  // HELD -> RELEASED once; then nothing changes.
  EXPECT_THAT(ErrorOf("UPDATE capacity_holds SET state = 2, resolved_at = now()" + where1),
              Accepted());
  EXPECT_THAT(ErrorOf("UPDATE capacity_holds SET state = 1, resolved_at = NULL" + where1),
              RefusedByTrigger("VC030", resolved));
  EXPECT_THAT(ErrorOf("UPDATE capacity_holds SET state = 3" + where1),
              RefusedByTrigger("VC030", resolved));
  EXPECT_THAT(ErrorOf("UPDATE capacity_holds SET resolved_at = resolved_at" + where1),
              RefusedByTrigger("VC030", resolved));
  EXPECT_THAT(RunSql("UPDATE capacity_holds SET state = 3" + where1),
              StatusIs(kFailedPrecondition, "CAPACITY_HOLD_RESOLVED"));
  // HELD -> CONSUMED.
  EXPECT_THAT(ErrorOf("UPDATE capacity_holds SET state = 3, resolved_at = now()" + where2),
              Accepted());
  EXPECT_EQ(
      Scalar<std::string>("SELECT string_agg(state::text, ',' ORDER BY id) FROM capacity_holds"),
      "2,3");
  // Never deleted.
  EXPECT_THAT(ErrorOf("DELETE FROM capacity_holds" + where1),
              RefusedByTrigger("VC001", "APPEND_ONLY: capacity holds are never deleted"));
  EXPECT_THAT(RunSql("DELETE FROM capacity_holds"), StatusIs(kFailedPrecondition, "APPEND_ONLY"));
  EXPECT_EQ(Count("capacity_holds"), 2);
}

TEST_F(CapacityStoreTest, HoldsAreNotTruncatedEither) {
  // "capacity holds are never deleted" (capacity_holds_forward_only) holds for TRUNCATE as well,
  // as for ledger_holds (ledger_holds_no_truncate) and every append-only table (V0001).
  ASSERT_NO_FATAL_FAILURE(AddSchemaFixture());
  ASSERT_THAT(ErrorOf(HoldSql(2, 1, "NULL")), Accepted());
  // CASCADE, since redemptions reference the holds (a plain TRUNCATE stops at that reference).
  EXPECT_THAT(RunSql("TRUNCATE capacity_holds CASCADE"),
              StatusIs(kFailedPrecondition, "APPEND_ONLY"));
  EXPECT_EQ(Count("capacity_holds"), 1);
}

}  // namespace
}  // namespace vch::storage
