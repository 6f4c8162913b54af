#include "clients/cli/payout_csv.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"

namespace vch::cli {
namespace {

// RFC 3339 UTC with only the fractional digits needed, as FormatUtc in cli_common.h writes it
// (not shared, so that this file stays free of gRPC).
std::string CsvTime(bool set, const google::protobuf::Timestamp& t) {
  if (!set) return "";
  const absl::Time time = absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", time, absl::UTCTimeZone());
}

}  // namespace

const char kPayoutCsvHeader[] =
    "payout_id,program,payee,usage_name,redemption_id,usage_id,enterprise,pool,start_time,"
    "end_time,gpu_seconds,price_fen_per_gpu_hour,ratio_bps,bill_fen,subsidy_fen,copay_fen,final,"
    "settle_time,post_transfer_id";

std::string CsvField(absl::string_view value) {
  if (value.find_first_of(",\"\r\n") == absl::string_view::npos) return std::string(value);
  return absl::StrCat("\"", absl::StrReplaceAll(value, {{"\"", "\"\""}}), "\"");
}

std::string PayoutCsv(const vch::v1::Payout& payout,
                      const std::vector<vch::v1::PayoutLine>& lines) {
  const std::string payee = payout.datacenter().empty()
                                ? absl::StrCat("enterprises/", payout.enterprise())
                                : absl::StrCat("datacenters/", payout.datacenter());
  std::string out = absl::StrCat(kPayoutCsvHeader, "\r\n");
  for (const vch::v1::PayoutLine& line : lines) {
    const vch::v1::UsageRecord& u = line.usage();
    const std::vector<std::string> fields = {
        absl::StrCat(payout.id()),
        payout.program(),
        payee,
        u.name(),
        absl::StrCat(u.redemption()),
        u.usage_id(),
        line.enterprise(),
        line.pool(),
        CsvTime(u.has_start_time(), u.start_time()),
        CsvTime(u.has_end_time(), u.end_time()),
        absl::StrCat(u.gpu_seconds()),
        absl::StrCat(u.price_fen_per_gpu_hour()),
        absl::StrCat(u.ratio_bps()),
        absl::StrCat(u.bill_fen()),
        absl::StrCat(u.subsidy_fen()),
        absl::StrCat(u.copay_fen()),
        u.final() ? "true" : "false",
        CsvTime(u.has_settle_time(), u.settle_time()),
        absl::StrCat(u.post_transfer_id()),
    };
    absl::StrAppend(&out,
                    absl::StrJoin(fields, ",",
                                  [](std::string* to, const std::string& field) {
                                    to->append(CsvField(field));
                                  }),
                    "\r\n");
  }
  return out;
}

}  // namespace vch::cli
