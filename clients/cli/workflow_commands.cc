#include "clients/cli/workflow_commands.h"

#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "vch/v1/application.grpc.pb.h"
#include "vch/v1/enterprise.grpc.pb.h"
#include "vch/v1/program.grpc.pb.h"

namespace vch::cli {
namespace {

namespace v1 = ::vch::v1;

// --- Output. ---

std::string LevelName(int v) {
  return EnumName(
      v, [](int x) { return v1::IssuerLevel_Name(static_cast<v1::IssuerLevel>(x)); },
      "ISSUER_LEVEL_");
}
std::string CategoryName(int v) {
  return EnumName(
      v, [](int x) { return v1::ProgramCategory_Name(static_cast<v1::ProgramCategory>(x)); },
      "PROGRAM_CATEGORY_");
}
std::string KindName(int v) {
  return EnumName(
      v, [](int x) { return v1::EnterpriseKind_Name(static_cast<v1::EnterpriseKind>(x)); },
      "ENTERPRISE_KIND_");
}
std::string SizeName(int v) {
  return EnumName(
      v, [](int x) { return v1::SizeClass_Name(static_cast<v1::SizeClass>(x)); }, "SIZE_CLASS_");
}
std::string ScopeName(int v) {
  return EnumName(
      v, [](int x) { return v1::DatacenterScope_Name(static_cast<v1::DatacenterScope>(x)); },
      "DATACENTER_SCOPE_");
}
std::string AcceleratorName(int v) {
  return EnumName(
      v, [](int x) { return v1::AcceleratorClass_Name(static_cast<v1::AcceleratorClass>(x)); },
      "ACCELERATOR_CLASS_");
}
std::string ProgramStateName(int v) {
  return EnumName(
      v, [](int x) { return v1::ProgramState_Name(static_cast<v1::ProgramState>(x)); },
      "PROGRAM_STATE_");
}
std::string ApplicationStateName(int v) {
  return EnumName(
      v, [](int x) { return v1::ApplicationState_Name(static_cast<v1::ApplicationState>(x)); },
      "APPLICATION_STATE_");
}

template <typename NameFn>
std::string EnumList(const google::protobuf::RepeatedField<int>& values, NameFn name,
                     absl::string_view empty) {
  if (values.empty()) return std::string(empty);
  std::vector<std::string> names;
  for (int v : values) names.push_back(name(v));
  return absl::StrJoin(names, ", ");
}

std::string Window(bool has_start, const google::protobuf::Timestamp& start, bool has_end,
                   const google::protobuf::Timestamp& end) {
  return absl::StrCat(has_start ? FormatTimestamp(true, start) : "-", " .. ",
                      has_end ? FormatTimestamp(true, end) : "-", " (end exclusive)");
}

void PrintIssuer(const v1::Issuer& i) {
  Line("id", i.id());
  Line("name", i.name());
  Line("display_name", i.display_name());
  Line("region_code", i.region_code());
  Line("level", LevelName(i.level()));
  Line("created", FormatTimestamp(i.has_create_time(), i.create_time()));
}

void PrintProgram(const v1::Program& p) {
  const v1::ProgramRules& r = p.rules();
  Line("id", p.id());
  Line("name", p.name());
  Line("issuer", p.issuer());
  Line("state", ProgramStateName(p.state()));
  Line("display_name", r.display_name());
  Line("category", CategoryName(r.category()));
  Line("planned_budget", Cny(r.planned_budget_fen()));
  Line("funded", Cny(p.funded_fen()));
  Line("budget_available", Cny(p.budget_available_fen()));
  Line("subsidy_ratio", FormatBps(r.subsidy_ratio_bps()));
  Line("domestic_ratio",
       r.domestic_ratio_bps() == 0 ? "- (the subsidy ratio)" : FormatBps(r.domestic_ratio_bps()));
  Line("per_enterprise_cap", Cny(r.per_enterprise_cap_fen()));
  Line("max_award", r.max_award_fen() == 0 ? "- (no limit)" : Cny(r.max_award_fen()));
  Line("monthly_limit",
       r.monthly_spend_limit_fen() == 0 ? "- (no limit)" : Cny(r.monthly_spend_limit_fen()));
  Line("eligible_kinds", EnumList(r.eligible_kinds(), KindName, "-"));
  Line("eligible_sizes", EnumList(r.eligible_sizes(), SizeName, "-"));
  Line("local_only", r.local_enterprises_only() ? "yes (the issuer's region)" : "no");
  Line("applications", Window(r.has_application_start_time(), r.application_start_time(),
                              r.has_application_end_time(), r.application_end_time()));
  Line("redemption", Window(r.has_redemption_start_time(), r.redemption_start_time(),
                            r.has_redemption_end_time(), r.redemption_end_time()));
  std::string scope = ScopeName(r.datacenter_scope());
  if (r.datacenter_ids_size() > 0) {
    absl::StrAppend(&scope, ": ", absl::StrJoin(r.datacenter_ids(), ", "));
  }
  Line("datacenter_scope", scope);
  Line("accelerators", EnumList(r.allowed_accelerators(), AcceleratorName, "any"));
  Line("price_ceiling", absl::StrCat(Cny(r.price_ceiling_fen_per_gpu_hour()), " per GPU-hour"));
  Line("accounts", absl::StrCat("treasury ", p.treasury_account_id(), ", budget ",
                                p.budget_account_id(), ", lapsed ", p.lapsed_account_id()));
  Line("created", FormatTimestamp(p.has_create_time(), p.create_time()));
  Line("updated", FormatTimestamp(p.has_update_time(), p.update_time()));
}

void PrintEnterprise(const v1::Enterprise& e) {
  Line("uscc", e.uscc());
  Line("name", e.name());
  Line("display_name", e.display_name());
  Line("region_code", e.region_code());
  Line("kind", KindName(e.kind()));
  Line("size_class", SizeName(e.size_class()));
  Line("created", FormatTimestamp(e.has_create_time(), e.create_time()));
  Line("updated", FormatTimestamp(e.has_update_time(), e.update_time()));
}

void PrintApplication(const v1::Application& a) {
  Line("id", absl::StrCat(a.id()));
  Line("name", a.name());
  Line("program", a.program());
  Line("enterprise", a.enterprise());
  Line("state", ApplicationStateName(a.state()));
  Line("requested", Cny(a.requested_fen()));
  Line("purpose", a.purpose());
  if (a.state() == v1::APPLICATION_STATE_APPROVED) {
    Line("awarded", Cny(a.awarded_fen()));
    Line("award_transfer", absl::StrCat(a.award_transfer_id()));
  }
  if (a.state() == v1::APPLICATION_STATE_APPROVED || a.state() == v1::APPLICATION_STATE_REJECTED) {
    Line(a.state() == v1::APPLICATION_STATE_REJECTED ? "reason" : "note", a.decision_reason());
    Line("decided_by", a.decided_by());
    Line("decided", FormatTimestamp(a.has_decide_time(), a.decide_time()));
  }
  Line("submitted", FormatTimestamp(a.has_submit_time(), a.submit_time()));
  if (a.has_withdraw_time()) Line("withdrawn", FormatTimestamp(true, a.withdraw_time()));
}

void PrintAward(const v1::Award& a) {
  Line("program", a.program());
  Line("enterprise", a.enterprise());
  Line("awarded", Cny(a.awarded_fen()));
  Line("clawed_back", Cny(a.clawed_back_fen()));
  Line("cap", Cny(a.cap_fen()));
  Line("wallet_account",
       a.wallet_account_id() == 0 ? "- (no award yet)" : absl::StrCat(a.wallet_account_id()));
  Line("wallet_available", Cny(a.wallet_available_fen()));
}

// --- Arguments. ---

// An application id: a positive integer.
bool ParseApplicationId(const std::string& text, int64_t* id, int* code) {
  if (!absl::SimpleAtoi(text, id) || *id <= 0) {
    *code = Usage(absl::StrCat("an application ID is a positive integer, got '", text, "'"));
    return false;
  }
  return true;
}

// A ProgramRules message from the protobuf JSON in `path` ("-" for standard input).
bool ReadRules(const std::string& path, v1::ProgramRules* rules, int* code) {
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream file(path, std::ios::binary);
    if (!file) {
      *code = Usage(absl::StrCat("cannot read the rules file ", path));
      return false;
    }
    std::ostringstream buffer;
    buffer << file.rdbuf();
    text = buffer.str();
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;  // a misspelt field is a mistake, not a default
  auto status = google::protobuf::util::JsonStringToMessage(text, rules, options);
  if (!status.ok()) {
    *code = Usage(absl::StrCat("the rules file ", path, " is not a vch.v1.ProgramRules in JSON: ",
                               std::string(status.message())));
    return false;
  }
  return true;
}

// --- Issuers. ---

int IssuerRegister(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "issuer register", {"id", "name", "region", "level", "request-id"},
             {"id", "name", "region", "level"}, &code)) {
    return code;
  }
  if (!in.args.empty()) return Usage("issuer register takes no positional arguments");
  v1::RegisterIssuerRequest request;
  v1::IssuerLevel level;
  if (!ParseEnumFlag(
          "level", in.flags.at("level"), "ISSUER_LEVEL_",
          [](const std::string& s, v1::IssuerLevel* l) { return v1::IssuerLevel_Parse(s, l); }, {},
          "city, province, national", &level, &code)) {
    return code;
  }
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  request.set_request_id(request_id);
  request.set_id(in.flags.at("id"));
  request.set_display_name(in.flags.at("name"));
  request.set_region_code(in.flags.at("region"));
  request.set_level(level);
  auto stub = v1::IssuerService::NewStub(in.channel);
  return Finish<v1::RegisterIssuerResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::RegisterIssuerResponse* r) {
        return stub->RegisterIssuer(c, request, r);
      },
      [](const v1::RegisterIssuerResponse& r) { PrintIssuer(r.issuer()); });
}

int IssuerGet(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "issuer get", {}, {}, &code)) return code;
  if (in.args.size() != 1) return Usage("usage: vch issuer get ID");
  v1::GetIssuerRequest request;
  request.set_id(in.args[0]);
  auto stub = v1::IssuerService::NewStub(in.channel);
  return Finish<v1::GetIssuerResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::GetIssuerResponse* r) {
        return stub->GetIssuer(c, request, r);
      },
      [](const v1::GetIssuerResponse& r) { PrintIssuer(r.issuer()); });
}

int IssuerList(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "issuer list", {"page-size", "page-token"}, {}, &code)) return code;
  if (!in.args.empty()) return Usage("issuer list takes no positional arguments");
  v1::ListIssuersRequest request;
  int32_t page_size = 0;
  std::string page_token;
  if (!ParsePageFlags(in, &page_size, &page_token, &code)) return code;
  request.set_page_size(page_size);
  request.set_page_token(page_token);
  auto stub = v1::IssuerService::NewStub(in.channel);
  return Finish<v1::ListIssuersResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::ListIssuersResponse* r) {
        return stub->ListIssuers(c, request, r);
      },
      [](const v1::ListIssuersResponse& r) {
        std::printf("%-20s %-9s %-7s %s\n", "ID", "LEVEL", "REGION", "NAME");
        for (const v1::Issuer& i : r.issuers()) {
          std::printf("%-20s %-9s %-7s %s\n", i.id().c_str(), LevelName(i.level()).c_str(),
                      i.region_code().c_str(), i.display_name().c_str());
        }
        PrintNextPage(r.next_page_token());
      });
}

// --- Programs. ---

int ProgramCreateOrUpdate(const Invocation& in, bool create) {
  const std::string command = create ? "program create" : "program update";
  int code = 0;
  if (!Flags(in, command, {"id", "file", "request-id"}, {"id", "file"}, &code)) return code;
  if (!in.args.empty()) return Usage(absl::StrCat(command, " takes no positional arguments"));
  v1::ProgramRules rules;
  if (!ReadRules(in.flags.at("file"), &rules, &code)) return code;
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  auto stub = v1::ProgramService::NewStub(in.channel);
  if (create) {
    v1::CreateProgramRequest request;
    request.set_request_id(request_id);
    request.set_id(in.flags.at("id"));
    *request.mutable_rules() = rules;
    return Finish<v1::CreateProgramResponse>(
        in, request_id,
        [&](grpc::ClientContext* c, v1::CreateProgramResponse* r) {
          return stub->CreateProgram(c, request, r);
        },
        [](const v1::CreateProgramResponse& r) { PrintProgram(r.program()); });
  }
  v1::UpdateProgramRequest request;
  request.set_request_id(request_id);
  request.set_id(in.flags.at("id"));
  *request.mutable_rules() = rules;
  return Finish<v1::UpdateProgramResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::UpdateProgramResponse* r) {
        return stub->UpdateProgram(c, request, r);
      },
      [](const v1::UpdateProgramResponse& r) { PrintProgram(r.program()); });
}

int ProgramGet(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "program get", {}, {}, &code)) return code;
  if (in.args.size() != 1) return Usage("usage: vch program get ID");
  v1::GetProgramRequest request;
  request.set_id(in.args[0]);
  auto stub = v1::ProgramService::NewStub(in.channel);
  return Finish<v1::GetProgramResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::GetProgramResponse* r) {
        return stub->GetProgram(c, request, r);
      },
      [](const v1::GetProgramResponse& r) { PrintProgram(r.program()); });
}

int ProgramList(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "program list", {"issuer", "state", "page-size", "page-token"}, {}, &code)) {
    return code;
  }
  if (!in.args.empty()) return Usage("program list takes no positional arguments");
  v1::ListProgramsRequest request;
  request.set_issuer(Flag(in.flags, "issuer").value_or(""));
  if (std::optional<std::string> state = Flag(in.flags, "state")) {
    v1::ProgramState parsed;
    if (!ParseEnumFlag(
            "state", *state, "PROGRAM_STATE_",
            [](const std::string& s, v1::ProgramState* p) { return v1::ProgramState_Parse(s, p); },
            {}, "draft, open, closed, archived", &parsed, &code)) {
      return code;
    }
    request.set_state(parsed);
  }
  int32_t page_size = 0;
  std::string page_token;
  if (!ParsePageFlags(in, &page_size, &page_token, &code)) return code;
  request.set_page_size(page_size);
  request.set_page_token(page_token);
  auto stub = v1::ProgramService::NewStub(in.channel);
  return Finish<v1::ListProgramsResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::ListProgramsResponse* r) {
        return stub->ListPrograms(c, request, r);
      },
      [](const v1::ListProgramsResponse& r) {
        std::printf("%-24s %-12s %-8s %-21s %8s %18s %18s  %s\n", "ID", "ISSUER", "STATE",
                    "CATEGORY", "RATIO", "FUNDED_CNY", "AVAILABLE_CNY", "NAME");
        for (const v1::Program& p : r.programs()) {
          std::printf(
              "%-24s %-12s %-8s %-21s %8s %18s %18s  %s\n", p.id().c_str(), p.issuer().c_str(),
              ProgramStateName(p.state()).c_str(), CategoryName(p.rules().category()).c_str(),
              FormatBps(p.rules().subsidy_ratio_bps()).c_str(), FormatCny(p.funded_fen()).c_str(),
              FormatCny(p.budget_available_fen()).c_str(), p.rules().display_name().c_str());
        }
        PrintNextPage(r.next_page_token());
      });
}

// open, close, archive: one state transition by id.
int ProgramTransition(const Invocation& in, const std::string& verb) {
  const std::string command = absl::StrCat("program ", verb);
  int code = 0;
  if (!Flags(in, command, {"request-id"}, {}, &code)) return code;
  if (in.args.size() != 1) return Usage(absl::StrCat("usage: vch ", command, " ID"));
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  auto stub = v1::ProgramService::NewStub(in.channel);
  auto print = [](const auto& r) { PrintProgram(r.program()); };
  if (verb == "open") {
    v1::OpenProgramRequest request;
    request.set_request_id(request_id);
    request.set_id(in.args[0]);
    return Finish<v1::OpenProgramResponse>(
        in, request_id,
        [&](grpc::ClientContext* c, v1::OpenProgramResponse* r) {
          return stub->OpenProgram(c, request, r);
        },
        print);
  }
  if (verb == "close") {
    v1::CloseProgramRequest request;
    request.set_request_id(request_id);
    request.set_id(in.args[0]);
    return Finish<v1::CloseProgramResponse>(
        in, request_id,
        [&](grpc::ClientContext* c, v1::CloseProgramResponse* r) {
          return stub->CloseProgram(c, request, r);
        },
        print);
  }
  v1::ArchiveProgramRequest request;
  request.set_request_id(request_id);
  request.set_id(in.args[0]);
  return Finish<v1::ArchiveProgramResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::ArchiveProgramResponse* r) {
        return stub->ArchiveProgram(c, request, r);
      },
      print);
}

int ProgramFund(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "program fund", {"amount-fen", "note", "request-id"}, {"amount-fen"}, &code)) {
    return code;
  }
  if (in.args.size() != 1) return Usage("usage: vch program fund ID --amount-fen N [--note TEXT]");
  v1::FundProgramRequest request;
  int64_t amount = 0;
  if (!ParseInt64Flag(in, "amount-fen", &amount, &code)) return code;
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  request.set_request_id(request_id);
  request.set_id(in.args[0]);
  request.set_amount_fen(amount);
  request.set_note(Flag(in.flags, "note").value_or(""));
  auto stub = v1::ProgramService::NewStub(in.channel);
  return Finish<v1::FundProgramResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::FundProgramResponse* r) {
        return stub->FundProgram(c, request, r);
      },
      [](const v1::FundProgramResponse& r) {
        PrintProgram(r.program());
        Line("fund_transfer", absl::StrCat(r.transfer_id()));
      });
}

// --- Enterprises. ---

int EnterpriseRegister(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "enterprise register", {"uscc", "name", "region", "kind", "size", "request-id"},
             {"uscc", "name", "region", "kind", "size"}, &code)) {
    return code;
  }
  if (!in.args.empty()) return Usage("enterprise register takes no positional arguments");
  v1::EnterpriseKind kind;
  if (!ParseEnumFlag(
          "kind", in.flags.at("kind"), "ENTERPRISE_KIND_",
          [](const std::string& s, v1::EnterpriseKind* k) {
            return v1::EnterpriseKind_Parse(s, k);
          },
          {{"RESEARCH", "RESEARCH_INSTITUTION"}}, "sme, research, startup", &kind, &code)) {
    return code;
  }
  v1::SizeClass size;
  if (!ParseEnumFlag(
          "size", in.flags.at("size"), "SIZE_CLASS_",
          [](const std::string& s, v1::SizeClass* z) { return v1::SizeClass_Parse(s, z); }, {},
          "micro, small, medium, large", &size, &code)) {
    return code;
  }
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  v1::RegisterEnterpriseRequest request;
  request.set_request_id(request_id);
  v1::Enterprise* e = request.mutable_enterprise();
  e->set_uscc(in.flags.at("uscc"));
  e->set_display_name(in.flags.at("name"));
  e->set_region_code(in.flags.at("region"));
  e->set_kind(kind);
  e->set_size_class(size);
  auto stub = v1::EnterpriseService::NewStub(in.channel);
  return Finish<v1::RegisterEnterpriseResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::RegisterEnterpriseResponse* r) {
        return stub->RegisterEnterprise(c, request, r);
      },
      [](const v1::RegisterEnterpriseResponse& r) { PrintEnterprise(r.enterprise()); });
}

int EnterpriseGet(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "enterprise get", {}, {}, &code)) return code;
  if (in.args.size() != 1) return Usage("usage: vch enterprise get USCC");
  v1::GetEnterpriseRequest request;
  request.set_uscc(in.args[0]);
  auto stub = v1::EnterpriseService::NewStub(in.channel);
  return Finish<v1::GetEnterpriseResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::GetEnterpriseResponse* r) {
        return stub->GetEnterprise(c, request, r);
      },
      [](const v1::GetEnterpriseResponse& r) { PrintEnterprise(r.enterprise()); });
}

int EnterpriseList(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "enterprise list", {"page-size", "page-token"}, {}, &code)) return code;
  if (!in.args.empty()) return Usage("enterprise list takes no positional arguments");
  v1::ListEnterprisesRequest request;
  int32_t page_size = 0;
  std::string page_token;
  if (!ParsePageFlags(in, &page_size, &page_token, &code)) return code;
  request.set_page_size(page_size);
  request.set_page_token(page_token);
  auto stub = v1::EnterpriseService::NewStub(in.channel);
  return Finish<v1::ListEnterprisesResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::ListEnterprisesResponse* r) {
        return stub->ListEnterprises(c, request, r);
      },
      [](const v1::ListEnterprisesResponse& r) {
        std::printf("%-18s %-7s %-20s %-6s %s\n", "USCC", "REGION", "KIND", "SIZE", "NAME");
        for (const v1::Enterprise& e : r.enterprises()) {
          std::printf("%-18s %-7s %-20s %-6s %s\n", e.uscc().c_str(), e.region_code().c_str(),
                      KindName(e.kind()).c_str(), SizeName(e.size_class()).c_str(),
                      e.display_name().c_str());
        }
        PrintNextPage(r.next_page_token());
      });
}

// --- Applications and awards. ---

int ApplicationSubmit(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "application submit",
             {"program", "enterprise", "requested-fen", "purpose", "request-id"},
             {"program", "enterprise", "requested-fen"}, &code)) {
    return code;
  }
  if (!in.args.empty()) return Usage("application submit takes no positional arguments");
  int64_t requested = 0;
  if (!ParseInt64Flag(in, "requested-fen", &requested, &code)) return code;
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  v1::SubmitApplicationRequest request;
  request.set_request_id(request_id);
  request.set_program(in.flags.at("program"));
  request.set_enterprise(in.flags.at("enterprise"));
  request.set_requested_fen(requested);
  request.set_purpose(Flag(in.flags, "purpose").value_or(""));
  auto stub = v1::ApplicationService::NewStub(in.channel);
  return Finish<v1::SubmitApplicationResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::SubmitApplicationResponse* r) {
        return stub->SubmitApplication(c, request, r);
      },
      [](const v1::SubmitApplicationResponse& r) { PrintApplication(r.application()); });
}

int ApplicationGet(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "application get", {}, {}, &code)) return code;
  if (in.args.size() != 1) return Usage("usage: vch application get ID");
  v1::GetApplicationRequest request;
  int64_t id = 0;
  if (!ParseApplicationId(in.args[0], &id, &code)) return code;
  request.set_id(id);
  auto stub = v1::ApplicationService::NewStub(in.channel);
  return Finish<v1::GetApplicationResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::GetApplicationResponse* r) {
        return stub->GetApplication(c, request, r);
      },
      [](const v1::GetApplicationResponse& r) { PrintApplication(r.application()); });
}

int ApplicationList(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "application list", {"program", "state", "enterprise", "page-size", "page-token"},
             {}, &code)) {
    return code;
  }
  if (!in.args.empty()) return Usage("application list takes no positional arguments");
  v1::ListApplicationsRequest request;
  request.set_program(Flag(in.flags, "program").value_or(""));
  request.set_enterprise(Flag(in.flags, "enterprise").value_or(""));
  if (std::optional<std::string> state = Flag(in.flags, "state")) {
    v1::ApplicationState parsed;
    if (!ParseEnumFlag(
            "state", *state, "APPLICATION_STATE_",
            [](const std::string& s, v1::ApplicationState* a) {
              return v1::ApplicationState_Parse(s, a);
            },
            {}, "submitted, approved, rejected, withdrawn", &parsed, &code)) {
      return code;
    }
    request.set_state(parsed);
  }
  int32_t page_size = 0;
  std::string page_token;
  if (!ParsePageFlags(in, &page_size, &page_token, &code)) return code;
  request.set_page_size(page_size);
  request.set_page_token(page_token);
  auto stub = v1::ApplicationService::NewStub(in.channel);
  return Finish<v1::ListApplicationsResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::ListApplicationsResponse* r) {
        return stub->ListApplications(c, request, r);
      },
      [](const v1::ListApplicationsResponse& r) {
        std::printf("%-8s %-24s %-18s %-9s %16s %16s  %s\n", "ID", "PROGRAM", "ENTERPRISE", "STATE",
                    "REQUESTED_CNY", "AWARDED_CNY", "SUBMITTED");
        for (const v1::Application& a : r.applications()) {
          std::printf("%-8lld %-24s %-18s %-9s %16s %16s  %s\n", static_cast<long long>(a.id()),
                      a.program().c_str(), a.enterprise().c_str(),
                      ApplicationStateName(a.state()).c_str(), FormatCny(a.requested_fen()).c_str(),
                      a.state() == v1::APPLICATION_STATE_APPROVED
                          ? FormatCny(a.awarded_fen()).c_str()
                          : "-",
                      FormatTimestamp(a.has_submit_time(), a.submit_time()).c_str());
        }
        PrintNextPage(r.next_page_token());
      });
}

int ApplicationWithdraw(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "application withdraw", {"request-id"}, {}, &code)) return code;
  if (in.args.size() != 1) return Usage("usage: vch application withdraw ID");
  v1::WithdrawApplicationRequest request;
  int64_t id = 0;
  if (!ParseApplicationId(in.args[0], &id, &code)) return code;
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  request.set_request_id(request_id);
  request.set_id(id);
  auto stub = v1::ApplicationService::NewStub(in.channel);
  return Finish<v1::WithdrawApplicationResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::WithdrawApplicationResponse* r) {
        return stub->WithdrawApplication(c, request, r);
      },
      [](const v1::WithdrawApplicationResponse& r) { PrintApplication(r.application()); });
}

int ApplicationApprove(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "application approve", {"amount-fen", "note", "request-id"}, {"amount-fen"},
             &code)) {
    return code;
  }
  if (in.args.size() != 1) {
    return Usage("usage: vch application approve ID --amount-fen N [--note TEXT]");
  }
  v1::ApproveApplicationRequest request;
  int64_t id = 0;
  if (!ParseApplicationId(in.args[0], &id, &code)) return code;
  int64_t amount = 0;
  if (!ParseInt64Flag(in, "amount-fen", &amount, &code)) return code;
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  request.set_request_id(request_id);
  request.set_id(id);
  request.set_amount_fen(amount);
  request.set_note(Flag(in.flags, "note").value_or(""));
  auto stub = v1::ApplicationService::NewStub(in.channel);
  return Finish<v1::ApproveApplicationResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::ApproveApplicationResponse* r) {
        return stub->ApproveApplication(c, request, r);
      },
      [](const v1::ApproveApplicationResponse& r) { PrintApplication(r.application()); });
}

int ApplicationReject(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "application reject", {"reason", "request-id"}, {"reason"}, &code)) return code;
  if (in.args.size() != 1) return Usage("usage: vch application reject ID --reason TEXT");
  v1::RejectApplicationRequest request;
  int64_t id = 0;
  if (!ParseApplicationId(in.args[0], &id, &code)) return code;
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  request.set_request_id(request_id);
  request.set_id(id);
  request.set_reason(in.flags.at("reason"));
  auto stub = v1::ApplicationService::NewStub(in.channel);
  return Finish<v1::RejectApplicationResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::RejectApplicationResponse* r) {
        return stub->RejectApplication(c, request, r);
      },
      [](const v1::RejectApplicationResponse& r) { PrintApplication(r.application()); });
}

int AwardGet(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "award get", {"program", "enterprise"}, {"program", "enterprise"}, &code)) {
    return code;
  }
  if (!in.args.empty()) return Usage("award get takes no positional arguments");
  v1::GetAwardRequest request;
  request.set_program(in.flags.at("program"));
  request.set_enterprise(in.flags.at("enterprise"));
  auto stub = v1::ApplicationService::NewStub(in.channel);
  return Finish<v1::GetAwardResponse>(
      in, "",
      [&](grpc::ClientContext* c, v1::GetAwardResponse* r) {
        return stub->GetAward(c, request, r);
      },
      [](const v1::GetAwardResponse& r) { PrintAward(r.award()); });
}

int AwardClawback(const Invocation& in) {
  int code = 0;
  if (!Flags(in, "award clawback", {"program", "enterprise", "amount-fen", "reason", "request-id"},
             {"program", "enterprise", "amount-fen", "reason"}, &code)) {
    return code;
  }
  if (!in.args.empty()) return Usage("award clawback takes no positional arguments");
  int64_t amount = 0;
  if (!ParseInt64Flag(in, "amount-fen", &amount, &code)) return code;
  std::string request_id;
  if (!RequestIdFrom(in.flags, &request_id, &code)) return code;
  v1::ClawbackAwardRequest request;
  request.set_request_id(request_id);
  request.set_program(in.flags.at("program"));
  request.set_enterprise(in.flags.at("enterprise"));
  request.set_amount_fen(amount);
  request.set_reason(in.flags.at("reason"));
  auto stub = v1::ApplicationService::NewStub(in.channel);
  return Finish<v1::ClawbackAwardResponse>(
      in, request_id,
      [&](grpc::ClientContext* c, v1::ClawbackAwardResponse* r) {
        return stub->ClawbackAward(c, request, r);
      },
      [](const v1::ClawbackAwardResponse& r) {
        PrintAward(r.award());
        Line("clawback_transfer", absl::StrCat(r.transfer_id()));
      });
}

}  // namespace

std::optional<int> RunWorkflowCommand(const std::string& group, const Invocation& in) {
  using Command = int (*)(const Invocation&);
  static const std::map<std::string, std::map<std::string, Command>> kCommands = {
      {"issuer", {{"register", IssuerRegister}, {"get", IssuerGet}, {"list", IssuerList}}},
      {"program",
       {{"create", [](const Invocation& in) { return ProgramCreateOrUpdate(in, true); }},
        {"update", [](const Invocation& in) { return ProgramCreateOrUpdate(in, false); }},
        {"get", ProgramGet},
        {"list", ProgramList},
        {"open", [](const Invocation& in) { return ProgramTransition(in, "open"); }},
        {"close", [](const Invocation& in) { return ProgramTransition(in, "close"); }},
        {"archive", [](const Invocation& in) { return ProgramTransition(in, "archive"); }},
        {"fund", ProgramFund}}},
      {"enterprise",
       {{"register", EnterpriseRegister}, {"get", EnterpriseGet}, {"list", EnterpriseList}}},
      {"application",
       {{"submit", ApplicationSubmit},
        {"get", ApplicationGet},
        {"list", ApplicationList},
        {"withdraw", ApplicationWithdraw},
        {"approve", ApplicationApprove},
        {"reject", ApplicationReject}}},
      {"award", {{"get", AwardGet}, {"clawback", AwardClawback}}},
  };
  auto group_it = kCommands.find(group);
  if (group_it == kCommands.end()) return std::nullopt;
  std::vector<std::string> names;
  for (const auto& [name, fn] : group_it->second) names.push_back(name);
  const std::string choices = absl::StrJoin(names, "|");
  if (in.args.empty()) return Usage(absl::StrCat("usage: vch ", group, " ", choices, " ..."));
  auto it = group_it->second.find(in.args[0]);
  if (it == group_it->second.end()) {
    return Usage(
        absl::StrCat("unknown command '", group, " ", in.args[0], "' (", group, " ", choices, ")"));
  }
  Invocation rest = in;
  rest.args.erase(rest.args.begin());
  return it->second(rest);
}

}  // namespace vch::cli
