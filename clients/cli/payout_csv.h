// The CSV statement of a payout (`vch payout export`): one row per usage record it pays, for
// accounting tools. Pure formatting, no I/O, so that it can be tested without a server.
#ifndef VCH_CLIENTS_CLI_PAYOUT_CSV_H_
#define VCH_CLIENTS_CLI_PAYOUT_CSV_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "vch/v1/redemption.pb.h"

namespace vch::cli {

// The header row's column names, in order.
extern const char kPayoutCsvHeader[];

// One CSV field: as is, or in double quotes with each quote doubled when it holds a comma, a
// quote, CR or LF (RFC 4180).
std::string CsvField(absl::string_view value);

// The header row and one row per line, in the order given, each row ended by CRLF (RFC 4180).
// Amounts are integer fen, times RFC 3339 UTC ("" when unset), booleans true/false, the payee
// "datacenters/{dc}" or "enterprises/{uscc}".
std::string PayoutCsv(const vch::v1::Payout& payout, const std::vector<vch::v1::PayoutLine>& lines);

}  // namespace vch::cli

#endif  // VCH_CLIENTS_CLI_PAYOUT_CSV_H_
