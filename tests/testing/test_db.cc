#include "tests/testing/test_db.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <pqxx/pqxx>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace vch::testing {

std::string TestDsnForDatabase(const std::string& dbname) {
  const char* dsn = std::getenv("VCH_TEST_DSN");
  if (dsn == nullptr || *dsn == '\0') return "";
  // In libpq key=value strings a later keyword wins.
  return absl::StrCat(dsn, " dbname=", dbname);
}

std::string CreateTestDatabase() {
  const char* dsn = std::getenv("VCH_TEST_DSN");
  if (dsn == nullptr || *dsn == '\0') {
    ADD_FAILURE() << "VCH_TEST_DSN is not set: run db tests through ctest (./tests/run)";
    std::abort();
  }
  static std::atomic<int> counter{0};
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = absl::StrCat("t_", info ? info->test_suite_name() : "x", "_", ::getpid(), "_",
                                  counter.fetch_add(1));
  name = absl::AsciiStrToLower(name);
  for (char& c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  if (name.size() > 60) name = name.substr(name.size() - 60);
  pqxx::connection admin(TestDsnForDatabase("postgres"));
  pqxx::nontransaction tx(admin);
  tx.exec0(absl::StrCat("CREATE DATABASE ", tx.quote_name(name), " TEMPLATE vch_template"));
  return TestDsnForDatabase(name);
}

uint64_t TestSeed() {
  uint64_t seed = 0;
  if (const char* s = std::getenv("VCH_TEST_SEED"); s != nullptr && *s) {
    seed = std::strtoull(s, nullptr, 10);
  } else {
    seed =
        static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())) ^ static_cast<uint64_t>(::getpid());
  }
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  std::printf("random seed: %llu (rerun with VCH_TEST_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  return seed;
}

}  // namespace vch::testing
