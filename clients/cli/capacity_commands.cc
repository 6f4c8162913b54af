#include "clients/cli/capacity_commands.h"

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "vch/v1/capacity.grpc.pb.h"
#include "vch/v1/placement.grpc.pb.h"

namespace vch::cli {
namespace {

namespace v1 = ::vch::v1;

constexpr char kHubChoices[] =
    "beijing-tianjin-hebei, yangtze-river-delta, guangdong-hong-kong-macao, chengdu-chongqing, "
    "inner-mongolia, guizhou, gansu, ningxia";

// --- Output. ---

// "yangtze-river-delta" for NATIONAL_HUB_YANGTZE_RIVER_DELTA, as --hub takes it.
std::string HubName(int v) {
  std::string name = EnumName(
      v, [](int x) { return v1::NationalHub_Name(static_cast<v1::NationalHub>(x)); },
      "NATIONAL_HUB_");
  return absl::StrReplaceAll(absl::AsciiStrToLower(name), {{"_", "-"}});
}

std::string DatacenterStateName(int v) {
  return EnumName(
      v, [](int x) { return v1::DatacenterState_Name(static_cast<v1::DatacenterState>(x)); },
      "DATACENTER_STATE_");
}

std::string YesNo(bool b) { return b ? "yes" : "no"; }

// Busy share of a pool as last reported ("-" before its first report).
std::string PoolBusy(const v1::Pool& p) {
  if (!p.has_report_time() || p.gpus_total() <= 0) return "-";
  const int64_t busy = p.gpus_total() - p.gpus_free();
  return FormatBps(static_cast<int32_t>(busy * 10000 / p.gpus_total()));
}

std::string Score(double v) { return absl::StrFormat("%.2f", v); }

void PrintDatacenter(const v1::Datacenter& d) {
  Line("id", d.id());
  Line("name", d.name());
  Line("display_name", d.display_name());
  Line("operator", d.operator_name().empty() ? "-" : d.operator_name());
  Line("region_code", d.region_code());
  Line("hub", HubName(d.hub()));
  Line("national_network", YesNo(d.national_network()));
  Line("state", DatacenterStateName(d.state()));
  Line("created", FormatTimestamp(d.has_create_time(), d.create_time()));
}

void PrintPool(const v1::Pool& p) {
  Line("id", p.id());
  Line("name", p.name());
  Line("datacenter", p.datacenter());
  Line("accelerator", p.accelerator_model());
  Line("vendor", p.vendor().empty() ? "-" : p.vendor());
  Line("domestic", YesNo(p.domestic()));
  Line("fp8", YesNo(p.fp8()));
  Line("memory", absl::StrCat(p.memory_gib(), " GiB"));
  Line("dense_tflops", absl::StrCat("FP16 ", p.fp16_tflops(), ", FP8 ", p.fp8_tflops()));
  Line("gpus_total", absl::StrCat(p.gpus_total()));
  Line("gpus_free", p.has_report_time() ? absl::StrCat(p.gpus_free()) : "- (not reported yet)");
  Line("gpus_held", absl::StrCat(p.gpus_held()));
  Line("busy", PoolBusy(p));
  Line("price", absl::StrCat(Cny(p.price_fen_per_gpu_hour()), " per GPU-hour"));
  Line("reported", p.has_report_time() ? FormatTimestamp(true, p.report_time()) : "-");
}

void PrintPoolTable(const google::protobuf::RepeatedPtrField<v1::Pool>& pools) {
  std::printf("%-16s %-14s %-9s %-3s %-3s %7s %5s %5s %5s %9s %10s  %s\n", "POOL", "MODEL",
              "VENDOR", "DOM", "FP8", "MEM_GIB", "GPUS", "FREE", "HELD", "BUSY", "CNY/GPU-H",
              "REPORTED");
  for (const v1::Pool& p : pools) {
    std::printf("%-16s %-14s %-9s %-3s %-3s %7d %5d %5s %5d %9s %10s  %s\n", p.id().c_str(),
                p.accelerator_model().c_str(), p.vendor().empty() ? "-" : p.vendor().c_str(),
                YesNo(p.domestic()).c_str(), YesNo(p.fp8()).c_str(), p.memory_gib(), p.gpus_total(),
                p.has_report_time() ? absl::StrCat(p.gpus_free()).c_str() : "-", p.gpus_held(),
                PoolBusy(p).c_str(), FormatCny(p.price_fen_per_gpu_hour()).c_str(),
                p.has_report_time() ? FormatTimestamp(true, p.report_time()).c_str() : "-");
  }
}

std::string ScoreText(const v1::ScoreBreakdown& s) {
  return absl::StrCat(Score(s.total()), " = utilization ", Score(s.utilization()), " + price ",
                      Score(s.price()), " + region ", Score(s.region()));
}

void PrintPlaceResponse(const v1::PlaceResponse& r) {
  if (!r.placed()) {
    Line("placed", "no: no pool can take the request now");
    PrintExclusions(r.exclusions());
    return;
  }
  const v1::Placement& p = r.placement();
  Line("placed", "yes");
  Line("pool", p.pool());
  Line("datacenter", p.datacenter());
  Line("gpus", absl::StrCat(p.gpus()));
  Line("price", absl::StrCat(Cny(p.price_fen_per_gpu_hour()), " per GPU-hour"));
  Line("score", ScoreText(p.score()));
  Line("hold_id", absl::StrCat(p.hold_id()));
  Line("expires", FormatTimestamp(p.has_expire_time(), p.expire_time()));
}

void PrintRanking(const v1::ExplainResponse& r) {
  std::printf("%-4s %-44s %9s %10s %11s %8s %7s %9s\n", "RANK", "POOL", "PLACEABLE", "CNY/GPU-H",
              "UTILIZATION", "PRICE", "REGION", "TOTAL");
  int rank = 0;
  for (const v1::RankedPool& p : r.ranking()) {
    std::printf("%-4d %-44s %9d %10s %11s %8s %7s %9s\n", ++rank, p.pool().c_str(),
                p.gpus_placeable(), FormatCny(p.price_fen_per_gpu_hour()).c_str(),
                Score(p.score().utilization()).c_str(), Score(p.score().price()).c_str(),
                Score(p.score().region()).c_str(), Score(p.score().total()).c_str());
  }
  if (r.ranking().empty()) std::printf("(no pool can take the request now)\n");
  PrintExclusions(r.exclusions());
}

}  // namespace

// --- Shared with the other command groups (declared in capacity_commands.h). ---

void PrintExclusions(const google::protobuf::RepeatedPtrField<v1::ExclusionCount>& exclusions) {
  std::vector<std::string> parts;
  for (const v1::ExclusionCount& e : exclusions) {
    parts.push_back(absl::StrCat(e.reason(), " ", e.pools()));
  }
  Line("excluded_pools", parts.empty() ? "none" : absl::StrJoin(parts, ", "));
}

bool ParseInt32Flag(const Invocation& in, const std::string& name, int32_t* out, int* code) {
  const std::string& text = in.flags.at(name);
  if (!absl::SimpleAtoi(text, out)) {
    *code = Usage(absl::StrCat("--", name, " needs an integer, got '", text, "'"));
    return false;
  }
  return true;
}

bool OptionalInt32Flag(const Invocation& in, const std::string& name, int32_t* out, int* code) {
  return !in.flags.contains(name) || ParseInt32Flag(in, name, out, code);
}

bool SwitchFlag(const Invocation& in, const std::string& name, bool* out, int* code) {
  *out = false;
  std::optional<std::string> text = Flag(in.flags, name);
  if (!text) return true;
  const std::string lower = absl::AsciiStrToLower(*text);
  if (lower == "true" || lower == "yes" || lower == "1") {
    *out = true;
  } else if (lower != "false" && lower != "no" && lower != "0") {
    *code = Usage(absl::StrCat("--", name, " takes no value (or true/false), got '", *text, "'"));
    return false;
  }
  return true;
}

bool ParseTimeFlag(const Invocation& in, const std::string& name, google::protobuf::Timestamp* out,
                   int* code) {
  absl::Time t;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, in.flags.at(name), &t, &error)) {
    *code = Usage(absl::StrCat(
        "--", name, " needs an RFC 3339 time such as 2024-05-01T08:00:00+08:00 (", error, ")"));
    return false;
  }
  const int64_t seconds = absl::ToUnixSeconds(t);
  out->set_seconds(seconds);
  out->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(seconds))));
  return true;
}

bool RequirementFromFlags(const Invocation& in, v1::ComputeRequirement* r, int* code) {
  r->set_program(in.flags.at("program"));
  int32_t gpus = 0;
  if (!ParseInt32Flag(in, "gpus", &gpus, code)) return false;
  r->set_gpus(gpus);
  r->set_accelerator_model(Flag(in.flags, "model").value_or(""));
  bool fp8 = false, domestic = false;
  if (!SwitchFlag(in, "fp8", &fp8, code) || !SwitchFlag(in, "domestic", &domestic, code)) {
    return false;
  }
  r->set_fp8_required(fp8);
  r->set_domestic_required(domestic);
  int32_t memory = 0;
  if (!OptionalInt32Flag(in, "min-memory-gib", &memory, code)) return false;
  r->set_min_memory_gib(memory);
  if (in.flags.contains("max-price-fen")) {
    int64_t price = 0;
    if (!ParseInt64Flag(in, "max-price-fen", &price, code)) return false;
    r->set_max_price_fen_per_gpu_hour(price);
  }
  r->set_preferred_region_prefix(Flag(in.flags, "prefer-region").value_or(""));
  return true;
}

std::set<std::string> RequirementFlagsAnd(std::initializer_list<std::string> more) {
  std::set<std::string> flags = {"program",  "gpus",           "model",         "fp8",
                                 "domestic", "min-memory-gib", "max-price-fen", "prefer-region"};
  flags.insert(more.begin(), more.end());
  return flags;
}

namespace {

// --- Arguments. ---

bool ParseHub(const std::string& text, v1::NationalHub* hub, int* code) {
  return ParseEnumFlag(
      "hub", text, "NATIONAL_HUB_",
      [](const std::string& s, v1::NationalHub* h) { return v1::NationalHub_Parse(s, h); }, {},
      kHubChoices, hub, code);
}

// --- Datacenters. ---

int DatacenterRegister(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "datacenter register",
             {"id", "name", "region", "hub", "operator", "national-network", "request-id"},
             {"id", "name", "region", "hub"}, &code)) {
    return code;
  }
  if (!in.args.empty()) return Usage("datacenter register takes no positional arguments");
  v1::NationalHub hub;
  if (!ParseHub(in.flags.at("hub"), &hub, &code)) return code;
  bool national = false;
  if (!SwitchFlag(in, "national-network", &national, &code)) return code;
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  v1::RegisterDatacenterRequest request;
  request.set_request_id(request_id);
  v1::Datacenter* d = request.mutable_datacenter();
  d->set_id(in.flags.at("id"));
  d->set_display_name(in.flags.at("name"));
  d->set_operator_name(Flag(in.flags, "operator").value_or(""));
  d->set_region_code(in.flags.at("region"));
  d->set_hub(hub);
  d->set_national_network(national);
  auto stub = v1::CapacityService::NewStub(in.channel);
  return Finish<v1::RegisterDatacenterResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::RegisterDatacenterResponse* r) {
        return stub->RegisterDatacenter(c, request, r);
      },
      [](const v1::RegisterDatacenterResponse& r) { PrintDatacenter(r.datacenter()); });
}

int DatacenterGet(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "datacenter get", {}, {}, &code)) return code;
  if (in.args.size() != 1) return Usage("usage: vch datacenter get ID");
  v1::GetDatacenterRequest request;
  request.set_id(in.args[0]);
  auto stub = v1::CapacityService::NewStub(in.channel);
  return Finish<v1::GetDatacenterResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::GetDatacenterResponse* r) {
        return stub->GetDatacenter(c, request, r);
      },
      [](const v1::GetDatacenterResponse& r) { PrintDatacenter(r.datacenter()); });
}

int DatacenterList(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "datacenter list", {"hub", "page-size", "page-token"}, {}, &code)) return code;
  if (!in.args.empty()) return Usage("datacenter list takes no positional arguments");
  v1::ListDatacentersRequest request;
  if (std::optional<std::string> hub = Flag(in.flags, "hub")) {
    v1::NationalHub parsed;
    if (!ParseHub(*hub, &parsed, &code)) return code;
    request.set_hub(parsed);
  }
  int32_t page_size = 0;
  std::string page_token;
  if (!ParsePageFlags(in, &page_size, &page_token, &code)) return code;
  request.set_page_size(page_size);
  request.set_page_token(page_token);
  auto stub = v1::CapacityService::NewStub(in.channel);
  return Finish<v1::ListDatacentersResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::ListDatacentersResponse* r) {
        return stub->ListDatacenters(c, request, r);
      },
      [](const v1::ListDatacentersResponse& r) {
        std::printf("%-20s %-26s %-7s %-9s %-8s %s\n", "ID", "HUB", "REGION", "STATE", "NATIONAL",
                    "NAME");
        for (const v1::Datacenter& d : r.datacenters()) {
          std::printf("%-20s %-26s %-7s %-9s %-8s %s\n", d.id().c_str(), HubName(d.hub()).c_str(),
                      d.region_code().c_str(), DatacenterStateName(d.state()).c_str(),
                      YesNo(d.national_network()).c_str(), d.display_name().c_str());
        }
        PrintNextPage(r.next_page_token());
      });
}

// suspend (--reason required) or resume: SetDatacenterState (PLATFORM_ADMIN, AUDITOR).
int DatacenterSetState(const Invocation& in, bool suspend) {
  const std::string command = suspend ? "datacenter suspend" : "datacenter resume";
  int code = 0;
  if (!Flags(in, command, {"reason", "request-id"},
             suspend ? std::vector<std::string>{"reason"} : std::vector<std::string>{}, &code)) {
    return code;
  }
  if (in.args.size() != 1) {
    return Usage(absl::StrCat("usage: vch ", command, " ID", suspend ? " --reason TEXT" : ""));
  }
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  v1::SetDatacenterStateRequest request;
  request.set_request_id(request_id);
  request.set_id(in.args[0]);
  request.set_state(suspend ? v1::DATACENTER_STATE_SUSPENDED : v1::DATACENTER_STATE_ACTIVE);
  request.set_reason(Flag(in.flags, "reason").value_or(""));
  auto stub = v1::CapacityService::NewStub(in.channel);
  return Finish<v1::SetDatacenterStateResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::SetDatacenterStateResponse* r) {
        return stub->SetDatacenterState(c, request, r);
      },
      [](const v1::SetDatacenterStateResponse& r) { PrintDatacenter(r.datacenter()); });
}

// --- Pools and capacity. ---

int PoolRegister(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "pool register",
             {"datacenter", "id", "model", "vendor", "domestic", "fp8", "memory-gib", "fp16-tflops",
              "fp8-tflops", "gpus", "price-fen", "request-id"},
             {"datacenter", "id", "model", "memory-gib", "gpus", "price-fen"}, &code)) {
    return code;
  }
  if (!in.args.empty()) return Usage("pool register takes no positional arguments");
  v1::RegisterPoolRequest request;
  v1::Pool* p = request.mutable_pool();
  bool domestic = false, fp8 = false;
  int32_t memory = 0, fp16_tflops = 0, fp8_tflops = 0, gpus = 0;
  int64_t price = 0;
  if (!SwitchFlag(in, "domestic", &domestic, &code) || !SwitchFlag(in, "fp8", &fp8, &code) ||
      !ParseInt32Flag(in, "memory-gib", &memory, &code) ||
      !OptionalInt32Flag(in, "fp16-tflops", &fp16_tflops, &code) ||
      !OptionalInt32Flag(in, "fp8-tflops", &fp8_tflops, &code) ||
      !ParseInt32Flag(in, "gpus", &gpus, &code) ||
      !ParseInt64Flag(in, "price-fen", &price, &code)) {
    return code;
  }
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  request.set_request_id(request_id);
  p->set_datacenter(in.flags.at("datacenter"));
  p->set_id(in.flags.at("id"));
  p->set_accelerator_model(in.flags.at("model"));
  p->set_vendor(Flag(in.flags, "vendor").value_or(""));
  p->set_domestic(domestic);
  p->set_fp8(fp8);
  p->set_memory_gib(memory);
  p->set_fp16_tflops(fp16_tflops);
  p->set_fp8_tflops(fp8_tflops);
  p->set_gpus_total(gpus);
  p->set_price_fen_per_gpu_hour(price);
  auto stub = v1::CapacityService::NewStub(in.channel);
  return Finish<v1::RegisterPoolResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::RegisterPoolResponse* r) {
        return stub->RegisterPool(c, request, r);
      },
      [](const v1::RegisterPoolResponse& r) { PrintPool(r.pool()); });
}

int PoolList(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "pool list", {}, {}, &code)) return code;
  if (in.args.size() != 1) return Usage("usage: vch pool list DATACENTER");
  v1::ListPoolsRequest request;
  request.set_datacenter(in.args[0]);
  auto stub = v1::CapacityService::NewStub(in.channel);
  return Finish<v1::ListPoolsResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::ListPoolsResponse* r) {
        return stub->ListPools(c, request, r);
      },
      [](const v1::ListPoolsResponse& r) { PrintPoolTable(r.pools()); });
}

int CapacityReport(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "capacity report", {"request-id"}, {}, &code)) return code;
  if (in.args.size() < 2) return Usage("usage: vch capacity report DATACENTER POOL=FREE ...");
  v1::ReportCapacityRequest request;
  request.set_datacenter(in.args[0]);
  for (size_t i = 1; i < in.args.size(); ++i) {
    const std::string& arg = in.args[i];
    const size_t eq = arg.rfind('=');
    int32_t free = 0;
    if (eq == std::string::npos || eq == 0 || !absl::SimpleAtoi(arg.substr(eq + 1), &free)) {
      return Usage(
          absl::StrCat("capacity report takes POOL=FREE (free GPUs, an integer), got '", arg, "'"));
    }
    v1::PoolReport* report = request.add_reports();
    report->set_pool(arg.substr(0, eq));
    report->set_gpus_free(free);
  }
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  request.set_request_id(request_id);
  auto stub = v1::CapacityService::NewStub(in.channel);
  return Finish<v1::ReportCapacityResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::ReportCapacityResponse* r) {
        return stub->ReportCapacity(c, request, r);
      },
      [](const v1::ReportCapacityResponse& r) { PrintPoolTable(r.pools()); });
}

int Utilization(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "utilization", {"pool", "datacenter", "hub", "from", "to", "bucket-s"},
             {"from", "to"}, &code)) {
    return code;
  }
  if (!in.args.empty()) return Usage("utilization takes no positional arguments");
  const int selectors = static_cast<int>(in.flags.contains("pool")) +
                        static_cast<int>(in.flags.contains("datacenter")) +
                        static_cast<int>(in.flags.contains("hub"));
  if (selectors != 1) return Usage("utilization needs exactly one of --pool, --datacenter, --hub");
  v1::GetUtilizationRequest request;
  request.set_pool(Flag(in.flags, "pool").value_or(""));
  request.set_datacenter(Flag(in.flags, "datacenter").value_or(""));
  if (std::optional<std::string> hub = Flag(in.flags, "hub")) {
    v1::NationalHub parsed;
    if (!ParseHub(*hub, &parsed, &code)) return code;
    request.set_hub(parsed);
  }
  if (!ParseTimeFlag(in, "from", request.mutable_start_time(), &code) ||
      !ParseTimeFlag(in, "to", request.mutable_end_time(), &code)) {
    return code;
  }
  int64_t bucket = 3600;
  if (in.flags.contains("bucket-s") && !ParseInt64Flag(in, "bucket-s", &bucket, &code)) {
    return code;
  }
  request.set_bucket_seconds(bucket);
  auto stub = v1::CapacityService::NewStub(in.channel);
  return Finish<v1::GetUtilizationResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::GetUtilizationResponse* r) {
        return stub->GetUtilization(c, request, r);
      },
      [](const v1::GetUtilizationResponse& r) {
        std::printf("%-24s %6s %6s %12s\n", "BUCKET_START", "GPUS", "BUSY", "UTILIZATION");
        for (const v1::UtilizationPoint& p : r.points()) {
          std::printf("%-24s %6d %6d %12s\n", FormatTimestamp(p.has_time(), p.time()).c_str(),
                      p.gpus_total(), p.gpus_busy(), FormatBps(p.utilization_bps()).c_str());
        }
        if (r.points().empty()) std::printf("(no capacity reports in the window)\n");
      });
}

// --- Placement. ---

int Place(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "place", RequirementFlagsAnd({"request-id"}), {"program", "gpus"}, &code)) {
    return code;
  }
  if (!in.args.empty()) return Usage("place takes no positional arguments");
  v1::PlaceRequest request;
  if (!RequirementFromFlags(in, request.mutable_requirement(), &code)) return code;
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  request.set_request_id(request_id);
  auto stub = v1::PlacementService::NewStub(in.channel);
  bool placed = false;
  const int result = Finish<v1::PlaceResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::PlaceResponse* r) {
        grpc::Status status = stub->Place(c, request, r);
        placed = status.ok() && r->placed();
        return status;
      },
      [](const v1::PlaceResponse& r) { PrintPlaceResponse(r); });
  // Like verify: the call worked but nothing was reserved, which scripts want to see.
  return result == 0 && !placed ? 1 : result;
}

int Explain(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "explain", RequirementFlagsAnd({"top"}), {"program", "gpus"}, &code)) {
    return code;
  }
  if (!in.args.empty()) return Usage("explain takes no positional arguments");
  v1::ExplainRequest request;
  if (!RequirementFromFlags(in, request.mutable_requirement(), &code)) return code;
  int32_t top = 0;
  if (!OptionalInt32Flag(in, "top", &top, &code)) return code;
  request.set_top(top);
  auto stub = v1::PlacementService::NewStub(in.channel);
  return Finish<v1::ExplainResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::ExplainResponse* r) { return stub->Explain(c, request, r); },
      [](const v1::ExplainResponse& r) { PrintRanking(r); });
}

int PlacementRelease(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "placement release", {"request-id"}, {}, &code)) return code;
  if (in.args.size() != 1) return Usage("usage: vch placement release HOLD_ID");
  int64_t hold_id = 0;
  if (!absl::SimpleAtoi(in.args[0], &hold_id) || hold_id <= 0) {
    return Usage(absl::StrCat("a HOLD_ID is a positive integer, got '", in.args[0], "'"));
  }
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  v1::ReleasePlacementRequest request;
  request.set_request_id(request_id);
  request.set_hold_id(hold_id);
  auto stub = v1::PlacementService::NewStub(in.channel);
  return Finish<v1::ReleasePlacementResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::ReleasePlacementResponse* r) {
        return stub->ReleasePlacement(c, request, r);
      },
      [](const v1::ReleasePlacementResponse& r) {
        Line("hold_id", absl::StrCat(r.hold_id()));
        Line("released", r.released() ? "yes" : "no (already released or expired)");
      });
}

}  // namespace

const std::set<std::string>& CapacityValueFlags() {
  static const std::set<std::string> kFlags = {
      "bucket-s", "datacenter", "fp16-tflops",   "fp8-tflops",    "from",
      "gpus",     "hub",        "max-price-fen", "memory-gib",    "min-memory-gib",
      "model",    "operator",   "pool",          "prefer-region", "price-fen",
      "to",       "top",        "vendor"};
  return kFlags;
}

const std::set<std::string>& CapacitySwitchFlags() {
  static const std::set<std::string> kFlags = {"domestic", "fp8", "national-network"};
  return kFlags;
}

std::optional<int> RunCapacityCommand(const std::string& command, const Invocation& in) {
  using Command = int (*)(const Invocation&);
  if (command == "utilization") return Utilization(in);
  if (command == "place") return Place(in);
  if (command == "explain") return Explain(in);
  static const std::map<std::string, std::map<std::string, Command>> kGroups = {
      {"datacenter",
       {{"register", DatacenterRegister},
        {"get", DatacenterGet},
        {"list", DatacenterList},
        {"suspend", [](const Invocation& in) { return DatacenterSetState(in, true); }},
        {"resume", [](const Invocation& in) { return DatacenterSetState(in, false); }}}},
      {"pool", {{"register", PoolRegister}, {"list", PoolList}}},
      {"capacity", {{"report", CapacityReport}}},
      {"placement", {{"release", PlacementRelease}}},
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
