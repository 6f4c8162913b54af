#include "clients/cli/redemption_commands.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/errors.h"
#include "base/json_log.h"
#include "base/voucher.h"
#include "clients/cli/capacity_commands.h"
#include "clients/cli/payout_csv.h"
#include "vch/v1/redemption.grpc.pb.h"

namespace vch::cli {
namespace {

namespace v1 = ::vch::v1;

constexpr char kStateChoices[] = "placed, confirmed, active, settled, cancelled, expired, rejected";

// ListPayoutLines page size of `payout export` (the server's maximum).
constexpr int32_t kExportPageSize = 1000;

// --- Output. ---

std::string RedemptionStateName(int v) {
  return EnumName(
      v, [](int x) { return v1::RedemptionState_Name(static_cast<v1::RedemptionState>(x)); },
      "REDEMPTION_STATE_");
}

std::string SettlementStyleName(int v) {
  return EnumName(
      v, [](int x) { return v1::SettlementStyle_Name(static_cast<v1::SettlementStyle>(x)); },
      "SETTLEMENT_STYLE_");
}

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

std::string IdOrDash(int64_t id) { return id == 0 ? "-" : absl::StrCat(id); }

std::string PerGpuHour(int64_t fen) { return absl::StrCat(Cny(fen), " per GPU-hour"); }

// "8 GPUs, model H100, fp8, domestic, >= 80 GiB, <= 12.00 CNY per GPU-hour, prefer region 52".
std::string RequirementText(const v1::ComputeRequirement& r) {
  std::vector<std::string> parts = {absl::StrCat(r.gpus(), " GPUs")};
  parts.push_back(r.accelerator_model().empty() ? "any model"
                                                : absl::StrCat("model ", r.accelerator_model()));
  if (r.fp8_required()) parts.push_back("fp8");
  if (r.domestic_required()) parts.push_back("domestic");
  if (r.min_memory_gib() > 0) parts.push_back(absl::StrCat(">= ", r.min_memory_gib(), " GiB"));
  if (r.max_price_fen_per_gpu_hour() > 0) {
    parts.push_back(absl::StrCat("<= ", PerGpuHour(r.max_price_fen_per_gpu_hour())));
  }
  if (!r.preferred_region_prefix().empty()) {
    parts.push_back(absl::StrCat("prefer region ", r.preferred_region_prefix()));
  }
  return absl::StrJoin(parts, ", ");
}

std::string Period(bool has_start, const google::protobuf::Timestamp& start, bool has_end,
                   const google::protobuf::Timestamp& end) {
  return absl::StrCat(has_start ? FormatTimestamp(true, start) : "-", " .. ",
                      has_end ? FormatTimestamp(true, end) : "-", " (end exclusive)");
}

void PrintRedemption(const v1::Redemption& r) {
  Line("id", absl::StrCat(r.id()));
  Line("name", r.name());
  Line("program", r.program());
  Line("enterprise", r.enterprise());
  Line("state", RedemptionStateName(r.state()));
  if (!r.state_reason().empty()) Line("reason", r.state_reason());
  Line("settlement", SettlementStyleName(r.settlement_style()));
  Line("requirement", RequirementText(r.requirement()));
  Line("hours", absl::StrCat(r.hours()));
  Line("pool", OrDash(r.pool()));
  Line("datacenter", OrDash(r.datacenter()));
  Line("price", PerGpuHour(r.price_fen_per_gpu_hour()));
  Line("ratio", FormatBps(r.ratio_bps()));
  Line("estimated_bill", Cny(r.estimated_bill_fen()));
  Line("held", Cny(r.held_fen()));
  Line("remaining_hold", Cny(r.remaining_hold_fen()));
  Line("hold_transfer", IdOrDash(r.hold_transfer_id()));
  Line("capacity_hold", IdOrDash(r.capacity_hold_id()));
  Line("expires", r.has_expire_time() ? FormatTimestamp(true, r.expire_time()) : "-");
  Line("usage", absl::StrCat(r.usage_records(), " records, ", r.gpu_seconds(), " GPU-seconds"));
  Line("billed", Cny(r.billed_fen()));
  Line("subsidy", Cny(r.subsidy_fen()));
  Line("copay", Cny(r.copay_fen()));
  if (r.replaces() != 0) Line("replaces", absl::StrCat(r.replaces()));
  if (r.replaced_by() != 0) Line("replaced_by", absl::StrCat(r.replaced_by()));
  Line("voucher", r.voucher().payload().empty()
                      ? "-"
                      : absl::StrCat("signed with key ", r.voucher().key_id()));
  Line("created", FormatTimestamp(r.has_create_time(), r.create_time()));
  Line("updated", FormatTimestamp(r.has_update_time(), r.update_time()));
}

// A one-line-per-redemption table (list, pending).
void PrintRedemptionTable(const google::protobuf::RepeatedPtrField<v1::Redemption>& redemptions) {
  std::printf("%-10s %-24s %-18s %-9s %-44s %5s %5s %14s %14s  %s\n", "ID", "PROGRAM", "ENTERPRISE",
              "STATE", "POOL", "GPUS", "HOURS", "HELD_CNY", "BILLED_CNY", "EXPIRES");
  for (const v1::Redemption& r : redemptions) {
    std::printf("%-10lld %-24s %-18s %-9s %-44s %5d %5d %14s %14s  %s\n",
                static_cast<long long>(r.id()), r.program().c_str(), r.enterprise().c_str(),
                RedemptionStateName(r.state()).c_str(), OrDash(r.pool()).c_str(),
                r.requirement().gpus(), r.hours(), FormatCny(r.held_fen()).c_str(),
                FormatCny(r.billed_fen()).c_str(),
                r.has_expire_time() ? FormatTimestamp(true, r.expire_time()).c_str() : "-");
  }
}

void PrintUsageRecord(const v1::UsageRecord& u) {
  Line("name", u.name());
  Line("redemption", absl::StrCat(u.redemption()));
  Line("usage_id", u.usage_id());
  Line("gpu_seconds", absl::StrCat(u.gpu_seconds()));
  Line("window", Period(u.has_start_time(), u.start_time(), u.has_end_time(), u.end_time()));
  Line("final", u.final() ? "yes" : "no");
  Line("price", PerGpuHour(u.price_fen_per_gpu_hour()));
  Line("ratio", FormatBps(u.ratio_bps()));
  Line("bill", Cny(u.bill_fen()));
  Line("subsidy", u.capped_by().empty()
                      ? Cny(u.subsidy_fen())
                      : absl::StrCat(Cny(u.subsidy_fen()), " (capped by ", u.capped_by(), ")"));
  Line("copay", Cny(u.copay_fen()));
  Line("post_transfer", IdOrDash(u.post_transfer_id()));
  if (u.final()) Line("release_transfer", IdOrDash(u.release_transfer_id()));
  Line("payout", u.payout().empty() ? "- (not paid yet)" : u.payout());
  Line("settled", FormatTimestamp(u.has_settle_time(), u.settle_time()));
}

std::string Payee(const v1::Payout& p) {
  return p.datacenter().empty() ? absl::StrCat("enterprises/", p.enterprise())
                                : absl::StrCat("datacenters/", p.datacenter());
}

void PrintPayout(const v1::Payout& p) {
  Line("id", absl::StrCat(p.id()));
  Line("name", p.name());
  Line("program", p.program());
  Line("payee", Payee(p));
  Line("period", Period(p.has_period_start_time(), p.period_start_time(), p.has_period_end_time(),
                        p.period_end_time()));
  Line("amount", Cny(p.amount_fen()));
  Line("lines", absl::StrCat(p.lines()));
  Line("transfer", IdOrDash(p.transfer_id()));
  Line("created_by", p.created_by());
  Line("created", FormatTimestamp(p.has_create_time(), p.create_time()));
}

// --- Arguments and files. ---

// A positional id: a positive integer.
bool ParseId(const std::string& what, const std::string& text, int64_t* id, int* code) {
  if (!absl::SimpleAtoi(text, id) || *id <= 0) {
    *code = Usage(absl::StrCat("a ", what, " is a positive integer, got '", text, "'"));
    return false;
  }
  return true;
}

// Reads a whole (small) file. Returns false with a usage error, as for other input files.
bool ReadInputFile(const std::string& what, const std::string& path, std::string* content,
                   int* code) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream buffer;
  if (file) buffer << file.rdbuf();
  if (!file || file.bad()) {
    *code = Usage(absl::StrCat("cannot read the ", what, " ", path));
    return false;
  }
  *content = buffer.str();
  return true;
}

// Writes `content` to `path` (replacing it). Returns false after printing why it could not.
bool WriteOutputFile(const std::string& path, const std::string& content) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (file) file.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (file) file.close();
  if (!file) {
    std::fprintf(stderr, "vch: cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

// After a successful call: the redemption's signed voucher into the --voucher-out file, if given.
int WriteVoucher(const Invocation& in, const v1::Redemption& r) {
  const std::optional<std::string> path = Flag(in.flags, "voucher-out");
  if (!path) return 0;
  if (r.voucher().payload().empty()) {
    std::fprintf(stderr, "vch: redemption %lld has no voucher; %s not written\n",
                 static_cast<long long>(r.id()), path->c_str());
    return 1;
  }
  if (!WriteOutputFile(*path, VoucherDocument(r.voucher().payload(), r.voucher().signature()))) {
    return 1;
  }
  if (!in.options.json) Line("voucher_file", *path);
  return 0;
}

// --- Redemptions. ---

int RedemptionRequest(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "redemption request", RequirementFlagsAnd({"hours", "request-id", "voucher-out"}),
             {"program", "gpus", "hours"}, &code)) {
    return code;
  }
  if (!in.args.empty()) return Usage("redemption request takes no positional arguments");
  v1::RequestComputeRequest request;
  if (!RequirementFromFlags(in, request.mutable_requirement(), &code)) return code;
  int32_t hours = 0;
  if (!ParseInt32Flag(in, "hours", &hours, &code)) return code;
  request.set_hours(hours);
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  request.set_request_id(request_id);
  auto stub = v1::RedemptionService::NewStub(in.channel);
  v1::RequestComputeResponse kept;
  const int result = Finish<v1::RequestComputeResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::RequestComputeResponse* r) {
        grpc::Status status = stub->RequestCompute(c, request, r);
        if (status.ok()) kept = *r;
        return status;
      },
      [](const v1::RequestComputeResponse& r) {
        if (!r.placed()) {
          Line("placed", "no: no pool can take the request now (nothing was held)");
          PrintExclusions(r.exclusions());
          return;
        }
        Line("placed", "yes");
        PrintRedemption(r.redemption());
      });
  if (result != 0) return result;
  // Like place: the call worked but nothing was held, which scripts want to tell apart.
  if (!kept.placed()) return kExitNotPlaced;
  return WriteVoucher(in, kept.redemption());
}

int RedemptionGet(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "redemption get", {"voucher-out"}, {}, &code)) return code;
  if (in.args.size() != 1) return Usage("usage: vch redemption get ID [--voucher-out FILE]");
  v1::GetRedemptionRequest request;
  int64_t id = 0;
  if (!ParseId("redemption ID", in.args[0], &id, &code)) return code;
  request.set_id(id);
  auto stub = v1::RedemptionService::NewStub(in.channel);
  v1::GetRedemptionResponse kept;
  const int result = Finish<v1::GetRedemptionResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::GetRedemptionResponse* r) {
        grpc::Status status = stub->GetRedemption(c, request, r);
        if (status.ok()) kept = *r;
        return status;
      },
      [](const v1::GetRedemptionResponse& r) { PrintRedemption(r.redemption()); });
  if (result != 0) return result;
  return WriteVoucher(in, kept.redemption());
}

int RedemptionList(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "redemption list",
             {"program", "enterprise", "datacenter", "state", "page-size", "page-token"}, {},
             &code)) {
    return code;
  }
  if (!in.args.empty()) return Usage("redemption list takes no positional arguments");
  v1::ListRedemptionsRequest request;
  request.set_program(Flag(in.flags, "program").value_or(""));
  request.set_enterprise(Flag(in.flags, "enterprise").value_or(""));
  request.set_datacenter(Flag(in.flags, "datacenter").value_or(""));
  if (std::optional<std::string> state = Flag(in.flags, "state")) {
    v1::RedemptionState parsed;
    if (!ParseEnumFlag(
            "state", *state, "REDEMPTION_STATE_",
            [](const std::string& s, v1::RedemptionState* r) {
              return v1::RedemptionState_Parse(s, r);
            },
            {}, kStateChoices, &parsed, &code)) {
      return code;
    }
    request.set_state(parsed);
  }
  int32_t page_size = 0;
  std::string page_token;
  if (!ParsePageFlags(in, &page_size, &page_token, &code)) return code;
  request.set_page_size(page_size);
  request.set_page_token(page_token);
  auto stub = v1::RedemptionService::NewStub(in.channel);
  return Finish<v1::ListRedemptionsResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::ListRedemptionsResponse* r) {
        return stub->ListRedemptions(c, request, r);
      },
      [](const v1::ListRedemptionsResponse& r) {
        PrintRedemptionTable(r.redemptions());
        PrintNextPage(r.next_page_token());
      });
}

int RedemptionCancel(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "redemption cancel", {"reason", "request-id"}, {}, &code)) return code;
  if (in.args.size() != 1) return Usage("usage: vch redemption cancel ID [--reason TEXT]");
  v1::CancelRedemptionRequest request;
  int64_t id = 0;
  if (!ParseId("redemption ID", in.args[0], &id, &code)) return code;
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  request.set_request_id(request_id);
  request.set_id(id);
  request.set_reason(Flag(in.flags, "reason").value_or(""));
  auto stub = v1::RedemptionService::NewStub(in.channel);
  return Finish<v1::CancelRedemptionResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::CancelRedemptionResponse* r) {
        return stub->CancelRedemption(c, request, r);
      },
      [](const v1::CancelRedemptionResponse& r) { PrintRedemption(r.redemption()); });
}

int RedemptionPending(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "redemption pending", {"page-size", "page-token"}, {}, &code)) return code;
  if (!in.args.empty()) return Usage("redemption pending takes no positional arguments");
  v1::ListPendingPlacementsRequest request;
  int32_t page_size = 0;
  std::string page_token;
  if (!ParsePageFlags(in, &page_size, &page_token, &code)) return code;
  request.set_page_size(page_size);
  request.set_page_token(page_token);
  auto stub = v1::RedemptionService::NewStub(in.channel);
  return Finish<v1::ListPendingPlacementsResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::ListPendingPlacementsResponse* r) {
        return stub->ListPendingPlacements(c, request, r);
      },
      [](const v1::ListPendingPlacementsResponse& r) {
        PrintRedemptionTable(r.redemptions());
        if (r.redemptions().empty()) std::printf("(no placement waits for confirmation)\n");
        PrintNextPage(r.next_page_token());
      });
}

int RedemptionConfirm(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "redemption confirm", {"request-id"}, {}, &code)) return code;
  if (in.args.size() != 1) return Usage("usage: vch redemption confirm ID");
  v1::ConfirmPlacementRequest request;
  int64_t id = 0;
  if (!ParseId("redemption ID", in.args[0], &id, &code)) return code;
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  request.set_request_id(request_id);
  request.set_id(id);
  auto stub = v1::RedemptionService::NewStub(in.channel);
  return Finish<v1::ConfirmPlacementResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::ConfirmPlacementResponse* r) {
        return stub->ConfirmPlacement(c, request, r);
      },
      [](const v1::ConfirmPlacementResponse& r) { PrintRedemption(r.redemption()); });
}

int RedemptionReject(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "redemption reject", {"reason", "request-id"}, {"reason"}, &code)) return code;
  if (in.args.size() != 1) return Usage("usage: vch redemption reject ID --reason TEXT");
  v1::RejectPlacementRequest request;
  int64_t id = 0;
  if (!ParseId("redemption ID", in.args[0], &id, &code)) return code;
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  request.set_request_id(request_id);
  request.set_id(id);
  request.set_reason(in.flags.at("reason"));
  auto stub = v1::RedemptionService::NewStub(in.channel);
  return Finish<v1::RejectPlacementResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::RejectPlacementResponse* r) {
        return stub->RejectPlacement(c, request, r);
      },
      [](const v1::RejectPlacementResponse& r) {
        PrintRedemption(r.rejected());
        std::printf("\n");
        if (r.replaced()) {
          Line("replaced", absl::StrCat("yes, by redemption ", r.replacement().id()));
          PrintRedemption(r.replacement());
        } else {
          Line("replaced", "no: no other pool can take the request now (nothing is held)");
          PrintExclusions(r.exclusions());
        }
      });
}

// --- Usage. ---

int UsageReport(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "usage report", {"usage-id", "gpu-seconds", "start", "end", "final"},
             {"usage-id", "gpu-seconds", "start", "end"}, &code)) {
    return code;
  }
  if (in.args.size() != 1) {
    return Usage(
        "usage: vch usage report REDEMPTION_ID --usage-id U --gpu-seconds S --start TIME "
        "--end TIME [--final]");
  }
  v1::ReportUsageRequest request;
  int64_t id = 0;
  if (!ParseId("REDEMPTION_ID", in.args[0], &id, &code)) return code;
  request.set_redemption(id);
  request.set_usage_id(in.flags.at("usage-id"));
  int64_t gpu_seconds = 0;
  bool final = false;
  if (!ParseInt64Flag(in, "gpu-seconds", &gpu_seconds, &code) ||
      !ParseTimeFlag(in, "start", request.mutable_start_time(), &code) ||
      !ParseTimeFlag(in, "end", request.mutable_end_time(), &code) ||
      !SwitchFlag(in, "final", &final, &code)) {
    return code;
  }
  request.set_gpu_seconds(gpu_seconds);
  request.set_final(final);
  auto stub = v1::RedemptionService::NewStub(in.channel);
  // No request id: the usage id is what makes a resend take effect once.
  return Finish<v1::ReportUsageResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::ReportUsageResponse* r) {
        return stub->ReportUsage(c, request, r);
      },
      [](const v1::ReportUsageResponse& r) {
        PrintUsageRecord(r.usage());
        Line("redemption_state", RedemptionStateName(r.redemption().state()));
        Line("remaining_hold", Cny(r.redemption().remaining_hold_fen()));
      });
}

// --- Payouts. ---

int PayoutCreate(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "payout create",
             {"program", "datacenter", "enterprise", "start", "end", "request-id"},
             {"program", "start", "end"}, &code)) {
    return code;
  }
  if (!in.args.empty()) return Usage("payout create takes no positional arguments");
  if (in.flags.contains("datacenter") == in.flags.contains("enterprise")) {
    return Usage("payout create needs exactly one of --datacenter and --enterprise (the payee)");
  }
  v1::CreatePayoutRequest request;
  request.set_program(in.flags.at("program"));
  request.set_datacenter(Flag(in.flags, "datacenter").value_or(""));
  request.set_enterprise(Flag(in.flags, "enterprise").value_or(""));
  if (!ParseTimeFlag(in, "start", request.mutable_period_start_time(), &code) ||
      !ParseTimeFlag(in, "end", request.mutable_period_end_time(), &code)) {
    return code;
  }
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  request.set_request_id(request_id);
  auto stub = v1::RedemptionService::NewStub(in.channel);
  return Finish<v1::CreatePayoutResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::CreatePayoutResponse* r) {
        return stub->CreatePayout(c, request, r);
      },
      [](const v1::CreatePayoutResponse& r) { PrintPayout(r.payout()); });
}

int PayoutGet(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "payout get", {}, {}, &code)) return code;
  if (in.args.size() != 1) return Usage("usage: vch payout get ID");
  v1::GetPayoutRequest request;
  int64_t id = 0;
  if (!ParseId("payout ID", in.args[0], &id, &code)) return code;
  request.set_id(id);
  auto stub = v1::RedemptionService::NewStub(in.channel);
  return Finish<v1::GetPayoutResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::GetPayoutResponse* r) {
        return stub->GetPayout(c, request, r);
      },
      [](const v1::GetPayoutResponse& r) { PrintPayout(r.payout()); });
}

int PayoutList(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "payout list", {"program", "datacenter", "enterprise", "page-size", "page-token"},
             {}, &code)) {
    return code;
  }
  if (!in.args.empty()) return Usage("payout list takes no positional arguments");
  v1::ListPayoutsRequest request;
  request.set_program(Flag(in.flags, "program").value_or(""));
  request.set_datacenter(Flag(in.flags, "datacenter").value_or(""));
  request.set_enterprise(Flag(in.flags, "enterprise").value_or(""));
  int32_t page_size = 0;
  std::string page_token;
  if (!ParsePageFlags(in, &page_size, &page_token, &code)) return code;
  request.set_page_size(page_size);
  request.set_page_token(page_token);
  auto stub = v1::RedemptionService::NewStub(in.channel);
  return Finish<v1::ListPayoutsResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::ListPayoutsResponse* r) {
        return stub->ListPayouts(c, request, r);
      },
      [](const v1::ListPayoutsResponse& r) {
        std::printf("%-8s %-24s %-32s %-24s %-24s %6s %16s\n", "ID", "PROGRAM", "PAYEE",
                    "PERIOD_START", "PERIOD_END", "LINES", "AMOUNT_CNY");
        for (const v1::Payout& p : r.payouts()) {
          std::printf("%-8lld %-24s %-32s %-24s %-24s %6d %16s\n", static_cast<long long>(p.id()),
                      p.program().c_str(), Payee(p).c_str(),
                      FormatTimestamp(p.has_period_start_time(), p.period_start_time()).c_str(),
                      FormatTimestamp(p.has_period_end_time(), p.period_end_time()).c_str(),
                      p.lines(), FormatCny(p.amount_fen()).c_str());
        }
        PrintNextPage(r.next_page_token());
      });
}

// The payout and all its lines, as CSV to stdout or --out. The statement must add up to the
// payout (line count and amount) before anything is written: a partial statement of a payment
// is worse than none.
int PayoutExport(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "payout export", {"out"}, {}, &code)) return code;
  if (in.args.size() != 1) return Usage("usage: vch payout export ID [--out FILE]");
  int64_t id = 0;
  if (!ParseId("payout ID", in.args[0], &id, &code)) return code;
  auto stub = v1::RedemptionService::NewStub(in.channel);

  v1::GetPayoutResponse payout;
  {
    grpc::ClientContext context;
    PrepareContext(&context, in.options);
    v1::GetPayoutRequest request;
    request.set_id(id);
    grpc::Status status = stub->GetPayout(&context, request, &payout);
    if (!status.ok()) return PrintError(status, in.options.json);
  }
  std::vector<v1::PayoutLine> lines;
  std::string page_token;
  do {
    grpc::ClientContext context;
    PrepareContext(&context, in.options);
    v1::ListPayoutLinesRequest request;
    request.set_payout(id);
    request.set_page_size(kExportPageSize);
    request.set_page_token(page_token);
    v1::ListPayoutLinesResponse response;
    grpc::Status status = stub->ListPayoutLines(&context, request, &response);
    if (!status.ok()) return PrintError(status, in.options.json);
    for (v1::PayoutLine& line : *response.mutable_lines()) lines.push_back(std::move(line));
    if (!response.next_page_token().empty() && response.next_page_token() == page_token) {
      std::fprintf(stderr, "vch: the server returned the same page token twice; stopping\n");
      return 1;
    }
    page_token = response.next_page_token();
  } while (!page_token.empty());

  const v1::Payout& p = payout.payout();
  int64_t subsidy = 0;
  bool overflow = false;
  for (const v1::PayoutLine& line : lines) {
    overflow = overflow || __builtin_add_overflow(subsidy, line.usage().subsidy_fen(), &subsidy);
  }
  if (overflow || static_cast<int64_t>(lines.size()) != p.lines() || subsidy != p.amount_fen()) {
    std::fprintf(stderr,
                 "vch: the statement of payout %lld does not add up (its lines: %zu paying %s "
                 "fen; the payout: %d lines, %lld fen); nothing written\n",
                 static_cast<long long>(id), lines.size(),
                 overflow ? "more than 2^63" : absl::StrCat(subsidy).c_str(), p.lines(),
                 static_cast<long long>(p.amount_fen()));
    return 1;
  }
  const std::string csv = PayoutCsv(p, lines);
  const std::optional<std::string> out = Flag(in.flags, "out");
  if (!out) {
    std::fwrite(csv.data(), 1, csv.size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
  }
  if (!WriteOutputFile(*out, csv)) return 1;
  if (in.options.json) {
    std::printf("%s\n", JsonObject()
                            .Int("payout_id", p.id())
                            .Int("lines", static_cast<int64_t>(lines.size()))
                            .Int("amount_fen", p.amount_fen())
                            .String("file", *out)
                            .Finish()
                            .c_str());
  } else {
    Line("payout", p.name());
    Line("lines", absl::StrCat(lines.size()));
    Line("amount", Cny(p.amount_fen()));
    Line("file", *out);
  }
  return 0;
}

// --- Vouchers. ---

int VoucherKey(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "voucher key", {"out"}, {}, &code)) return code;
  if (!in.args.empty()) return Usage("voucher key takes no positional arguments");
  const std::optional<std::string> out = Flag(in.flags, "out");
  auto stub = v1::RedemptionService::NewStub(in.channel);
  v1::GetVoucherKeyResponse kept;
  const int result = Finish<v1::GetVoucherKeyResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::GetVoucherKeyResponse* r) {
        grpc::Status status = stub->GetVoucherKey(c, v1::GetVoucherKeyRequest(), r);
        if (status.ok()) kept = *r;
        return status;
      },
      [&out](const v1::GetVoucherKeyResponse& r) {
        Line("key_id", r.key_id());
        if (!out) std::fputs(r.public_key_pem().c_str(), stdout);
      });
  if (result != 0 || !out) return result;
  if (!WriteOutputFile(*out, kept.public_key_pem())) return 1;
  if (!in.options.json) Line("public_key_file", *out);
  return 0;
}

// Offline: reads the voucher and the public key from files and checks every byte.
int VoucherVerify(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "voucher verify", {"public-key"}, {"public-key"}, &code)) return code;
  if (in.args.size() != 1) return Usage("usage: vch voucher verify FILE --public-key KEYFILE");
  std::string document, public_key_pem;
  if (!ReadInputFile("voucher file", in.args[0], &document, &code) ||
      !ReadInputFile("public key file", in.flags.at("public-key"), &public_key_pem, &code)) {
    return code;
  }
  absl::StatusOr<VoucherTerms> terms = VerifyVoucherDocument(document, public_key_pem);
  if (!terms.ok()) {
    const std::string reason = ReasonOf(terms.status());
    if (in.options.json) {
      std::printf("%s\n",
                  JsonObject()
                      .Raw("error", JsonObject()
                                        .Int("code", static_cast<int>(terms.status().code()))
                                        .String("message", terms.status().message())
                                        .String("reason", reason)
                                        .Finish())
                      .Finish()
                      .c_str());
    } else {
      std::fprintf(stderr, "vch: voucher NOT valid: %s [%s]\n",
                   std::string(terms.status().message()).c_str(), reason.c_str());
    }
    return 1;
  }
  const std::string expires = FormatUtc(terms->expires_at);
  if (in.options.json) {
    std::printf("%s\n", JsonObject()
                            .Bool("ok", true)
                            .Int("redemption_id", terms->redemption_id)
                            .String("enterprise", terms->enterprise)
                            .String("pool", terms->pool)
                            .Int("gpus", terms->gpus)
                            .Int("hours", terms->hours)
                            .Int("held_fen", terms->held_fen)
                            .String("expires", expires)
                            .String("key_id", terms->key_id)
                            .Finish()
                            .c_str());
    return 0;
  }
  std::printf("voucher OK\n");
  Line("redemption", absl::StrCat(terms->redemption_id));
  Line("enterprise", terms->enterprise);
  Line("pool", terms->pool);
  Line("gpus", absl::StrCat(terms->gpus));
  Line("hours", absl::StrCat(terms->hours));
  Line("held", absl::StrCat(Cny(terms->held_fen), " (", terms->held_fen, " fen)"));
  Line("expires", expires);
  Line("key_id", terms->key_id);
  return 0;
}

}  // namespace

const std::set<std::string>& RedemptionValueFlags() {
  static const std::set<std::string> kFlags = {
      "end", "gpu-seconds", "hours", "out", "public-key", "start", "usage-id", "voucher-out"};
  return kFlags;
}

const std::set<std::string>& RedemptionSwitchFlags() {
  static const std::set<std::string> kFlags = {"final"};
  return kFlags;
}

std::optional<int> RunRedemptionCommand(const std::string& command, const Invocation& in) {
  using Command = int (*)(const Invocation&);
  static const std::map<std::string, std::map<std::string, Command>> kGroups = {
      {"redemption",
       {{"request", RedemptionRequest},
        {"get", RedemptionGet},
        {"list", RedemptionList},
        {"cancel", RedemptionCancel},
        {"pending", RedemptionPending},
        {"confirm", RedemptionConfirm},
        {"reject", RedemptionReject}}},
      {"usage", {{"report", UsageReport}}},
      {"payout",
       {{"create", PayoutCreate},
        {"get", PayoutGet},
        {"list", PayoutList},
        {"export", PayoutExport}}},
      {"voucher", {{"key", VoucherKey}, {"verify", VoucherVerify}}},
  };
  auto group_it = kGroups.find(command);
  if (group_it == kGroups.end()) return std::nullopt;
  std::vector<std::string> names;
  for (const auto& [name, fn] : group_it->second) names.push_back(name);
  const std::string choices = absl::StrJoin(names, "|");
  if (in.args.empty()) return Usage(absl::StrCat("usage: vch ", command, " ", choices, " ..."));
  auto it = group_it->second.find(in.args[0]);
  if (it == group_it->second.end()) {
    return Usage(absl::StrCat("unknown command '", command, " ", in.args[0], "' (", command, " ",
                              choices, ")"));
  }
  Invocation rest = in;
  rest.args.erase(rest.args.begin());
  return it->second(rest);
}

}  // namespace vch::cli
