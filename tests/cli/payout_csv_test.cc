#include "clients/cli/payout_csv.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace vch::cli {
namespace {

v1::Payout DatacenterPayout() {
  v1::Payout payout;
  payout.set_name("datacenters/dc-wuhan/payouts/7");
  payout.set_id(7);
  payout.set_program("sh-ai-2026");
  payout.set_datacenter("dc-wuhan");
  payout.set_amount_fen(96000);
  payout.set_lines(1);
  return payout;
}

v1::PayoutLine Line(const std::string& usage_id) {
  v1::PayoutLine line;
  line.set_enterprise("91310000MA1FL4XY2K");
  line.set_pool("datacenters/dc-wuhan/pools/h100-a");
  v1::UsageRecord* u = line.mutable_usage();
  u->set_name("redemptions/42/usage/" + usage_id);
  u->set_redemption(42);
  u->set_usage_id(usage_id);
  u->set_gpu_seconds(28800);
  u->mutable_start_time()->set_seconds(1795514400);  // 2026-11-24T10:00:00Z
  u->mutable_end_time()->set_seconds(1795518000);
  u->mutable_end_time()->set_nanos(500000000);
  u->set_final(true);
  u->set_price_fen_per_gpu_hour(1500);
  u->set_ratio_bps(8000);
  u->set_bill_fen(120000);
  u->set_subsidy_fen(96000);
  u->set_copay_fen(24000);
  u->mutable_settle_time()->set_seconds(1795518060);
  u->set_post_transfer_id(9001);
  return line;
}

constexpr char kHeader[] =
    "payout_id,program,payee,usage_name,redemption_id,usage_id,enterprise,pool,start_time,"
    "end_time,gpu_seconds,price_fen_per_gpu_hour,ratio_bps,bill_fen,subsidy_fen,copay_fen,final,"
    "settle_time,post_transfer_id\r\n";

TEST(PayoutCsvTest, HeaderOnlyWithoutLines) {
  EXPECT_EQ(PayoutCsv(DatacenterPayout(), {}), kHeader);
  EXPECT_EQ(std::string(kPayoutCsvHeader) + "\r\n", kHeader);
}

TEST(PayoutCsvTest, OneRowWithIntegerFenAndUtcTimes) {
  EXPECT_EQ(PayoutCsv(DatacenterPayout(), {Line("u-1")}),
            std::string(kHeader) +
                "7,sh-ai-2026,datacenters/dc-wuhan,redemptions/42/usage/u-1,42,u-1,"
                "91310000MA1FL4XY2K,datacenters/dc-wuhan/pools/h100-a,2026-11-24T10:00:00Z,"
                "2026-11-24T11:00:00.5Z,28800,1500,8000,120000,96000,24000,true,"
                "2026-11-24T11:01:00Z,9001\r\n");
}

TEST(PayoutCsvTest, EnterprisePayeeUnsetTimesAndNotFinal) {
  v1::Payout payout = DatacenterPayout();
  payout.clear_datacenter();
  payout.set_enterprise("91310000MA1FL4XY2K");
  v1::PayoutLine line = Line("u-2");
  line.mutable_usage()->clear_settle_time();
  line.mutable_usage()->set_final(false);
  line.mutable_usage()->set_post_transfer_id(0);
  line.mutable_usage()->set_subsidy_fen(0);
  EXPECT_EQ(PayoutCsv(payout, {line}),
            std::string(kHeader) +
                "7,sh-ai-2026,enterprises/91310000MA1FL4XY2K,redemptions/42/usage/u-2,42,u-2,"
                "91310000MA1FL4XY2K,datacenters/dc-wuhan/pools/h100-a,2026-11-24T10:00:00Z,"
                "2026-11-24T11:00:00.5Z,28800,1500,8000,120000,0,24000,false,,0\r\n");
}

TEST(PayoutCsvTest, QuotesFieldsWithCommaQuoteOrLineBreak) {
  EXPECT_EQ(CsvField("plain-id_1.2"), "plain-id_1.2");
  EXPECT_EQ(CsvField(""), "");
  EXPECT_EQ(CsvField("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvField("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(CsvField("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(CsvField("cr\rhere"), "\"cr\rhere\"");
  EXPECT_EQ(CsvField("\""), "\"\"\"\"");
  EXPECT_EQ(CsvField(" spaced "), " spaced ");  // spaces are data, never trimmed or quoted
}

TEST(PayoutCsvTest, RowsKeepTheirOrderAndQuoteUsageIds) {
  const std::string csv =
      PayoutCsv(DatacenterPayout(), {Line("batch,7"), Line("job \"x\""), Line("plain")});
  const std::string expected_rows =
      "7,sh-ai-2026,datacenters/dc-wuhan,\"redemptions/42/usage/batch,7\",42,\"batch,7\","
      "91310000MA1FL4XY2K,datacenters/dc-wuhan/pools/h100-a,2026-11-24T10:00:00Z,"
      "2026-11-24T11:00:00.5Z,28800,1500,8000,120000,96000,24000,true,2026-11-24T11:01:00Z,"
      "9001\r\n"
      "7,sh-ai-2026,datacenters/dc-wuhan,\"redemptions/42/usage/job \"\"x\"\"\",42,"
      "\"job \"\"x\"\"\",91310000MA1FL4XY2K,datacenters/dc-wuhan/pools/h100-a,"
      "2026-11-24T10:00:00Z,2026-11-24T11:00:00.5Z,28800,1500,8000,120000,96000,24000,true,"
      "2026-11-24T11:01:00Z,9001\r\n"
      "7,sh-ai-2026,datacenters/dc-wuhan,redemptions/42/usage/plain,42,plain,"
      "91310000MA1FL4XY2K,datacenters/dc-wuhan/pools/h100-a,2026-11-24T10:00:00Z,"
      "2026-11-24T11:00:00.5Z,28800,1500,8000,120000,96000,24000,true,2026-11-24T11:01:00Z,"
      "9001\r\n";
  EXPECT_EQ(csv, std::string(kHeader) + expected_rows);
}

TEST(PayoutCsvTest, LargeAmountsAreExactIntegers) {
  v1::PayoutLine line = Line("big");
  line.mutable_usage()->set_bill_fen(9223372036854775807);
  line.mutable_usage()->set_subsidy_fen(9007199254740993);  // 2^53 + 1: no double rounding
  line.mutable_usage()->set_copay_fen(-1);
  const std::string csv = PayoutCsv(DatacenterPayout(), {line});
  EXPECT_NE(csv.find(",9223372036854775807,9007199254740993,-1,"), std::string::npos) << csv;
}

}  // namespace
}  // namespace vch::cli
