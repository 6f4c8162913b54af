// The batching ledger writer against a real PostgreSQL: exact balances, idempotency (also under
// concurrent duplicates), hold expiry exactly once, and a randomized model test whose every
// outcome is predicted by a simple in-memory ledger, followed by the verifier.
#include "storage/ledger_writer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <pqxx/pqxx>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "storage/ledger_store.h"
#include "tests/testing/test_db.h"

namespace vch::storage {
namespace {

using policy::TransferKind;
using policy::TransferReason;
using policy::TransferRequest;
using ::vch::testing::CreateTestDatabase;
using ::vch::testing::IsOk;
using ::vch::testing::StatusIs;

class LedgerWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = CreateTestDatabase();
    pool_ = std::move(*PgPool::Create({.dsn = dsn_, .size = 4}));
  }

  // Starts the writer with a controllable clock and no background expiry.
  void StartWriter() {
    writer_ = std::make_unique<LedgerWriter>(
        *pool_, LedgerWriterOptions{.expiry_interval = absl::ZeroDuration(), .clock = [this] {
                                      return absl::Now() + clock_offset_.load() * absl::Seconds(1);
                                    }});
  }

  int64_t Account(const std::string& kind, const std::string& owner, bool no_overdraft,
                  const std::string& program = "p1") {
    absl::StatusOr<AccountRecord> a = EnsureAccount(*pool_, {.program_id = program,
                                                             .issuer_id = "shanghai",
                                                             .kind = kind,
                                                             .owner = owner,
                                                             .no_overdraft = no_overdraft});
    EXPECT_TRUE(a.ok()) << a.status();
    return a->state.id;
  }

  policy::AccountState Balance(int64_t id) {
    absl::StatusOr<AccountRecord> a = GetAccount(*pool_, id, {.all = true});
    EXPECT_TRUE(a.ok()) << a.status();
    return a->state;
  }

  absl::StatusOr<TransferResult> Submit(const std::string& key, TransferRequest t) {
    return writer_->Submit({.request_scope = "test", .request_id = key, .transfer = t});
  }

  void ExpectVerified() {
    absl::StatusOr<LedgerVerification> v = VerifyLedger(*pool_);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_TRUE(v->violations.empty()) << v->violations.front();
  }

  std::string dsn_;
  std::unique_ptr<PgPool> pool_;
  std::unique_ptr<LedgerWriter> writer_;
  std::atomic<int64_t> clock_offset_{0};  // seconds added to the writer's clock
};

TransferRequest Move(TransferKind kind, int64_t debit, int64_t credit, int64_t amount) {
  return {
      .kind = kind, .debit_account_id = debit, .credit_account_id = credit, .amount_fen = amount};
}

TEST_F(LedgerWriterTest, FundAwardHoldPartialPostWithExactBalances) {
  StartWriter();
  const int64_t treasury = Account("TREASURY", "", false);
  const int64_t budget = Account("BUDGET", "", true);
  const int64_t wallet = Account("WALLET", "91310000MA1FL4XY2K", true);
  const int64_t receivable = Account("RECEIVABLE", "dc-west-1", false);
  ASSERT_THAT(Submit("fund", Move(TransferKind::kFund, treasury, budget, 1'000'000)), IsOk());
  ASSERT_THAT(Submit("award", Move(TransferKind::kAward, budget, wallet, 300'000)), IsOk());
  absl::StatusOr<TransferResult> hold = Submit("hold", {.kind = TransferKind::kHold,
                                                        .debit_account_id = wallet,
                                                        .credit_account_id = receivable,
                                                        .amount_fen = 50'000});
  ASSERT_THAT(hold, IsOk());
  EXPECT_EQ(hold->outcome.debit_after.debits_pending_fen, 50'000);
  EXPECT_EQ(Balance(wallet).AvailableFen(), 250'000);
  absl::StatusOr<TransferResult> post = Submit(
      "post",
      {.kind = TransferKind::kPost, .amount_fen = 20'000, .pending_id = hold->outcome.transfer_id});
  ASSERT_THAT(post, IsOk());
  EXPECT_EQ(post->outcome.released_fen, 30'000);
  const policy::AccountState w = Balance(wallet);
  EXPECT_EQ(w.credits_posted_fen, 300'000);
  EXPECT_EQ(w.debits_posted_fen, 20'000);
  EXPECT_EQ(w.debits_pending_fen, 0);
  EXPECT_EQ(Balance(receivable).credits_posted_fen, 20'000);
  EXPECT_EQ(Balance(receivable).credits_pending_fen, 0);
  EXPECT_EQ(Balance(treasury).debits_posted_fen, 1'000'000);
  // The hold is resolved: a second post and a void both fail, and change nothing.
  EXPECT_THAT(
      Submit("post2", {.kind = TransferKind::kPost, .pending_id = hold->outcome.transfer_id}),
      StatusIs(absl::StatusCode::kFailedPrecondition, "HOLD_ALREADY_RESOLVED"));
  EXPECT_THAT(
      Submit("void", {.kind = TransferKind::kVoid, .pending_id = hold->outcome.transfer_id}),
      StatusIs(absl::StatusCode::kFailedPrecondition, "HOLD_ALREADY_RESOLVED"));
  EXPECT_EQ(Balance(wallet), w);
  ExpectVerified();
}

TEST_F(LedgerWriterTest, RejectionsCarryTheirReasonAndWriteNothing) {
  StartWriter();
  const int64_t budget = Account("BUDGET", "", true);
  const int64_t wallet = Account("WALLET", "91310000MA1FL4XY2K", true);
  EXPECT_THAT(Submit("a", Move(TransferKind::kAward, budget, wallet, 1)),
              StatusIs(absl::StatusCode::kFailedPrecondition, "INSUFFICIENT_FUNDS"));
  EXPECT_THAT(Submit("b", Move(TransferKind::kAward, budget, 999999, 1)),
              StatusIs(absl::StatusCode::kNotFound, "ACCOUNT_NOT_FOUND"));
  EXPECT_THAT(Submit("c", Move(TransferKind::kAward, budget, wallet, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID"));
  EXPECT_THAT(Submit("d", {.kind = TransferKind::kVoid, .pending_id = 424242}),
              StatusIs(absl::StatusCode::kNotFound, "HOLD_NOT_FOUND"));
  EXPECT_THAT(writer_->Submit({.request_scope = "test",
                               .request_id = "",
                               .transfer = Move(TransferKind::kFund, budget, wallet, 1)}),
              StatusIs(absl::StatusCode::kInvalidArgument, "INVALID_ARGUMENT"));
  pqxx::connection c(dsn_);
  pqxx::nontransaction tx(c);
  EXPECT_EQ(tx.exec("SELECT count(*) FROM ledger_transfers")[0][0].as<int>(), 0);
  EXPECT_EQ(tx.exec("SELECT count(*) FROM idempotency_keys")[0][0].as<int>(), 0);
}

TEST_F(LedgerWriterTest, SameKeyReplaysDifferentRequestIsRefusedFailureConsumesNothing) {
  StartWriter();
  const int64_t treasury = Account("TREASURY", "", false);
  const int64_t budget = Account("BUDGET", "", true);
  const int64_t wallet = Account("WALLET", "91310000MA1FL4XY2K", true);
  // A rejected transfer does not consume its key: the same key works once funds arrive.
  EXPECT_THAT(Submit("k1", Move(TransferKind::kAward, budget, wallet, 100)),
              StatusIs(absl::StatusCode::kFailedPrecondition, "INSUFFICIENT_FUNDS"));
  ASSERT_THAT(Submit("fund", Move(TransferKind::kFund, treasury, budget, 1000)), IsOk());
  absl::StatusOr<TransferResult> first =
      Submit("k1", Move(TransferKind::kAward, budget, wallet, 100));
  ASSERT_THAT(first, IsOk());
  EXPECT_FALSE(first->replayed);
  absl::StatusOr<TransferResult> again =
      Submit("k1", Move(TransferKind::kAward, budget, wallet, 100));
  ASSERT_THAT(again, IsOk());
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(again->outcome.transfer_id, first->outcome.transfer_id);
  EXPECT_EQ(again->outcome.credit_after, first->outcome.credit_after);
  EXPECT_THAT(Submit("k1", Move(TransferKind::kAward, budget, wallet, 101)),
              StatusIs(absl::StatusCode::kAlreadyExists, "IDEMPOTENCY_KEY_REUSED"));
  // Keys are per scope.
  EXPECT_THAT(writer_->Submit({.request_scope = "other",
                               .request_id = "k1",
                               .transfer = Move(TransferKind::kAward, budget, wallet, 100)}),
              IsOk());
  EXPECT_EQ(Balance(wallet).credits_posted_fen, 200);
  ExpectVerified();
}

TEST_F(LedgerWriterTest, ConcurrentDuplicatesTakeEffectOnce) {
  StartWriter();
  const int64_t treasury = Account("TREASURY", "", false);
  const int64_t budget = Account("BUDGET", "", true);
  constexpr int kThreads = 16;
  constexpr int kKeys = 20;
  std::vector<std::vector<absl::StatusOr<TransferResult>>> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < kKeys; ++k) {
        results[t].push_back(
            Submit(absl::StrCat("dup-", k), Move(TransferKind::kFund, treasury, budget, 10 + k)));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int k = 0; k < kKeys; ++k) {
    int fresh = 0;
    for (int t = 0; t < kThreads; ++t) {
      ASSERT_THAT(results[t][k], IsOk());
      EXPECT_EQ(results[t][k]->outcome.transfer_id, results[0][k]->outcome.transfer_id);
      fresh += results[t][k]->replayed ? 0 : 1;
    }
    EXPECT_EQ(fresh, 1) << "key " << k;
  }
  int64_t expected = 0;
  for (int k = 0; k < kKeys; ++k) expected += 10 + k;
  EXPECT_EQ(Balance(budget).credits_posted_fen, expected);
  // Two writers (two vchd replicas) on one database also apply each key once.
  LedgerWriter second(*pool_, {.expiry_interval = absl::ZeroDuration()});
  std::vector<std::thread> racers;
  std::atomic<int> fresh{0};
  for (int t = 0; t < 8; ++t) {
    racers.emplace_back([&, t] {
      LedgerWriter& w = t % 2 == 0 ? *writer_ : second;
      absl::StatusOr<TransferResult> r =
          w.Submit({.request_scope = "test",
                    .request_id = "replicas",
                    .transfer = Move(TransferKind::kFund, treasury, budget, 7)});
      ASSERT_THAT(r, IsOk());
      if (!r->replayed) fresh.fetch_add(1);
    });
  }
  for (std::thread& t : racers) t.join();
  EXPECT_EQ(fresh.load(), 1);
  EXPECT_EQ(Balance(budget).credits_posted_fen, expected + 7);
  ExpectVerified();
}

TEST_F(LedgerWriterTest, HoldsExpireExactlyOnceAndThenRefusePosts) {
  StartWriter();
  const int64_t treasury = Account("TREASURY", "", false);
  const int64_t wallet = Account("WALLET", "91310000MA1FL4XY2K", true);
  const int64_t receivable = Account("RECEIVABLE", "dc-west-1", false);
  ASSERT_THAT(Submit("fund", Move(TransferKind::kFund, treasury, wallet, 10'000)), IsOk());
  const int64_t expires = absl::ToUnixMicros(absl::Now() + absl::Minutes(30));
  std::vector<int64_t> holds;
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<TransferResult> h =
        Submit(absl::StrCat("hold-", i), {.kind = TransferKind::kHold,
                                          .debit_account_id = wallet,
                                          .credit_account_id = receivable,
                                          .amount_fen = 1000,
                                          .expires_at_us = expires});
    ASSERT_THAT(h, IsOk());
    holds.push_back(h->outcome.transfer_id);
  }
  ASSERT_THAT(Submit("void-0", {.kind = TransferKind::kVoid, .pending_id = holds[0]}), IsOk());
  EXPECT_EQ(*writer_->ExpireDueHolds(), 0);  // not due yet
  EXPECT_EQ(Balance(wallet).debits_pending_fen, 4000);
  clock_offset_ = 31 * 60;
  EXPECT_THAT(Submit("late-post", {.kind = TransferKind::kPost, .pending_id = holds[1]}),
              StatusIs(absl::StatusCode::kFailedPrecondition, "HOLD_EXPIRED"));
  // Concurrent expiry runs (two replicas' background loops) expire each hold once.
  std::atomic<int64_t> expired{0};
  std::vector<std::thread> runs;
  for (int i = 0; i < 3; ++i) {
    runs.emplace_back([&] { expired.fetch_add(*writer_->ExpireDueHolds()); });
  }
  for (std::thread& t : runs) t.join();
  EXPECT_EQ(expired.load(), 4);
  EXPECT_EQ(*writer_->ExpireDueHolds(), 0);
  const policy::AccountState w = Balance(wallet);
  EXPECT_EQ(w.debits_pending_fen, 0);
  EXPECT_EQ(w.debits_posted_fen, 0);
  EXPECT_EQ(w.AvailableFen(), 10'000);
  pqxx::connection c(dsn_);
  pqxx::nontransaction tx(c);
  EXPECT_EQ(tx.exec("SELECT count(*) FROM ledger_transfers WHERE kind = 6")[0][0].as<int>(), 4);
  ExpectVerified();
}

TEST_F(LedgerWriterTest, BalanceHistoryAnswersAsOfAnyTransfer) {
  StartWriter();
  const int64_t treasury = Account("TREASURY", "", false);
  const int64_t budget = Account("BUDGET", "", true);
  const absl::Time before = absl::Now() - absl::Seconds(1);
  std::vector<absl::Time> after;
  for (int i = 1; i <= 3; ++i) {
    clock_offset_ = i * 10;
    ASSERT_THAT(Submit(absl::StrCat("f", i), Move(TransferKind::kFund, treasury, budget, 100 * i)),
                IsOk());
    after.push_back(absl::Now() + absl::Seconds(i * 10));
  }
  EXPECT_EQ(GetBalanceAt(*pool_, budget, before, {.all = true})->balance.credits_posted_fen, 0);
  EXPECT_EQ(GetBalanceAt(*pool_, budget, after[0], {.all = true})->balance.credits_posted_fen, 100);
  EXPECT_EQ(GetBalanceAt(*pool_, budget, after[1], {.all = true})->balance.credits_posted_fen, 300);
  EXPECT_EQ(GetBalanceAt(*pool_, treasury, after[2], {.all = true})->balance.debits_posted_fen,
            600);
  absl::StatusOr<std::vector<TransferRecord>> statement =
      ListTransfers(*pool_, {.account_id = budget, .page_size = 2}, {.all = true});
  ASSERT_THAT(statement, IsOk());
  ASSERT_EQ(statement->size(), 2u);
  EXPECT_EQ((*statement)[1].credit_after.credits_posted_fen, 300);
  absl::StatusOr<std::vector<TransferRecord>> rest =
      ListTransfers(*pool_, {.account_id = budget, .after_id = (*statement)[1].id, .page_size = 2},
                    {.all = true});
  ASSERT_EQ(rest->size(), 1u);
  EXPECT_EQ((*rest)[0].amount_fen, 300);
  // Another issuer's admin cannot see the account at all.
  EXPECT_THAT(GetBalanceAt(*pool_, budget, after[2], {.issuer = "chengdu"}),
              StatusIs(absl::StatusCode::kNotFound, "ACCOUNT_NOT_FOUND"));
}

TEST_F(LedgerWriterTest, ConnectionLostBeforeCommitIsResolvedAsNotCommitted) {
  const int64_t treasury = Account("TREASURY", "", false);
  const int64_t budget = Account("BUDGET", "", true);
  std::atomic<bool> kill_next{true};
  writer_ = std::make_unique<LedgerWriter>(
      *pool_, LedgerWriterOptions{.expiry_interval = absl::ZeroDuration(),
                                  .before_commit_for_test = [&](int backend_pid) {
                                    if (!kill_next.exchange(false)) return;
                                    pqxx::connection admin(dsn_);
                                    pqxx::nontransaction tx(admin);
                                    tx.exec_params("SELECT pg_terminate_backend($1)", backend_pid);
                                  }});
  // The batch's connection dies before COMMIT: the writer asks the database what became of the
  // transaction (aborted) instead of guessing, and reports that nothing was committed.
  EXPECT_THAT(Submit("k", Move(TransferKind::kFund, treasury, budget, 500)),
              StatusIs(absl::StatusCode::kUnavailable, "DATABASE_UNAVAILABLE"));
  EXPECT_EQ(Balance(budget).credits_posted_fen, 0);
  // The same request with the same key then takes effect exactly once.
  absl::StatusOr<TransferResult> retry =
      Submit("k", Move(TransferKind::kFund, treasury, budget, 500));
  ASSERT_THAT(retry, IsOk());
  EXPECT_FALSE(retry->replayed);
  EXPECT_EQ(Balance(budget).credits_posted_fen, 500);
  ExpectVerified();
}

// --- Randomized model test. ---

// A deliberately simple ledger: what every operation should do, written independently of
// policy/ledger_engine.cc.
struct ModelAccount {
  bool no_overdraft = false;
  int64_t dp = 0, dpo = 0, cp = 0, cpo = 0;
};
struct ModelHold {
  int64_t debit, credit, amount, posted = 0, released = 0, expires_us = 0;
  bool resolved = false;
};
struct Model {
  std::map<int64_t, ModelAccount> accounts;
  std::map<int64_t, ModelHold> holds;

  // Applies `t` and returns the reason it should get.
  std::string Apply(const TransferRequest& t, int64_t id, int64_t now_us) {
    if (t.kind == TransferKind::kPost || t.kind == TransferKind::kVoid ||
        (t.kind == TransferKind::kExpire && t.pending_id != 0)) {
      auto it = holds.find(t.pending_id);
      if (it == holds.end()) return "HOLD_NOT_FOUND";
      ModelHold& h = it->second;
      if (h.resolved) return "HOLD_ALREADY_RESOLVED";
      const bool expired = h.expires_us != 0 && now_us >= h.expires_us;
      const int64_t remaining = h.amount - h.posted - h.released;
      ModelAccount& d = accounts[h.debit];
      ModelAccount& c = accounts[h.credit];
      if (t.kind == TransferKind::kPost) {
        if (expired) return "HOLD_EXPIRED";
        int64_t x = t.amount_fen == 0 ? remaining : t.amount_fen;
        if (x > remaining) return "AMOUNT_EXCEEDS_HOLD";
        int64_t release = t.keep_open ? 0 : remaining - x;
        d.dp -= x + release, c.cp -= x + release, d.dpo += x, c.cpo += x;
        h.posted += x, h.released += release;
      } else {
        if (t.kind == TransferKind::kExpire && !expired) return "HOLD_NOT_EXPIRED";
        d.dp -= remaining, c.cp -= remaining, h.released += remaining;
      }
      h.resolved = h.posted + h.released == h.amount;
      return "OK";
    }
    if (t.kind == TransferKind::kHold && t.expires_at_us != 0 && t.expires_at_us <= now_us) {
      return "EXPIRY_INVALID";
    }
    if (t.amount_fen <= 0) return "AMOUNT_INVALID";
    ModelAccount& d = accounts[t.debit_account_id];
    ModelAccount& c = accounts[t.credit_account_id];
    if (d.no_overdraft && d.cpo - d.dpo - d.dp < t.amount_fen) return "INSUFFICIENT_FUNDS";
    if (t.kind == TransferKind::kHold) {
      d.dp += t.amount_fen, c.cp += t.amount_fen;
      holds[id] = {t.debit_account_id, t.credit_account_id, t.amount_fen, 0, 0, t.expires_at_us};
    } else {
      d.dpo += t.amount_fen, c.cpo += t.amount_fen;
    }
    return "OK";
  }
};

TEST_F(LedgerWriterTest, RandomizedOperationsMatchASimpleModel) {
  StartWriter();
  const uint64_t seed = ::vch::testing::TestSeed();
  std::mt19937_64 rng(seed);
  Model model;
  std::vector<int64_t> ids;
  ids.push_back(Account("TREASURY", "", false));
  model.accounts[ids[0]] = {false};
  for (int i = 0; i < 8; ++i) {
    const bool no_overdraft = i % 4 != 3;
    ids.push_back(Account("WALLET", absl::StrCat("e", i), no_overdraft));
    model.accounts[ids.back()] = {no_overdraft};
  }
  std::vector<int64_t> hold_ids;
  auto random_request = [&](std::mt19937_64& r) {
    std::uniform_int_distribution<int> op(0, 9);
    auto pick = [&]() { return ids[std::uniform_int_distribution<size_t>(0, ids.size() - 1)(r)]; };
    TransferRequest t;
    int o = op(r);
    if (o <= 2) {
      t = Move(TransferKind::kFund, ids[0], pick(), std::uniform_int_distribution<int>(1, 500)(r));
    } else if (o <= 4) {
      t = Move(TransferKind::kAward, pick(), pick(), std::uniform_int_distribution<int>(0, 300)(r));
    } else if (o <= 6) {
      t = {.kind = TransferKind::kHold,
           .debit_account_id = pick(),
           .credit_account_id = pick(),
           .amount_fen = std::uniform_int_distribution<int>(1, 200)(r)};
      if (r() % 2) t.expires_at_us = absl::ToUnixMicros(absl::Now() + absl::Minutes(r() % 3 + 1));
    } else if (!hold_ids.empty()) {
      t.pending_id = hold_ids[std::uniform_int_distribution<size_t>(0, hold_ids.size() - 1)(r)];
      t.kind = o == 9 ? TransferKind::kVoid : TransferKind::kPost;
      t.amount_fen = o == 9 ? 0 : std::uniform_int_distribution<int>(0, 150)(r);
      t.keep_open = r() % 2;
    } else {
      t = Move(TransferKind::kFund, ids[0], pick(), 1);
    }
    return t;
  };

  // Phase 1: one submitter; the model predicts every single outcome.
  for (int step = 0; step < 1000; ++step) {
    TransferRequest t = random_request(rng);
    if (t.debit_account_id == t.credit_account_id && t.pending_id == 0) continue;
    // Holds expire 60, 120 or 180 s after creation; moving the clock 90 s keeps every expiry at
    // least 30 s away from any reading, so the model and the engine agree on "expired".
    if (step == 600) clock_offset_ = 90;
    absl::StatusOr<TransferResult> r = Submit(absl::StrCat("s", step), t);
    const int64_t now_us = absl::ToUnixMicros(absl::Now() + absl::Seconds(clock_offset_.load()));
    const int64_t id = r.ok() ? r->outcome.transfer_id : 0;
    // The engine's clock is read when the batch runs; holds expire minutes away from any step,
    // so the model's clock reading agrees with it.
    std::string want = model.Apply(t, id, now_us);
    ASSERT_EQ(r.ok() ? "OK" : ReasonOf(r.status()), want) << "step " << step << " seed " << seed;
    if (r.ok() && t.kind == TransferKind::kHold) hold_ids.push_back(id);
  }
  for (int64_t id : ids) {
    const policy::AccountState a = Balance(id);
    const ModelAccount& m = model.accounts[id];
    ASSERT_EQ(a.debits_pending_fen, m.dp) << "account " << id;
    ASSERT_EQ(a.debits_posted_fen, m.dpo) << "account " << id;
    ASSERT_EQ(a.credits_pending_fen, m.cp) << "account " << id;
    ASSERT_EQ(a.credits_posted_fen, m.cpo) << "account " << id;
  }
  ExpectVerified();

  // Phase 2: several concurrent submitters; successes replayed in transfer-id order (the order
  // the writer applied them) must each be allowed by the model and end at the stored balances.
  constexpr int kThreads = 6;
  std::vector<std::vector<std::pair<TransferRequest, TransferResult>>> done(kThreads);
  std::vector<std::thread> threads;
  const std::vector<int64_t> holds_before = hold_ids;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 r(seed + 1 + t);
      for (int step = 0; step < 400; ++step) {
        TransferRequest req = random_request(r);
        if (req.debit_account_id == req.credit_account_id && req.pending_id == 0) continue;
        absl::StatusOr<TransferResult> res = Submit(absl::StrCat("c", t, "-", step), req);
        if (res.ok()) done[t].emplace_back(req, *res);
      }
    });
  }
  // Meanwhile the clock moves on and background-style expiry runs race with the submitters.
  std::atomic<bool> submitting{true};
  std::thread expirer([&] {
    while (submitting.load()) {
      clock_offset_ += 30;
      ASSERT_THAT(writer_->ExpireDueHolds(), IsOk());
    }
  });
  for (std::thread& t : threads) t.join();
  submitting = false;
  expirer.join();
  std::map<int64_t, std::pair<TransferRequest, TransferResult>> by_id;
  for (const auto& list : done) {
    for (const auto& entry : list) by_id[entry.second.outcome.transfer_id] = entry;
  }
  // The expiries come from the database (ExpireDueHolds reports only counts).
  int expiries = 0;
  for (int64_t after = 0;;) {
    absl::StatusOr<std::vector<TransferRecord>> page =
        ListTransfers(*pool_, {.kind = TransferKind::kExpire, .after_id = after, .page_size = 1000},
                      {.all = true});
    ASSERT_THAT(page, IsOk());
    if (page->empty()) break;
    for (const TransferRecord& t : *page) {
      TransferResult result;
      result.outcome.transfer_id = t.id;
      result.created_at = t.created_at;
      by_id[t.id] = {TransferRequest{.kind = TransferKind::kExpire, .pending_id = t.pending_id},
                     result};
      ++expiries;
    }
    after = page->back().id;
  }
  EXPECT_GT(expiries, 0) << "the clock moved past every expiry: some holds must have expired";
  for (const auto& [id, entry] : by_id) {
    const int64_t at = absl::ToUnixMicros(entry.second.created_at);
    ASSERT_EQ(model.Apply(entry.first, id, at), "OK") << "transfer " << id << " seed " << seed;
  }
  for (int64_t id : ids) {
    const policy::AccountState a = Balance(id);
    const ModelAccount& m = model.accounts[id];
    ASSERT_EQ(a.debits_pending_fen, m.dp) << "account " << id;
    ASSERT_EQ(a.debits_posted_fen, m.dpo) << "account " << id;
    ASSERT_EQ(a.credits_pending_fen, m.cp) << "account " << id;
    ASSERT_EQ(a.credits_posted_fen, m.cpo) << "account " << id;
  }
  ExpectVerified();
  EXPECT_GT(writer_->batches_committed(), 0);
}

}  // namespace
}  // namespace vch::storage
