// Datacenters, GPU pools, capacity reports (with history) and capacity holds in PostgreSQL.
// Mutations are idempotent (storage/idempotency.h) like those of program_store.h.
#ifndef VCH_STORAGE_CAPACITY_STORE_H_
#define VCH_STORAGE_CAPACITY_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "policy/placement.h"
#include "storage/idempotency.h"
#include "storage/pg_pool.h"
#include "storage/program_store.h"

namespace vch::storage {

struct DatacenterRecord {
  std::string id;
  std::string display_name;
  std::string operator_name;
  std::string region_code;
  policy::NationalHub hub = policy::NationalHub::kUnspecified;
  bool national_network = false;
  bool active = true;
  std::string state_reason;
  absl::Time created_at;
};

struct PoolRecord {
  std::string datacenter_id;
  std::string id;
  std::string accelerator_model;
  std::string vendor;
  bool domestic = false;
  bool fp8 = false;
  int32_t memory_gib = 0;
  int32_t fp16_tflops = 0;
  int32_t fp8_tflops = 0;
  int32_t gpus_total = 0;
  int32_t gpus_free = 0;
  int32_t gpus_held = 0;
  int64_t price_fen_per_gpu_hour = 0;
  std::optional<absl::Time> reported_at;
};

absl::StatusOr<std::string> RegisterDatacenter(PgPool& pool, const IdempotencyKey& key,
                                               const DatacenterRecord& dc,
                                               const Encoder<DatacenterRecord>& encode);
absl::StatusOr<DatacenterRecord> GetDatacenter(PgPool& pool, const std::string& id);
absl::StatusOr<std::vector<DatacenterRecord>> ListDatacenters(PgPool& pool, policy::NationalHub hub,
                                                              const std::string& after_id,
                                                              int limit);
// Sets ACTIVE (active = true) or SUSPENDED with a reason.
absl::StatusOr<std::string> SetDatacenterState(PgPool& pool, const IdempotencyKey& key,
                                               const std::string& id, bool active,
                                               const std::string& reason,
                                               const Encoder<DatacenterRecord>& encode);

// Registers a pool of `datacenter_scope`'s datacenter ("" = any, for platform admins).
absl::StatusOr<std::string> RegisterPool(PgPool& pool, const IdempotencyKey& key,
                                         const PoolRecord& gpu_pool,
                                         const Encoder<PoolRecord>& encode);
absl::StatusOr<std::vector<PoolRecord>> ListPools(PgPool& pool, const std::string& datacenter_id);

struct PoolReport {
  std::string pool_id;
  int32_t gpus_free = 0;
};
// Records the reports of one datacenter's pools (each kept in the history). A pool that is not
// the datacenter's is refused (NOT_FOUND / POOL_NOT_FOUND) and nothing is written.
absl::StatusOr<std::string> ReportCapacity(PgPool& pool, const IdempotencyKey& key,
                                           const std::string& datacenter_id,
                                           const std::vector<PoolReport>& reports, absl::Time now,
                                           const Encoder<std::vector<PoolRecord>>& encode);

struct UtilizationPoint {
  absl::Time bucket_start;
  int64_t gpus_total = 0;
  int64_t gpus_busy = 0;
};
struct UtilizationQuery {
  std::string datacenter_id;  // with pool_id: one pool; alone: one site
  std::string pool_id;
  policy::NationalHub hub = policy::NationalHub::kUnspecified;  // or one hub
  absl::Time start, end;
  absl::Duration bucket = absl::Hours(1);
};
// Per bucket: the last report of each pool within the bucket, summed over the selected pools.
absl::StatusOr<std::vector<UtilizationPoint>> GetUtilization(PgPool& pool,
                                                             const UtilizationQuery& query);

// Every pool with its site's facts, as the placement engine sees them.
absl::StatusOr<std::vector<policy::PoolState>> LoadPoolStates(PgPool& pool);

// GPUs to reserve in a pool for a placement.
struct CapacityReservation {
  std::string datacenter_id;
  std::string pool_id;
  int32_t gpus = 0;
  std::string owner;    // who may release it
  std::string purpose;  // what it is for
  absl::Time expires_at;
  int64_t hold_id = 0;  // set once reserved
};

// Reserves every reservation in one transaction, each atomically against the pool's placeable
// GPUs (free - held) under the pool's row lock: no two reservations take the same GPUs. A
// reservation whose pool no longer has room gets hold_id 0 (the caller re-places it); the
// others commit. `encode` receives the reservations with their hold ids.
absl::StatusOr<std::string> ReserveCapacity(
    PgPool& pool, const IdempotencyKey& key, std::vector<CapacityReservation> reservations,
    const std::function<std::string(const std::vector<CapacityReservation>&)>& encode);

// Releases a HELD hold of `owner` ("" = any owner). Returns true if this call released it,
// false if it was no longer held; NOT_FOUND / CAPACITY_HOLD_NOT_FOUND for a hold that does not
// exist or is someone else's.
absl::StatusOr<bool> ReleaseCapacityHold(PgPool& pool, int64_t hold_id, const std::string& owner);

// Releases every HELD hold whose expiry is <= now, exactly once; returns how many.
absl::StatusOr<int64_t> ExpireCapacityHolds(PgPool& pool, absl::Time now);

}  // namespace vch::storage

#endif  // VCH_STORAGE_CAPACITY_STORE_H_
