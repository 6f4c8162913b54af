// Placements racing for the last GPUs of one pool: exactly as many reservations succeed as
// fit, gpus_held never passes what was free, and expiry and release give GPUs back once.
#include <gtest/gtest.h>

#include <atomic>
#include <pqxx/pqxx>
#include <thread>

#include "absl/strings/str_cat.h"
#include "storage/capacity_store.h"
#include "tests/testing/test_db.h"

namespace vch::storage {
namespace {

using ::vch::testing::CreateTestDatabase;
using ::vch::testing::IsOk;

class CapacityRaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = CreateTestDatabase();
    pool_ = std::move(*PgPool::Create({.dsn = dsn_, .size = 16}));
    auto encode_dc = [](const DatacenterRecord& r) { return r.id; };
    ASSERT_THAT(RegisterDatacenter(*pool_, Key("dc"),
                                   {.id = "gz-west",
                                    .display_name = "Guizhou West",
                                    .region_code = "520100",
                                    .hub = policy::NationalHub::kGuizhou,
                                    .national_network = true},
                                   encode_dc),
                IsOk());
    ASSERT_THAT(RegisterPool(*pool_, Key("pool"),
                             {.datacenter_id = "gz-west",
                              .id = "ascend",
                              .accelerator_model = "Ascend 910B",
                              .domestic = true,
                              .memory_gib = 64,
                              .gpus_total = 128,
                              .price_fen_per_gpu_hour = 1500},
                             [](const PoolRecord& r) { return r.id; }),
                IsOk());
    ASSERT_THAT(ReportCapacity(*pool_, Key("report"), "gz-west", {{"ascend", 20}}, absl::Now(),
                               [](const std::vector<PoolRecord>&) { return std::string("ok"); }),
                IsOk());
  }

  static IdempotencyKey Key(const std::string& id) {
    return {.scope = "test", .request_id = id, .request_hash = id};
  }

  int Scalar(const std::string& sql) {
    pqxx::connection c(dsn_);
    pqxx::nontransaction tx(c);
    return tx.exec(sql)[0][0].as<int>();
  }

  // Reserves `gpus` in the pool; returns the hold id (0 = no room).
  int64_t Reserve(const std::string& id, int gpus, absl::Time expires) {
    absl::StatusOr<std::string> bytes = ReserveCapacity(
        *pool_, Key(id),
        {{.datacenter_id = "gz-west",
          .pool_id = "ascend",
          .gpus = gpus,
          .owner = "e1",
          .purpose = id,
          .expires_at = expires}},
        [](const std::vector<CapacityReservation>& done) { return absl::StrCat(done[0].hold_id); });
    EXPECT_THAT(bytes, IsOk());
    return bytes.ok() ? std::stoll(*bytes) : -1;
  }

  std::string dsn_;
  std::unique_ptr<PgPool> pool_;
};

TEST_F(CapacityRaceTest, ExactlyAsManySucceedAsFit) {
  // 20 free GPUs, 12 racers wanting 3 each: exactly 6 fit.
  constexpr int kRacers = 12;
  std::vector<int64_t> holds(kRacers, -1);
  std::vector<std::thread> threads;
  const absl::Time expires = absl::Now() + absl::Minutes(30);
  for (int i = 0; i < kRacers; ++i) {
    threads.emplace_back([&, i] { holds[i] = Reserve(absl::StrCat("race-", i), 3, expires); });
  }
  for (std::thread& t : threads) t.join();
  int succeeded = 0;
  for (int64_t h : holds) {
    ASSERT_GE(h, 0);
    if (h > 0) ++succeeded;
  }
  EXPECT_EQ(succeeded, 6);
  EXPECT_EQ(Scalar("SELECT gpus_held FROM gpu_pools"), 18);
  EXPECT_EQ(Scalar("SELECT count(*) FROM capacity_holds WHERE state = 1"), 6);
  // The two left over still fit a gang of 2, not of 3.
  EXPECT_EQ(Reserve("late-3", 3, expires), 0);
  EXPECT_GT(Reserve("late-2", 2, expires), 0);
  EXPECT_EQ(Scalar("SELECT gpus_held FROM gpu_pools"), 20);
}

TEST_F(CapacityRaceTest, ReleaseAndExpiryGiveGpusBackExactlyOnce) {
  const int64_t kept = Reserve("kept", 4, absl::Now() + absl::Minutes(30));
  const int64_t lapsing = Reserve("lapsing", 6, absl::Now() + absl::Seconds(1));
  ASSERT_GT(kept, 0);
  ASSERT_GT(lapsing, 0);
  EXPECT_EQ(Scalar("SELECT gpus_held FROM gpu_pools"), 10);
  // Concurrent expiry runs (as from two vchd replicas) release the due hold once.
  std::atomic<int64_t> expired{0};
  std::vector<std::thread> runs;
  for (int i = 0; i < 3; ++i) {
    runs.emplace_back([&] {
      absl::StatusOr<int64_t> n = ExpireCapacityHolds(*pool_, absl::Now() + absl::Minutes(1));
      ASSERT_THAT(n, IsOk());
      expired.fetch_add(*n);
    });
  }
  for (std::thread& t : runs) t.join();
  EXPECT_EQ(expired.load(), 1);
  EXPECT_EQ(Scalar("SELECT gpus_held FROM gpu_pools"), 4);
  // Release once, then again: the second changes nothing.
  EXPECT_EQ(*ReleaseCapacityHold(*pool_, kept, "e1"), true);
  EXPECT_EQ(*ReleaseCapacityHold(*pool_, kept, "e1"), false);
  EXPECT_EQ(*ReleaseCapacityHold(*pool_, lapsing, "e1"), false);
  EXPECT_EQ(Scalar("SELECT gpus_held FROM gpu_pools"), 0);
  // Someone else's hold reads as not found.
  const int64_t other = Reserve("other", 1, absl::Now() + absl::Minutes(30));
  EXPECT_EQ(ReleaseCapacityHold(*pool_, other, "e2").status().code(), absl::StatusCode::kNotFound);
  // A resolved hold never changes again (the database refuses it).
  pqxx::connection c(dsn_);
  pqxx::nontransaction tx(c);
  EXPECT_THROW(
      tx.exec_params("UPDATE capacity_holds SET state = 1, resolved_at = NULL WHERE id = $1", kept),
      pqxx::sql_error);
}

}  // namespace
}  // namespace vch::storage
