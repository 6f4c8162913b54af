// A fixed-size pool of PostgreSQL connections and the transaction runner every query uses.
// Thread-safe. Connections that break are dropped and reopened on a later Acquire.
#ifndef VCH_STORAGE_PG_POOL_H_
#define VCH_STORAGE_PG_POOL_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace pqxx {
class connection_base;
class dbtransaction;
class transaction_base;
}  // namespace pqxx

namespace vch::storage {

// A named prepared statement, registered on every pooled connection.
struct PreparedStatement {
  std::string name;
  std::string sql;
};

struct PgPoolOptions {
  std::string dsn;
  int size = 8;
  // How long Acquire waits for a free connection before RESOURCE_EXHAUSTED.
  absl::Duration acquire_timeout = absl::Seconds(5);
  std::string application_name = "vchd";
};

class PgPool {
 public:
  // Opens one connection at once so that a bad DSN or an unreachable server fails here,
  // with a one-line message; the rest open on demand.
  static absl::StatusOr<std::unique_ptr<PgPool>> Create(PgPoolOptions options);
  ~PgPool();
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  // Exclusive use of one connection until destroyed. Movable.
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    pqxx::connection_base& connection() const;
    // The connection is closed instead of returned (after a broken-connection error).
    void MarkBroken() { broken_ = true; }

   private:
    friend class PgPool;
    Lease(PgPool* pool, int slot) : pool_(pool), slot_(slot) {}
    PgPool* pool_;
    int slot_;
    bool broken_ = false;
  };

  absl::StatusOr<Lease> Acquire();

  // Registers a statement prepared on each connection, at the first Acquire of the connection
  // after the registration, so that SQL text may also run it by name (EXECUTE, see
  // sql_arrays.h ExecutePrepared). Thread-safe.
  void RegisterPrepared(const PreparedStatement& statement);

  int size() const { return options_.size; }
  const std::string& dsn() const { return options_.dsn; }

 private:
  explicit PgPool(PgPoolOptions options);
  absl::Status OpenSlot(int slot);
  void Release(int slot, bool broken);

  const PgPoolOptions options_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<pqxx::connection_base>> connections_ ABSL_GUARDED_BY(mu_);
  std::vector<int> free_slots_ ABSL_GUARDED_BY(mu_);
  std::vector<PreparedStatement> prepared_ ABSL_GUARDED_BY(mu_);
  // Statements registered per slot so far (prepared_ is append-only).
  std::vector<size_t> prepared_count_ ABSL_GUARDED_BY(mu_);
};

struct TransactionOptions {
  // Attempts for serialization failures and deadlocks (ABORTED) before giving up.
  int max_attempts = 3;
  // Propagated as SET LOCAL statement_timeout, together with the thread's CurrentDeadline()
  // (base/deadline.h; the earlier wins). InfiniteFuture = none.
  absl::Time deadline = absl::InfiniteFuture();
  bool serializable = false;
};

// Runs `body` in one transaction on a pooled connection and commits. `body` may throw pqxx
// exceptions or return a non-OK status (the transaction is then rolled back and the status
// returned). Errors are mapped by StatusFromException; a commit whose outcome is unknown is
// UNAVAILABLE with reason OUTCOME_UNKNOWN and is never retried here.
absl::Status RunTransaction(PgPool& pool,
                            const std::function<absl::Status(pqxx::dbtransaction&)>& body,
                            const TransactionOptions& options = {});

}  // namespace vch::storage

#endif  // VCH_STORAGE_PG_POOL_H_
