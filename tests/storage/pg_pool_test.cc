#include "storage/pg_pool.h"

#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "base/deadline.h"
#include "storage/pg_error.h"
#include "storage/sql_arrays.h"
#include "tests/testing/test_db.h"

namespace vch::storage {
namespace {

using ::vch::testing::CreateTestDatabase;
using ::vch::testing::IsOk;
using ::vch::testing::StatusIs;

std::unique_ptr<PgPool> MakePool(const std::string& dsn, int size) {
  absl::StatusOr<std::unique_ptr<PgPool>> pool =
      PgPool::Create({.dsn = dsn, .size = size, .acquire_timeout = absl::Milliseconds(200)});
  EXPECT_TRUE(pool.ok()) << pool.status();
  return std::move(*pool);
}

TEST(PgPoolTest, BadDsnAndUnreachableServerFailAtCreate) {
  EXPECT_THAT(PgPool::Create({.dsn = "no_such_option=1"}),
              StatusIs(absl::StatusCode::kUnavailable, "DATABASE_UNAVAILABLE"));
  absl::StatusOr<std::unique_ptr<PgPool>> pool =
      PgPool::Create({.dsn = "host=/nonexistent-vch-socket-dir port=5432"});
  EXPECT_THAT(pool, StatusIs(absl::StatusCode::kUnavailable, "DATABASE_UNAVAILABLE"));
  EXPECT_EQ(pool.status().message().find('\n'), absl::string_view::npos);
}

TEST(PgPoolTest, ExhaustedPoolTimesOut) {
  std::unique_ptr<PgPool> pool = MakePool(CreateTestDatabase(), 1);
  absl::StatusOr<PgPool::Lease> held = pool->Acquire();
  ASSERT_TRUE(held.ok());
  EXPECT_THAT(pool->Acquire(), StatusIs(absl::StatusCode::kResourceExhausted, "POOL_EXHAUSTED"));
}

TEST(PgPoolTest, ReconnectsAfterTheServerDropsTheConnection) {
  const std::string dsn = CreateTestDatabase();
  std::unique_ptr<PgPool> pool = MakePool(dsn, 1);
  int backend_pid = 0;
  ASSERT_THAT(RunTransaction(*pool,
                             [&](pqxx::dbtransaction& tx) {
                               backend_pid = tx.exec("SELECT pg_backend_pid()")[0][0].as<int>();
                               return absl::OkStatus();
                             }),
              IsOk());
  {
    pqxx::connection admin(dsn);
    pqxx::nontransaction tx(admin);
    tx.exec_params("SELECT pg_terminate_backend($1)", backend_pid);
  }
  // The dead pooled connection is detected and replaced within the same call.
  int new_pid = 0;
  EXPECT_THAT(RunTransaction(*pool,
                             [&](pqxx::dbtransaction& tx) {
                               new_pid = tx.exec("SELECT pg_backend_pid()")[0][0].as<int>();
                               return absl::OkStatus();
                             }),
              IsOk());
  EXPECT_NE(new_pid, 0);
  EXPECT_NE(new_pid, backend_pid);
}

TEST(PgPoolTest, BodyErrorRollsBack) {
  const std::string dsn = CreateTestDatabase();
  std::unique_ptr<PgPool> pool = MakePool(dsn, 2);
  ASSERT_THAT(RunTransaction(*pool,
                             [](pqxx::dbtransaction& tx) {
                               tx.exec0("CREATE TABLE t (x int)");
                               return absl::OkStatus();
                             }),
              IsOk());
  EXPECT_THAT(RunTransaction(*pool,
                             [](pqxx::dbtransaction& tx) {
                               tx.exec0("INSERT INTO t VALUES (1)");
                               return absl::FailedPreconditionError("no");
                             }),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  pqxx::connection c(dsn);
  pqxx::nontransaction tx(c);
  EXPECT_EQ(tx.exec("SELECT count(*) FROM t")[0][0].as<int>(), 0);
}

TEST(PgPoolTest, SerializationFailuresAndDeadlocksAreRetriedThenAborted) {
  const std::string dsn = CreateTestDatabase();
  std::unique_ptr<PgPool> pool = MakePool(dsn, 2);
  for (const char* sqlstate : {"40001", "40P01"}) {
    // Fails on the first attempt only: retried, and the second attempt commits.
    int attempts = 0;
    EXPECT_THAT(RunTransaction(*pool,
                               [&](pqxx::dbtransaction& tx) {
                                 if (++attempts == 1) {
                                   tx.exec0(absl::StrCat(
                                       "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '",
                                       sqlstate, "'; END $$"));
                                 }
                                 return absl::OkStatus();
                               }),
                IsOk())
        << sqlstate;
    EXPECT_EQ(attempts, 2) << sqlstate;
    // Fails every time: ABORTED after max_attempts.
    attempts = 0;
    EXPECT_THAT(RunTransaction(*pool,
                               [&](pqxx::dbtransaction& tx) {
                                 ++attempts;
                                 tx.exec0(absl::StrCat(
                                     "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '",
                                     sqlstate, "'; END $$"));
                                 return absl::OkStatus();
                               },
                               {.max_attempts = 3}),
                StatusIs(absl::StatusCode::kAborted))
        << sqlstate;
    EXPECT_EQ(attempts, 3) << sqlstate;
  }
}

TEST(PgPoolTest, RegisteredStatementsRunByNameAndComeBackOnAFreshConnection) {
  const std::string dsn = CreateTestDatabase();
  std::unique_ptr<PgPool> pool = MakePool(dsn, 1);
  pool->RegisterPrepared({"vch_test_twice", "SELECT $1::int * 2"});
  auto twice = [&](int x, int* pid) {
    return RunTransaction(*pool, [&](pqxx::dbtransaction& tx) {
      // By name in SQL text, as a pqxx::pipeline sends it.
      pqxx::pipeline pipe(tx);
      const auto id = pipe.insert(ExecutePrepared("vch_test_twice", {absl::StrCat(x)}));
      const auto backend = pipe.insert("SELECT pg_backend_pid()");
      EXPECT_EQ(pipe.retrieve(id)[0][0].as<int>(), 2 * x);
      *pid = pipe.retrieve(backend)[0][0].as<int>();
      return absl::OkStatus();
    });
  };
  int first_pid = 0;
  ASSERT_THAT(twice(21, &first_pid), IsOk());
  // The server forgets it (as when pqxx opens the connection again underneath): the next call
  // fails with "prepared statement does not exist" and is retried on a fresh connection.
  ASSERT_THAT(RunTransaction(*pool,
                             [](pqxx::dbtransaction& tx) {
                               tx.exec0("DEALLOCATE vch_test_twice");
                               return absl::OkStatus();
                             }),
              IsOk());
  int second_pid = 0;
  EXPECT_THAT(twice(5, &second_pid), IsOk());
  EXPECT_NE(second_pid, first_pid);
}

TEST(PgErrorTest, MapsDatabaseErrorsToStatuses) {
  const std::string dsn = CreateTestDatabase();
  std::unique_ptr<PgPool> pool = MakePool(dsn, 1);
  ASSERT_THAT(RunTransaction(*pool,
                             [](pqxx::dbtransaction& tx) {
                               tx.exec0(
                                   "CREATE TABLE u (x int CONSTRAINT u_x_key UNIQUE,"
                                   " y int CONSTRAINT u_y_positive CHECK (y > 0))");
                               tx.exec0("CREATE TABLE log (x int)");
                               tx.exec0(
                                   "CREATE TRIGGER log_append_only BEFORE UPDATE OR DELETE ON log"
                                   " FOR EACH ROW EXECUTE FUNCTION vch_forbid_mutation()");
                               tx.exec0("INSERT INTO u VALUES (1, 1)");
                               tx.exec0("INSERT INTO log VALUES (1)");
                               return absl::OkStatus();
                             }),
              IsOk());
  auto run = [&](const char* sql) {
    return RunTransaction(*pool, [sql](pqxx::dbtransaction& tx) {
      tx.exec0(sql);
      return absl::OkStatus();
    });
  };
  EXPECT_THAT(run("INSERT INTO u VALUES (1, 2)"),
              StatusIs(absl::StatusCode::kAlreadyExists, "ALREADY_EXISTS"));
  EXPECT_THAT(run("INSERT INTO u VALUES (2, 0)"),
              StatusIs(absl::StatusCode::kFailedPrecondition, "CONSTRAINT_VIOLATED"));
  absl::Status append_only = run("UPDATE log SET x = 2");
  EXPECT_THAT(append_only, StatusIs(absl::StatusCode::kFailedPrecondition, "APPEND_ONLY"));
  EXPECT_THAT(run("DELETE FROM log"),
              StatusIs(absl::StatusCode::kFailedPrecondition, "APPEND_ONLY"));
  EXPECT_THAT(RunTransaction(*pool,
                             [](pqxx::dbtransaction& tx) {
                               tx.exec0("SELECT pg_sleep(5)");
                               return absl::OkStatus();
                             },
                             {.deadline = absl::Now() + absl::Milliseconds(100)}),
              StatusIs(absl::StatusCode::kDeadlineExceeded, "DEADLINE_EXCEEDED"));
  absl::Status internal = run("SELECT * FROM no_such_table");
  EXPECT_THAT(internal, StatusIs(absl::StatusCode::kInternal));
}

TEST(PgPoolTest, TheThreadsDeadlineReachesPostgres) {
  std::unique_ptr<PgPool> pool = MakePool(CreateTestDatabase(), 1);
  auto sleep = [](pqxx::dbtransaction& tx) {
    tx.exec0("SELECT pg_sleep(5)");
    return absl::OkStatus();
  };
  {
    ScopedDeadline deadline(absl::Now() + absl::Milliseconds(100));
    const absl::Time start = absl::Now();
    EXPECT_THAT(RunTransaction(*pool, sleep),
                StatusIs(absl::StatusCode::kDeadlineExceeded, "DEADLINE_EXCEEDED"));
    EXPECT_LT(absl::Now() - start, absl::Seconds(4));
  }
  EXPECT_EQ(CurrentDeadline(), absl::InfiniteFuture());
}

TEST(PgErrorTest, ConstraintNameFromMessage) {
  EXPECT_EQ(ConstraintNameFromMessage(
                "ERROR:  new row for relation \"accounts\" violates check constraint "
                "\"accounts_no_overdraft\"\nDETAIL: ..."),
            "accounts_no_overdraft");
  EXPECT_EQ(ConstraintNameFromMessage("ERROR: something else"), "");
}

}  // namespace
}  // namespace vch::storage
