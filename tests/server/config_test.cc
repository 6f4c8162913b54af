#include "server/config.h"

#include <gtest/gtest.h>

#include <map>

namespace vch::server {
namespace {

absl::StatusOr<VchdConfig> Parse(std::vector<std::string> args,
                                 std::map<std::string, std::string> env = {}) {
  return ParseVchdArgs(args, [&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(VchdArgsTest, FlagsInBothSpellingsAndEnvironment) {
  absl::StatusOr<VchdConfig> c =
      Parse({"serve", "--dsn=host=/x", "--pool-size", "16", "--listen=127.0.0.1:0"},
            {{"VCH_METRICS_LISTEN", "127.0.0.1:9464"}, {"VCH_POOL_SIZE", "4"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->command, VchdCommand::kServe);
  EXPECT_EQ(c->dsn, "host=/x");
  EXPECT_EQ(c->pool_size, 16);  // the flag wins over VCH_POOL_SIZE
  EXPECT_EQ(c->listen, "127.0.0.1:0");
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:9464");
}

TEST(VchdArgsTest, QueuedRequestsBoundFromFlagOrEnvironment) {
  EXPECT_EQ(Parse({"--dsn=x"})->max_queued_requests, 4096);
  EXPECT_EQ(Parse({"--dsn=x", "--max-queued-requests=100"})->max_queued_requests, 100);
  EXPECT_EQ(Parse({"--dsn=x"}, {{"VCH_MAX_QUEUED_REQUESTS", "7"}})->max_queued_requests, 7);
}

TEST(VchdArgsTest, MigrateCommandAndDsnFromEnvironment) {
  absl::StatusOr<VchdConfig> c = Parse({"migrate"}, {{"VCH_DSN", "dbname=x"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->command, VchdCommand::kMigrate);
  EXPECT_EQ(c->dsn, "dbname=x");
}

TEST(VchdArgsTest, HelpNeedsNoDsn) { EXPECT_EQ(Parse({"--help"})->command, VchdCommand::kHelp); }

struct BadArgs {
  std::vector<std::string> args;
  std::string message_part;
};

class VchdBadArgsTest : public ::testing::TestWithParam<BadArgs> {};

TEST_P(VchdBadArgsTest, OneLineErrorNamingTheProblem) {
  absl::StatusOr<VchdConfig> c = Parse(GetParam().args);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find(GetParam().message_part), absl::string_view::npos)
      << c.status();
  EXPECT_EQ(c.status().message().find('\n'), absl::string_view::npos);
}

INSTANTIATE_TEST_SUITE_P(Table, VchdBadArgsTest,
                         ::testing::Values(BadArgs{{"--bogus", "--dsn=x"}, "unknown flag --bogus"},
                                           BadArgs{{"--dsn=x", "--pool-size=0"}, "--pool-size"},
                                           BadArgs{{"--dsn=x", "--pool-size=many"}, "--pool-size"},
                                           BadArgs{{"--dsn=x", "--max-threads=2"}, "--max-threads"},
                                           BadArgs{{"--dsn=x", "--max-queued-requests=0"},
                                                   "--max-queued-requests"},
                                           BadArgs{{"--dsn=x", "--listen=nohostport"}, "--listen"},
                                           BadArgs{{"--dsn=x", "--listen=0.0.0.0:1"}, "loopback"},
                                           BadArgs{{"--dsn=x", "--auth=token"}, "--auth"},
                                           BadArgs{{"--dsn=x", "--log-level=loud"}, "--log-level"},
                                           BadArgs{{"--dsn"}, "needs a value"},
                                           BadArgs{{"frobnicate", "--dsn=x"}, "unknown command"},
                                           BadArgs{{"serve"}, "no database given"}));

TEST(VchdHelpTest, DocumentsEveryOptionAndItsVariable) {
  const std::string help = VchdHelpText();
  for (const char* needle : {"--listen",
                             "VCH_LISTEN",
                             "--dsn",
                             "VCH_DSN",
                             "--pool-size",
                             "VCH_POOL_SIZE",
                             "--metrics-listen",
                             "VCH_METRICS_LISTEN",
                             "--max-message-bytes",
                             "--health-interval-ms",
                             "--shutdown-grace-ms",
                             "--auth",
                             "--port-file",
                             "--log-level",
                             "vchd migrate",
                             "--max-threads",
                             "VCH_MAX_THREADS",
                             "--max-queued-requests",
                             "VCH_MAX_QUEUED_REQUESTS",
                             "--voucher-key-file",
                             "VCH_VOUCHER_KEY_FILE",
                             "--voucher-key-id",
                             "VCH_VOUCHER_KEY_ID"}) {
    EXPECT_NE(help.find(needle), std::string::npos) << needle;
  }
}

TEST(LoopbackTest, RecognisesLoopbackOnly) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:50051"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:1"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:1"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0:1"));
  EXPECT_FALSE(IsLoopbackAddress("[::]:1"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.1:1"));
}

}  // namespace
}  // namespace vch::server
