#include "server/ledger_service.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/errors.h"
#include "base/status_macros.h"
#include "policy/ledger_access.h"
#include "policy/ledger_engine.h"
#include "server/convert.h"
#include "server/rpc.h"
#include "storage/ledger_store.h"

namespace vch::server {
namespace {

namespace v1 = ::vch::v1;

// The wire enum is the stored kind; keep them in lock step.
static_assert(static_cast<int>(policy::TransferKind::kFund) == v1::TRANSFER_KIND_FUND);
static_assert(static_cast<int>(policy::TransferKind::kAward) == v1::TRANSFER_KIND_AWARD);
static_assert(static_cast<int>(policy::TransferKind::kHold) == v1::TRANSFER_KIND_HOLD);
static_assert(static_cast<int>(policy::TransferKind::kPost) == v1::TRANSFER_KIND_POST);
static_assert(static_cast<int>(policy::TransferKind::kVoid) == v1::TRANSFER_KIND_VOID);
static_assert(static_cast<int>(policy::TransferKind::kExpire) == v1::TRANSFER_KIND_EXPIRE);
static_assert(static_cast<int>(policy::TransferKind::kPayout) == v1::TRANSFER_KIND_PAYOUT);
static_assert(static_cast<int>(policy::TransferKind::kClawback) == v1::TRANSFER_KIND_CLAWBACK);
static_assert(static_cast<int>(policy::TransferKind::kReversal) == v1::TRANSFER_KIND_REVERSAL);

v1::AccountKind ToAccountKind(absl::string_view kind) {
  if (kind == "TREASURY") return v1::ACCOUNT_KIND_TREASURY;
  if (kind == "BUDGET") return v1::ACCOUNT_KIND_BUDGET;
  if (kind == "WALLET") return v1::ACCOUNT_KIND_WALLET;
  if (kind == "RECEIVABLE") return v1::ACCOUNT_KIND_RECEIVABLE;
  if (kind == "PAID") return v1::ACCOUNT_KIND_PAID;
  if (kind == "LAPSED") return v1::ACCOUNT_KIND_LAPSED;
  if (kind == "PAYABLE") return v1::ACCOUNT_KIND_PAYABLE;
  return v1::ACCOUNT_KIND_UNSPECIFIED;  // the schema's CHECK admits no other kind
}

void ToBalance(const policy::AccountState& state, v1::Balance* out) {
  out->set_debits_pending_fen(state.debits_pending_fen);
  out->set_debits_posted_fen(state.debits_posted_fen);
  out->set_credits_pending_fen(state.credits_pending_fen);
  out->set_credits_posted_fen(state.credits_posted_fen);
  out->set_available_fen(state.AvailableFen());
}

void ToAccount(const storage::AccountRecord& record, v1::Account* out) {
  out->set_id(record.state.id);
  out->set_name(absl::StrCat("accounts/", record.state.id));
  out->set_program(record.program_id);
  out->set_issuer(record.issuer_id);
  out->set_kind(ToAccountKind(record.kind));
  out->set_owner(record.owner);
  out->set_no_overdraft((record.state.flags & policy::kAccountNoOverdraft) != 0);
  ToBalance(record.state, out->mutable_balance());
  ToTimestamp(record.created_at, out->mutable_create_time());
}

void ToTransfer(const storage::TransferRecord& record, v1::Transfer* out) {
  out->set_id(record.id);
  out->set_program(record.program_id);
  out->set_kind(static_cast<v1::TransferKind>(record.kind));
  out->set_debit_account_id(record.debit_account_id);
  out->set_credit_account_id(record.credit_account_id);
  out->set_amount_fen(record.amount_fen);
  out->set_released_fen(record.released_fen);
  out->set_pending_id(record.pending_id);
  if (record.expires_at) ToTimestamp(*record.expires_at, out->mutable_expire_time());
  ToTimestamp(record.created_at, out->mutable_create_time());
  out->set_request_id(record.request_id);
  out->set_metadata_json(record.metadata_json);
  ToBalance(record.debit_after, out->mutable_debit_balance_after());
  ToBalance(record.credit_after, out->mutable_credit_balance_after());
}

// --- Page tokens. ---
//
// A token is web-safe base64 of "v1:<last id>:<filters>": the id of the last transfer returned
// (the next page lists ids above it) and the filters it was issued for, so that a token replayed
// with other filters is refused instead of silently continuing an unrelated listing. It grants
// nothing: every page re-checks the caller's scope.

std::string TokenFilters(const v1::ListTransfersRequest& request) {
  auto bound = [](bool set, const google::protobuf::Timestamp& t) {
    return set ? absl::StrCat(t.seconds(), ".", t.nanos()) : std::string("-");
  };
  const v1::TimeRange& range = request.time_range();
  return absl::StrCat(request.account_id(), ",", static_cast<int>(request.kind()), ",",
                      bound(range.has_start_time(), range.start_time()), ",",
                      bound(range.has_end_time(), range.end_time()));
}

// The cursor in `request.page_token()` (0 for the first page), or a field violation.
std::optional<int64_t> LastIdFromPageToken(const v1::ListTransfersRequest& request,
                                           ViolationCollector& violations) {
  std::optional<std::string> cursor =
      DecodePageToken(request.page_token(), TokenFilters(request), violations);
  if (!cursor) return std::nullopt;
  if (cursor->empty()) return 0;
  int64_t last_id = 0;
  if (!absl::SimpleAtoi(*cursor, &last_id) || last_id <= 0) {
    violations.Add("page_token", "is not a page token returned by ListTransfers");
    return std::nullopt;
  }
  return last_id;
}

// --- Handler bodies (run inside HandleRpc). ---

absl::Status GetAccountBody(storage::PgPool& pool, const CallContext& call,
                            const v1::GetAccountRequest& request,
                            v1::GetAccountResponse* response) {
  ViolationCollector violations;
  if (request.account_id() <= 0) violations.Add("account_id", "must be a positive account id");
  VCH_RETURN_IF_ERROR(violations.Finish());
  VCH_ASSIGN_OR_RETURN(
      storage::AccountRecord account,
      storage::GetAccount(pool, request.account_id(), policy::LedgerReadScopeFor(call.principal)));
  ToAccount(account, response->mutable_account());
  return absl::OkStatus();
}

absl::Status ListTransfersBody(storage::PgPool& pool, const CallContext& call,
                               const v1::ListTransfersRequest& request,
                               v1::ListTransfersResponse* response) {
  const policy::LedgerReadScope scope = policy::LedgerReadScopeFor(call.principal);
  ViolationCollector violations;
  if (request.account_id() < 0) {
    violations.Add("account_id", "must be a positive account id");
  } else if (request.account_id() == 0 && !scope.all) {
    violations.Add("account_id", "required: name one of your accounts");
  }
  if (!v1::TransferKind_IsValid(request.kind())) violations.Add("kind", "unknown transfer kind");
  const v1::TimeRange& range = request.time_range();
  bool range_valid = true;
  if (range.has_start_time() && !IsValidTimestamp(range.start_time())) {
    violations.Add("time_range.start_time", "not a valid timestamp");
    range_valid = false;
  }
  if (range.has_end_time() && !IsValidTimestamp(range.end_time())) {
    violations.Add("time_range.end_time", "not a valid timestamp");
    range_valid = false;
  }
  const absl::Time start = range.has_start_time() && range_valid ? FromTimestamp(range.start_time())
                                                                 : absl::InfinitePast();
  const absl::Time end = range.has_end_time() && range_valid ? FromTimestamp(range.end_time())
                                                             : absl::InfiniteFuture();
  if (range_valid && end <= start) {
    violations.Add("time_range", "end_time must be after start_time");
  }
  const int page_size = PageSize(request.page_size(), violations);
  const std::optional<int64_t> after_id = LastIdFromPageToken(request, violations);
  VCH_RETURN_IF_ERROR(violations.Finish());

  storage::TransferFilter filter;
  filter.account_id = request.account_id();
  if (request.kind() != v1::TRANSFER_KIND_UNSPECIFIED) {
    filter.kind = static_cast<policy::TransferKind>(request.kind());
  }
  filter.start = start;
  filter.end = end;
  filter.after_id = *after_id;
  // One row beyond the page tells exactly whether another page follows, so the last page never
  // carries a token that leads to an empty page.
  filter.page_size = page_size + 1;
  VCH_ASSIGN_OR_RETURN(std::vector<storage::TransferRecord> transfers,
                       storage::ListTransfers(pool, filter, scope));
  const bool more = static_cast<int>(transfers.size()) > page_size;
  if (more) transfers.resize(page_size);
  for (const storage::TransferRecord& transfer : transfers) {
    ToTransfer(transfer, response->add_transfers());
  }
  if (more) {
    response->set_next_page_token(
        EncodePageToken(absl::StrCat(transfers.back().id), TokenFilters(request)));
  }
  return absl::OkStatus();
}

absl::Status GetBalanceAtBody(storage::PgPool& pool, const CallContext& call,
                              const v1::GetBalanceAtRequest& request,
                              v1::GetBalanceAtResponse* response) {
  ViolationCollector violations;
  if (request.account_id() <= 0) violations.Add("account_id", "must be a positive account id");
  if (!request.has_time()) {
    violations.Add("time", "required");
  } else if (!IsValidTimestamp(request.time())) {
    violations.Add("time", "not a valid timestamp");
  }
  VCH_RETURN_IF_ERROR(violations.Finish());
  VCH_ASSIGN_OR_RETURN(
      storage::BalanceAt balance,
      storage::GetBalanceAt(pool, request.account_id(), FromTimestamp(request.time()),
                            policy::LedgerReadScopeFor(call.principal)));
  ToBalance(balance.balance, response->mutable_balance());
  response->set_last_transfer_id(balance.last_transfer_id);
  return absl::OkStatus();
}

absl::Status VerifyLedgerBody(storage::PgPool& pool, const CallContext& call,
                              v1::VerifyLedgerResponse* response) {
  // Verification reads every account, so it is refused outright rather than scoped.
  if (!policy::MayVerifyLedger(call.principal)) {
    return DomainError(absl::StatusCode::kPermissionDenied, "PERMISSION_DENIED",
                       "verifying the ledger requires PLATFORM_ADMIN or AUDITOR");
  }
  VCH_ASSIGN_OR_RETURN(storage::LedgerVerification report, storage::VerifyLedger(pool));
  response->set_ok(report.violations.empty());
  response->set_accounts(report.accounts);
  response->set_transfers(report.transfers);
  response->set_holds(report.holds);
  for (std::string& violation : report.violations) response->add_violations(std::move(violation));
  return absl::OkStatus();
}

}  // namespace

grpc::Status LedgerServiceImpl::GetAccount(grpc::ServerContext* context,
                                           const v1::GetAccountRequest* request,
                                           v1::GetAccountResponse* response) {
  return HandleRpc(context, "LedgerService.GetAccount", [&](const CallContext& call) {
    return GetAccountBody(pool_, call, *request, response);
  });
}

grpc::Status LedgerServiceImpl::ListTransfers(grpc::ServerContext* context,
                                              const v1::ListTransfersRequest* request,
                                              v1::ListTransfersResponse* response) {
  return HandleRpc(context, "LedgerService.ListTransfers", [&](const CallContext& call) {
    return ListTransfersBody(pool_, call, *request, response);
  });
}

grpc::Status LedgerServiceImpl::GetBalanceAt(grpc::ServerContext* context,
                                             const v1::GetBalanceAtRequest* request,
                                             v1::GetBalanceAtResponse* response) {
  return HandleRpc(context, "LedgerService.GetBalanceAt", [&](const CallContext& call) {
    return GetBalanceAtBody(pool_, call, *request, response);
  });
}

grpc::Status LedgerServiceImpl::VerifyLedger(grpc::ServerContext* context,
                                             const v1::VerifyLedgerRequest* /*request*/,
                                             v1::VerifyLedgerResponse* response) {
  return HandleRpc(context, "LedgerService.VerifyLedger", [&](const CallContext& call) {
    return VerifyLedgerBody(pool_, call, response);
  });
}

}  // namespace vch::server
