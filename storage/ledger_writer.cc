#include "storage/ledger_writer.h"

#include <algorithm>
#include <map>
#include <optional>
#include <pqxx/pqxx>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "base/errors.h"
#include "base/json_log.h"
#include "storage/ledger_tx.h"
#include "storage/migrator.h"
#include "storage/pg_error.h"
#include "storage/sql_arrays.h"

namespace vch::storage {
namespace {

using policy::AccountState;
using policy::HoldState;
using policy::TransferKind;
using policy::TransferOutcome;
using policy::TransferReason;
using policy::TransferRequest;

constexpr char kExpiryScope[] = "system.expiry";

// --- Queries (named constants next to the code that runs them). ---

constexpr char kLockKeys[] = "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k";

constexpr char kFindKeys[] = R"sql(
SELECT k.scope, k.request_id, k.request_hash, encode(k.response, 'escape')
FROM idempotency_keys k
JOIN unnest($1::text[], $2::text[]) AS q(scope, request_id)
  ON k.scope = q.scope AND k.request_id = q.request_id)sql";

const std::string& LockHoldsSql() {
  static const std::string* sql =
      new std::string(absl::StrCat("SELECT ", kLedgerHoldColumns,
                                   " FROM ledger_holds WHERE transfer_id = ANY($1::bigint[]) "
                                   "ORDER BY transfer_id FOR UPDATE"));
  return *sql;
}

const std::string& LockAccountsSql() {
  static const std::string* sql = new std::string(
      absl::StrCat("SELECT ", kLedgerAccountColumns,
                   " FROM ledger_accounts WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE"));
  return *sql;
}

// Step 5 of ApplyTransfersInTransaction in one round trip (rows are locked meanwhile, so each
// round trip counts): the transfers ($1..$21), the touched holds ($22..$30, $40: made by this
// batch's HOLDs, inserted; else updated), the touched balances ($31..$35) and the idempotency
// keys ($36..$39). The checks between the parts (ledger_transfers_insert_check,
// ledger_holds_insert_check) run at the end of the statement, when every part is written.
constexpr char kWriteBatch[] = R"sql(
WITH transfers AS (
  INSERT INTO ledger_transfers (
    id, program_id, kind, debit_account_id, credit_account_id, amount_fen, released_fen,
    pending_id, expires_at, request_scope, request_id, metadata, created_at,
    debit_debits_pending_fen, debit_debits_posted_fen, debit_credits_pending_fen,
    debit_credits_posted_fen, credit_debits_pending_fen, credit_debits_posted_fen,
    credit_credits_pending_fen, credit_credits_posted_fen)
  SELECT id, program_id, kind, debit, credit, amount, released, pending,
         CASE WHEN expires_us = 0 THEN NULL
              ELSE timestamptz 'epoch' + expires_us * interval '1 microsecond' END,
         scope, request_id, metadata::jsonb,
         timestamptz 'epoch' + $21::bigint * interval '1 microsecond',
         d_dp, d_dpo, d_cp, d_cpo, c_dp, c_dpo, c_cp, c_cpo
  FROM unnest($1::bigint[], $2::text[], $3::smallint[], $4::bigint[], $5::bigint[], $6::bigint[],
              $7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::text[],
              $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[],
              $18::bigint[], $19::bigint[], $20::bigint[])
    AS t(id, program_id, kind, debit, credit, amount, released, pending, expires_us, scope,
         request_id, metadata, d_dp, d_dpo, d_cp, d_cpo, c_dp, c_dpo, c_cp, c_cpo)),
holds AS (
  INSERT INTO ledger_holds (transfer_id, program_id, debit_account_id, credit_account_id,
                            amount_fen, posted_fen, released_fen, expires_at, resolved)
  SELECT id, program_id, debit, credit, amount, posted, released,
         CASE WHEN expires_us = 0 THEN NULL
              ELSE timestamptz 'epoch' + expires_us * interval '1 microsecond' END,
         resolved
  FROM unnest($22::bigint[], $23::text[], $24::bigint[], $25::bigint[], $26::bigint[],
              $27::bigint[], $28::bigint[], $29::bigint[], $30::boolean[], $40::boolean[])
    AS t(id, program_id, debit, credit, amount, posted, released, expires_us, resolved, created)
  WHERE created),
hold_changes AS (
  UPDATE ledger_holds h
  SET posted_fen = t.posted, released_fen = t.released, resolved = t.resolved
  FROM unnest($22::bigint[], $27::bigint[], $28::bigint[], $30::boolean[], $40::boolean[])
    AS t(id, posted, released, resolved, created)
  WHERE NOT t.created AND h.transfer_id = t.id),
accounts AS (
  UPDATE ledger_accounts a
  SET debits_pending_fen = u.dp, debits_posted_fen = u.dpo,
      credits_pending_fen = u.cp, credits_posted_fen = u.cpo
  FROM unnest($31::bigint[], $32::bigint[], $33::bigint[], $34::bigint[], $35::bigint[])
    AS u(id, dp, dpo, cp, cpo)
  WHERE a.id = u.id),
keys AS (
  INSERT INTO idempotency_keys (scope, request_id, request_hash, response)
  SELECT scope, request_id, request_hash, convert_to(response, 'UTF8')
  FROM unnest($36::text[], $37::text[], $38::text[], $39::text[])
    AS t(scope, request_id, request_hash, response))
SELECT WHERE false)sql";

constexpr char kDueHolds[] = R"sql(
SELECT transfer_id FROM ledger_holds
WHERE NOT resolved AND expires_at <= timestamptz 'epoch' + $1::bigint * interval '1 microsecond'
ORDER BY expires_at, transfer_id LIMIT $2::int)sql";

// --- Encodings. ---

// The stored response of a successful transfer: its outcome and time, as decimal fields.
std::string EncodeResult(const TransferOutcome& o, int64_t created_us) {
  auto acct = [](const AccountState& a) {
    return absl::StrCat(a.id, ",", a.flags, ",", a.debits_pending_fen, ",", a.debits_posted_fen,
                        ",", a.credits_pending_fen, ",", a.credits_posted_fen);
  };
  return absl::StrCat("v1;", o.transfer_id, ";", o.debit_account_id, ";", o.credit_account_id, ";",
                      o.amount_fen, ";", o.released_fen, ";", created_us, ";", acct(o.debit_after),
                      ";", acct(o.credit_after));
}

std::optional<TransferResult> DecodeResult(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ';');
  if (parts.size() != 9 || parts[0] != "v1") return std::nullopt;
  int64_t created_us = 0;
  TransferResult r;
  bool ok = absl::SimpleAtoi(parts[1], &r.outcome.transfer_id) &&
            absl::SimpleAtoi(parts[2], &r.outcome.debit_account_id) &&
            absl::SimpleAtoi(parts[3], &r.outcome.credit_account_id) &&
            absl::SimpleAtoi(parts[4], &r.outcome.amount_fen) &&
            absl::SimpleAtoi(parts[5], &r.outcome.released_fen) &&
            absl::SimpleAtoi(parts[6], &created_us);
  auto acct = [&ok](absl::string_view s, AccountState* a) {
    std::vector<absl::string_view> f = absl::StrSplit(s, ',');
    ok = ok && f.size() == 6 && absl::SimpleAtoi(f[0], &a->id) &&
         absl::SimpleAtoi(f[1], &a->flags) && absl::SimpleAtoi(f[2], &a->debits_pending_fen) &&
         absl::SimpleAtoi(f[3], &a->debits_posted_fen) &&
         absl::SimpleAtoi(f[4], &a->credits_pending_fen) &&
         absl::SimpleAtoi(f[5], &a->credits_posted_fen);
  };
  acct(parts[7], &r.outcome.debit_after);
  acct(parts[8], &r.outcome.credit_after);
  if (!ok) return std::nullopt;
  r.created_at = absl::FromUnixMicros(created_us);
  r.replayed = true;
  return r;
}

// 64-bit advisory lock key of an idempotency key (collisions only serialize more).
int64_t KeyLockId(const std::string& scope, const std::string& request_id) {
  const std::string digest = Sha256Hex(absl::StrCat(scope, "\x1f", request_id)).substr(0, 15);
  int64_t id = 0;
  for (char c : digest) id = id * 16 + (c <= '9' ? c - '0' : c - 'a' + 10);
  return id;
}

absl::Status KeyReused(const TransferSubmission& s) {
  return DomainError(
      absl::StatusCode::kAlreadyExists, "IDEMPOTENCY_KEY_REUSED",
      absl::StrCat("request_id '", s.request_id, "' was already used with a different request"));
}

absl::Status ValidateSubmission(const TransferSubmission& s) {
  ViolationCollector v;
  if (s.request_id.empty() || s.request_id.size() > 128) {
    v.Add("request_id", "must be 1 to 128 characters");
  }
  if (s.request_scope.empty()) v.Add("request_scope", "must not be empty");
  if (s.metadata_json.empty() || s.metadata_json.front() != '{' || s.metadata_json.back() != '}') {
    v.Add("metadata", "must be a JSON object");
  }
  return v.Finish();
}

constexpr char kWriteBatchName[] = "vch_ledger_write";

}  // namespace

PreparedStatement LedgerWriteStatement() { return {kWriteBatchName, kWriteBatch}; }

// The request as hashed for idempotency: every field that changes the effect.
std::string TransferRequestHash(const TransferSubmission& s) {
  const TransferRequest& t = s.transfer;
  return Sha256Hex(absl::StrCat("v1|", static_cast<int>(t.kind), "|", t.debit_account_id, "|",
                                t.credit_account_id, "|", t.amount_fen, "|", t.pending_id, "|",
                                t.expires_at_us, "|", t.keep_open ? 1 : 0, "|", s.metadata_json));
}

std::vector<absl::StatusOr<TransferResult>> ApplyTransfersInTransaction(
    pqxx::transaction_base& tx, const std::vector<PendingTransfer>& batch, int64_t now_us,
    const std::function<std::string(const std::vector<absl::StatusOr<TransferResult>>&)>& also,
    const LedgerTxOptions& options) {
  std::vector<absl::StatusOr<TransferResult>> decided(batch.size(),
                                                      absl::UnknownError("not decided"));
  const bool caller_locked = options.locked_accounts != nullptr;
  if (caller_locked &&
      (options.transfer_ids == nullptr || options.transfer_ids->size() < batch.size())) {
    for (auto& d : decided) d = absl::InternalError("locked accounts without enough transfer ids");
    return decided;
  }
  // 1. Idempotency keys: lock them (sorted), then find earlier successes.
  std::set<int64_t> lock_ids;
  std::vector<std::string> scopes, ids;
  for (const PendingTransfer& p : batch) {
    lock_ids.insert(KeyLockId(p.submission->request_scope, p.submission->request_id));
    scopes.push_back(p.submission->request_scope);
    ids.push_back(p.submission->request_id);
  }
  // Lock, then look up, in one round trip (rows are locked meanwhile, so each one counts): a
  // multi-statement query whose second statement takes its own snapshot, after the locks.
  pqxx::result found_keys;
  if (!options.fresh_keys) {
    pqxx::pipeline pipe(tx);
    pipe.retain(2);
    const auto lock = pipe.insert(absl::StrReplaceAll(
        kLockKeys, {{"$1", tx.quote(BigintArray({lock_ids.begin(), lock_ids.end()}))}}));
    const auto find = pipe.insert(absl::StrReplaceAll(
        kFindKeys, {{"$1", tx.quote(TextArray(scopes))}, {"$2", tx.quote(TextArray(ids))}}));
    pipe.retrieve(lock);
    found_keys = pipe.retrieve(find);
  }
  std::map<std::pair<std::string, std::string>, std::pair<std::string, std::string>> stored;
  for (const pqxx::row& row : found_keys) {
    stored[{row[0].as<std::string>(), row[1].as<std::string>()}] = {row[2].as<std::string>(),
                                                                    row[3].as<std::string>()};
  }

  // 2. Lock the holds and accounts the remaining transfers touch, in id order.
  std::set<int64_t> hold_ids, account_ids;
  for (const PendingTransfer& p : batch) {
    const TransferRequest& t = p.submission->transfer;
    if (t.pending_id > 0) hold_ids.insert(t.pending_id);
    if (t.debit_account_id > 0) account_ids.insert(t.debit_account_id);
    if (t.credit_account_id > 0) account_ids.insert(t.credit_account_id);
  }
  policy::LedgerState state;
  if (caller_locked && !hold_ids.empty() && options.locked_holds == nullptr) {
    for (auto& d : decided) d = absl::InternalError("locked accounts given without their holds");
    return decided;
  }
  if (!hold_ids.empty()) {
    const pqxx::result holds =
        options.locked_holds != nullptr
            ? *options.locked_holds
            : tx.exec_params(LockHoldsSql(), BigintArray({hold_ids.begin(), hold_ids.end()}));
    for (const pqxx::row& row : holds) {
      HoldState h;
      h.transfer_id = row[0].as<int64_t>();
      h.debit_account_id = row[1].as<int64_t>();
      h.credit_account_id = row[2].as<int64_t>();
      h.amount_fen = row[3].as<int64_t>();
      h.posted_fen = row[4].as<int64_t>();
      h.released_fen = row[5].as<int64_t>();
      h.expires_at_us = row[6].as<int64_t>();
      h.resolved = row[7].as<bool>();
      state.PutHold(h);
      account_ids.insert(h.debit_account_id);
      account_ids.insert(h.credit_account_id);
    }
  }
  absl::flat_hash_map<int64_t, std::string> program_of;
  // The accounts' locks and the new transfer ids, in one round trip.
  pqxx::result locked_accounts, next_ids;
  if (caller_locked) {
    locked_accounts = *options.locked_accounts;
  } else {
    pqxx::pipeline pipe(tx);
    pipe.retain(2);
    const auto accounts = pipe.insert(absl::StrReplaceAll(
        LockAccountsSql(),
        {{"$1", tx.quote(BigintArray({account_ids.begin(), account_ids.end()}))}}));
    const auto ids = pipe.insert(absl::StrReplaceAll(
        kNextTransferIds, {{"$1", absl::StrCat(static_cast<int>(batch.size()))}}));
    locked_accounts = pipe.retrieve(accounts);
    next_ids = pipe.retrieve(ids);
  }
  {
    for (const pqxx::row& row : locked_accounts) {
      AccountState a;
      a.id = row[0].as<int64_t>();
      a.flags = row[1].as<uint32_t>();
      a.debits_pending_fen = row[2].as<int64_t>();
      a.debits_posted_fen = row[3].as<int64_t>();
      a.credits_pending_fen = row[4].as<int64_t>();
      a.credits_posted_fen = row[5].as<int64_t>();
      program_of[a.id] = row[6].as<std::string>();
      state.PutAccount(a);
    }
  }

  // 3. Transfer ids for the transfers that may succeed.
  std::vector<int64_t> new_ids;
  if (caller_locked) {
    new_ids = *options.transfer_ids;
  } else {
    for (const pqxx::row& row : next_ids) {
      new_ids.push_back(row[0].as<int64_t>());
    }
  }
  size_t next_id = 0;

  // 4. Decide each transfer in order with the pure engine.
  struct Row {
    size_t index;
    TransferOutcome outcome;
  };
  std::vector<Row> applied;
  // Keys that succeeded earlier in this batch: key -> (hash, index in batch).
  std::map<std::pair<std::string, std::string>, std::pair<std::string, size_t>> batch_keys;
  for (size_t i = 0; i < batch.size(); ++i) {
    const TransferSubmission& s = (*batch[i].submission);
    const auto key = std::make_pair(s.request_scope, s.request_id);
    if (auto it = stored.find(key); it != stored.end()) {
      if (it->second.first != batch[i].request_hash) {
        decided[i] = KeyReused(s);
      } else if (std::optional<TransferResult> r = DecodeResult(it->second.second)) {
        decided[i] = *r;
      } else {
        decided[i] = absl::InternalError("stored idempotent response is unreadable");
      }
      continue;
    }
    if (auto it = batch_keys.find(key); it != batch_keys.end()) {
      if (it->second.first != batch[i].request_hash) {
        decided[i] = KeyReused(s);
      } else {
        TransferResult r = *decided[it->second.second];
        r.replayed = true;
        decided[i] = r;
      }
      continue;
    }
    TransferOutcome outcome = policy::ApplyTransfer(state, s.transfer, new_ids[next_id], now_us);
    if (!outcome.ok()) {
      decided[i] = TransferReasonStatus(outcome.reason);
      continue;
    }
    ++next_id;
    decided[i] = TransferResult{outcome, absl::FromUnixMicros(now_us), false};
    batch_keys[key] = {batch[i].request_hash, i};
    applied.push_back({i, outcome});
  }
  if (options.all_or_nothing) {
    for (const auto& d : decided) {
      if (!d.ok()) return decided;  // nothing written, nothing committed
    }
  }
  if (applied.empty()) {
    if (also) {
      if (std::string extra = also(decided); !extra.empty()) tx.exec0(extra);
    }
    return decided;
  }

  // 5. Write transfers, holds, balances and keys: one statement for all.
  std::vector<int64_t> t_id, t_kind, t_debit, t_credit, t_amount, t_released, t_expires;
  std::vector<std::optional<int64_t>> t_pending;
  std::vector<std::string> t_program, t_scope, t_request, t_metadata;
  std::vector<int64_t> bal[8];
  std::vector<std::string> k_scope, k_request, k_hash, k_response;
  for (const Row& row : applied) {
    const TransferSubmission& s = *batch[row.index].submission;
    const TransferOutcome& o = row.outcome;
    t_id.push_back(o.transfer_id);
    t_program.push_back(program_of[o.debit_account_id]);
    t_kind.push_back(static_cast<int64_t>(s.transfer.kind));
    t_debit.push_back(o.debit_account_id);
    t_credit.push_back(o.credit_account_id);
    t_amount.push_back(o.amount_fen);
    t_released.push_back(o.released_fen);
    t_pending.push_back(s.transfer.pending_id > 0 ? std::optional<int64_t>(s.transfer.pending_id)
                                                  : std::nullopt);
    t_expires.push_back(s.transfer.kind == TransferKind::kHold ? s.transfer.expires_at_us : 0);
    t_scope.push_back(s.request_scope);
    t_request.push_back(s.request_id);
    t_metadata.push_back(s.metadata_json);
    const AccountState* sides[2] = {&o.debit_after, &o.credit_after};
    for (int side = 0; side < 2; ++side) {
      bal[side * 4 + 0].push_back(sides[side]->debits_pending_fen);
      bal[side * 4 + 1].push_back(sides[side]->debits_posted_fen);
      bal[side * 4 + 2].push_back(sides[side]->credits_pending_fen);
      bal[side * 4 + 3].push_back(sides[side]->credits_posted_fen);
    }
    // A fresh key needs no row of its own: the transfer's unique (request_scope, request_id)
    // records it, and nobody submits it again.
    if (options.fresh_keys) continue;
    k_scope.push_back(s.request_scope);
    k_request.push_back(s.request_id);
    k_hash.push_back(batch[row.index].request_hash);
    k_response.push_back(EncodeResult(o, now_us));
  }
  std::vector<int64_t> h_id, h_debit, h_credit, h_amount, h_posted, h_released, h_expires;
  std::vector<std::string> h_program;
  std::vector<bool> h_resolved, h_created;
  std::set<int64_t> created_holds;
  for (const Row& row : applied) {
    if (batch[row.index].submission->transfer.kind == TransferKind::kHold) {
      created_holds.insert(row.outcome.transfer_id);
    }
  }
  for (int64_t id : state.TouchedHoldIds()) {
    const HoldState* h = state.FindHold(id);
    h_created.push_back(created_holds.contains(id));
    h_id.push_back(h->transfer_id);
    h_program.push_back(program_of[h->debit_account_id]);
    h_debit.push_back(h->debit_account_id);
    h_credit.push_back(h->credit_account_id);
    h_amount.push_back(h->amount_fen);
    h_posted.push_back(h->posted_fen);
    h_released.push_back(h->released_fen);
    h_expires.push_back(h->expires_at_us);
    h_resolved.push_back(h->resolved);
  }
  std::vector<int64_t> a_id, a_dp, a_dpo, a_cp, a_cpo;
  for (int64_t id : state.TouchedAccountIds()) {
    const AccountState* a = state.FindAccount(id);
    a_id.push_back(a->id);
    a_dp.push_back(a->debits_pending_fen);
    a_dpo.push_back(a->debits_posted_fen);
    a_cp.push_back(a->credits_pending_fen);
    a_cpo.push_back(a->credits_posted_fen);
  }
  auto q = [&tx](const std::string& array) { return tx.quote(array); };
  const auto write_sql = [&options](const std::vector<std::string>& values) {
    return options.prepared_write ? ExecutePrepared(kWriteBatchName, values)
                                  : InlineParams(kWriteBatch, values);
  };
  const std::string write =
      write_sql({q(BigintArray(t_id)),       q(TextArray(t_program)),
                 q(BigintArray(t_kind)),     q(BigintArray(t_debit)),
                 q(BigintArray(t_credit)),   q(BigintArray(t_amount)),
                 q(BigintArray(t_released)), q(NullableBigintArray(t_pending)),
                 q(BigintArray(t_expires)),  q(TextArray(t_scope)),
                 q(TextArray(t_request)),    q(TextArray(t_metadata)),
                 q(BigintArray(bal[0])),     q(BigintArray(bal[1])),
                 q(BigintArray(bal[2])),     q(BigintArray(bal[3])),
                 q(BigintArray(bal[4])),     q(BigintArray(bal[5])),
                 q(BigintArray(bal[6])),     q(BigintArray(bal[7])),
                 absl::StrCat(now_us),       q(BigintArray(h_id)),
                 q(TextArray(h_program)),    q(BigintArray(h_debit)),
                 q(BigintArray(h_credit)),   q(BigintArray(h_amount)),
                 q(BigintArray(h_posted)),   q(BigintArray(h_released)),
                 q(BigintArray(h_expires)),  q(BoolArray(h_resolved)),
                 q(BigintArray(a_id)),       q(BigintArray(a_dp)),
                 q(BigintArray(a_dpo)),      q(BigintArray(a_cp)),
                 q(BigintArray(a_cpo)),      q(TextArray(k_scope)),
                 q(TextArray(k_request)),    q(TextArray(k_hash)),
                 q(TextArray(k_response)),   q(BoolArray(h_created))});
  const std::string extra = also ? also(decided) : std::string();
  if (options.commit_with_write) {
    pqxx::pipeline pipe(tx);
    pipe.retain(3);
    const auto ledger = pipe.insert(write);
    std::optional<pqxx::pipeline::query_id> theirs;
    if (!extra.empty()) theirs = pipe.insert(extra);
    const auto commit = pipe.insert("COMMIT");
    if (options.committed != nullptr) *options.committed = true;
    pipe.retrieve(ledger);
    if (theirs) pipe.retrieve(*theirs);
    pipe.retrieve(commit);
  } else if (extra.empty()) {
    tx.exec0(write);
  } else {
    pqxx::pipeline pipe(tx);
    pipe.retain(2);
    const auto ledger = pipe.insert(write);
    const auto theirs = pipe.insert(extra);
    pipe.retrieve(ledger);
    pipe.retrieve(theirs);
  }
  return decided;
}

absl::Status TransferReasonStatus(TransferReason reason) {
  using C = absl::StatusCode;
  C code = C::kFailedPrecondition;
  switch (reason) {
    case TransferReason::kOk:
      return absl::OkStatus();
    case TransferReason::kAccountNotFound:
    case TransferReason::kHoldNotFound:
      code = C::kNotFound;
      break;
    case TransferReason::kAmountInvalid:
    case TransferReason::kSameAccount:
    case TransferReason::kPendingIdInvalid:
    case TransferReason::kExpiryInvalid:
    case TransferReason::kAccountMismatch:
      code = C::kInvalidArgument;
      break;
    case TransferReason::kOverflow:
      code = C::kOutOfRange;
      break;
    default:
      code = C::kFailedPrecondition;
  }
  const std::string name(policy::TransferReasonName(reason));
  return DomainError(code, name, absl::StrCat("transfer rejected: ", name));
}

struct LedgerWriter::Pending {
  TransferSubmission submission;
  std::string request_hash;
  absl::StatusOr<TransferResult> result = absl::UnknownError("not run");
  bool done = false;
};

LedgerWriter::LedgerWriter(PgPool& pool, LedgerWriterOptions options)
    : pool_(pool), options_(std::move(options)) {
  for (int i = 0; i < std::max(1, options_.writer_threads); ++i) {
    writers_.emplace_back([this] { RunWriter(); });
  }
  if (options_.expiry_interval > absl::ZeroDuration())
    expiry_ = std::thread([this] { RunExpiry(); });
}

LedgerWriter::~LedgerWriter() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (expiry_.joinable()) expiry_.join();
  for (std::thread& w : writers_) w.join();
}

int64_t LedgerWriter::batches_committed() const {
  absl::MutexLock lock(&mu_);
  return batches_committed_;
}

absl::StatusOr<TransferResult> LedgerWriter::Submit(TransferSubmission submission) {
  std::vector<TransferSubmission> one;
  one.push_back(std::move(submission));
  return std::move(SubmitAll(std::move(one))[0]);
}

std::vector<absl::StatusOr<TransferResult>> LedgerWriter::SubmitAll(
    std::vector<TransferSubmission> submissions) {
  std::vector<std::unique_ptr<Pending>> pending;
  std::vector<absl::StatusOr<TransferResult>> results(submissions.size(),
                                                      absl::UnknownError("not run"));
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < submissions.size(); ++i) {
      absl::Status valid = ValidateSubmission(submissions[i]);
      if (!valid.ok()) {
        results[i] = valid;
        pending.push_back(nullptr);
        continue;
      }
      if (stopping_) {
        results[i] = absl::UnavailableError("ledger writer is stopping");
        pending.push_back(nullptr);
        continue;
      }
      auto p = std::make_unique<Pending>();
      p->request_hash = TransferRequestHash(submissions[i]);
      p->submission = std::move(submissions[i]);
      queue_.push_back(p.get());
      pending.push_back(std::move(p));
    }
    auto all_done = [&pending]() {
      for (const auto& p : pending) {
        if (p != nullptr && !p->done) return false;
      }
      return true;
    };
    mu_.Await(absl::Condition(&all_done));
  }
  for (size_t i = 0; i < pending.size(); ++i) {
    if (pending[i] != nullptr) results[i] = std::move(pending[i]->result);
  }
  return results;
}

void LedgerWriter::RunWriter() {
  bool was_busy = false;  // the previous iteration ran a batch
  while (true) {
    std::vector<Pending*> batch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty() || stopping_; };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty() && stopping_) return;
      if (!was_busy) {
        // Idle until now: gather for at most max_wait, or until a full batch is queued.
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
    was_busy = !batch.empty();
    if (batch.empty()) continue;  // another writer took them
    ExecuteBatch(batch);
    absl::MutexLock lock(&mu_);
    for (Pending* p : batch) p->done = true;
    // Whatever queued while this batch ran goes next without waiting; an empty queue means idle.
    was_busy = !queue_.empty();
  }
}

void LedgerWriter::RunExpiry() {
  bool failing = false;  // log failures once per outage, not every interval
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.expiry_interval)) return;
    }
    absl::StatusOr<int64_t> expired = ExpireDueHolds();
    if (!expired.ok() && !failing) {
      Log(LogLevel::kWarning, "hold expiry failing", {{"error", expired.status().message()}});
    } else if (expired.ok() && failing) {
      Log(LogLevel::kInfo, "hold expiry recovered");
    }
    failing = !expired.ok();
  }
}

absl::StatusOr<int64_t> LedgerWriter::ExpireDueHolds() {
  int64_t total = 0;
  constexpr int kChunk = 1000;
  while (true) {
    std::vector<int64_t> due;
    absl::Status status = RunTransaction(pool_, [&](pqxx::dbtransaction& tx) {
      for (const pqxx::row& row :
           tx.exec_params(kDueHolds, absl::ToUnixMicros(options_.clock()), kChunk)) {
        due.push_back(row[0].as<int64_t>());
      }
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    if (due.empty()) return total;
    std::vector<TransferSubmission> submissions;
    for (int64_t hold : due) {
      TransferSubmission s;
      s.request_scope = kExpiryScope;
      s.request_id = absl::StrCat("hold-", hold);
      s.transfer.kind = TransferKind::kExpire;
      s.transfer.pending_id = hold;
      submissions.push_back(std::move(s));
    }
    int64_t expired_now = 0;
    for (const auto& r : SubmitAll(std::move(submissions))) {
      if (r.ok() && !r->replayed) ++expired_now;
      // HOLD_ALREADY_RESOLVED: posted or voided meanwhile; nothing to do.
    }
    total += expired_now;
    if (static_cast<int>(due.size()) < kChunk || expired_now == 0) return total;
  }
}

void LedgerWriter::ExecuteBatch(std::vector<Pending*>& batch) {
  const int64_t now_us = absl::ToUnixMicros(options_.clock());
  // Results decided inside an attempt; applied to the callers only once the batch committed.
  std::vector<absl::StatusOr<TransferResult>> decided;
  int64_t txid = 0;

  auto body = [&](pqxx::dbtransaction& tx) -> absl::Status {
    // Durable whatever the server's default: the caller is told "done" only after the WAL
    // is flushed.
    tx.exec0("SET LOCAL synchronous_commit = on");
    pqxx::row session = tx.exec1("SELECT txid_current(), pg_backend_pid()");
    txid = session[0].as<int64_t>();
    const int backend_pid = session[1].as<int>();
    std::vector<PendingTransfer> pending;
    for (Pending* p : batch) pending.push_back({&p->submission, p->request_hash});
    decided = ApplyTransfersInTransaction(tx, pending, now_us);
    if (options_.before_commit_for_test) options_.before_commit_for_test(backend_pid);
    return absl::OkStatus();
  };
  absl::Status status = RunTransaction(pool_, body);
  if (status.ok()) {
    absl::MutexLock lock(&mu_);
    ++batches_committed_;
  } else if (ReasonOf(status) == "OUTCOME_UNKNOWN" && txid != 0) {
    // The connection died during COMMIT: ask the database what became of the transaction
    // (never retry blindly). pg_xact_status answers committed / aborted / in progress.
    for (int attempt = 0; attempt < 50; ++attempt) {
      std::string xact_status;
      absl::Status probe = RunTransaction(pool_, [&](pqxx::dbtransaction& tx) {
        pqxx::row r = tx.exec_params1("SELECT pg_xact_status($1::xid8)::text", txid);
        xact_status = r[0].is_null() ? "" : r[0].as<std::string>();
        return absl::OkStatus();
      });
      if (!probe.ok()) {
        absl::SleepFor(absl::Milliseconds(100));
        continue;
      }
      if (xact_status == "committed") {
        status = absl::OkStatus();
      } else if (xact_status == "aborted") {
        status = DomainError(absl::StatusCode::kUnavailable, "DATABASE_UNAVAILABLE",
                             "connection lost during commit; the batch did not commit");
      } else if (xact_status == "in progress") {
        absl::SleepFor(absl::Milliseconds(20));
        continue;
      }
      break;
    }
    Log(LogLevel::kWarning, "ledger batch commit outcome resolved",
        {{"txid", txid}, {"committed", status.ok()}});
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    batch[i]->result = status.ok() ? std::move(decided[i]) : absl::StatusOr<TransferResult>(status);
  }
}

}  // namespace vch::storage
