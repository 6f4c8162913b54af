// ledger_bench: durable transfers per second through LedgerWriter::Submit with many concurrent
// submitters, either between uniformly random accounts or with every transfer debiting one hot
// account. Creates its own accounts under a fresh program id, funds them, measures for a fixed
// time after a warm-up, then checks every touched balance against an in-memory model (and,
// with --verify, the whole ledger's invariants). Driven by bench/ledger.
//
//   ledger_bench --dsn DSN [--threads 64] [--seconds 20] [--warmup 2] --mode uniform|hot
//                [--accounts 10000] [--verify] [--seed N]
//
// Last line: transfers=N seconds=S tps=X p50_ms=.. p99_ms=.. failures=F batches=B ...
// Exit status 0 only if no Submit failed and every check passed.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/errors.h"
#include "policy/ledger_access.h"
#include "policy/ledger_engine.h"
#include "storage/ledger_store.h"
#include "storage/ledger_writer.h"
#include "storage/pg_pool.h"

namespace vch::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Every funded account starts with this much (fen), far more than a run can move out of it.
constexpr int64_t kFundingFen = int64_t{1'000'000'000'000};
// Hot mode's single debit account is funded for all transfers of any realistic run.
constexpr int64_t kHotFundingFen = int64_t{1'000'000'000'000'000};
constexpr int64_t kMaxTransferFen = 1000;
constexpr int kSetupThreads = 16;
// The writer runs one batch at a time on one connection (plus hold expiry): 4 is plenty.
constexpr int kWriterPoolSize = 4;
constexpr char kIssuer[] = "bench";
constexpr char kScope[] = "bench";

enum class Mode { kUniform, kHot };

struct Options {
  std::string dsn;
  int threads = 64;
  double seconds = 20;
  double warmup_seconds = 2;
  Mode mode = Mode::kUniform;
  int accounts = 10000;
  bool verify = false;
  uint64_t seed = 0;  // 0 = from the clock
};

constexpr char kUsage[] =
    "usage: ledger_bench --dsn DSN --mode uniform|hot [--threads 64] [--seconds 20]\n"
    "                    [--warmup 2] [--accounts 10000] [--verify] [--seed N]\n";

[[noreturn]] void Usage(const std::string& problem) {
  std::fprintf(stderr, "ledger_bench: %s\n%s", problem.c_str(), kUsage);
  std::exit(2);
}

Options ParseOptions(int argc, char** argv) {
  Options options;
  bool have_mode = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--verify") {
      options.verify = true;
      continue;
    }
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) Usage(absl::StrCat("missing value for ", arg));
    const std::string value = argv[++i];
    bool ok = true;
    if (arg == "--dsn") {
      options.dsn = value;
    } else if (arg == "--threads") {
      ok = absl::SimpleAtoi(value, &options.threads) && options.threads > 0;
    } else if (arg == "--seconds") {
      ok = absl::SimpleAtod(value, &options.seconds) && options.seconds > 0;
    } else if (arg == "--warmup") {
      ok = absl::SimpleAtod(value, &options.warmup_seconds) && options.warmup_seconds >= 0;
    } else if (arg == "--accounts") {
      ok = absl::SimpleAtoi(value, &options.accounts) && options.accounts >= 2;
    } else if (arg == "--seed") {
      ok = absl::SimpleAtoi(value, &options.seed);
    } else if (arg == "--mode") {
      have_mode = true;
      if (value == "uniform") {
        options.mode = Mode::kUniform;
      } else if (value == "hot") {
        options.mode = Mode::kHot;
      } else {
        ok = false;
      }
    } else {
      Usage(absl::StrCat("unknown flag ", arg));
    }
    if (!ok) Usage(absl::StrCat("bad value for ", arg, ": ", value));
  }
  if (options.dsn.empty()) Usage("--dsn is required");
  if (!have_mode) Usage("--mode is required");
  return options;
}

// Expected posted totals per account, maintained from successful Submit results only.
struct Model {
  explicit Model(size_t n) : debits_posted(n), credits_posted(n) {}
  std::vector<std::atomic<int64_t>> debits_posted;
  std::vector<std::atomic<int64_t>> credits_posted;
};

// The benchmark's accounts: slot 0 treasury, slot 1 the hot budget (hot mode only; unused in
// uniform mode), slots 2.. the wallets.
struct Accounts {
  std::vector<int64_t> ids;
  static constexpr size_t kTreasury = 0;
  static constexpr size_t kHot = 1;
  static constexpr size_t kFirstWallet = 2;
};

// Failures seen by any thread, grouped by status text; counted in every phase.
class FailureLog {
 public:
  void Add(const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    ++total_;
    ++by_status_[status.ToString()];
  }
  int64_t total() const {
    absl::MutexLock lock(&mu_);
    return total_;
  }
  void Print() const {
    absl::MutexLock lock(&mu_);
    for (const auto& [text, count] : by_status_) {
      std::fprintf(stderr, "ledger_bench: %lld x %s\n", static_cast<long long>(count),
                   text.c_str());
    }
  }

 private:
  mutable absl::Mutex mu_;
  int64_t total_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int64_t> by_status_ ABSL_GUARDED_BY(mu_);
};

// Runs fn(i) for i in [0, n) on `threads` threads; returns the first failure.
absl::Status ParallelFor(int n, int threads, const std::function<absl::Status(int)>& fn) {
  std::atomic<int> next{0};
  absl::Mutex mu;
  absl::Status first;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      for (int i = next++; i < n; i = next++) {
        absl::Status status = fn(i);
        if (!status.ok()) {
          absl::MutexLock lock(&mu);
          if (first.ok()) first = status;
          return;
        }
      }
    });
  }
  for (std::thread& w : workers) w.join();
  return first;
}

absl::StatusOr<Accounts> CreateAccounts(storage::PgPool& pool, const Options& options,
                                        const std::string& program_id) {
  Accounts accounts;
  accounts.ids.assign(Accounts::kFirstWallet + options.accounts, 0);
  auto make = [&](size_t slot, const std::string& kind, const std::string& owner,
                  bool no_overdraft) -> absl::Status {
    absl::StatusOr<storage::AccountRecord> record =
        storage::EnsureAccount(pool, {.program_id = program_id,
                                      .issuer_id = kIssuer,
                                      .kind = kind,
                                      .owner = owner,
                                      .no_overdraft = no_overdraft});
    if (!record.ok()) return record.status();
    accounts.ids[slot] = record->state.id;
    return absl::OkStatus();
  };
  // The treasury may go negative (flags 0); everything debited later is no-overdraft.
  absl::Status status = make(Accounts::kTreasury, "TREASURY", "", false);
  if (status.ok() && options.mode == Mode::kHot) {
    status = make(Accounts::kHot, "BUDGET", "", true);
  }
  if (!status.ok()) return status;
  status = ParallelFor(options.accounts, kSetupThreads, [&](int i) {
    return make(Accounts::kFirstWallet + i, "WALLET", absl::StrCat("w", i), true);
  });
  if (!status.ok()) return status;
  return accounts;
}

// FUND treasury -> each account that will be debited, through the writer (batched).
absl::Status Fund(storage::LedgerWriter& writer, const Accounts& accounts, const Options& options,
                  const std::string& run_id, Model& model) {
  std::vector<size_t> slots;
  std::vector<int64_t> amounts;
  if (options.mode == Mode::kHot) {
    slots.push_back(Accounts::kHot);
    amounts.push_back(kHotFundingFen);
  } else {
    for (size_t s = Accounts::kFirstWallet; s < accounts.ids.size(); ++s) {
      slots.push_back(s);
      amounts.push_back(kFundingFen);
    }
  }
  std::vector<storage::TransferSubmission> submissions;
  for (size_t i = 0; i < slots.size(); ++i) {
    storage::TransferSubmission s;
    s.request_scope = kScope;
    s.request_id = absl::StrCat(run_id, "-fund-", slots[i]);
    s.transfer.kind = policy::TransferKind::kFund;
    s.transfer.debit_account_id = accounts.ids[Accounts::kTreasury];
    s.transfer.credit_account_id = accounts.ids[slots[i]];
    s.transfer.amount_fen = amounts[i];
    submissions.push_back(std::move(s));
  }
  std::vector<absl::StatusOr<storage::TransferResult>> results =
      writer.SubmitAll(std::move(submissions));
  for (size_t i = 0; i < results.size(); ++i) {
    if (!results[i].ok()) return results[i].status();
    if (results[i]->replayed) return absl::InternalError("funding transfer was replayed");
    model.debits_posted[Accounts::kTreasury] += amounts[i];
    model.credits_posted[slots[i]] += amounts[i];
  }
  return absl::OkStatus();
}

// Reads every benchmark account back and compares it with the model.
absl::Status CheckBalances(storage::PgPool& pool, const Accounts& accounts, const Model& model,
                           int64_t* mismatches) {
  std::atomic<int64_t> bad{0};
  const policy::LedgerReadScope all{.all = true};
  absl::Status status = ParallelFor(
      static_cast<int>(accounts.ids.size()), kSetupThreads, [&](int slot) -> absl::Status {
        const int64_t id = accounts.ids[slot];
        if (id == 0) return absl::OkStatus();  // unused hot slot in uniform mode
        absl::StatusOr<storage::AccountRecord> record = storage::GetAccount(pool, id, all);
        if (!record.ok()) return record.status();
        const policy::AccountState& a = record->state;
        const int64_t want_debits = model.debits_posted[slot].load();
        const int64_t want_credits = model.credits_posted[slot].load();
        if (a.debits_posted_fen != want_debits || a.credits_posted_fen != want_credits ||
            a.debits_pending_fen != 0 || a.credits_pending_fen != 0) {
          if (bad++ < 10) {
            std::fprintf(stderr,
                         "ledger_bench: account %lld stored debits/credits posted %lld/%lld "
                         "pending %lld/%lld, expected %lld/%lld and no pending\n",
                         static_cast<long long>(id), static_cast<long long>(a.debits_posted_fen),
                         static_cast<long long>(a.credits_posted_fen),
                         static_cast<long long>(a.debits_pending_fen),
                         static_cast<long long>(a.credits_pending_fen),
                         static_cast<long long>(want_debits), static_cast<long long>(want_credits));
          }
        }
        return absl::OkStatus();
      });
  *mismatches = bad.load();
  return status;
}

enum Phase : int { kWarmup = 0, kMeasure = 1, kStop = 2 };

int Run(const Options& options) {
  const uint64_t seed =
      options.seed != 0 ? options.seed : static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
  const std::string mode_name = options.mode == Mode::kHot ? "hot" : "uniform";
  const std::string run_id =
      absl::StrCat(mode_name, "-", getpid(), "-", absl::ToUnixSeconds(absl::Now()));
  const std::string program_id = absl::StrCat("bench-", run_id);
  std::printf(
      "ledger_bench mode=%s threads=%d accounts=%d seconds=%g warmup=%g seed=%llu "
      "program=%s\n",
      mode_name.c_str(), options.threads, options.accounts, options.seconds, options.warmup_seconds,
      static_cast<unsigned long long>(seed), program_id.c_str());
  std::fflush(stdout);

  absl::StatusOr<std::unique_ptr<storage::PgPool>> setup_pool = storage::PgPool::Create(
      {.dsn = options.dsn, .size = kSetupThreads, .application_name = "ledger_bench_setup"});
  if (!setup_pool.ok()) {
    std::fprintf(stderr, "ledger_bench: %s\n", setup_pool.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<storage::PgPool>> writer_pool = storage::PgPool::Create(
      {.dsn = options.dsn, .size = kWriterPoolSize, .application_name = "ledger_bench"});
  if (!writer_pool.ok()) {
    std::fprintf(stderr, "ledger_bench: %s\n", writer_pool.status().ToString().c_str());
    return 1;
  }

  const absl::Time setup_start = absl::Now();
  absl::StatusOr<Accounts> created = CreateAccounts(**setup_pool, options, program_id);
  if (!created.ok()) {
    std::fprintf(stderr, "ledger_bench: creating accounts: %s\n",
                 created.status().ToString().c_str());
    return 1;
  }
  const Accounts& accounts = *created;
  Model model(accounts.ids.size());
  // Default options: batches of up to 1024, gathered for at most 2 ms.
  auto writer = std::make_unique<storage::LedgerWriter>(**writer_pool);
  if (absl::Status funded = Fund(*writer, accounts, options, run_id, model); !funded.ok()) {
    std::fprintf(stderr, "ledger_bench: funding: %s\n", funded.ToString().c_str());
    return 1;
  }
  const int account_count = options.accounts + (options.mode == Mode::kHot ? 2 : 1);
  std::printf("setup: %d accounts created and funded in %.1f s\n", account_count,
              absl::ToDoubleSeconds(absl::Now() - setup_start));
  std::fflush(stdout);

  std::atomic<int> phase{kWarmup};
  FailureLog failures;
  std::vector<std::vector<int64_t>> latencies_us(options.threads);
  std::vector<int64_t> warmup_ok(options.threads, 0), late_ok(options.threads, 0);
  const size_t wallets = accounts.ids.size() - Accounts::kFirstWallet;

  auto submitter = [&](int thread) {
    std::mt19937_64 rng(seed + static_cast<uint64_t>(thread) * 0x9E3779B97F4A7C15ull);
    std::uniform_int_distribution<size_t> pick(0, wallets - 1);
    std::uniform_int_distribution<int64_t> amount(1, kMaxTransferFen);
    std::vector<int64_t>& latencies = latencies_us[thread];
    latencies.reserve(1 << 16);
    for (int64_t seq = 0; phase.load(std::memory_order_relaxed) != kStop; ++seq) {
      size_t debit = 0, credit = 0;
      if (options.mode == Mode::kHot) {
        debit = Accounts::kHot;
        credit = Accounts::kFirstWallet + pick(rng);
      } else {
        debit = Accounts::kFirstWallet + pick(rng);
        do {
          credit = Accounts::kFirstWallet + pick(rng);
        } while (credit == debit);
      }
      storage::TransferSubmission s;
      s.request_scope = kScope;
      s.request_id = absl::StrCat(run_id, "-t", thread, "-", seq);
      s.transfer.kind = policy::TransferKind::kAward;
      s.transfer.debit_account_id = accounts.ids[debit];
      s.transfer.credit_account_id = accounts.ids[credit];
      s.transfer.amount_fen = amount(rng);
      const int64_t fen = s.transfer.amount_fen;

      const Clock::time_point start = Clock::now();
      absl::StatusOr<storage::TransferResult> result = writer->Submit(std::move(s));
      const Clock::time_point end = Clock::now();
      const int done_in = phase.load();

      if (!result.ok()) {
        failures.Add(result.status());
        continue;
      }
      if (result->replayed || result->outcome.debit_account_id != accounts.ids[debit] ||
          result->outcome.credit_account_id != accounts.ids[credit] ||
          result->outcome.amount_fen != fen || result->outcome.transfer_id <= 0) {
        failures.Add(absl::InternalError("Submit returned OK with a result for another transfer"));
        continue;
      }
      model.debits_posted[debit] += fen;
      model.credits_posted[credit] += fen;
      if (done_in == kMeasure) {
        latencies.push_back(
            std::chrono::duration_cast<std::chrono::microseconds>(end - start).count());
      } else if (done_in == kWarmup) {
        ++warmup_ok[thread];
      } else {
        ++late_ok[thread];
      }
    }
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < options.threads; ++t) threads.emplace_back(submitter, t);
  std::this_thread::sleep_for(std::chrono::duration<double>(options.warmup_seconds));
  const int64_t batches_before = writer->batches_committed();
  const Clock::time_point measure_start = Clock::now();
  phase = kMeasure;
  std::this_thread::sleep_for(std::chrono::duration<double>(options.seconds));
  phase = kStop;
  const Clock::time_point measure_end = Clock::now();
  const int64_t batches = writer->batches_committed() - batches_before;
  for (std::thread& t : threads) t.join();
  writer.reset();  // no Submit is in flight any more

  std::vector<int64_t> all;
  for (const auto& v : latencies_us) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  auto percentile_ms = [&all](double p) {
    if (all.empty()) return 0.0;
    const size_t index = std::min(all.size() - 1, static_cast<size_t>(p * all.size()));
    return static_cast<double>(all[index]) / 1000.0;
  };
  const double seconds = std::chrono::duration<double>(measure_end - measure_start).count();
  const int64_t transfers = static_cast<int64_t>(all.size());
  int64_t outside_window = 0;
  for (int t = 0; t < options.threads; ++t) outside_window += warmup_ok[t] + late_ok[t];
  const int64_t failed = failures.total();

  int64_t mismatches = 0;
  bool checks_ok = true;
  if (absl::Status checked = CheckBalances(**setup_pool, accounts, model, &mismatches);
      !checked.ok()) {
    std::fprintf(stderr, "ledger_bench: reading balances back: %s\n", checked.ToString().c_str());
    checks_ok = false;
  }
  std::printf("balance check: %d accounts read back, %lld differ from the model\n", account_count,
              static_cast<long long>(mismatches));
  if (mismatches != 0) checks_ok = false;
  if (options.verify) {
    const absl::Time verify_start = absl::Now();
    absl::StatusOr<storage::LedgerVerification> verification = storage::VerifyLedger(**setup_pool);
    if (!verification.ok()) {
      std::fprintf(stderr, "ledger_bench: VerifyLedger: %s\n",
                   verification.status().ToString().c_str());
      checks_ok = false;
    } else {
      std::printf("VerifyLedger: %lld accounts, %lld transfers, %zu violations (%.1f s)\n",
                  static_cast<long long>(verification->accounts),
                  static_cast<long long>(verification->transfers), verification->violations.size(),
                  absl::ToDoubleSeconds(absl::Now() - verify_start));
      for (size_t i = 0; i < verification->violations.size() && i < 10; ++i) {
        std::fprintf(stderr, "ledger_bench: %s\n", verification->violations[i].c_str());
      }
      if (!verification->violations.empty()) checks_ok = false;
    }
  }
  if (failed > 0) failures.Print();

  std::printf(
      "transfers=%lld seconds=%.2f tps=%.1f p50_ms=%.2f p99_ms=%.2f failures=%lld "
      "batches=%lld transfers_per_batch=%.1f outside_window=%lld checks=%s\n",
      static_cast<long long>(transfers), seconds, transfers / seconds, percentile_ms(0.50),
      percentile_ms(0.99), static_cast<long long>(failed), static_cast<long long>(batches),
      batches > 0 ? static_cast<double>(transfers) / batches : 0.0,
      static_cast<long long>(outside_window), checks_ok ? "ok" : "FAILED");
  std::fflush(stdout);
  return failed == 0 && checks_ok ? 0 : 1;
}

}  // namespace
}  // namespace vch::bench

int main(int argc, char** argv) { return vch::bench::Run(vch::bench::ParseOptions(argc, argv)); }
