#include "storage/redemption_store.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/notification.h"
#include "base/errors.h"
#include "base/json_log.h"
#include "base/status_macros.h"
#include "policy/money.h"
#include "storage/capacity_tx.h"
#include "storage/ledger_tx.h"
#include "storage/pg_error.h"
#include "storage/sql_arrays.h"

namespace vch::storage {
namespace {

using policy::SettlementStyle;
using policy::TransferKind;

constexpr char kSystemScope[] = "system.redemption";
// China Standard Time (no daylight saving): the programs' calendar months.
const absl::TimeZone kChinaTime = absl::FixedTimeZone(8 * 3600);

// --- Queries. ---

constexpr char kRedemptionSelect[] = R"sql(
SELECT r.id, r.program_id, r.issuer_id, r.uscc, r.datacenter_id, r.pool_id, r.accelerator_model,
       r.fp8_required, r.domestic_required, r.min_memory_gib, r.max_price_fen_per_gpu_hour,
       r.preferred_region_prefix, r.gpus, r.hours, r.price_fen_per_gpu_hour, r.ratio_bps,
       r.settlement_style, r.estimated_bill_fen, r.held_fen,
       h.amount_fen - h.posted_fen - h.released_fen, r.hold_transfer_id, r.capacity_hold_id,
       vch_us(r.expires_at), r.state, r.state_reason, COALESCE(r.replaces, 0),
       COALESCE(r.replaced_by, 0), r.gpu_seconds, r.billed_fen, r.subsidy_fen, r.usage_records,
       r.voucher_key_id, encode(r.voucher_signature, 'hex'), vch_us(r.created_at),
       vch_us(r.updated_at)
FROM redemptions r JOIN ledger_holds h ON h.transfer_id = r.hold_transfer_id)sql";

constexpr char kScopeClause[] =
    " ($2 = '' OR r.uscc = $2) AND ($3 = '' OR r.datacenter_id = $3) AND "
    "($4 = '' OR r.issuer_id = $4)";

// The batch statements below look rows of big tables up by key one by one (LATERAL ... LIMIT
// 1): a plan cached for the connection's life must not become a hash join over a whole table
// that was small when the plan was made.
constexpr char kFindKeys[] = R"sql(
SELECT k.scope, k.request_id, k.request_hash, encode(k.response, 'hex')
FROM unnest($1::text[], $2::text[]) AS q(scope, request_id)
JOIN LATERAL (SELECT * FROM idempotency_keys k
              WHERE k.scope = q.scope AND k.request_id = q.request_id LIMIT 1) k ON true)sql";

// The redemptions RequestCompute placed under the keys ($1: scopes, $2: request ids): a
// redemption is its request's idempotency record (V0007). Columns: kRedemptionSelect's (the
// remaining hold as placed: the held amount), then the request's hash, scope and id. One
// LATERAL ... LIMIT 1 by key, which no plan can turn into a join over the whole table.
const std::string& FindPlacementsSql() {
  static const std::string* sql = new std::string(absl::StrReplaceAll(
      kRedemptionSelect,
      {{"h.amount_fen - h.posted_fen - h.released_fen", "r.held_fen"},
       {"vch_us(r.updated_at)", "vch_us(r.updated_at), r.request_hash, q.scope, q.request_id"},
       {"FROM redemptions r JOIN ledger_holds h ON h.transfer_id = r.hold_transfer_id",
        "FROM unnest($1::text[], $2::text[]) AS q(scope, request_id)\n"
        "JOIN LATERAL (SELECT * FROM redemptions r WHERE r.request_scope = q.scope\n"
        "              AND r.request_id = q.request_id AND r.request_hash IS NOT NULL\n"
        "              LIMIT 1) r ON true"}}));
  return *sql;
}

constexpr char kProgramsForCompute[] = R"sql(
SELECT q.program_id, q.uscc, p.issuer_id, p.state, p.subsidy_ratio_bps, p.domestic_ratio_bps,
       p.settlement_style, vch_us(p.redemption_start), vch_us(p.redemption_end),
       COALESCE(pe.wallet_account_id, 0)
FROM unnest($1::text[], $2::text[]) AS q(program_id, uscc)
JOIN LATERAL (SELECT * FROM programs p WHERE p.id = q.program_id LIMIT 1) p ON true
LEFT JOIN LATERAL (SELECT pe.wallet_account_id FROM program_enterprises pe
                   WHERE pe.program_id = q.program_id AND pe.uscc = q.uscc LIMIT 1) pe ON true)sql";

constexpr char kLockPools[] = R"sql(
SELECT p.datacenter_id, p.id, p.gpus_free - p.gpus_held
FROM gpu_pools p
JOIN unnest($1::text[], $2::text[]) AS q(datacenter_id, id)
  ON p.datacenter_id = q.datacenter_id AND p.id = q.id
ORDER BY p.datacenter_id, p.id FOR UPDATE OF p)sql";

constexpr char kEnsureAccounts[] = R"sql(
INSERT INTO ledger_accounts (program_id, issuer_id, kind, owner, flags)
SELECT program_id, issuer_id, kind, owner, 0
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(program_id, issuer_id, kind, owner)
ON CONFLICT ON CONSTRAINT accounts_one_per_kind_and_owner DO NOTHING)sql";

// The accounts of a compute batch's holds, locked for the ledger (LedgerTxOptions): the wallets
// and the known credited accounts by id ($1) and the other credited accounts by kind and owner
// ($2..$4). A statement of its own after kEnsureAccounts: under READ COMMITTED it sees rows a
// concurrent transaction committed while the insert waited for it. Columns:
// kLedgerAccountColumns, kind, owner.
constexpr char kLockHoldAccounts[] = R"sql(
SELECT %s, kind, owner
FROM ledger_accounts
WHERE id = ANY($1::bigint[] || ARRAY(
  SELECT a.id FROM unnest($2::text[], $3::text[], $4::text[]) AS q(program_id, kind, owner)
  JOIN LATERAL (SELECT a.id FROM ledger_accounts a
                WHERE a.program_id = q.program_id AND a.kind = q.kind AND a.owner = q.owner
                LIMIT 1) a ON true))
ORDER BY id FOR UPDATE)sql";

constexpr char kNextIds[] = R"sql(
SELECT nextval('redemption_id_seq'), nextval('capacity_holds_id_seq')
FROM generate_series(1, $1::int))sql";

// The placements of a batch in one round trip (the pools are locked meanwhile): the pools'
// held GPUs, the capacity holds and the redemptions ($1..$29, the ids of the capacity holds in
// $21, the requests' hashes in $29: '' for none). The checks between the parts
// (redemptions_insert_check, capacity_holds_insert_check) run at the end of the statement,
// once each, when all parts are written.
constexpr char kWritePlacements[] = R"sql(
WITH pools AS (
  UPDATE gpu_pools p SET gpus_held = p.gpus_held + q.gpus
  FROM (SELECT datacenter_id, id, sum(gpus)::int AS gpus
        FROM unnest($5::text[], $6::text[], $13::int[]) AS t(datacenter_id, id, gpus)
        GROUP BY 1, 2) AS q
  WHERE p.datacenter_id = q.datacenter_id AND p.id = q.id),
holds AS (
  INSERT INTO capacity_holds (id, datacenter_id, pool_id, gpus, owner, purpose, expires_at)
  SELECT id, datacenter_id, pool_id, gpus, 'redemptions', 'redemptions/' || rid, vch_ts($27)
  FROM unnest($21::bigint[], $5::text[], $6::text[], $13::int[], $1::bigint[])
    AS t(id, datacenter_id, pool_id, gpus, rid)),
placed AS (
  INSERT INTO redemptions (
    id, program_id, issuer_id, uscc, datacenter_id, pool_id, accelerator_model, fp8_required,
    domestic_required, min_memory_gib, max_price_fen_per_gpu_hour, preferred_region_prefix, gpus,
    hours, price_fen_per_gpu_hour, ratio_bps, settlement_style, estimated_bill_fen, held_fen,
    hold_transfer_id, capacity_hold_id, expires_at, replaces, generation, voucher_key_id,
    voucher_signature, request_scope, request_id, request_hash, created_at, updated_at)
  SELECT id, program_id, issuer_id, uscc, datacenter_id, pool_id, model, fp8, domestic, mem,
         max_price, region, gpus, hours, price, ratio, style, bill, held, hold, cap_hold,
         vch_ts($27), NULLIF(replaces, 0), CASE WHEN replaces = 0 THEN 0 ELSE 1 END, key_id,
         decode(signature, 'hex'), scope, request_id, NULLIF(request_hash, ''), vch_ts($28),
         vch_ts($28)
  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
              $7::text[], $8::boolean[], $9::boolean[], $10::int[], $11::bigint[], $12::text[],
              $13::int[], $14::int[], $15::bigint[], $16::int[], $17::smallint[], $18::bigint[],
              $19::bigint[], $20::bigint[], $21::bigint[], $22::bigint[], $23::text[],
              $24::text[], $25::text[], $26::text[], $29::text[])
    AS t(id, program_id, issuer_id, uscc, datacenter_id, pool_id, model, fp8, domestic, mem,
         max_price, region, gpus, hours, price, ratio, style, bill, held, hold, cap_hold, replaces,
         key_id, signature, scope, request_id, request_hash))
SELECT WHERE false)sql";

constexpr char kLockRedemptions[] = R"sql(
SELECT r.id FROM redemptions r WHERE r.id = ANY($1::bigint[]) ORDER BY r.id FOR UPDATE)sql";

// A usage batch's locks after its redemptions' ($1: their ids; $2: the month): the monthly
// spend of their programs that limit it (made if new), their credit holds and the holds'
// accounts.
constexpr char kEnsureSpend[] = R"sql(
INSERT INTO program_monthly_spend (program_id, month, limit_fen)
SELECT p.id, $2::date, p.monthly_spend_limit_fen FROM programs p
WHERE p.id IN (SELECT r.program_id FROM redemptions r WHERE r.id = ANY($1::bigint[]))
  AND p.monthly_spend_limit_fen > 0
ON CONFLICT ON CONSTRAINT program_monthly_spend_pkey DO NOTHING)sql";

constexpr char kLockSpend[] = R"sql(
SELECT s.program_id, s.limit_fen, s.spent_fen FROM program_monthly_spend s
WHERE s.program_id IN (SELECT r.program_id FROM redemptions r WHERE r.id = ANY($1::bigint[]))
  AND s.month = $2::date
ORDER BY s.program_id FOR UPDATE)sql";

constexpr char kLockUsageHolds[] = R"sql(
SELECT %s FROM ledger_holds
WHERE transfer_id IN (SELECT r.hold_transfer_id FROM redemptions r WHERE r.id = ANY($1::bigint[]))
ORDER BY transfer_id FOR UPDATE)sql";

constexpr char kLockUsageAccounts[] = R"sql(
SELECT %s FROM ledger_accounts
WHERE id IN (SELECT unnest(ARRAY[h.debit_account_id, h.credit_account_id])
             FROM ledger_holds h JOIN redemptions r ON h.transfer_id = r.hold_transfer_id
             WHERE r.id = ANY($1::bigint[]))
ORDER BY id FOR UPDATE)sql";

constexpr char kNextUsageSeqs[] =
    "SELECT nextval('usage_record_seq') FROM generate_series(1, $1::int)";

// A usage batch's writes in one round trip (its redemptions and spend rows are locked
// meanwhile): the usage records ($1..$22), the redemptions' totals and states ($23..$28), the
// programs' monthly spend ($29..$31) and the idempotency keys ($32..$35). The checks between
// the parts (usage_records_insert_check) run at the end of the statement.
constexpr char kWriteSettlements[] = R"sql(
WITH records AS (
  INSERT INTO usage_records (
    redemption_id, usage_id, seq, program_id, issuer_id, uscc, datacenter_id, settlement_style,
    gpu_seconds, start_at, end_at, final, price_fen_per_gpu_hour, ratio_bps, bill_fen, subsidy_fen,
    copay_fen, capped_by, post_transfer_id, release_transfer_id, request_hash, settled_at)
  SELECT rid, usage_id, seq, program_id, issuer_id, uscc, datacenter_id, style, gpu_seconds,
         vch_ts(start_us), vch_ts(end_us), final, price, ratio, bill, subsidy, copay, capped,
         NULLIF(post_id, 0), NULLIF(release_id, 0), request_hash, vch_ts($22)
  FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[],
              $7::text[], $8::smallint[], $9::bigint[], $10::bigint[], $11::bigint[],
              $12::boolean[], $13::bigint[], $14::int[], $15::bigint[], $16::bigint[],
              $17::bigint[], $18::smallint[], $19::bigint[], $20::bigint[], $21::text[])
    AS t(rid, usage_id, seq, program_id, issuer_id, uscc, datacenter_id, style, gpu_seconds,
         start_us, end_us, final, price, ratio, bill, subsidy, copay, capped, post_id, release_id,
         request_hash)),
totals AS (
  UPDATE redemptions r
  SET state = u.state, gpu_seconds = u.gpu_seconds, billed_fen = u.billed,
      subsidy_fen = u.subsidy, usage_records = u.records, updated_at = vch_ts($22)
  FROM unnest($23::bigint[], $24::smallint[], $25::bigint[], $26::bigint[], $27::bigint[], $28::int[])
    AS u(id, state, gpu_seconds, billed, subsidy, records)
  WHERE r.id = u.id),
spend AS (
  UPDATE program_monthly_spend s SET spent_fen = u.spent
  FROM unnest($29::text[], $30::bigint[]) AS u(program_id, spent)
  WHERE s.program_id = u.program_id AND s.month = $31::date AND s.spent_fen <> u.spent),
keys AS (
  INSERT INTO idempotency_keys (scope, request_id, request_hash, response)
  SELECT scope, request_id, request_hash, decode(response, 'hex')
  FROM unnest($32::text[], $33::text[], $34::text[], $35::text[])
    AS t(scope, request_id, request_hash, response))
SELECT WHERE false)sql";

constexpr char kUsageSelect[] = R"sql(
SELECT u.redemption_id, u.usage_id, u.seq, u.program_id, u.uscc, u.datacenter_id, r.pool_id,
       u.gpu_seconds, vch_us(u.start_at), vch_us(u.end_at), u.final, u.price_fen_per_gpu_hour,
       u.ratio_bps, u.bill_fen, u.subsidy_fen, u.copay_fen, u.capped_by,
       COALESCE(u.post_transfer_id, 0), COALESCE(u.release_transfer_id, 0),
       COALESCE(l.payout_id, 0), COALESCE(po.payee_kind, 0), COALESCE(po.payee, ''),
       vch_us(u.settled_at)
FROM usage_records u
JOIN redemptions r ON r.id = u.redemption_id
LEFT JOIN payout_lines l ON l.redemption_id = u.redemption_id AND l.usage_id = u.usage_id
LEFT JOIN payouts po ON po.id = l.payout_id)sql";

constexpr char kPayoutColumns[] = R"sql(
SELECT id, program_id, issuer_id, payee_kind, payee, vch_us(period_start), vch_us(period_end),
       amount_fen, lines, transfer_id, created_by, vch_us(created_at)
FROM payouts)sql";

// --- Row conversion. ---

RedemptionRecord ParseRedemption(const pqxx::row& r) {
  RedemptionRecord x;
  x.id = r[0].as<int64_t>();
  x.program_id = r[1].as<std::string>();
  x.issuer_id = r[2].as<std::string>();
  x.uscc = r[3].as<std::string>();
  x.datacenter_id = r[4].as<std::string>();
  x.pool_id = r[5].as<std::string>();
  x.accelerator_model = r[6].as<std::string>();
  x.fp8_required = r[7].as<bool>();
  x.domestic_required = r[8].as<bool>();
  x.min_memory_gib = r[9].as<int32_t>();
  x.max_price_fen_per_gpu_hour = r[10].as<int64_t>();
  x.preferred_region_prefix = r[11].as<std::string>();
  x.gpus = r[12].as<int32_t>();
  x.hours = r[13].as<int32_t>();
  x.price_fen_per_gpu_hour = r[14].as<int64_t>();
  x.ratio_bps = r[15].as<int32_t>();
  x.style = static_cast<SettlementStyle>(r[16].as<int>());
  x.estimated_bill_fen = r[17].as<int64_t>();
  x.held_fen = r[18].as<int64_t>();
  x.remaining_hold_fen = r[19].as<int64_t>();
  x.hold_transfer_id = r[20].as<int64_t>();
  x.capacity_hold_id = r[21].as<int64_t>();
  x.expires_at = absl::FromUnixMicros(r[22].as<int64_t>());
  x.state = static_cast<RedemptionState>(r[23].as<int>());
  x.state_reason = r[24].as<std::string>();
  x.replaces = r[25].as<int64_t>();
  x.replaced_by = r[26].as<int64_t>();
  x.gpu_seconds = r[27].as<int64_t>();
  x.billed_fen = r[28].as<int64_t>();
  x.subsidy_fen = r[29].as<int64_t>();
  x.usage_records = r[30].as<int32_t>();
  x.voucher_key_id = r[31].as<std::string>();
  x.voucher_signature = absl::HexStringToBytes(r[32].as<std::string>());
  x.created_at = absl::FromUnixMicros(r[33].as<int64_t>());
  x.updated_at = absl::FromUnixMicros(r[34].as<int64_t>());
  return x;
}

// The columns of kRedemptionSelect.
constexpr int kRedemptionColumns = 35;

// `r` as it was when placed: what changes later (state, remaining hold, settled totals, the
// replacement, the update time) as it was then. The terms never change (redemptions_guard).
RedemptionRecord AsPlaced(RedemptionRecord r) {
  r.remaining_hold_fen = r.held_fen;
  r.state = RedemptionState::kPlaced;
  r.state_reason.clear();
  r.replaced_by = 0;
  r.gpu_seconds = 0;
  r.billed_fen = 0;
  r.subsidy_fen = 0;
  r.usage_records = 0;
  r.updated_at = r.created_at;
  return r;
}

UsageRecord ParseUsage(const pqxx::row& r) {
  UsageRecord u;
  u.redemption_id = r[0].as<int64_t>();
  u.usage_id = r[1].as<std::string>();
  u.seq = r[2].as<int64_t>();
  u.program_id = r[3].as<std::string>();
  u.uscc = r[4].as<std::string>();
  u.datacenter_id = r[5].as<std::string>();
  u.pool_id = r[6].as<std::string>();
  u.gpu_seconds = r[7].as<int64_t>();
  u.start = absl::FromUnixMicros(r[8].as<int64_t>());
  u.end = absl::FromUnixMicros(r[9].as<int64_t>());
  u.final = r[10].as<bool>();
  u.price_fen_per_gpu_hour = r[11].as<int64_t>();
  u.ratio_bps = r[12].as<int32_t>();
  u.bill_fen = r[13].as<int64_t>();
  u.subsidy_fen = r[14].as<int64_t>();
  u.copay_fen = r[15].as<int64_t>();
  u.capped_by = static_cast<policy::SubsidyCap>(r[16].as<int>());
  u.post_transfer_id = r[17].as<int64_t>();
  u.release_transfer_id = r[18].as<int64_t>();
  u.payout_id = r[19].as<int64_t>();
  const int payee_kind = r[20].as<int>();
  if (payee_kind != 0) {
    u.payout_payee =
        absl::StrCat(payee_kind == 1 ? "datacenters/" : "enterprises/", r[21].as<std::string>());
  }
  u.settled_at = absl::FromUnixMicros(r[22].as<int64_t>());
  return u;
}

PayoutRecord ParsePayout(const pqxx::row& r) {
  PayoutRecord p;
  p.id = r[0].as<int64_t>();
  p.program_id = r[1].as<std::string>();
  p.issuer_id = r[2].as<std::string>();
  p.payee_kind = static_cast<PayeeKind>(r[3].as<int>());
  p.payee = r[4].as<std::string>();
  p.period_start = absl::FromUnixMicros(r[5].as<int64_t>());
  p.period_end = absl::FromUnixMicros(r[6].as<int64_t>());
  p.amount_fen = r[7].as<int64_t>();
  p.lines = r[8].as<int32_t>();
  p.transfer_id = r[9].as<int64_t>();
  p.created_by = r[10].as<std::string>();
  p.created_at = absl::FromUnixMicros(r[11].as<int64_t>());
  return p;
}

absl::StatusOr<RedemptionRecord> LoadRedemption(pqxx::dbtransaction& tx, int64_t id,
                                                const RedemptionScope& scope, bool for_update) {
  pqxx::result r = tx.exec_params(absl::StrCat(kRedemptionSelect, " WHERE r.id = $1 AND",
                                               kScopeClause, for_update ? " FOR UPDATE OF r" : ""),
                                  id, scope.uscc, scope.datacenter_id, scope.issuer_id);
  if (r.empty()) {
    return DomainError(absl::StatusCode::kNotFound, "REDEMPTION_NOT_FOUND",
                       absl::StrCat("redemption ", id, " not found"));
  }
  return ParseRedemption(r[0]);
}

// The statements of the compute and usage batches, prepared on both pools' connections
// (RegisterPrepared) and run by name: for short statements, parsing and planning cost more
// than running them.
constexpr char kFindKeysName[] = "vch_find_keys";
constexpr char kComputeFindPlacements[] = "vch_compute_find_placements";
constexpr char kComputePrograms[] = "vch_compute_programs";
constexpr char kComputePools[] = "vch_compute_pools";
constexpr char kComputeIds[] = "vch_compute_ids";
constexpr char kComputeEnsureAccounts[] = "vch_compute_ensure_accounts";
constexpr char kComputeLockPools[] = "vch_compute_lock_pools";
constexpr char kComputeLockAccounts[] = "vch_compute_lock_accounts";
constexpr char kComputeTransferIds[] = "vch_compute_transfer_ids";
constexpr char kComputeWrite[] = "vch_compute_write";
// And a usage batch's (with kFindKeysName and kComputeTransferIds, the same queries).
constexpr char kUsageLockRedemptions[] = "vch_usage_lock_redemptions";
constexpr char kUsageRedemptions[] = "vch_usage_redemptions";
constexpr char kUsageEnsureSpend[] = "vch_usage_ensure_spend";
constexpr char kUsageLockSpend[] = "vch_usage_lock_spend";
constexpr char kUsageLockHolds[] = "vch_usage_lock_holds";
constexpr char kUsageLockAccounts[] = "vch_usage_lock_accounts";
constexpr char kUsageSeqs[] = "vch_usage_seqs";
constexpr char kUsageWrite[] = "vch_usage_write";

std::vector<PreparedStatement> BatchStatements() {
  return {{kFindKeysName, kFindKeys},
          {kComputeFindPlacements, FindPlacementsSql()},
          {kComputePrograms, kProgramsForCompute},
          {kComputePools, kPoolStatesSql},
          {kComputeIds, kNextIds},
          {kComputeEnsureAccounts, kEnsureAccounts},
          {kComputeLockPools, kLockPools},
          {kComputeLockAccounts,
           absl::StrReplaceAll(kLockHoldAccounts, {{"%s", kLedgerAccountColumns}})},
          {kComputeTransferIds, kNextTransferIds},
          {kComputeWrite, kWritePlacements},
          {kUsageLockRedemptions, kLockRedemptions},
          {kUsageRedemptions, absl::StrCat(kRedemptionSelect, " WHERE r.id = ANY($1::bigint[])")},
          {kUsageEnsureSpend, kEnsureSpend},
          {kUsageLockSpend, kLockSpend},
          {kUsageLockHolds, absl::StrReplaceAll(kLockUsageHolds, {{"%s", kLedgerHoldColumns}})},
          {kUsageLockAccounts,
           absl::StrReplaceAll(kLockUsageAccounts, {{"%s", kLedgerAccountColumns}})},
          {kUsageSeqs, kNextUsageSeqs},
          {kUsageWrite, kWriteSettlements},
          LedgerWriteStatement()};
}

// EXECUTE of a prepared statement with `params` quoted.
std::string BindPrepared(pqxx::transaction_base& tx, const char* name,
                         const std::vector<std::string>& params) {
  std::vector<std::string> quoted;
  for (const std::string& p : params) quoted.push_back(tx.quote(p));
  return ExecutePrepared(name, quoted);
}

std::string HexOf(const std::string& bytes) { return absl::BytesToHexString(bytes); }

// Releases a HELD capacity hold (and its GPUs in the pool's gpus_held); no-op otherwise.
void ReleaseCapacityInTx(pqxx::dbtransaction& tx, int64_t hold_id, absl::Time now) {
  pqxx::result held = tx.exec_params(
      "UPDATE capacity_holds SET state = 2, resolved_at = vch_ts($2) WHERE id = $1 AND state = 1 "
      "RETURNING datacenter_id, pool_id, gpus",
      hold_id, absl::ToUnixMicros(now));
  if (held.empty()) return;
  tx.exec_params0(
      "UPDATE gpu_pools SET gpus_held = gpus_held - $3 WHERE datacenter_id = $1 AND id = $2",
      held[0][0].as<std::string>(), held[0][1].as<std::string>(), held[0][2].as<int>());
}

// VOIDs what remains of each redemption's credit hold, exactly once per redemption.
absl::Status VoidHoldsInTx(pqxx::dbtransaction& tx, const std::vector<RedemptionRecord>& rs,
                           absl::string_view why, absl::Time now) {
  std::vector<TransferSubmission> subs;
  for (const RedemptionRecord& r : rs) {
    if (r.remaining_hold_fen <= 0) continue;
    TransferSubmission s;
    s.request_scope = kSystemScope;
    s.request_id = absl::StrCat("void-", r.id);
    s.transfer.kind = TransferKind::kVoid;
    s.transfer.pending_id = r.hold_transfer_id;
    s.metadata_json = absl::StrCat(R"({"redemption":)", r.id, R"(,"why":")", why, R"("})");
    subs.push_back(std::move(s));
  }
  if (subs.empty()) return absl::OkStatus();
  std::vector<PendingTransfer> pending;
  for (const TransferSubmission& s : subs) pending.push_back({&s, TransferRequestHash(s)});
  for (absl::StatusOr<TransferResult>& r :
       ApplyTransfersInTransaction(tx, pending, absl::ToUnixMicros(now))) {
    if (!r.ok()) return r.status();
  }
  return absl::OkStatus();
}

absl::Status StateError(const RedemptionRecord& r, absl::string_view reason,
                        absl::string_view what) {
  static const char* const kNames[] = {"",        "PLACED",    "CONFIRMED", "ACTIVE",
                                       "SETTLED", "CANCELLED", "EXPIRED",   "REJECTED"};
  return DomainError(
      absl::StatusCode::kFailedPrecondition, reason,
      absl::StrCat("redemption ", r.id, " is ", kNames[static_cast<int>(r.state)], ": ", what));
}

// Stored responses by (scope, id): (request hash, response bytes).
using StoredKeys =
    std::map<std::pair<std::string, std::string>, std::pair<std::string, std::string>>;

// A batch's stored responses as found by kFindKeys.
StoredKeys ParseKeys(const pqxx::result& rows) {
  StoredKeys out;
  for (const pqxx::row& row : rows) {
    out[{row[0].as<std::string>(), row[1].as<std::string>()}] = {
        row[2].as<std::string>(), absl::HexStringToBytes(row[3].as<std::string>())};
  }
  return out;
}

absl::Status KeyReused(const std::string& request_id, absl::string_view reason) {
  return DomainError(absl::StatusCode::kAlreadyExists, reason,
                     absl::StrCat("'", request_id, "' was already used with a different request"));
}

// A batched op's key: answered from `stored` (the stored response, or `reused_reason` for a
// different request under the same key), or held by an earlier op of this batch (`seen`: the op
// runs again in a later batch), or new. Returns true only for a new key.
bool IsNewKey(const StoredKeys& stored, const IdempotencyKey& k, absl::string_view reused_reason,
              std::set<std::pair<std::string, std::string>>& seen,
              absl::StatusOr<std::string>& result, bool& requeue) {
  auto it = stored.find({k.scope, k.request_id});
  if (it != stored.end()) {
    result = it->second.first == k.request_hash ? absl::StatusOr<std::string>(it->second.second)
                                                : KeyReused(k.request_id, reused_reason);
    return false;
  }
  if (!seen.insert({k.scope, k.request_id}).second) {
    requeue = true;
    return false;
  }
  return true;
}

}  // namespace

VoucherTerms RedemptionRecord::Voucher() const {
  return VoucherTerms{.redemption_id = id,
                      .enterprise = uscc,
                      .pool = absl::StrCat("datacenters/", datacenter_id, "/pools/", pool_id),
                      .gpus = gpus,
                      .hours = hours,
                      .held_fen = held_fen,
                      .expires_at = expires_at,
                      .key_id = voucher_key_id};
}

// The accounts that compute batches credit (receivables, payables) by (program, kind, owner),
// once seen: they are never deleted (ledger_accounts_no_delete) nor re-keyed, so an id once
// known stays right. Thread-safe.
class RedemptionStore::AccountCache {
 public:
  using Key = std::tuple<std::string, std::string, std::string>;
  int64_t Find(const Key& key) const {
    absl::MutexLock lock(&mu_);
    auto it = ids_.find(key);
    return it == ids_.end() ? 0 : it->second;
  }
  void Add(const std::map<Key, int64_t>& accounts) {
    absl::MutexLock lock(&mu_);
    for (const auto& [key, id] : accounts) {
      if (std::get<1>(key) != "WALLET") ids_.emplace(key, id);
    }
  }

 private:
  mutable absl::Mutex mu_;
  std::map<Key, int64_t> ids_ ABSL_GUARDED_BY(mu_);
};

// --- The batching queue shared by the two hot paths. ---

struct OpBase {
  absl::Notification done;  // for a blocking Submit
  // For SubmitAsync: called once with the result, on a writer thread (or on the submitting
  // thread when vchd is shutting down); the queue owns the op and deletes it first.
  std::function<void(absl::StatusOr<std::string>)> on_done;
  absl::StatusOr<std::string> result = absl::UnknownError("not decided");
  int attempts = 0;
  bool requeue = false;    // set by a batch: run again in a later batch
  bool lost_race = false;  // ... because its pool's GPUs went to a concurrent batch
};

struct RedemptionStore::ComputeOp : OpBase {
  ComputeRequest request;
  const Encoder<ComputeOutcome>* encode = nullptr;
  Encoder<ComputeOutcome> owned_encode;  // what `encode` points to for SubmitAsync
};

struct RedemptionStore::UsageOp : OpBase {
  UsageReport report;
  const Encoder<UsageOutcome>* encode = nullptr;
  Encoder<UsageOutcome> owned_encode;
};

template <typename Op>
class RedemptionStore::Queue {
 public:
  Queue(const RedemptionOptions& options, std::function<void(std::vector<Op*>&)> execute)
      : options_(options), execute_(std::move(execute)) {
    for (int i = 0; i < std::max(1, options_.writer_threads); ++i) {
      threads_.emplace_back([this] { Run(); });
    }
    responder_ = std::thread([this] { Respond(); });
  }
  ~Queue() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    for (std::thread& t : threads_) t.join();
    {
      absl::MutexLock lock(&responses_mu_);
      responder_stopping_ = true;
    }
    responder_.join();
    std::deque<Op*> left;
    {
      absl::MutexLock lock(&mu_);
      left.swap(queue_);
    }
    for (Op* op : left) {
      op->result = ShuttingDown();
      Answer(op);
    }
  }

  absl::StatusOr<std::string> Submit(Op& op) {
    {
      absl::MutexLock lock(&mu_);
      absl::Status refused = Refusal();
      if (!refused.ok()) return refused;
      queue_.push_back(&op);
    }
    op.done.WaitForNotification();
    return std::move(op.result);
  }

  // Takes ownership of `op`, whose on_done is set, and answers it through on_done.
  void SubmitAsync(std::unique_ptr<Op> op) {
    absl::Status refused;
    {
      absl::MutexLock lock(&mu_);
      refused = Refusal();
      if (refused.ok()) {
        queue_.push_back(op.release());
        return;
      }
    }
    op->result = std::move(refused);
    Answer(op.release());
  }

 private:
  void Run() {
    bool was_busy = false;
    while (true) {
      std::vector<Op*> batch;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return !queue_.empty() || stopping_;
        };
        mu_.Await(absl::Condition(&ready));
        if (stopping_) return;  // the destructor answers what is queued
        if (!was_busy) {
          auto full = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
            return static_cast<int>(queue_.size()) >= options_.max_batch || stopping_;
          };
          mu_.AwaitWithTimeout(absl::Condition(&full), options_.max_wait);
        }
        while (!queue_.empty() && static_cast<int>(batch.size()) < options_.max_batch) {
          batch.push_back(queue_.front());
          queue_.pop_front();
        }
      }
      if (batch.empty()) {
        was_busy = false;
        continue;
      }
      for (Op* op : batch) op->requeue = false;
      execute_(batch);
      {
        absl::MutexLock lock(&mu_);
        // Requests to run again go first, in their order; the rest are answered.
        for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
          if ((*it)->requeue) queue_.push_front(*it);
        }
        was_busy = !queue_.empty();
      }
      // Blocking callers are woken here; asynchronous ones are answered by the responder, so
      // that their replies (gRPC's Finish) do not delay this writer's next batch.
      std::vector<Op*> async;
      for (Op* op : batch) {
        if (op->requeue) continue;
        if (op->on_done) {
          async.push_back(op);
        } else {
          Answer(op);
        }
      }
      if (!async.empty()) {
        absl::MutexLock lock(&responses_mu_);
        responses_.insert(responses_.end(), async.begin(), async.end());
      }
    }
  }

  // The responder thread: answers asynchronous ops in the order their batches finished; drains
  // what is left when the queue stops.
  void Respond() {
    while (true) {
      std::vector<Op*> ready;
      {
        absl::MutexLock lock(&responses_mu_);
        auto any = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(responses_mu_) {
          return !responses_.empty() || responder_stopping_;
        };
        responses_mu_.Await(absl::Condition(&any));
        if (responses_.empty()) return;
        ready.swap(responses_);
      }
      for (Op* op : ready) Answer(op);
    }
  }

  // Why a new request cannot be queued now, if it cannot.
  absl::Status Refusal() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (stopping_) return ShuttingDown();
    if (static_cast<int>(queue_.size()) >= options_.max_queued) {
      return DomainError(absl::StatusCode::kResourceExhausted, "QUEUE_FULL",
                         absl::StrCat(queue_.size(),
                                      " requests are already waiting for a batch; retry later "
                                      "with the same request id"));
    }
    return absl::OkStatus();
  }

  static absl::Status ShuttingDown() {
    return DomainError(absl::StatusCode::kUnavailable, "SHUTTING_DOWN",
                       "vchd is shutting down; retry with the same request id");
  }

  // Hands `op` its result: wakes a blocking Submit, or calls and deletes an asynchronous op.
  static void Answer(Op* op) {
    if (!op->on_done) {
      op->done.Notify();
      return;
    }
    std::function<void(absl::StatusOr<std::string>)> on_done = std::move(op->on_done);
    absl::StatusOr<std::string> result = std::move(op->result);
    delete op;
    on_done(std::move(result));
  }

  const RedemptionOptions& options_;
  std::function<void(std::vector<Op*>&)> execute_;
  mutable absl::Mutex mu_;
  std::deque<Op*> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
  absl::Mutex responses_mu_;
  std::vector<Op*> responses_ ABSL_GUARDED_BY(responses_mu_);
  bool responder_stopping_ ABSL_GUARDED_BY(responses_mu_) = false;
  std::thread responder_;
};

// --- RequestCompute. ---

// A batch's transaction on a pqxx::nontransaction: BEGIN goes with the batch's first reads and
// COMMIT with its writes, two round trips fewer than a pqxx::work (one of them while the batch
// holds its locks).
struct BatchTx {
  bool commit_sent = false;
  // Credited accounts this batch locked, for RedemptionStore::AccountCache once it committed
  // (an account the batch made itself is gone if it rolls back).
  std::map<std::tuple<std::string, std::string, std::string>, int64_t> accounts;
};

namespace {

// Runs `body` as a BatchTx on a connection of `pool` and commits if the body did not; a body
// that returns an error (before sending COMMIT) is rolled back and its error returned as is.
// Retried like RunTransaction: deadlocks and serialization failures (ABORTED) up to 3 attempts, and
// once a dead pooled connection or a statement prepared on it that is gone, unless the COMMIT was
// sent; a connection that breaks after that is OUTCOME_UNKNOWN.
absl::Status RunBatchTx(
    PgPool& pool, const std::function<absl::Status(pqxx::transaction_base&, BatchTx&)>& body) {
  absl::Status last = absl::OkStatus();
  for (int attempt = 1; attempt <= 3; ++attempt) {
    absl::StatusOr<PgPool::Lease> lease = pool.Acquire();
    if (!lease.ok()) return lease.status();
    BatchTx batch;
    try {
      pqxx::nontransaction tx(lease->connection());
      absl::Status refused = body(tx, batch);
      if (!refused.ok()) {
        tx.exec0("ROLLBACK");
        return refused;
      }
      if (!batch.commit_sent) tx.exec0("COMMIT");
      return absl::OkStatus();
    } catch (const std::exception& e) {
      last = StatusFromException(e);
      if (last.code() == absl::StatusCode::kUnavailable) {
        lease->MarkBroken();
        if (batch.commit_sent) {
          return DomainError(absl::StatusCode::kUnavailable, "OUTCOME_UNKNOWN",
                             "the connection broke while committing; retry with the same "
                             "request id to learn the outcome");
        }
      } else {
        // The server answered with an error: end the failed transaction (if one is open).
        try {
          pqxx::quiet_errorhandler quiet(lease->connection());
          pqxx::nontransaction end(lease->connection());
          end.exec0("ROLLBACK");
        } catch (const std::exception&) {
          lease->MarkBroken();
        }
      }
      const auto* sql_error = dynamic_cast<const pqxx::sql_error*>(&e);
      const bool unprepared = sql_error != nullptr && sql_error->sqlstate() == "26000";
      if (unprepared) lease->MarkBroken();
      const bool retry = last.code() == absl::StatusCode::kAborted ||
                         ((ReasonOf(last) == "DATABASE_UNAVAILABLE" || unprepared) && attempt == 1);
      if (!retry) return last;
    }
  }
  return last;
}

struct ProgramFacts {
  std::string issuer_id;
  policy::ProgramState state = policy::ProgramState::kDraft;
  int32_t ratio_bps = 0;
  int32_t domestic_ratio_bps = 0;
  SettlementStyle style = SettlementStyle::kDirect;
  absl::Time redemption_start, redemption_end;
  int64_t wallet_account_id = 0;
};

// What a compute request became within a batch before it commits.
struct ComputeDecision {
  bool active = false;  // still going to be written
  ComputeOutcome outcome;
  int64_t wallet_account_id = 0;
  TransferSubmission hold;
};

}  // namespace

absl::StatusOr<std::string> RedemptionStore::RequestCompute(ComputeRequest request,
                                                            const Encoder<ComputeOutcome>& encode) {
  if (options_.signer == nullptr) return absl::InternalError("no voucher signer configured");
  ComputeOp op;
  op.request = std::move(request);
  op.encode = &encode;
  return compute_queue_->Submit(op);
}

void RedemptionStore::RequestComputeAsync(ComputeRequest request, Encoder<ComputeOutcome> encode,
                                          Done done) {
  if (options_.signer == nullptr) {
    done(absl::InternalError("no voucher signer configured"));
    return;
  }
  auto op = std::make_unique<ComputeOp>();
  op->request = std::move(request);
  op->owned_encode = std::move(encode);
  op->encode = &op->owned_encode;
  op->on_done = std::move(done);
  compute_queue_->SubmitAsync(std::move(op));
}

void RedemptionStore::ExecuteComputeBatch(std::vector<ComputeOp*>& ops) {
  auto run = [&](std::vector<ComputeOp*>& group) {
    std::map<AccountCache::Key, int64_t> accounts;
    absl::Status status = RunBatchTx(batch_pool_, [&](pqxx::transaction_base& tx, BatchTx& batch) {
      for (ComputeOp* op : group) {
        op->requeue = false;
        op->lost_race = false;
        op->result = absl::UnknownError("not decided");
      }
      // To the microsecond, as stored: a retry's answer, made from the stored redemption, is
      // the first answer byte for byte.
      ComputeInTx(tx, true, group, absl::FromUnixMicros(absl::ToUnixMicros(options_.clock())),
                  &batch);
      accounts = std::move(batch.accounts);
      return absl::OkStatus();
    });
    if (status.ok()) known_accounts_->Add(accounts);  // committed: they exist for good
    return status;
  };
  absl::Status status = run(ops);
  if (!status.ok() && ops.size() > 1) {
    // One request broke the whole batch: run each alone so it fails by itself.
    for (ComputeOp* op : ops) {
      std::vector<ComputeOp*> one{op};
      absl::Status alone = run(one);
      if (!alone.ok()) {
        op->requeue = false;
        op->result = alone;
      }
    }
  } else if (!status.ok()) {
    ops[0]->requeue = false;
    ops[0]->result = status;
  }
  for (ComputeOp* op : ops) {
    // A duplicate of a request in flight waits for it without limit; a lost race counts.
    if (!op->requeue || !op->lost_race) continue;
    if (++op->attempts >= options_.place_attempts) {
      // Lost the race for the last GPUs every time: unplaced, like a full pool.
      op->requeue = false;
      ComputeOutcome unplaced;
      unplaced.decision.excluded[static_cast<int>(policy::ExclusionReason::kInsufficientGpus)] = 1;
      op->result = (*op->encode)(unplaced);
    }
  }
}

// For each op: a replay (result = its redemption as placed, encoded), an answer decided here
// (result = a status or the unplaced outcome's encoding), a request to run again (requeue), or
// a placement written in this transaction (result = the encoded response; the redemption
// carries the request's hash, making it the key's record, if store_keys).
void RedemptionStore::ComputeInTx(pqxx::transaction_base& tx, bool store_keys,
                                  std::vector<ComputeOp*>& ops, absl::Time now,
                                  BatchTx* batch) const {
  const RedemptionOptions& options = options_;
  std::vector<ComputeDecision> d(ops.size());
  // 1. Replays, and one op per key per batch (a duplicate in flight waits for the next). The
  // keys, the programs with the callers' awards, the pools as they are now (unlocked) and the
  // ids: four statements in one round trip.
  std::vector<const IdempotencyKey*> keys;
  std::vector<std::string> all_program, all_uscc;
  for (auto* op : ops) {
    keys.push_back(&op->request.key);
    all_program.push_back(op->request.program_id);
    all_uscc.push_back(op->request.uscc);
  }
  StoredKeys stored;
  pqxx::result program_rows, pool_rows, id_rows;
  {
    pqxx::pipeline pipe(tx);
    pipe.retain(5);
    if (batch != nullptr) pipe.insert("BEGIN");
    std::optional<pqxx::pipeline::query_id> find_keys;
    if (store_keys) {
      std::vector<std::string> scopes, ids;
      for (const IdempotencyKey* k : keys) {
        scopes.push_back(k->scope);
        ids.push_back(k->request_id);
      }
      find_keys = pipe.insert(
          BindPrepared(tx, kComputeFindPlacements, {TextArray(scopes), TextArray(ids)}));
    }
    const auto find_programs = pipe.insert(
        BindPrepared(tx, kComputePrograms, {TextArray(all_program), TextArray(all_uscc)}));
    const auto find_pools = pipe.insert(ExecutePrepared(kComputePools, {}));
    // Ids for every request, drawn before any lock is taken (those not placed leave gaps).
    const auto next_ids = pipe.insert(ExecutePrepared(kComputeIds, {absl::StrCat(ops.size())}));
    if (find_keys) {
      // A retry is answered as the request was: the redemption as placed, encoded again.
      for (const pqxx::row& row : pipe.retrieve(*find_keys)) {
        const std::pair<std::string, std::string> key = {
            row[kRedemptionColumns + 1].as<std::string>(),
            row[kRedemptionColumns + 2].as<std::string>()};
        for (const ComputeOp* op : ops) {
          if (op->request.key.scope != key.first || op->request.key.request_id != key.second) {
            continue;
          }
          ComputeOutcome replay;
          replay.placed = true;
          replay.redemption = AsPlaced(ParseRedemption(row));
          stored[key] = {row[kRedemptionColumns].as<std::string>(), (*op->encode)(replay)};
          break;
        }
      }
    }
    program_rows = pipe.retrieve(find_programs);
    pool_rows = pipe.retrieve(find_pools);
    id_rows = pipe.retrieve(next_ids);
  }
  std::set<std::pair<std::string, std::string>> seen;
  std::vector<std::string> q_program;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (!IsNewKey(stored, ops[i]->request.key, "IDEMPOTENCY_KEY_REUSED", seen, ops[i]->result,
                  ops[i]->requeue)) {
      continue;
    }
    d[i].active = true;
    q_program.push_back(ops[i]->request.program_id);
  }
  if (q_program.empty()) return;
  // 2. Programs and awards.
  std::map<std::pair<std::string, std::string>, ProgramFacts> facts;
  for (const pqxx::row& r : program_rows) {
    ProgramFacts f;
    f.issuer_id = r[2].as<std::string>();
    f.state = static_cast<policy::ProgramState>(r[3].as<int>());
    f.ratio_bps = r[4].as<int32_t>();
    f.domestic_ratio_bps = r[5].as<int32_t>();
    f.style = static_cast<SettlementStyle>(r[6].as<int>());
    f.redemption_start = absl::FromUnixMicros(r[7].as<int64_t>());
    f.redemption_end = absl::FromUnixMicros(r[8].as<int64_t>());
    f.wallet_account_id = r[9].as<int64_t>();
    facts[{r[0].as<std::string>(), r[1].as<std::string>()}] = f;
  }
  // 3. The pools, then 4. decide each request in order, each seeing the GPUs the earlier ones of
  // the batch took.
  std::vector<policy::PoolState> pools = PoolStatesFromRows(pool_rows);
  auto fail = [&](size_t i, absl::Status s) {
    d[i].active = false;
    ops[i]->result = std::move(s);
  };
  for (size_t i = 0; i < ops.size(); ++i) {
    if (!d[i].active) continue;
    const ComputeRequest& req = ops[i]->request;
    auto f = facts.find({req.program_id, req.uscc});
    if (f == facts.end()) {
      fail(i, DomainError(absl::StatusCode::kNotFound, "PROGRAM_NOT_FOUND",
                          absl::StrCat("program ", req.program_id, " not found")));
      continue;
    }
    const ProgramFacts& pf = f->second;
    if (pf.state != policy::ProgramState::kOpen) {
      fail(i, DomainError(absl::StatusCode::kFailedPrecondition, "PROGRAM_NOT_OPEN",
                          absl::StrCat("program ", req.program_id, " is not open")));
      continue;
    }
    if (now < pf.redemption_start || now >= pf.redemption_end) {
      fail(i, DomainError(absl::StatusCode::kFailedPrecondition, "REDEMPTION_WINDOW_CLOSED",
                          absl::StrCat("program ", req.program_id,
                                       " accepts redemptions only within its redemption window")));
      continue;
    }
    if (pf.wallet_account_id == 0) {
      fail(i, DomainError(absl::StatusCode::kFailedPrecondition, "NO_AWARD",
                          absl::StrCat("enterprise ", req.uscc, " has no award in program ",
                                       req.program_id)));
      continue;
    }
    policy::PlacementDecision decision;
    if (req.exclude_datacenter.empty()) {
      decision = policy::PlaceOne(pools, req.placement, now, options.weights);
    } else {
      std::vector<policy::PoolState> others;
      for (const policy::PoolState& p : pools) {
        if (p.datacenter_id != req.exclude_datacenter) others.push_back(p);
      }
      decision = policy::PlaceOne(others, req.placement, now, options.weights);
    }
    d[i].outcome.decision = decision;
    if (!decision.placed) {
      d[i].active = false;
      ops[i]->result = (*ops[i]->encode)(d[i].outcome);
      continue;
    }
    policy::PoolState* pool = nullptr;
    for (policy::PoolState& p : pools) {
      if (p.pool_id == decision.pool_id) pool = &p;
    }
    const int32_t ratio =
        policy::EffectiveRatioBps(pf.ratio_bps, pf.domestic_ratio_bps, pool->domestic);
    absl::StatusOr<policy::Estimate> estimate =
        policy::EstimateHold(req.placement.gpus, req.hours, pool->price_fen_per_gpu_hour, ratio);
    if (!estimate.ok()) {
      fail(i, estimate.status());
      continue;
    }
    if (estimate->hold_fen == 0) {
      fail(i, DomainError(absl::StatusCode::kFailedPrecondition, "ESTIMATE_TOO_SMALL",
                          "the voucher's share of this request rounds down to 0 fen"));
      continue;
    }
    pool->gpus_held += req.placement.gpus;
    d[i].wallet_account_id = pf.wallet_account_id;
    RedemptionRecord& r = d[i].outcome.redemption;
    r.program_id = req.program_id;
    r.issuer_id = pf.issuer_id;
    r.uscc = req.uscc;
    r.datacenter_id = pool->datacenter_id;
    r.pool_id = pool->pool_id.substr(pool->datacenter_id.size() + 1);
    r.accelerator_model = req.placement.accelerator.model;
    r.fp8_required = req.placement.accelerator.fp8_required;
    r.domestic_required = req.placement.accelerator.domestic_required;
    r.min_memory_gib = req.placement.accelerator.min_memory_gib;
    r.max_price_fen_per_gpu_hour = req.placement.max_price_fen_per_gpu_hour;
    r.preferred_region_prefix = req.placement.preferred_region_prefix;
    r.gpus = req.placement.gpus;
    r.hours = req.hours;
    r.price_fen_per_gpu_hour = pool->price_fen_per_gpu_hour;
    r.ratio_bps = ratio;
    r.style = pf.style;
    r.estimated_bill_fen = estimate->bill_fen;
    r.held_fen = estimate->hold_fen;
    r.remaining_hold_fen = estimate->hold_fen;
    r.expires_at = now + options.placement_ttl;
    r.state = RedemptionState::kPlaced;
    r.created_at = r.updated_at = now;
  }
  // 5. Ids, still without a lock (the vouchers are signed while the locks' round trip runs).
  size_t next_id = 0;
  size_t active = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (!d[i].active) continue;
    ++active;
    RedemptionRecord& r = d[i].outcome.redemption;
    r.id = id_rows[next_id][0].as<int64_t>();
    r.capacity_hold_id = id_rows[next_id][1].as<int64_t>();
    ++next_id;
    r.replaces = ops[i]->request.replaces;
    r.voucher_key_id = options.signer->key_id();
  }
  if (active == 0) return;
  // 6. The accounts the holds credit (the datacenter's receivable for DIRECT programs, the
  // enterprise's payable for REIMBURSE) created if new, the chosen pools locked in key order,
  // then the accounts of the holds (wallets and those credited) locked in id order for the
  // ledger, then the holds' transfer ids: four statements in one round trip. ON CONFLICT DO
  // NOTHING locks no existing row.
  auto account_key = [](const RedemptionRecord& r) {
    return r.style == SettlementStyle::kDirect
               ? std::make_tuple(r.program_id, std::string("RECEIVABLE"), r.datacenter_id)
               : std::make_tuple(r.program_id, std::string("PAYABLE"), r.uscc);
  };
  // Credited accounts already known to exist (accounts are never deleted) are locked by id;
  // only unknown ones are made if new and looked up by kind and owner.
  std::vector<std::string> a_program, a_issuer, a_kind, a_owner, l_dc, l_pool;
  std::vector<int64_t> lock_ids;
  std::set<std::tuple<std::string, std::string, std::string>> unknown;
  std::set<std::pair<std::string, std::string>> chosen;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (!d[i].active) continue;
    const RedemptionRecord& r = d[i].outcome.redemption;
    lock_ids.push_back(d[i].wallet_account_id);
    chosen.insert({r.datacenter_id, r.pool_id});
    const auto key = account_key(r);
    if (const int64_t id = known_accounts_->Find(key); id != 0) {
      lock_ids.push_back(id);
    } else if (unknown.insert(key).second) {
      a_program.push_back(std::get<0>(key));
      a_issuer.push_back(r.issuer_id);
      a_kind.push_back(std::get<1>(key));
      a_owner.push_back(std::get<2>(key));
    }
  }
  for (const auto& [dc, p] : chosen) {
    l_dc.push_back(dc);
    l_pool.push_back(p);
  }
  pqxx::result account_rows, pool_locks, transfer_id_rows;
  {
    pqxx::pipeline pipe(tx);
    pipe.retain(4);
    std::optional<pqxx::pipeline::query_id> ensure;
    if (!a_program.empty()) {
      ensure = pipe.insert(BindPrepared(
          tx, kComputeEnsureAccounts,
          {TextArray(a_program), TextArray(a_issuer), TextArray(a_kind), TextArray(a_owner)}));
    }
    const auto lock =
        pipe.insert(BindPrepared(tx, kComputeLockPools, {TextArray(l_dc), TextArray(l_pool)}));
    const auto find = pipe.insert(BindPrepared(
        tx, kComputeLockAccounts,
        {BigintArray(lock_ids), TextArray(a_program), TextArray(a_kind), TextArray(a_owner)}));
    const auto tids = pipe.insert(ExecutePrepared(kComputeTransferIds, {absl::StrCat(active)}));
    // Send the round trip now, and sign the vouchers (which need nothing from it) while the
    // database works; a voucher's terms are all decided by here.
    pipe.resume();
    for (size_t i = 0; i < ops.size(); ++i) {
      if (!d[i].active) continue;
      RedemptionRecord& r = d[i].outcome.redemption;
      r.voucher_signature = options.signer->Sign(CanonicalVoucherPayload(r.Voucher()));
    }
    if (ensure) pipe.retrieve(*ensure);
    pool_locks = pipe.retrieve(lock);
    account_rows = pipe.retrieve(find);
    transfer_id_rows = pipe.retrieve(tids);
  }
  std::vector<int64_t> transfer_ids;
  for (const pqxx::row& r : transfer_id_rows) transfer_ids.push_back(r[0].as<int64_t>());
  std::map<std::tuple<std::string, std::string, std::string>, int64_t> accounts;
  for (const pqxx::row& r : account_rows) {
    accounts[{r[6].as<std::string>(), r[7].as<std::string>(), r[8].as<std::string>()}] =
        r[0].as<int64_t>();
  }
  if (batch != nullptr) batch->accounts.insert(accounts.begin(), accounts.end());
  // 7. Is the room still there? A request whose pool was taken meanwhile runs again in a later
  // batch against fresh reports.
  std::map<std::pair<std::string, std::string>, int64_t> room;
  for (const pqxx::row& r : pool_locks) {
    room[{r[0].as<std::string>(), r[1].as<std::string>()}] = r[2].as<int64_t>();
  }
  std::vector<size_t> order;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (!d[i].active) continue;
    RedemptionRecord& r = d[i].outcome.redemption;
    int64_t& left = room[{r.datacenter_id, r.pool_id}];
    if (left < r.gpus) {
      d[i].active = false;
      ops[i]->requeue = true;
      ops[i]->lost_race = true;
      continue;
    }
    left -= r.gpus;
    TransferSubmission& s = d[i].hold;
    s.request_scope = kSystemScope;
    s.request_id = absl::StrCat("hold-", r.id);
    s.transfer.kind = TransferKind::kHold;
    s.transfer.debit_account_id = d[i].wallet_account_id;
    s.transfer.credit_account_id = accounts[account_key(r)];
    s.transfer.amount_fen = r.held_fen;
    s.metadata_json = absl::StrCat(R"({"redemption":)", r.id, "}");
    order.push_back(i);
  }
  if (order.empty()) return;
  // 8. The credit holds through the posting engine (each failing alone), and 9. with the
  // ledger's writes, in the same round trip, the placements of the requests whose hold
  // succeeded: the pools' held GPUs, the capacity holds, the redemptions and the keys.
  std::vector<PendingTransfer> pending;
  for (size_t i : order) pending.push_back({&d[i].hold, TransferRequestHash(d[i].hold)});
  auto write_placements = [&](const std::vector<absl::StatusOr<TransferResult>>& held) {
    std::vector<std::string> c_dc, c_pool, r_program, r_issuer, r_uscc, r_model, r_region, r_key,
        r_sig, r_scope, r_request, r_hash;
    std::vector<int64_t> c_id, c_rid, r_max_price, r_price, r_bill, r_held, r_hold, r_replaces;
    std::vector<int64_t> c_gpus, r_mem, r_gpus, r_hours, r_ratio, r_style;
    std::vector<bool> r_fp8, r_domestic;
    for (size_t k = 0; k < order.size(); ++k) {
      const size_t i = order[k];
      if (!held[k].ok()) {
        absl::Status s = held[k].status();
        if (ReasonOf(s) == "INSUFFICIENT_FUNDS") {
          s = DomainError(absl::StatusCode::kFailedPrecondition, "INSUFFICIENT_FUNDS",
                          absl::StrCat("the award's available credit cannot cover the voucher "
                                       "share of the estimate (",
                                       d[i].outcome.redemption.held_fen, " fen)"));
        }
        fail(i, s);
        continue;
      }
      RedemptionRecord& r = d[i].outcome.redemption;
      const ComputeRequest& req = ops[i]->request;
      r.hold_transfer_id = held[k]->outcome.transfer_id;
      c_id.push_back(r.capacity_hold_id);
      c_dc.push_back(r.datacenter_id);
      c_pool.push_back(r.pool_id);
      c_gpus.push_back(r.gpus);
      c_rid.push_back(r.id);
      r_program.push_back(r.program_id);
      r_issuer.push_back(r.issuer_id);
      r_uscc.push_back(r.uscc);
      r_model.push_back(r.accelerator_model);
      r_fp8.push_back(r.fp8_required);
      r_domestic.push_back(r.domestic_required);
      r_mem.push_back(r.min_memory_gib);
      r_max_price.push_back(r.max_price_fen_per_gpu_hour);
      r_region.push_back(r.preferred_region_prefix);
      r_gpus.push_back(r.gpus);
      r_hours.push_back(r.hours);
      r_price.push_back(r.price_fen_per_gpu_hour);
      r_ratio.push_back(r.ratio_bps);
      r_style.push_back(static_cast<int>(r.style));
      r_bill.push_back(r.estimated_bill_fen);
      r_held.push_back(r.held_fen);
      r_hold.push_back(r.hold_transfer_id);
      r_replaces.push_back(r.replaces);
      r_key.push_back(r.voucher_key_id);
      r_sig.push_back(HexOf(r.voucher_signature));
      r_scope.push_back(req.key.scope);
      r_request.push_back(req.key.request_id);
      r_hash.push_back(store_keys ? req.key.request_hash : std::string());
      d[i].outcome.placed = true;
      ops[i]->result = (*ops[i]->encode)(d[i].outcome);
    }
    if (c_id.empty()) return std::string();
    auto q = [&tx](const std::string& array) { return tx.quote(array); };
    return ExecutePrepared(kComputeWrite,
                           {q(BigintArray(c_rid)),
                            q(TextArray(r_program)),
                            q(TextArray(r_issuer)),
                            q(TextArray(r_uscc)),
                            q(TextArray(c_dc)),
                            q(TextArray(c_pool)),
                            q(TextArray(r_model)),
                            q(BoolArray(r_fp8)),
                            q(BoolArray(r_domestic)),
                            q(BigintArray(r_mem)),
                            q(BigintArray(r_max_price)),
                            q(TextArray(r_region)),
                            q(BigintArray(r_gpus)),
                            q(BigintArray(r_hours)),
                            q(BigintArray(r_price)),
                            q(BigintArray(r_ratio)),
                            q(BigintArray(r_style)),
                            q(BigintArray(r_bill)),
                            q(BigintArray(r_held)),
                            q(BigintArray(r_hold)),
                            q(BigintArray(c_id)),
                            q(BigintArray(r_replaces)),
                            q(TextArray(r_key)),
                            q(TextArray(r_sig)),
                            q(TextArray(r_scope)),
                            q(TextArray(r_request)),
                            absl::StrCat(absl::ToUnixMicros(now + options.placement_ttl)),
                            absl::StrCat(absl::ToUnixMicros(now)),
                            q(TextArray(r_hash))});
  };
  LedgerTxOptions ledger_options;
  ledger_options.fresh_keys = true;  // "hold-<redemption id>", the id drawn above
  ledger_options.locked_accounts = &account_rows;
  ledger_options.transfer_ids = &transfer_ids;
  ledger_options.prepared_write = true;
  if (batch != nullptr) {
    ledger_options.commit_with_write = true;
    ledger_options.committed = &batch->commit_sent;
  }
  ApplyTransfersInTransaction(tx, pending, absl::ToUnixMicros(now), write_placements,
                              ledger_options);
}

// --- ReportUsage. ---

absl::StatusOr<std::string> RedemptionStore::ReportUsage(UsageReport report,
                                                         const Encoder<UsageOutcome>& encode) {
  UsageOp op;
  op.report = std::move(report);
  op.encode = &encode;
  return usage_queue_->Submit(op);
}

void RedemptionStore::ReportUsageAsync(UsageReport report, Encoder<UsageOutcome> encode,
                                       Done done) {
  auto op = std::make_unique<UsageOp>();
  op->report = std::move(report);
  op->owned_encode = std::move(encode);
  op->encode = &op->owned_encode;
  op->on_done = std::move(done);
  usage_queue_->SubmitAsync(std::move(op));
}

namespace {

IdempotencyKey UsageKey(const UsageReport& r) {
  return IdempotencyKey{.scope = absl::StrCat("usage/", r.redemption_id),
                        .request_id = r.usage_id,
                        .request_hash = r.request_hash};
}

struct UsageDecision {
  bool active = false;
  UsageOutcome outcome;
  size_t post_index = SIZE_MAX;  // into the batch's transfers
  size_t release_index = SIZE_MAX;
};

}  // namespace

void RedemptionStore::ExecuteUsageBatch(std::vector<UsageOp*>& ops) {
  auto run = [&](std::vector<UsageOp*>& group) {
    return RunBatchTx(batch_pool_, [&](pqxx::transaction_base& tx, BatchTx& batch) {
      for (UsageOp* op : group) {
        op->requeue = false;
        op->result = absl::UnknownError("not decided");
      }
      return UsageInTx(tx, group, options_.clock(), batch);
    });
  };
  absl::Status status = run(ops);
  if (status.ok()) return;
  if (ops.size() == 1) {
    ops[0]->requeue = false;
    ops[0]->result = status;
    return;
  }
  // The batch failed as a whole: run each report alone so that it fails by itself.
  for (UsageOp* op : ops) {
    std::vector<UsageOp*> one{op};
    absl::Status alone = run(one);
    if (!alone.ok()) {
      op->requeue = false;
      op->result = alone;
    }
  }
}

// Settles `ops` in two round trips: BEGIN with every lock and read (redemptions, then the
// programs' monthly spend, the keys, the holds and their accounts, in the global lock order) and
// the ids; then, decided in memory, the ledger's and the settlements' writes with COMMIT. A
// transfer the ledger refuses fails the batch (its view was wrong): the caller runs each report
// alone.
absl::Status RedemptionStore::UsageInTx(pqxx::transaction_base& tx, std::vector<UsageOp*>& ops,
                                        absl::Time now, BatchTx& batch) {
  std::vector<UsageDecision> d(ops.size());
  std::set<int64_t> ids;
  std::vector<IdempotencyKey> key_store;
  std::vector<std::string> scopes, key_ids;
  for (UsageOp* op : ops) {
    ids.insert(op->report.redemption_id);
    key_store.push_back(UsageKey(op->report));
    scopes.push_back(key_store.back().scope);
    key_ids.push_back(key_store.back().request_id);
  }
  const absl::CivilMonth month = absl::CivilMonth(absl::ToCivilSecond(now, kChinaTime));
  const std::string month_text = absl::FormatCivilTime(absl::CivilDay(month));
  const std::string id_array = BigintArray({ids.begin(), ids.end()});
  const std::string count = absl::StrCat(ops.size());
  pqxx::result redemption_rows, key_rows, spend_rows, hold_rows, account_rows, seq_rows,
      transfer_id_rows;
  {
    pqxx::pipeline pipe(tx);
    pipe.retain(10);
    pipe.insert("BEGIN");
    // Each statement takes its snapshot after the one before it: the redemptions are read
    // after they are locked (their holds change only under their lock).
    const auto lock = pipe.insert(BindPrepared(tx, kUsageLockRedemptions, {id_array}));
    const auto read = pipe.insert(BindPrepared(tx, kUsageRedemptions, {id_array}));
    const auto keys =
        pipe.insert(BindPrepared(tx, kFindKeysName, {TextArray(scopes), TextArray(key_ids)}));
    const auto ensure = pipe.insert(BindPrepared(tx, kUsageEnsureSpend, {id_array, month_text}));
    const auto spend = pipe.insert(BindPrepared(tx, kUsageLockSpend, {id_array, month_text}));
    const auto holds = pipe.insert(BindPrepared(tx, kUsageLockHolds, {id_array}));
    const auto accounts = pipe.insert(BindPrepared(tx, kUsageLockAccounts, {id_array}));
    const auto seqs = pipe.insert(ExecutePrepared(kUsageSeqs, {count}));
    const auto transfer_ids = pipe.insert(ExecutePrepared(kComputeTransferIds, {count}));
    pipe.retrieve(lock);
    redemption_rows = pipe.retrieve(read);
    key_rows = pipe.retrieve(keys);
    pipe.retrieve(ensure);
    spend_rows = pipe.retrieve(spend);
    hold_rows = pipe.retrieve(holds);
    account_rows = pipe.retrieve(accounts);
    seq_rows = pipe.retrieve(seqs);
    transfer_id_rows = pipe.retrieve(transfer_ids);
  }
  std::map<int64_t, RedemptionRecord> redemptions;
  for (const pqxx::row& r : redemption_rows) {
    RedemptionRecord rec = ParseRedemption(r);
    redemptions[rec.id] = std::move(rec);
  }
  const StoredKeys stored = ParseKeys(key_rows);
  std::map<std::string, std::pair<int64_t, int64_t>> spend;  // limit, spent
  for (const pqxx::row& r : spend_rows) {
    spend[r[0].as<std::string>()] = {r[1].as<int64_t>(), r[2].as<int64_t>()};
  }
  std::vector<int64_t> seqs, transfer_ids;
  for (const pqxx::row& r : seq_rows) seqs.push_back(r[0].as<int64_t>());
  for (const pqxx::row& r : transfer_id_rows) transfer_ids.push_back(r[0].as<int64_t>());

  // Replays, and one op per key per batch. A caller outside a redemption's datacenter learns
  // nothing of it, not even from a stored answer.
  std::set<std::pair<std::string, std::string>> seen;
  for (size_t i = 0; i < ops.size(); ++i) {
    const UsageReport& in = ops[i]->report;
    auto r = redemptions.find(in.redemption_id);
    if (r == redemptions.end() ||
        (!in.datacenter_scope.empty() && r->second.datacenter_id != in.datacenter_scope)) {
      ops[i]->result = DomainError(absl::StatusCode::kNotFound, "REDEMPTION_NOT_FOUND",
                                   absl::StrCat("redemption ", in.redemption_id, " not found"));
      continue;
    }
    if (!IsNewKey(stored, key_store[i], "USAGE_ID_REUSED", seen, ops[i]->result, ops[i]->requeue)) {
      continue;
    }
    d[i].active = true;
  }

  // Settle in order, each record seeing the ones before it. Each record makes at most one
  // transfer (a POST of its subsidy, the final one closing the hold; or, for a final record
  // without subsidy, a VOID of what remains), keyed by its fresh settlement sequence number.
  std::vector<TransferSubmission> transfers;
  transfers.reserve(ops.size());
  size_t next_seq = 0;
  std::set<int64_t> touched;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (!d[i].active) continue;
    const UsageReport& in = ops[i]->report;
    auto fail = [&](absl::Status s) {
      d[i].active = false;
      ops[i]->result = std::move(s);
    };
    RedemptionRecord& r = redemptions.find(in.redemption_id)->second;  // present: checked above
    if (r.state == RedemptionState::kPlaced) {
      fail(StateError(r, "REDEMPTION_NOT_CONFIRMED", "usage needs a confirmed placement"));
      continue;
    }
    if (r.state == RedemptionState::kSettled) {
      fail(StateError(r, "REDEMPTION_SETTLED", "its final usage record was already settled"));
      continue;
    }
    if (r.state != RedemptionState::kConfirmed && r.state != RedemptionState::kActive) {
      fail(StateError(r, "REDEMPTION_NOT_ACTIVE", "it takes no usage"));
      continue;
    }
    int64_t room = -1;
    auto sp = spend.find(r.program_id);
    if (sp != spend.end()) room = sp->second.first - sp->second.second;
    absl::StatusOr<policy::UsageSettlement> s =
        policy::SettleUsage({.gpu_seconds = in.gpu_seconds,
                             .price_fen_per_gpu_hour = r.price_fen_per_gpu_hour,
                             .ratio_bps = r.ratio_bps,
                             .remaining_hold_fen = r.remaining_hold_fen,
                             .monthly_room_fen = room,
                             .final = in.final});
    if (!s.ok()) {
      fail(s.status());
      continue;
    }
    absl::StatusOr<int64_t> billed = policy::CheckedAddFen(r.billed_fen, s->bill_fen);
    absl::StatusOr<int64_t> seconds = policy::CheckedAddFen(r.gpu_seconds, in.gpu_seconds);
    if (!billed.ok() || !seconds.ok()) {
      fail(!billed.ok() ? billed.status() : seconds.status());
      continue;
    }
    UsageRecord& u = d[i].outcome.usage;
    u.redemption_id = r.id;
    u.usage_id = in.usage_id;
    u.seq = seqs[next_seq++];
    u.program_id = r.program_id;
    u.uscc = r.uscc;
    u.datacenter_id = r.datacenter_id;
    u.pool_id = r.pool_id;
    u.gpu_seconds = in.gpu_seconds;
    u.start = in.start;
    u.end = in.end;
    u.final = in.final;
    u.price_fen_per_gpu_hour = r.price_fen_per_gpu_hour;
    u.ratio_bps = r.ratio_bps;
    u.bill_fen = s->bill_fen;
    u.subsidy_fen = s->subsidy_fen;
    u.copay_fen = s->copay_fen;
    u.capped_by = s->capped_by;
    u.settled_at = now;
    const bool post = s->subsidy_fen > 0;
    const bool release = in.final && s->released_fen > 0;
    if (post || release) {
      TransferSubmission t;
      t.request_scope = kSystemScope;
      t.request_id = absl::StrCat("usage-", u.seq);
      t.transfer.pending_id = r.hold_transfer_id;
      if (post) {
        t.transfer.kind = TransferKind::kPost;
        t.transfer.amount_fen = s->subsidy_fen;
        // The final record's POST closes the hold, releasing what it does not post.
        t.transfer.keep_open = !in.final;
        t.metadata_json = absl::StrCat(R"({"redemption":)", r.id, R"(,"usage_seq":)", u.seq, "}");
        d[i].post_index = transfers.size();
      } else {
        t.transfer.kind = TransferKind::kVoid;
        t.metadata_json = absl::StrCat(R"({"redemption":)", r.id, R"(,"usage_seq":)", u.seq,
                                       R"(,"why":"final usage"})");
      }
      if (release) d[i].release_index = transfers.size();
      transfers.push_back(std::move(t));
    }
    r.remaining_hold_fen = s->remaining_after_fen;
    r.gpu_seconds = *seconds;
    r.billed_fen = *billed;
    r.subsidy_fen += s->subsidy_fen;
    r.usage_records += 1;
    r.state = in.final ? RedemptionState::kSettled : RedemptionState::kActive;
    r.updated_at = now;
    if (sp != spend.end()) sp->second.second += s->subsidy_fen;
    touched.insert(r.id);
    d[i].outcome.redemption = r;
  }
  if (touched.empty()) return absl::OkStatus();

  // The ledger's POSTs and VOIDs, then with its writes (and COMMIT) in the same round trip the
  // usage records, the redemptions' totals, the monthly spend and the keys.
  std::vector<PendingTransfer> pending;
  for (const TransferSubmission& t : transfers) pending.push_back({&t, TransferRequestHash(t)});
  auto write_settlements = [&](const std::vector<absl::StatusOr<TransferResult>>& done) {
    std::vector<int64_t> u_rid, u_seq, u_style, u_gs, u_start, u_end, u_price, u_ratio, u_bill,
        u_sub, u_copay, u_capped, u_post, u_release;
    std::vector<std::string> u_id, u_program, u_issuer, u_uscc, u_dc, u_hash, k_scope, k_request,
        k_hash, k_response;
    std::vector<bool> u_final;
    for (size_t i = 0; i < ops.size(); ++i) {
      if (!d[i].active) continue;
      UsageRecord& u = d[i].outcome.usage;
      const RedemptionRecord& r = redemptions[u.redemption_id];
      if (d[i].post_index != SIZE_MAX) {
        u.post_transfer_id = done[d[i].post_index]->outcome.transfer_id;
      }
      if (d[i].release_index != SIZE_MAX) {
        u.release_transfer_id = done[d[i].release_index]->outcome.transfer_id;
      }
      u_rid.push_back(u.redemption_id);
      u_id.push_back(u.usage_id);
      u_seq.push_back(u.seq);
      u_program.push_back(u.program_id);
      u_issuer.push_back(r.issuer_id);
      u_uscc.push_back(u.uscc);
      u_dc.push_back(u.datacenter_id);
      u_style.push_back(static_cast<int>(r.style));
      u_gs.push_back(u.gpu_seconds);
      u_start.push_back(absl::ToUnixMicros(u.start));
      u_end.push_back(absl::ToUnixMicros(u.end));
      u_final.push_back(u.final);
      u_price.push_back(u.price_fen_per_gpu_hour);
      u_ratio.push_back(u.ratio_bps);
      u_bill.push_back(u.bill_fen);
      u_sub.push_back(u.subsidy_fen);
      u_copay.push_back(u.copay_fen);
      u_capped.push_back(static_cast<int>(u.capped_by));
      u_post.push_back(u.post_transfer_id);
      u_release.push_back(u.release_transfer_id);
      u_hash.push_back(ops[i]->report.request_hash);
      std::string response = (*ops[i]->encode)(d[i].outcome);
      const IdempotencyKey& k = key_store[i];
      k_scope.push_back(k.scope);
      k_request.push_back(k.request_id);
      k_hash.push_back(k.request_hash);
      k_response.push_back(HexOf(response));
      ops[i]->result = std::move(response);
    }
    std::vector<int64_t> t_id, t_state, t_gs, t_billed, t_sub, t_records;
    for (int64_t id : touched) {
      const RedemptionRecord& r = redemptions[id];
      t_id.push_back(id);
      t_state.push_back(static_cast<int>(r.state));
      t_gs.push_back(r.gpu_seconds);
      t_billed.push_back(r.billed_fen);
      t_sub.push_back(r.subsidy_fen);
      t_records.push_back(r.usage_records);
    }
    std::vector<std::string> s_program;
    std::vector<int64_t> s_spent;
    for (const auto& [program, ls] : spend) {
      s_program.push_back(program);
      s_spent.push_back(ls.second);
    }
    auto q = [&tx](const std::string& array) { return tx.quote(array); };
    return ExecutePrepared(kUsageWrite,
                           {q(BigintArray(u_rid)),   q(TextArray(u_id)),
                            q(BigintArray(u_seq)),   q(TextArray(u_program)),
                            q(TextArray(u_issuer)),  q(TextArray(u_uscc)),
                            q(TextArray(u_dc)),      q(BigintArray(u_style)),
                            q(BigintArray(u_gs)),    q(BigintArray(u_start)),
                            q(BigintArray(u_end)),   q(BoolArray(u_final)),
                            q(BigintArray(u_price)), q(BigintArray(u_ratio)),
                            q(BigintArray(u_bill)),  q(BigintArray(u_sub)),
                            q(BigintArray(u_copay)), q(BigintArray(u_capped)),
                            q(BigintArray(u_post)),  q(BigintArray(u_release)),
                            q(TextArray(u_hash)),    absl::StrCat(absl::ToUnixMicros(now)),
                            q(BigintArray(t_id)),    q(BigintArray(t_state)),
                            q(BigintArray(t_gs)),    q(BigintArray(t_billed)),
                            q(BigintArray(t_sub)),   q(BigintArray(t_records)),
                            q(TextArray(s_program)), q(BigintArray(s_spent)),
                            tx.quote(month_text),    q(TextArray(k_scope)),
                            q(TextArray(k_request)), q(TextArray(k_hash)),
                            q(TextArray(k_response))});
  };
  LedgerTxOptions ledger_options;
  ledger_options.fresh_keys = true;  // "usage-<seq>", the seq drawn above
  ledger_options.locked_accounts = &account_rows;
  ledger_options.locked_holds = &hold_rows;
  ledger_options.transfer_ids = &transfer_ids;
  ledger_options.prepared_write = true;
  ledger_options.all_or_nothing = true;
  ledger_options.commit_with_write = true;
  ledger_options.committed = &batch.commit_sent;
  std::vector<absl::StatusOr<TransferResult>> done = ApplyTransfersInTransaction(
      tx, pending, absl::ToUnixMicros(now), write_settlements, ledger_options);
  // (Without transfers, only zero-subsidy records, the ledger sends the settlements alone and
  // RunBatchTx commits.)
  for (const auto& r : done) {
    if (!r.ok()) return r.status();
  }
  return absl::OkStatus();
}

// --- Construction. ---

RedemptionStore::RedemptionStore(PgPool& pool, PgPool& batch_pool, RedemptionOptions options)
    : pool_(pool), batch_pool_(batch_pool), options_([&] {
        // Times are kept to the microsecond, as PostgreSQL stores them and vouchers sign them.
        options.clock = [clock = std::move(options.clock)] {
          return absl::FromUnixMicros(absl::ToUnixMicros(clock()));
        };
        return std::move(options);
      }()) {
  known_accounts_ = std::make_unique<AccountCache>();
  for (const PreparedStatement& statement : BatchStatements()) {
    pool_.RegisterPrepared(statement);
    batch_pool_.RegisterPrepared(statement);
  }
  compute_queue_ = std::make_unique<Queue<ComputeOp>>(
      options_, [this](std::vector<ComputeOp*>& ops) { ExecuteComputeBatch(ops); });
  usage_queue_ = std::make_unique<Queue<UsageOp>>(
      options_, [this](std::vector<UsageOp*>& ops) { ExecuteUsageBatch(ops); });
}

RedemptionStore::~RedemptionStore() = default;

// --- Operator and enterprise decisions. ---

absl::StatusOr<std::string> RedemptionStore::Confirm(const IdempotencyKey& key, int64_t id,
                                                     const std::string& datacenter_scope,
                                                     const Encoder<RedemptionRecord>& encode) {
  return RunIdempotent(pool_, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    const absl::Time now = options_.clock();
    VCH_ASSIGN_OR_RETURN(RedemptionRecord r,
                         LoadRedemption(tx, id, {.datacenter_id = datacenter_scope}, true));
    if (r.state != RedemptionState::kPlaced) {
      return StateError(r, "REDEMPTION_NOT_PLACED", "only a PLACED redemption can be confirmed");
    }
    pqxx::result consumed = tx.exec_params(
        "UPDATE capacity_holds SET state = 3, resolved_at = vch_ts($2) "
        "WHERE id = $1 AND state = 1 AND expires_at > vch_ts($2) "
        "RETURNING datacenter_id, pool_id, gpus",
        r.capacity_hold_id, absl::ToUnixMicros(now));
    if (now >= r.expires_at || consumed.empty()) {
      return DomainError(absl::StatusCode::kFailedPrecondition, "PLACEMENT_EXPIRED",
                         absl::StrCat("the placement of redemption ", id, " expired at ",
                                      absl::FormatTime(r.expires_at, absl::UTCTimeZone())));
    }
    tx.exec_params0(
        "UPDATE gpu_pools SET gpus_held = gpus_held - $3 WHERE datacenter_id = $1 AND id = $2",
        consumed[0][0].as<std::string>(), consumed[0][1].as<std::string>(),
        consumed[0][2].as<int>());
    tx.exec_params0("UPDATE redemptions SET state = 2, updated_at = vch_ts($2) WHERE id = $1", id,
                    absl::ToUnixMicros(now));
    r.state = RedemptionState::kConfirmed;
    r.updated_at = now;
    return encode(r);
  });
}

absl::StatusOr<std::string> RedemptionStore::Cancel(const IdempotencyKey& key, int64_t id,
                                                    const std::string& uscc_scope,
                                                    const std::string& reason,
                                                    const Encoder<RedemptionRecord>& encode) {
  return RunIdempotent(pool_, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    const absl::Time now = options_.clock();
    VCH_ASSIGN_OR_RETURN(RedemptionRecord r, LoadRedemption(tx, id, {.uscc = uscc_scope}, true));
    if (r.state != RedemptionState::kPlaced && r.state != RedemptionState::kConfirmed) {
      return StateError(r, "REDEMPTION_NOT_CANCELLABLE",
                        "only PLACED or CONFIRMED redemptions without usage can be cancelled");
    }
    ReleaseCapacityInTx(tx, r.capacity_hold_id, now);
    VCH_RETURN_IF_ERROR(VoidHoldsInTx(tx, {r}, "cancelled", now));
    tx.exec_params0(
        "UPDATE redemptions SET state = 5, state_reason = $2, updated_at = vch_ts($3) "
        "WHERE id = $1",
        id, reason, absl::ToUnixMicros(now));
    r.state = RedemptionState::kCancelled;
    r.state_reason = reason;
    r.remaining_hold_fen = 0;
    r.updated_at = now;
    return encode(r);
  });
}

absl::StatusOr<std::string> RedemptionStore::Reject(const IdempotencyKey& key, int64_t id,
                                                    const std::string& datacenter_scope,
                                                    const std::string& reason,
                                                    std::optional<ComputeRequest> replacement,
                                                    const Encoder<RejectOutcome>& encode) {
  return RunIdempotent(pool_, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    const absl::Time now = options_.clock();
    VCH_ASSIGN_OR_RETURN(RedemptionRecord r,
                         LoadRedemption(tx, id, {.datacenter_id = datacenter_scope}, true));
    if (r.state != RedemptionState::kPlaced) {
      return StateError(r, "REDEMPTION_NOT_PLACED", "only a PLACED redemption can be rejected");
    }
    ReleaseCapacityInTx(tx, r.capacity_hold_id, now);
    VCH_RETURN_IF_ERROR(VoidHoldsInTx(tx, {r}, "rejected", now));
    tx.exec_params0(
        "UPDATE redemptions SET state = 7, state_reason = $2, updated_at = vch_ts($3) "
        "WHERE id = $1",
        id, reason, absl::ToUnixMicros(now));
    RejectOutcome out;
    r.state = RedemptionState::kRejected;
    r.state_reason = reason;
    r.remaining_hold_fen = 0;
    r.updated_at = now;
    if (r.replaces == 0 && replacement.has_value()) {
      // Placed once more, never at the refusing site; the outcome is stored with the
      // rejection's key, so the replacement's own response is not.
      Encoder<ComputeOutcome> keep = [&](const ComputeOutcome& o) {
        out.replaced = o.placed;
        out.replacement = o.redemption;
        out.decision = o.decision;
        return std::string();
      };
      ComputeOp op;
      op.request = std::move(*replacement);
      op.request.key = {
          .scope = kSystemScope, .request_id = absl::StrCat("replace-", id), .request_hash = ""};
      op.request.exclude_datacenter = r.datacenter_id;
      op.request.replaces = id;
      op.encode = &keep;
      std::vector<ComputeOp*> ops{&op};
      ComputeInTx(tx, false, ops, now);
      if (op.requeue) {  // lost a race for the last GPUs: report it like a full pool
        out.replaced = false;
        out.decision = {};
        out.decision.excluded[static_cast<int>(policy::ExclusionReason::kInsufficientGpus)] = 1;
      } else if (!op.result.ok()) {
        // The replacement was refused (e.g. the award cannot cover it): the rejection stands.
        out.replaced = false;
        out.decision = {};
      }
      if (out.replaced) {
        tx.exec_params0("UPDATE redemptions SET replaced_by = $2 WHERE id = $1", id,
                        out.replacement.id);
        r.replaced_by = out.replacement.id;
      }
    }
    out.rejected = r;
    return encode(out);
  });
}

absl::StatusOr<int64_t> RedemptionStore::ExpirePlacements(absl::Time now) {
  now = absl::FromUnixMicros(absl::ToUnixMicros(now));
  int64_t total = 0;
  while (true) {
    int64_t chunk = 0;
    VCH_RETURN_IF_ERROR(RunTransaction(pool_, [&](pqxx::dbtransaction& tx) -> absl::Status {
      chunk = 0;
      pqxx::result due =
          tx.exec_params(absl::StrCat(kRedemptionSelect,
                                      " WHERE r.state = 1 AND r.expires_at <= vch_ts($1) "
                                      "ORDER BY r.id LIMIT 500 FOR UPDATE OF r SKIP LOCKED"),
                         absl::ToUnixMicros(now));
      if (due.empty()) return absl::OkStatus();
      std::vector<RedemptionRecord> rs;
      std::vector<int64_t> ids;
      for (const pqxx::row& row : due) {
        rs.push_back(ParseRedemption(row));
        ids.push_back(rs.back().id);
      }
      for (const RedemptionRecord& r : rs) ReleaseCapacityInTx(tx, r.capacity_hold_id, now);
      VCH_RETURN_IF_ERROR(VoidHoldsInTx(tx, rs, "expired", now));
      tx.exec_params0(
          "UPDATE redemptions SET state = 6, updated_at = vch_ts($2) WHERE id = ANY($1::bigint[])",
          BigintArray(ids), absl::ToUnixMicros(now));
      chunk = static_cast<int64_t>(rs.size());
      return absl::OkStatus();
    }));
    total += chunk;
    if (chunk < 500) return total;
  }
}

// --- Reads. ---

absl::StatusOr<RedemptionRecord> RedemptionStore::Get(int64_t id, const RedemptionScope& scope) {
  std::optional<RedemptionRecord> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool_, [&](pqxx::dbtransaction& tx) -> absl::Status {
    VCH_ASSIGN_OR_RETURN(out, LoadRedemption(tx, id, scope, false));
    return absl::OkStatus();
  }));
  return *out;
}

absl::StatusOr<std::vector<RedemptionRecord>> RedemptionStore::List(const Filter& f,
                                                                    const RedemptionScope& scope) {
  std::vector<RedemptionRecord> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool_, [&](pqxx::dbtransaction& tx) -> absl::Status {
    for (const pqxx::row& r : tx.exec_params(
             absl::StrCat(kRedemptionSelect, " WHERE", kScopeClause,
                          " AND ($5 = '' OR r.program_id = $5) AND ($6 = '' OR r.uscc = $6) "
                          "AND ($7 = '' OR r.datacenter_id = $7) AND ($8 = 0 OR r.state = $8) "
                          "AND ($1 = 0 OR r.id < $1) ORDER BY r.id DESC LIMIT $9"),
             f.before_id, scope.uscc, scope.datacenter_id, scope.issuer_id, f.program_id, f.uscc,
             f.datacenter_id, f.state ? static_cast<int>(*f.state) : 0, f.limit)) {
      out.push_back(ParseRedemption(r));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<RedemptionRecord>> RedemptionStore::ListPending(
    const std::string& datacenter_id, int64_t after_id, int limit) {
  std::vector<RedemptionRecord> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool_, [&](pqxx::dbtransaction& tx) -> absl::Status {
    for (const pqxx::row& r : tx.exec_params(
             absl::StrCat(kRedemptionSelect,
                          " WHERE r.state = 1 AND ($1 = '' OR r.datacenter_id = $1) AND r.id > $2 "
                          "AND r.expires_at > vch_ts($4) ORDER BY r.id LIMIT $3"),
             datacenter_id, after_id, limit, absl::ToUnixMicros(options_.clock()))) {
      out.push_back(ParseRedemption(r));
    }
    return absl::OkStatus();
  }));
  return out;
}

// --- Payouts. ---

absl::StatusOr<std::string> RedemptionStore::CreatePayout(const IdempotencyKey& key,
                                                          const PayoutRequest& req,
                                                          const Encoder<PayoutRecord>& encode) {
  return RunIdempotent(pool_, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    const absl::Time now = options_.clock();
    pqxx::result program = tx.exec_params(
        "SELECT issuer_id FROM programs WHERE id = $1 AND ($2 = '' OR issuer_id = $2)",
        req.program_id, req.issuer_scope);
    if (program.empty()) {
      return DomainError(absl::StatusCode::kNotFound, "PROGRAM_NOT_FOUND",
                         absl::StrCat("program ", req.program_id, " not found"));
    }
    const std::string issuer = program[0][0].as<std::string>();
    const int kind = static_cast<int>(req.payee_kind);
    // One payout at a time per program and payee: the lines it takes are then exactly the
    // unpaid ones.
    tx.exec_params("SELECT pg_advisory_xact_lock(hashtextextended($1, 42))",
                   absl::StrCat("payout\x1f", req.program_id, "\x1f", kind, "\x1f", req.payee));
    pqxx::result lines = tx.exec_params(
        "SELECT u.redemption_id, u.usage_id, u.subsidy_fen FROM usage_records u "
        "LEFT JOIN payout_lines l ON l.redemption_id = u.redemption_id AND l.usage_id = u.usage_id "
        "WHERE u.program_id = $1 AND u.settlement_style = $2 AND u.subsidy_fen > 0 "
        "AND (CASE WHEN $2 = 1 THEN u.datacenter_id ELSE u.uscc END) = $3 "
        "AND u.settled_at >= vch_ts($4) AND u.settled_at < vch_ts($5) AND l.payout_id IS NULL "
        "ORDER BY u.seq",
        req.program_id, kind, req.payee, absl::ToUnixMicros(req.period_start),
        absl::ToUnixMicros(req.period_end));
    if (lines.empty()) {
      return DomainError(absl::StatusCode::kFailedPrecondition, "NOTHING_TO_PAY",
                         "no settled, unpaid claims of this payee in the program and period");
    }
    std::vector<int64_t> l_rid;
    std::vector<std::string> l_uid;
    int64_t amount = 0;
    for (const pqxx::row& r : lines) {
      l_rid.push_back(r[0].as<int64_t>());
      l_uid.push_back(r[1].as<std::string>());
      VCH_ASSIGN_OR_RETURN(amount, policy::CheckedAddFen(amount, r[2].as<int64_t>()));
    }
    const char* from_kind = req.payee_kind == PayeeKind::kDatacenter ? "RECEIVABLE" : "PAYABLE";
    pqxx::result from = tx.exec_params(
        "SELECT id FROM ledger_accounts WHERE program_id = $1 AND kind = $2 AND owner = $3",
        req.program_id, from_kind, req.payee);
    tx.exec_params0(
        "INSERT INTO ledger_accounts (program_id, issuer_id, kind, owner, flags) "
        "VALUES ($1, $2, 'PAID', $3, 0) "
        "ON CONFLICT ON CONSTRAINT accounts_one_per_kind_and_owner DO NOTHING",
        req.program_id, issuer, req.payee);
    const int64_t to = tx.exec_params1(
                             "SELECT id FROM ledger_accounts WHERE program_id = $1 AND "
                             "kind = 'PAID' AND owner = $2",
                             req.program_id, req.payee)[0]
                           .as<int64_t>();
    if (from.empty()) return absl::InternalError("claims without a receivable account");
    const int64_t id = tx.exec1("SELECT nextval('payout_id_seq')")[0].as<int64_t>();
    TransferSubmission s;
    s.request_scope = kSystemScope;
    s.request_id = absl::StrCat("payout-", id);
    s.transfer.kind = TransferKind::kPayout;
    s.transfer.debit_account_id = from[0][0].as<int64_t>();
    s.transfer.credit_account_id = to;
    s.transfer.amount_fen = amount;
    s.metadata_json = absl::StrCat(R"({"payout":)", id, "}");
    std::vector<PendingTransfer> pending{{&s, TransferRequestHash(s)}};
    std::vector<absl::StatusOr<TransferResult>> paid =
        ApplyTransfersInTransaction(tx, pending, absl::ToUnixMicros(now));
    if (!paid[0].ok()) return paid[0].status();
    PayoutRecord p{.id = id,
                   .program_id = req.program_id,
                   .issuer_id = issuer,
                   .payee_kind = req.payee_kind,
                   .payee = req.payee,
                   .period_start = req.period_start,
                   .period_end = req.period_end,
                   .amount_fen = amount,
                   .lines = static_cast<int32_t>(lines.size()),
                   .transfer_id = paid[0]->outcome.transfer_id,
                   .created_by = req.actor,
                   .created_at = now};
    tx.exec_params0(
        "INSERT INTO payouts (id, program_id, issuer_id, payee_kind, payee, period_start, "
        "period_end, amount_fen, lines, transfer_id, created_by, request_scope, request_id, "
        "created_at) VALUES ($1, $2, $3, $4, $5, vch_ts($6), vch_ts($7), $8, $9, $10, $11, $12, "
        "$13, vch_ts($14))",
        id, p.program_id, issuer, kind, p.payee, absl::ToUnixMicros(p.period_start),
        absl::ToUnixMicros(p.period_end), amount, p.lines, p.transfer_id, p.created_by, key.scope,
        key.request_id, absl::ToUnixMicros(now));
    tx.exec_params0(
        "INSERT INTO payout_lines (payout_id, redemption_id, usage_id) "
        "SELECT $1, rid, uid FROM unnest($2::bigint[], $3::text[]) AS t(rid, uid)",
        id, BigintArray(l_rid), TextArray(l_uid));
    return encode(p);
  });
}

absl::StatusOr<PayoutRecord> RedemptionStore::GetPayout(int64_t id, const RedemptionScope& scope) {
  std::optional<PayoutRecord> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool_, [&](pqxx::dbtransaction& tx) -> absl::Status {
    pqxx::result r =
        tx.exec_params(absl::StrCat(kPayoutColumns,
                                    " WHERE id = $1 AND ($2 = '' OR issuer_id = $2) AND "
                                    "($3 = '' OR (payee_kind = 1 AND payee = $3)) AND "
                                    "($4 = '' OR (payee_kind = 2 AND payee = $4))"),
                       id, scope.issuer_id, scope.datacenter_id, scope.uscc);
    if (r.empty()) {
      return DomainError(absl::StatusCode::kNotFound, "PAYOUT_NOT_FOUND",
                         absl::StrCat("payout ", id, " not found"));
    }
    out = ParsePayout(r[0]);
    return absl::OkStatus();
  }));
  return *out;
}

absl::StatusOr<std::vector<PayoutRecord>> RedemptionStore::ListPayouts(
    const PayoutFilter& f, const RedemptionScope& scope) {
  std::vector<PayoutRecord> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool_, [&](pqxx::dbtransaction& tx) -> absl::Status {
    for (const pqxx::row& r : tx.exec_params(
             absl::StrCat(kPayoutColumns,
                          " WHERE ($1 = 0 OR id < $1) AND ($2 = '' OR issuer_id = $2) AND "
                          "($3 = '' OR (payee_kind = 1 AND payee = $3)) AND "
                          "($4 = '' OR (payee_kind = 2 AND payee = $4)) AND "
                          "($5 = '' OR program_id = $5) AND ($6 = 0 OR payee_kind = $6) AND "
                          "($7 = '' OR payee = $7) ORDER BY id DESC LIMIT $8"),
             f.before_id, scope.issuer_id, scope.datacenter_id, scope.uscc, f.program_id,
             f.payee_kind ? static_cast<int>(*f.payee_kind) : 0, f.payee, f.limit)) {
      out.push_back(ParsePayout(r));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<UsageRecord>> RedemptionStore::ListPayoutLines(int64_t payout_id,
                                                                          int64_t after_seq,
                                                                          int limit) {
  std::vector<UsageRecord> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool_, [&](pqxx::dbtransaction& tx) -> absl::Status {
    for (const pqxx::row& r :
         tx.exec_params(absl::StrCat(kUsageSelect,
                                     " WHERE l.payout_id = $1 AND u.seq > $2 ORDER BY u.seq "
                                     "LIMIT $3"),
                        payout_id, after_seq, limit)) {
      out.push_back(ParseUsage(r));
    }
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace vch::storage
