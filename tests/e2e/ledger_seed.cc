// ledger_seed: writes a small, known ledger into a database for tests/e2e/ledger_test.py through
// the real storage layer (storage::EnsureAccount and storage::LedgerWriter), because the ledger
// tables are append-only with balances derived from transfers, and no RPC creates transfers yet.
//
// Usage: ledger_seed --dsn DSN
// Prints one JSON object: the account ids and the transfer ids. Exit 0 on success, 1 otherwise.
#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "policy/ledger_engine.h"
#include "storage/ledger_store.h"
#include "storage/ledger_writer.h"
#include "storage/pg_pool.h"

namespace {

using vch::policy::TransferKind;
using vch::policy::TransferRequest;

constexpr char kProgram[] = "p1";
constexpr char kIssuer[] = "shanghai";
constexpr char kEnterprise[] = "91310000MA1FL4XY2K";
constexpr char kDatacenter[] = "dc-west-1";

int Fail(const std::string& what, const absl::Status& status) {
  std::fprintf(stderr, "ledger_seed: %s: %s\n", what.c_str(), status.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dsn;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--dsn" && i + 1 < argc) {
      dsn = argv[++i];
    } else {
      std::fprintf(stderr, "usage: ledger_seed --dsn DSN\n");
      return 2;
    }
  }
  if (dsn.empty()) {
    std::fprintf(stderr, "usage: ledger_seed --dsn DSN\n");
    return 2;
  }

  absl::StatusOr<std::unique_ptr<vch::storage::PgPool>> pool =
      vch::storage::PgPool::Create({.dsn = dsn, .size = 2, .application_name = "ledger_seed"});
  if (!pool.ok()) return Fail("connect", pool.status());

  struct Wanted {
    const char* label;
    const char* kind;
    const char* owner;
    bool no_overdraft;
  };
  constexpr Wanted kAccounts[] = {
      {"treasury", "TREASURY", "", false},
      {"budget", "BUDGET", "", true},
      {"wallet", "WALLET", kEnterprise, true},
      {"receivable", "RECEIVABLE", kDatacenter, false},
  };
  int64_t ids[4] = {};
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<vch::storage::AccountRecord> account =
        vch::storage::EnsureAccount(**pool, {.program_id = kProgram,
                                             .issuer_id = kIssuer,
                                             .kind = kAccounts[i].kind,
                                             .owner = kAccounts[i].owner,
                                             .no_overdraft = kAccounts[i].no_overdraft});
    if (!account.ok()) return Fail(absl::StrCat("account ", kAccounts[i].label), account.status());
    ids[i] = account->state.id;
  }
  const int64_t treasury = ids[0], budget = ids[1], wallet = ids[2], receivable = ids[3];

  // Expiry off: the seeded hold never expires and the test expects exactly these transfers.
  vch::storage::LedgerWriter writer(**pool, {.expiry_interval = absl::ZeroDuration()});
  auto submit = [&](const char* request_id, TransferRequest transfer) -> absl::StatusOr<int64_t> {
    absl::StatusOr<vch::storage::TransferResult> result = writer.Submit(
        {.request_scope = "e2e.seed", .request_id = request_id, .transfer = transfer});
    if (!result.ok()) return result.status();
    return result->outcome.transfer_id;
  };
  absl::StatusOr<int64_t> fund = submit("fund", {.kind = TransferKind::kFund,
                                                 .debit_account_id = treasury,
                                                 .credit_account_id = budget,
                                                 .amount_fen = 1000000});
  if (!fund.ok()) return Fail("FUND", fund.status());
  absl::StatusOr<int64_t> award = submit("award", {.kind = TransferKind::kAward,
                                                   .debit_account_id = budget,
                                                   .credit_account_id = wallet,
                                                   .amount_fen = 300000});
  if (!award.ok()) return Fail("AWARD", award.status());
  absl::StatusOr<int64_t> hold = submit("hold", {.kind = TransferKind::kHold,
                                                 .debit_account_id = wallet,
                                                 .credit_account_id = receivable,
                                                 .amount_fen = 50000});
  if (!hold.ok()) return Fail("HOLD", hold.status());
  absl::StatusOr<int64_t> post = submit(
      "post",
      {.kind = TransferKind::kPost, .amount_fen = 20000, .pending_id = *hold, .keep_open = false});
  if (!post.ok()) return Fail("POST", post.status());

  std::printf(
      "{\"program\":\"%s\",\"issuer\":\"%s\",\"enterprise\":\"%s\",\"datacenter\":\"%s\","
      "\"accounts\":{\"treasury\":%lld,\"budget\":%lld,\"wallet\":%lld,\"receivable\":%lld},"
      "\"transfers\":{\"fund\":%lld,\"award\":%lld,\"hold\":%lld,\"post\":%lld}}\n",
      kProgram, kIssuer, kEnterprise, kDatacenter, static_cast<long long>(treasury),
      static_cast<long long>(budget), static_cast<long long>(wallet),
      static_cast<long long>(receivable), static_cast<long long>(*fund),
      static_cast<long long>(*award), static_cast<long long>(*hold), static_cast<long long>(*post));
  return 0;
}
