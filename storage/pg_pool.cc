#include "storage/pg_pool.h"

#include <algorithm>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "base/deadline.h"
#include "base/errors.h"
#include "base/json_log.h"
#include "storage/pg_error.h"

namespace vch::storage {

PgPool::PgPool(PgPoolOptions options) : options_(std::move(options)) {
  connections_.resize(options_.size);
  prepared_count_.assign(options_.size, 0);
  for (int slot = options_.size - 1; slot >= 0; --slot) free_slots_.push_back(slot);
}

PgPool::~PgPool() = default;

absl::StatusOr<std::unique_ptr<PgPool>> PgPool::Create(PgPoolOptions options) {
  if (options.size < 1) {
    return DomainError(absl::StatusCode::kInvalidArgument, "POOL_SIZE_INVALID",
                       "pool size must be at least 1");
  }
  std::unique_ptr<PgPool> pool(new PgPool(std::move(options)));
  absl::MutexLock lock(&pool->mu_);
  absl::Status opened = pool->OpenSlot(0);
  if (!opened.ok()) return opened;
  return pool;
}

absl::Status PgPool::OpenSlot(int slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
  try {
    auto conn = std::make_unique<pqxx::connection>(options_.dsn);
    conn->set_variable("application_name", conn->quote(options_.application_name));
    connections_[slot] = std::move(conn);
    prepared_count_[slot] = 0;
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return DomainError(absl::StatusCode::kUnavailable, "DATABASE_UNAVAILABLE",
                       absl::StrCat("cannot connect to the database: ", OneLine(e.what())));
  }
}

absl::StatusOr<PgPool::Lease> PgPool::Acquire() {
  int slot = -1;
  {
    absl::MutexLock lock(&mu_);
    auto has_free = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !free_slots_.empty(); };
    if (!mu_.AwaitWithTimeout(absl::Condition(&has_free), options_.acquire_timeout)) {
      return DomainError(absl::StatusCode::kResourceExhausted, "POOL_EXHAUSTED",
                         "no database connection became free in time");
    }
    slot = free_slots_.back();
    free_slots_.pop_back();
    absl::Status ready = absl::OkStatus();
    if (connections_[slot] == nullptr || !connections_[slot]->is_open()) ready = OpenSlot(slot);
    if (ready.ok()) {
      try {
        for (size_t i = prepared_count_[slot]; i < prepared_.size(); ++i) {
          connections_[slot]->prepare(prepared_[i].name, prepared_[i].sql);
          connections_[slot]->prepare_now(prepared_[i].name);
        }
        prepared_count_[slot] = prepared_.size();
      } catch (const std::exception& e) {
        ready = StatusFromException(e);
      }
    }
    if (!ready.ok()) {
      connections_[slot].reset();
      free_slots_.push_back(slot);
      return ready;
    }
  }
  return Lease(this, slot);
}

void PgPool::RegisterPrepared(const PreparedStatement& statement) {
  absl::MutexLock lock(&mu_);
  for (const PreparedStatement& existing : prepared_) {
    if (existing.name == statement.name) return;
  }
  prepared_.push_back(statement);
}

void PgPool::Release(int slot, bool broken) {
  absl::MutexLock lock(&mu_);
  if (broken) connections_[slot].reset();
  free_slots_.push_back(slot);
}

PgPool::Lease::Lease(Lease&& other) noexcept
    : pool_(other.pool_), slot_(other.slot_), broken_(other.broken_) {
  other.pool_ = nullptr;
}

PgPool::Lease::~Lease() {
  if (pool_ != nullptr) pool_->Release(slot_, broken_);
}

pqxx::connection_base& PgPool::Lease::connection() const {
  // The slot is ours until Release; the pool only resets it under the lease's ownership.
  return *pool_->connections_[slot_];
}

absl::Status RunTransaction(PgPool& pool,
                            const std::function<absl::Status(pqxx::dbtransaction&)>& body,
                            const TransactionOptions& options) {
  absl::Status last = absl::OkStatus();
  for (int attempt = 1; attempt <= std::max(1, options.max_attempts); ++attempt) {
    absl::StatusOr<PgPool::Lease> lease = pool.Acquire();
    if (!lease.ok()) return lease.status();
    try {
      std::unique_ptr<pqxx::dbtransaction> tx;
      if (options.serializable) {
        tx = std::make_unique<pqxx::transaction<pqxx::serializable>>(lease->connection());
      } else {
        tx = std::make_unique<pqxx::work>(lease->connection());
      }
      const absl::Time deadline = std::min(options.deadline, CurrentDeadline());
      if (deadline != absl::InfiniteFuture()) {
        int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
        if (ms <= 0) {
          return DomainError(absl::StatusCode::kDeadlineExceeded, "DEADLINE_EXCEEDED",
                             "deadline passed before the transaction started");
        }
        tx->exec0(absl::StrCat("SET LOCAL statement_timeout = ", ms));
      }
      absl::Status status = body(*tx);
      if (!status.ok()) {
        tx->abort();
        return status;
      }
      tx->commit();
      return absl::OkStatus();
    } catch (const std::exception& e) {
      last = StatusFromException(e);
      const std::string reason = ReasonOf(last);
      if (last.code() == absl::StatusCode::kUnavailable) lease->MarkBroken();
      // Nothing committed unless the outcome is unknown, so a dead pooled connection (the
      // server restarted since it was opened) is retried once on a fresh one, and so is a
      // statement prepared on the connection that the server no longer has (pqxx opened the
      // connection again underneath): a fresh connection prepares it again.
      const auto* sql_error = dynamic_cast<const pqxx::sql_error*>(&e);
      const bool unprepared = sql_error != nullptr && sql_error->sqlstate() == "26000";
      if (unprepared) lease->MarkBroken();
      const bool retry = last.code() == absl::StatusCode::kAborted ||
                         ((reason == "DATABASE_UNAVAILABLE" || unprepared) && attempt == 1);
      if (!retry) return last;
    }
  }
  return last;
}

}  // namespace vch::storage
