#include "server/convert.h"

#include <gtest/gtest.h>

#include "vch/v1/program.pb.h"

namespace vch::server {
namespace {

TEST(IdempotencyKeyTest, HashIgnoresRequestIdAndScopesByCallerAndMethod) {
  policy::Principal admin{policy::Role::kIssuerAdmin, "shanghai", "alice"};
  vch::v1::FundProgramRequest a;
  a.set_request_id("r1");
  a.set_id("sh-ai");
  a.set_amount_fen(100);
  vch::v1::FundProgramRequest b = a;
  b.set_request_id("r2");
  storage::IdempotencyKey ka = IdempotencyKeyFor(admin, "FundProgram", a, a.request_id());
  storage::IdempotencyKey kb = IdempotencyKeyFor(admin, "FundProgram", b, b.request_id());
  EXPECT_EQ(ka.request_hash, kb.request_hash);
  EXPECT_EQ(ka.request_id, "r1");
  EXPECT_EQ(ka.scope, "ISSUER_ADMIN:shanghai/FundProgram");
  b.set_amount_fen(101);
  EXPECT_NE(IdempotencyKeyFor(admin, "FundProgram", b, "r1").request_hash, ka.request_hash);
  policy::Principal other{policy::Role::kIssuerAdmin, "chengdu", "bob"};
  EXPECT_NE(IdempotencyKeyFor(other, "FundProgram", a, "r1").scope, ka.scope);
}

TEST(PageTokenTest, RoundTripsAndRejectsForeignOrChangedFilters) {
  ViolationCollector ok;
  EXPECT_EQ(*DecodePageToken(EncodePageToken("sh-ai", "shanghai,2"), "shanghai,2", ok), "sh-ai");
  EXPECT_EQ(*DecodePageToken("", "x", ok), "");
  EXPECT_TRUE(ok.empty());
  ViolationCollector changed;
  EXPECT_FALSE(DecodePageToken(EncodePageToken("a", "f1"), "f2", changed).has_value());
  EXPECT_EQ(FieldViolationsOf(changed.Finish())[0].field, "page_token");
  ViolationCollector garbage;
  EXPECT_FALSE(DecodePageToken("not a token!", "f", garbage).has_value());
  EXPECT_FALSE(garbage.empty());
}

TEST(PageSizeTest, DefaultsCapsAndRefusesNegative) {
  ViolationCollector v;
  EXPECT_EQ(PageSize(0, v), kDefaultPageSize);
  EXPECT_EQ(PageSize(5000, v), kMaxPageSize);
  EXPECT_EQ(PageSize(7, v), 7);
  EXPECT_TRUE(v.empty());
  PageSize(-1, v);
  EXPECT_FALSE(v.empty());
}

TEST(SlugTest, AcceptsLowerCaseSlugsOnly) {
  ViolationCollector v;
  CheckSlug("sh-ai-rental-2026", "id", v);
  CheckSlug("ab", "id", v);
  EXPECT_TRUE(v.empty());
  for (const char* bad : {"", "a", "-ab", "Ab", "a_b", "a b"}) {
    ViolationCollector w;
    CheckSlug(bad, "id", w);
    EXPECT_FALSE(w.empty()) << bad;
  }
}

TEST(TimestampTest, RoundTripsMicroseconds) {
  const absl::Time t = absl::FromUnixMicros(1795555808292331);
  google::protobuf::Timestamp p;
  ToTimestamp(t, &p);
  ASSERT_TRUE(IsValidTimestamp(p));
  EXPECT_EQ(FromTimestamp(p), t);
}

}  // namespace
}  // namespace vch::server
