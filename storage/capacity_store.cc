#include "storage/capacity_store.h"

#include <algorithm>
#include <pqxx/pqxx>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "base/errors.h"
#include "base/status_macros.h"
#include "storage/capacity_tx.h"

namespace vch::storage {
namespace {

constexpr char kDatacenterColumns[] =
    "id, display_name, operator_name, region_code, hub, national_network, state, state_reason, "
    "vch_us(created_at)";
constexpr char kPoolColumns[] =
    "datacenter_id, id, accelerator_model, vendor, domestic, fp8, memory_gib, fp16_tflops, "
    "fp8_tflops, gpus_total, gpus_free, gpus_held, price_fen_per_gpu_hour, "
    "COALESCE(vch_us(reported_at), 0)";

DatacenterRecord DatacenterFromRow(const pqxx::row& r) {
  return {.id = r[0].as<std::string>(),
          .display_name = r[1].as<std::string>(),
          .operator_name = r[2].as<std::string>(),
          .region_code = r[3].as<std::string>(),
          .hub = static_cast<policy::NationalHub>(r[4].as<int>()),
          .national_network = r[5].as<bool>(),
          .active = r[6].as<int>() == 1,
          .state_reason = r[7].as<std::string>(),
          .created_at = absl::FromUnixMicros(r[8].as<int64_t>())};
}

PoolRecord PoolFromRow(const pqxx::row& r) {
  PoolRecord p{.datacenter_id = r[0].as<std::string>(),
               .id = r[1].as<std::string>(),
               .accelerator_model = r[2].as<std::string>(),
               .vendor = r[3].as<std::string>(),
               .domestic = r[4].as<bool>(),
               .fp8 = r[5].as<bool>(),
               .memory_gib = r[6].as<int32_t>(),
               .fp16_tflops = r[7].as<int32_t>(),
               .fp8_tflops = r[8].as<int32_t>(),
               .gpus_total = r[9].as<int32_t>(),
               .gpus_free = r[10].as<int32_t>(),
               .gpus_held = r[11].as<int32_t>(),
               .price_fen_per_gpu_hour = r[12].as<int64_t>()};
  if (int64_t us = r[13].as<int64_t>(); us != 0) p.reported_at = absl::FromUnixMicros(us);
  return p;
}

absl::StatusOr<DatacenterRecord> LoadDatacenter(pqxx::dbtransaction& tx, const std::string& id,
                                                bool for_update) {
  pqxx::result r =
      tx.exec_params(absl::StrCat("SELECT ", kDatacenterColumns, " FROM datacenters WHERE id = $1",
                                  for_update ? " FOR UPDATE" : ""),
                     id);
  if (r.empty()) {
    return DomainError(absl::StatusCode::kNotFound, "DATACENTER_NOT_FOUND",
                       absl::StrCat("datacenter ", id, " not found"));
  }
  return DatacenterFromRow(r[0]);
}

}  // namespace

absl::StatusOr<std::string> RegisterDatacenter(PgPool& pool, const IdempotencyKey& key,
                                               const DatacenterRecord& dc,
                                               const Encoder<DatacenterRecord>& encode) {
  return RunIdempotent(pool, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    pqxx::result r = tx.exec_params(
        absl::StrCat("INSERT INTO datacenters (id, display_name, operator_name, region_code, hub, "
                     "national_network) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO "
                     "NOTHING RETURNING ",
                     kDatacenterColumns),
        dc.id, dc.display_name, dc.operator_name, dc.region_code, static_cast<int>(dc.hub),
        dc.national_network);
    if (r.empty()) {
      return DomainError(absl::StatusCode::kAlreadyExists, "DATACENTER_EXISTS",
                         absl::StrCat("datacenter ", dc.id, " already exists"));
    }
    return encode(DatacenterFromRow(r[0]));
  });
}

absl::StatusOr<DatacenterRecord> GetDatacenter(PgPool& pool, const std::string& id) {
  std::optional<DatacenterRecord> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) {
    absl::StatusOr<DatacenterRecord> r = LoadDatacenter(tx, id, false);
    if (!r.ok()) return r.status();
    out = *r;
    return absl::OkStatus();
  }));
  return *out;
}

absl::StatusOr<std::vector<DatacenterRecord>> ListDatacenters(PgPool& pool, policy::NationalHub hub,
                                                              const std::string& after_id,
                                                              int limit) {
  std::vector<DatacenterRecord> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) {
    for (const pqxx::row& r : tx.exec_params(
             absl::StrCat("SELECT ", kDatacenterColumns,
                          " FROM datacenters WHERE ($1 = 0 OR hub = $1) AND id > $2 ORDER BY id "
                          "LIMIT $3"),
             static_cast<int>(hub), after_id, limit)) {
      out.push_back(DatacenterFromRow(r));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::string> SetDatacenterState(PgPool& pool, const IdempotencyKey& key,
                                               const std::string& id, bool active,
                                               const std::string& reason,
                                               const Encoder<DatacenterRecord>& encode) {
  return RunIdempotent(pool, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    VCH_RETURN_IF_ERROR(LoadDatacenter(tx, id, true).status());
    pqxx::row r = tx.exec_params1(
        absl::StrCat("UPDATE datacenters SET state = $2, state_reason = $3 WHERE id = $1 "
                     "RETURNING ",
                     kDatacenterColumns),
        id, active ? 1 : 2, reason);
    return encode(DatacenterFromRow(r));
  });
}

absl::StatusOr<std::string> RegisterPool(PgPool& pool, const IdempotencyKey& key,
                                         const PoolRecord& p, const Encoder<PoolRecord>& encode) {
  return RunIdempotent(pool, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    VCH_RETURN_IF_ERROR(LoadDatacenter(tx, p.datacenter_id, false).status());
    pqxx::result r = tx.exec_params(
        absl::StrCat("INSERT INTO gpu_pools (datacenter_id, id, accelerator_model, vendor, "
                     "domestic, fp8, memory_gib, fp16_tflops, fp8_tflops, gpus_total, "
                     "price_fen_per_gpu_hour) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
                     "$11) ON CONFLICT ON CONSTRAINT gpu_pools_pkey DO NOTHING RETURNING ",
                     kPoolColumns),
        p.datacenter_id, p.id, p.accelerator_model, p.vendor, p.domestic, p.fp8, p.memory_gib,
        p.fp16_tflops, p.fp8_tflops, p.gpus_total, p.price_fen_per_gpu_hour);
    if (r.empty()) {
      return DomainError(absl::StatusCode::kAlreadyExists, "POOL_EXISTS",
                         absl::StrCat("pool ", p.id, " of ", p.datacenter_id, " already exists"));
    }
    return encode(PoolFromRow(r[0]));
  });
}

absl::StatusOr<std::vector<PoolRecord>> ListPools(PgPool& pool, const std::string& datacenter_id) {
  std::vector<PoolRecord> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) {
    VCH_RETURN_IF_ERROR(LoadDatacenter(tx, datacenter_id, false).status());
    for (const pqxx::row& r :
         tx.exec_params(absl::StrCat("SELECT ", kPoolColumns,
                                     " FROM gpu_pools WHERE datacenter_id = $1 ORDER BY id"),
                        datacenter_id)) {
      out.push_back(PoolFromRow(r));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::string> ReportCapacity(PgPool& pool, const IdempotencyKey& key,
                                           const std::string& datacenter_id,
                                           const std::vector<PoolReport>& reports, absl::Time now,
                                           const Encoder<std::vector<PoolRecord>>& encode) {
  return RunIdempotent(pool, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    VCH_ASSIGN_OR_RETURN(DatacenterRecord dc, LoadDatacenter(tx, datacenter_id, false));
    std::vector<PoolRecord> updated;
    for (const PoolReport& report : reports) {
      pqxx::result r = tx.exec_params(
          absl::StrCat("UPDATE gpu_pools SET gpus_free = $3, reported_at = vch_ts($4) "
                       "WHERE datacenter_id = $1 AND id = $2 RETURNING ",
                       kPoolColumns),
          datacenter_id, report.pool_id, report.gpus_free, absl::ToUnixMicros(now));
      if (r.empty()) {
        return DomainError(
            absl::StatusCode::kNotFound, "POOL_NOT_FOUND",
            absl::StrCat("datacenter ", datacenter_id, " has no pool ", report.pool_id));
      }
      PoolRecord p = PoolFromRow(r[0]);
      tx.exec_params0(
          "INSERT INTO capacity_reports (datacenter_id, pool_id, hub, gpus_total, gpus_free, "
          "reported_at) VALUES ($1, $2, $3, $4, $5, vch_ts($6))",
          datacenter_id, report.pool_id, static_cast<int>(dc.hub), p.gpus_total, report.gpus_free,
          absl::ToUnixMicros(now));
      updated.push_back(std::move(p));
    }
    return encode(updated);
  });
}

absl::StatusOr<std::vector<UtilizationPoint>> GetUtilization(PgPool& pool,
                                                             const UtilizationQuery& q) {
  std::vector<UtilizationPoint> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) {
    // The last report of each pool in each bucket, summed per bucket.
    for (const pqxx::row& r : tx.exec_params(
             "SELECT vch_us(bucket), sum(gpus_total), sum(gpus_total - gpus_free) FROM ("
             "  SELECT DISTINCT ON (bucket, datacenter_id, pool_id) "
             "    date_bin($6 * interval '1 second', reported_at, vch_ts($4)) AS bucket, "
             "    datacenter_id, pool_id, gpus_total, gpus_free "
             "  FROM capacity_reports "
             "  WHERE ($1 = '' OR datacenter_id = $1) AND ($2 = '' OR pool_id = $2) "
             "    AND ($3 = 0 OR hub = $3) "
             "    AND reported_at >= vch_ts($4) AND reported_at < vch_ts($5) "
             "  ORDER BY bucket, datacenter_id, pool_id, reported_at DESC, id DESC) last "
             "GROUP BY bucket ORDER BY bucket",
             q.datacenter_id, q.pool_id, static_cast<int>(q.hub), absl::ToUnixMicros(q.start),
             absl::ToUnixMicros(q.end), absl::ToInt64Seconds(q.bucket))) {
      out.push_back(
          {absl::FromUnixMicros(r[0].as<int64_t>()), r[1].as<int64_t>(), r[2].as<int64_t>()});
    }
    return absl::OkStatus();
  }));
  return out;
}

const char kPoolStatesSql[] =
    "SELECT p.datacenter_id || '/' || p.id, p.datacenter_id, d.region_code, d.hub, "
    "d.national_network, d.state = 1, p.accelerator_model, p.domestic, p.fp8, p.memory_gib, "
    "p.gpus_total, p.gpus_free, p.gpus_held, p.price_fen_per_gpu_hour, "
    "COALESCE(vch_us(p.reported_at), 0) FROM gpu_pools p JOIN datacenters d ON d.id = "
    "p.datacenter_id ORDER BY 1";

std::vector<policy::PoolState> PoolStatesFromRows(const pqxx::result& rows) {
  std::vector<policy::PoolState> out;
  for (const pqxx::row& r : rows) {
    policy::PoolState s;
    s.pool_id = r[0].as<std::string>();
    s.datacenter_id = r[1].as<std::string>();
    s.region_code = r[2].as<std::string>();
    s.hub = static_cast<policy::NationalHub>(r[3].as<int>());
    s.national_network = r[4].as<bool>();
    s.site_active = r[5].as<bool>();
    s.accelerator_model = r[6].as<std::string>();
    s.domestic = r[7].as<bool>();
    s.fp8 = r[8].as<bool>();
    s.memory_gib = r[9].as<int32_t>();
    s.gpus_total = r[10].as<int32_t>();
    s.gpus_free = r[11].as<int32_t>();
    s.gpus_held = r[12].as<int32_t>();
    s.price_fen_per_gpu_hour = r[13].as<int64_t>();
    const int64_t us = r[14].as<int64_t>();
    s.reported_at = us == 0 ? absl::InfinitePast() : absl::FromUnixMicros(us);
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<std::vector<policy::PoolState>> LoadPoolStates(PgPool& pool) {
  std::vector<policy::PoolState> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) {
    out = PoolStatesFromRows(tx.exec(kPoolStatesSql));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::string> ReserveCapacity(
    PgPool& pool, const IdempotencyKey& key, std::vector<CapacityReservation> reservations,
    const std::function<std::string(const std::vector<CapacityReservation>&)>& encode) {
  return RunIdempotent(pool, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    // Pools in a fixed order, so concurrent batches never deadlock on them.
    std::vector<size_t> order(reservations.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return std::tie(reservations[a].datacenter_id, reservations[a].pool_id) <
             std::tie(reservations[b].datacenter_id, reservations[b].pool_id);
    });
    for (size_t i : order) {
      CapacityReservation& r = reservations[i];
      r.hold_id = 0;
      pqxx::result room = tx.exec_params(
          "UPDATE gpu_pools SET gpus_held = gpus_held + $3 WHERE datacenter_id = $1 AND id = $2 "
          "AND gpus_free - gpus_held >= $3 RETURNING 1",
          r.datacenter_id, r.pool_id, r.gpus);
      if (room.empty()) continue;
      r.hold_id = tx.exec_params1(
                        "INSERT INTO capacity_holds (datacenter_id, pool_id, gpus, owner, purpose, "
                        "expires_at) VALUES ($1, $2, $3, $4, $5, vch_ts($6)) RETURNING id",
                        r.datacenter_id, r.pool_id, r.gpus, r.owner, r.purpose,
                        absl::ToUnixMicros(r.expires_at))[0]
                      .as<int64_t>();
    }
    return encode(reservations);
  });
}

absl::StatusOr<bool> ReleaseCapacityHold(PgPool& pool, int64_t hold_id, const std::string& owner) {
  bool released = false;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) -> absl::Status {
    pqxx::result hold = tx.exec_params(
        "SELECT datacenter_id, pool_id, gpus, state FROM capacity_holds WHERE id = $1 "
        "AND ($2 = '' OR owner = $2) FOR UPDATE",
        hold_id, owner);
    if (hold.empty()) {
      return DomainError(absl::StatusCode::kNotFound, "CAPACITY_HOLD_NOT_FOUND",
                         absl::StrCat("capacity hold ", hold_id, " not found"));
    }
    if (hold[0][3].as<int>() != 1) return absl::OkStatus();
    tx.exec_params0("UPDATE capacity_holds SET state = 2, resolved_at = now() WHERE id = $1",
                    hold_id);
    tx.exec_params0(
        "UPDATE gpu_pools SET gpus_held = gpus_held - $3 WHERE datacenter_id = $1 AND id = $2",
        hold[0][0].as<std::string>(), hold[0][1].as<std::string>(), hold[0][2].as<int>());
    released = true;
    return absl::OkStatus();
  }));
  return released;
}

absl::StatusOr<int64_t> ExpireCapacityHolds(PgPool& pool, absl::Time now) {
  int64_t expired = 0;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) -> absl::Status {
    pqxx::result r = tx.exec_params(
        "WITH due AS (SELECT id FROM capacity_holds WHERE state = 1 AND expires_at <= vch_ts($1) "
        "  ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 10000), "
        "expired AS (UPDATE capacity_holds h SET state = 2, resolved_at = now() FROM due "
        "  WHERE h.id = due.id RETURNING h.datacenter_id, h.pool_id, h.gpus), "
        "sums AS (SELECT datacenter_id, pool_id, sum(gpus)::int AS gpus, count(*) AS n "
        "  FROM expired GROUP BY 1, 2), "
        "pools AS (UPDATE gpu_pools p SET gpus_held = p.gpus_held - sums.gpus FROM sums "
        "  WHERE p.datacenter_id = sums.datacenter_id AND p.id = sums.pool_id RETURNING 1) "
        "SELECT COALESCE(sum(n), 0)::bigint FROM sums",
        absl::ToUnixMicros(now));
    expired = r[0][0].as<int64_t>();
    return absl::OkStatus();
  }));
  return expired;
}

}  // namespace vch::storage
