#include "server/program_service.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/errors.h"
#include "base/status_macros.h"
#include "policy/programs.h"
#include "server/convert.h"
#include "server/rpc.h"
#include "storage/program_store.h"

namespace vch::server {
namespace {

namespace v1 = ::vch::v1;
using policy::Role;

// --- Proto <-> domain. ---

void ToIssuer(const storage::IssuerRecord& r, v1::Issuer* out) {
  out->set_name(absl::StrCat("issuers/", r.id));
  out->set_id(r.id);
  out->set_display_name(r.display_name);
  out->set_region_code(r.region_code);
  out->set_level(static_cast<v1::IssuerLevel>(r.level));
  ToTimestamp(r.created_at, out->mutable_create_time());
}

template <typename ProtoEnum, typename Enum>
void ToEnumList(const std::vector<Enum>& in, google::protobuf::RepeatedField<int>* out) {
  for (Enum e : in) out->Add(static_cast<int>(e));
}

template <typename Enum>
std::vector<Enum> FromEnumList(const google::protobuf::RepeatedField<int>& in) {
  std::vector<Enum> out;
  for (int e : in) out.push_back(static_cast<Enum>(e));
  return out;
}

void ToRules(const policy::ProgramRules& r, v1::ProgramRules* out) {
  out->set_display_name(r.name);
  out->set_category(static_cast<v1::ProgramCategory>(r.category));
  out->set_planned_budget_fen(r.planned_budget_fen);
  out->set_subsidy_ratio_bps(r.subsidy_ratio_bps);
  out->set_per_enterprise_cap_fen(r.per_enterprise_cap_fen);
  out->set_max_award_fen(r.max_award_fen);
  out->set_monthly_spend_limit_fen(r.monthly_spend_limit_fen);
  ToEnumList<v1::EnterpriseKind>(r.eligible_kinds, out->mutable_eligible_kinds());
  ToEnumList<v1::SizeClass>(r.eligible_sizes, out->mutable_eligible_sizes());
  out->set_local_enterprises_only(r.local_enterprises_only);
  ToTimestamp(r.application_start, out->mutable_application_start_time());
  ToTimestamp(r.application_end, out->mutable_application_end_time());
  ToTimestamp(r.redemption_start, out->mutable_redemption_start_time());
  ToTimestamp(r.redemption_end, out->mutable_redemption_end_time());
  out->set_datacenter_scope(static_cast<v1::DatacenterScope>(r.datacenter_scope));
  for (const std::string& id : r.datacenter_ids) out->add_datacenter_ids(id);
  ToEnumList<v1::AcceleratorClass>(r.allowed_accelerators, out->mutable_allowed_accelerators());
  out->set_domestic_ratio_bps(r.domestic_ratio_bps);
  out->set_price_ceiling_fen_per_gpu_hour(r.price_ceiling_fen_per_gpu_hour);
  out->set_settlement_style(static_cast<v1::SettlementStyle>(r.settlement_style));
}

// Converts and validates the rules as a whole: proto-level problems (timestamps) first, then
// policy::ValidateProgramRules, with field paths under `prefix` named as in the proto.
absl::StatusOr<policy::ProgramRules> RulesFromProto(const v1::ProgramRules& in,
                                                    absl::string_view prefix) {
  ViolationCollector v;
  auto time = [&](const google::protobuf::Timestamp& t, bool has, absl::string_view name) {
    return RequiredTime(t, has, absl::StrCat(prefix, ".", name), v);
  };
  policy::ProgramRules r;
  r.name = in.display_name();
  r.category = static_cast<policy::ProgramCategory>(in.category());
  r.planned_budget_fen = in.planned_budget_fen();
  r.subsidy_ratio_bps = in.subsidy_ratio_bps();
  r.per_enterprise_cap_fen = in.per_enterprise_cap_fen();
  r.max_award_fen = in.max_award_fen();
  r.monthly_spend_limit_fen = in.monthly_spend_limit_fen();
  r.eligible_kinds = FromEnumList<policy::EnterpriseKind>(in.eligible_kinds());
  r.eligible_sizes = FromEnumList<policy::SizeClass>(in.eligible_sizes());
  r.local_enterprises_only = in.local_enterprises_only();
  r.application_start =
      time(in.application_start_time(), in.has_application_start_time(), "application_start_time")
          .value_or(absl::InfinitePast());
  r.application_end =
      time(in.application_end_time(), in.has_application_end_time(), "application_end_time")
          .value_or(absl::InfinitePast());
  r.redemption_start =
      time(in.redemption_start_time(), in.has_redemption_start_time(), "redemption_start_time")
          .value_or(absl::InfinitePast());
  r.redemption_end =
      time(in.redemption_end_time(), in.has_redemption_end_time(), "redemption_end_time")
          .value_or(absl::InfinitePast());
  r.datacenter_scope = static_cast<policy::DatacenterScope>(in.datacenter_scope());
  r.datacenter_ids.assign(in.datacenter_ids().begin(), in.datacenter_ids().end());
  for (int i = 0; i < in.datacenter_ids_size(); ++i) {
    CheckSlug(in.datacenter_ids(i), absl::StrCat(prefix, ".datacenter_ids[", i, "]"), v);
  }
  r.allowed_accelerators = FromEnumList<policy::AcceleratorClass>(in.allowed_accelerators());
  r.domestic_ratio_bps = in.domestic_ratio_bps();
  r.price_ceiling_fen_per_gpu_hour = in.price_ceiling_fen_per_gpu_hour();
  r.settlement_style = in.settlement_style() == v1::SETTLEMENT_STYLE_REIMBURSE
                           ? policy::SettlementStyle::kReimburse
                           : policy::SettlementStyle::kDirect;
  VCH_RETURN_IF_ERROR(v.Finish("PROGRAM_RULES_INVALID"));
  absl::Status valid = policy::ValidateProgramRules(r, prefix);
  if (valid.ok()) return r;
  // Policy names a few fields by concept; report them by their proto paths.
  std::vector<FieldViolation> violations = FieldViolationsOf(valid);
  for (FieldViolation& fv : violations) {
    const std::string p(prefix);
    if (fv.field == p + ".name") fv.field = p + ".display_name";
    if (fv.field == p + ".application_window") fv.field = p + ".application_end_time";
    if (fv.field == p + ".redemption_window") fv.field = p + ".redemption_end_time";
  }
  return InvalidArgument(std::move(violations), "PROGRAM_RULES_INVALID");
}

void ToProgram(const storage::ProgramRecord& r, v1::Program* out) {
  out->set_name(absl::StrCat("programs/", r.id));
  out->set_id(r.id);
  out->set_issuer(r.issuer_id);
  out->set_state(static_cast<v1::ProgramState>(r.state));
  ToRules(r.rules, out->mutable_rules());
  out->set_funded_fen(r.funded_fen);
  out->set_budget_available_fen(r.budget_available_fen);
  out->set_treasury_account_id(r.treasury_account_id);
  out->set_budget_account_id(r.budget_account_id);
  out->set_lapsed_account_id(r.lapsed_account_id);
  ToTimestamp(r.created_at, out->mutable_create_time());
  ToTimestamp(r.updated_at, out->mutable_update_time());
}

void ToEnterprise(const storage::EnterpriseRecord& r, v1::Enterprise* out) {
  out->set_name(absl::StrCat("enterprises/", r.uscc));
  out->set_uscc(r.uscc);
  out->set_display_name(r.display_name);
  out->set_region_code(r.region_code);
  out->set_kind(static_cast<v1::EnterpriseKind>(r.kind));
  out->set_size_class(static_cast<v1::SizeClass>(r.size));
  ToTimestamp(r.created_at, out->mutable_create_time());
  ToTimestamp(r.updated_at, out->mutable_update_time());
}

void ToApplication(const storage::ApplicationRecord& r, v1::Application* out) {
  out->set_name(absl::StrCat("programs/", r.program_id, "/applications/", r.id));
  out->set_id(r.id);
  out->set_program(r.program_id);
  out->set_enterprise(r.uscc);
  out->set_requested_fen(r.requested_fen);
  out->set_purpose(r.purpose);
  out->set_state(static_cast<v1::ApplicationState>(r.state));
  out->set_awarded_fen(r.awarded_fen);
  out->set_decision_reason(r.decision_reason);
  out->set_decided_by(r.decided_by);
  out->set_award_transfer_id(r.award_transfer_id);
  ToTimestamp(r.submitted_at, out->mutable_submit_time());
  if (r.decided_at) ToTimestamp(*r.decided_at, out->mutable_decide_time());
  if (r.withdrawn_at) ToTimestamp(*r.withdrawn_at, out->mutable_withdraw_time());
}

void ToAward(const storage::AwardRecord& r, v1::Award* out) {
  out->set_program(r.program_id);
  out->set_enterprise(r.uscc);
  out->set_awarded_fen(r.awarded_fen);
  out->set_clawed_back_fen(r.clawed_back_fen);
  out->set_cap_fen(r.cap_fen);
  out->set_wallet_account_id(r.wallet_account_id);
  out->set_wallet_available_fen(r.wallet_available_fen);
}

// Encoders for storage: the response message, serialized, is what idempotency stores.
template <typename Response, typename Record, typename Setter>
storage::Encoder<Record> EncodeAs(Setter set) {
  return [set](const Record& record) {
    Response response;
    set(record, &response);
    return response.SerializeAsString();
  };
}

bool IsIssuerStaff(const policy::Principal& p) {
  return p.role == Role::kIssuerAdmin || p.role == Role::kReviewer;
}
bool SeesEverything(const policy::Principal& p) {
  return p.role == Role::kPlatformAdmin || p.role == Role::kAuditor;
}

absl::Status RequireIssuerAdmin(const policy::Principal& p, absl::string_view what) {
  if (p.role != Role::kIssuerAdmin) {
    return PermissionDenied(absl::StrCat("only an issuer admin may ", what));
  }
  return absl::OkStatus();
}

absl::Status ValidateRegion(absl::string_view code, absl::string_view field) {
  ViolationCollector v;
  bool digits = code.size() == 6 &&
                std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || !policy::ValidateRegionForLevel(absl::StrCat(code.substr(0, 2), "0000"),
                                                 policy::IssuerLevel::kProvince, field)
                      .ok()) {
    v.Add(std::string(field), "must be a 6-digit GB/T 2260 code of a province-level division");
  }
  return v.Finish("REGION_INVALID");
}

// Adds the violation of a malformed unified social credit code to `v`.
void CheckUscc(absl::string_view uscc, absl::string_view field, ViolationCollector& v) {
  if (absl::Status s = policy::ValidateUscc(uscc, field); !s.ok()) {
    for (const FieldViolation& fv : FieldViolationsOf(s)) v.Add(fv.field, fv.description);
  }
}

// Application scope of a reader: NOT_FOUND for others' rows comes from storage.
absl::StatusOr<storage::ApplicationScope> ReadScope(const policy::Principal& p) {
  if (SeesEverything(p)) return storage::ApplicationScope{};
  if (IsIssuerStaff(p)) return storage::ApplicationScope{.issuer_id = p.tenant};
  if (p.role == Role::kEnterprise) return storage::ApplicationScope{.uscc = p.tenant};
  return PermissionDenied("operators do not read applications");
}

absl::Status TransitionBody(storage::PgPool& pool, const CallContext& call,
                            absl::string_view method, const google::protobuf::Message& request,
                            const std::string& request_id, const std::string& id,
                            policy::ProgramState to, v1::Program* out) {
  VCH_RETURN_IF_ERROR(RequireIssuerAdmin(call.principal, "change a program's state"));
  ViolationCollector v;
  CheckSlug(id, "id", v);
  VCH_RETURN_IF_ERROR(v.Finish());
  using Msg = v1::GetProgramResponse;  // any message holding a Program
  VCH_ASSIGN_OR_RETURN(
      std::string bytes,
      storage::TransitionProgram(
          pool, IdempotencyKeyFor(call.principal, method, request, request_id),
          call.principal.tenant, id, to,
          EncodeAs<Msg, storage::ProgramRecord>([](const storage::ProgramRecord& r, Msg* m) {
            ToProgram(r, m->mutable_program());
          })));
  Msg stored;
  VCH_RETURN_IF_ERROR(ParseStored(bytes, &stored));
  *out = stored.program();
  return absl::OkStatus();
}

}  // namespace

// ------------------------------------------------------------------------------------------
// IssuerService

grpc::Status IssuerServiceImpl::RegisterIssuer(grpc::ServerContext* context,
                                               const v1::RegisterIssuerRequest* request,
                                               v1::RegisterIssuerResponse* response) {
  return HandleRpc(context, "IssuerService.RegisterIssuer", [&](const CallContext& call) {
    if (call.principal.role != Role::kPlatformAdmin) {
      return PermissionDenied("only a platform admin registers issuers");
    }
    ViolationCollector v;
    CheckSlug(request->id(), "id", v);
    if (request->display_name().empty()) v.Add("display_name", "required");
    const auto level = static_cast<policy::IssuerLevel>(request->level());
    if (request->level() < 1 || request->level() > 3) {
      v.Add("level", "must be CITY, PROVINCE or NATIONAL");
    } else if (absl::Status s = policy::ValidateRegionForLevel(request->region_code(), level);
               !s.ok()) {
      for (const FieldViolation& fv : FieldViolationsOf(s)) v.Add(fv.field, fv.description);
    }
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_ASSIGN_OR_RETURN(
        std::string bytes,
        storage::RegisterIssuer(
            pool_,
            IdempotencyKeyFor(call.principal, "RegisterIssuer", *request, request->request_id()),
            {.id = request->id(),
             .display_name = request->display_name(),
             .region_code = request->region_code(),
             .level = level},
            EncodeAs<v1::RegisterIssuerResponse, storage::IssuerRecord>(
                [](const storage::IssuerRecord& r, v1::RegisterIssuerResponse* m) {
                  ToIssuer(r, m->mutable_issuer());
                })));
    return ParseStored(bytes, response);
  });
}

grpc::Status IssuerServiceImpl::GetIssuer(grpc::ServerContext* context,
                                          const v1::GetIssuerRequest* request,
                                          v1::GetIssuerResponse* response) {
  return HandleRpc(context, "IssuerService.GetIssuer", [&](const CallContext&) -> absl::Status {
    ViolationCollector v;
    CheckSlug(request->id(), "id", v);
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_ASSIGN_OR_RETURN(storage::IssuerRecord r, storage::GetIssuer(pool_, request->id()));
    ToIssuer(r, response->mutable_issuer());
    return absl::OkStatus();
  });
}

grpc::Status IssuerServiceImpl::ListIssuers(grpc::ServerContext* context,
                                            const v1::ListIssuersRequest* request,
                                            v1::ListIssuersResponse* response) {
  return HandleRpc(context, "IssuerService.ListIssuers", [&](const CallContext&) -> absl::Status {
    ViolationCollector v;
    const int size = PageSize(request->page_size(), v);
    std::optional<std::string> after = DecodePageToken(request->page_token(), "issuers", v);
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_ASSIGN_OR_RETURN(std::vector<storage::IssuerRecord> rows,
                         storage::ListIssuers(pool_, *after, size + 1));
    for (int i = 0; i < static_cast<int>(rows.size()) && i < size; ++i) {
      ToIssuer(rows[i], response->add_issuers());
    }
    if (static_cast<int>(rows.size()) > size) {
      response->set_next_page_token(EncodePageToken(rows[size - 1].id, "issuers"));
    }
    return absl::OkStatus();
  });
}

// ------------------------------------------------------------------------------------------
// ProgramService

grpc::Status ProgramServiceImpl::CreateProgram(grpc::ServerContext* context,
                                               const v1::CreateProgramRequest* request,
                                               v1::CreateProgramResponse* response) {
  return HandleRpc(context, "ProgramService.CreateProgram", [&](const CallContext& call) {
    VCH_RETURN_IF_ERROR(RequireIssuerAdmin(call.principal, "create programs"));
    ViolationCollector v;
    CheckSlug(request->id(), "id", v);
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_ASSIGN_OR_RETURN(policy::ProgramRules rules, RulesFromProto(request->rules(), "rules"));
    VCH_ASSIGN_OR_RETURN(
        std::string bytes,
        storage::CreateProgram(
            pool_,
            IdempotencyKeyFor(call.principal, "CreateProgram", *request, request->request_id()),
            call.principal.tenant, request->id(), rules,
            EncodeAs<v1::CreateProgramResponse, storage::ProgramRecord>(
                [](const storage::ProgramRecord& r, v1::CreateProgramResponse* m) {
                  ToProgram(r, m->mutable_program());
                })));
    return ParseStored(bytes, response);
  });
}

grpc::Status ProgramServiceImpl::UpdateProgram(grpc::ServerContext* context,
                                               const v1::UpdateProgramRequest* request,
                                               v1::UpdateProgramResponse* response) {
  return HandleRpc(context, "ProgramService.UpdateProgram", [&](const CallContext& call) {
    VCH_RETURN_IF_ERROR(RequireIssuerAdmin(call.principal, "update programs"));
    ViolationCollector v;
    CheckSlug(request->id(), "id", v);
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_ASSIGN_OR_RETURN(policy::ProgramRules rules, RulesFromProto(request->rules(), "rules"));
    VCH_ASSIGN_OR_RETURN(
        std::string bytes,
        storage::UpdateProgram(
            pool_,
            IdempotencyKeyFor(call.principal, "UpdateProgram", *request, request->request_id()),
            call.principal.tenant, request->id(), rules,
            EncodeAs<v1::UpdateProgramResponse, storage::ProgramRecord>(
                [](const storage::ProgramRecord& r, v1::UpdateProgramResponse* m) {
                  ToProgram(r, m->mutable_program());
                })));
    return ParseStored(bytes, response);
  });
}

grpc::Status ProgramServiceImpl::GetProgram(grpc::ServerContext* context,
                                            const v1::GetProgramRequest* request,
                                            v1::GetProgramResponse* response) {
  return HandleRpc(context, "ProgramService.GetProgram", [&](const CallContext&) -> absl::Status {
    ViolationCollector v;
    CheckSlug(request->id(), "id", v);
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_ASSIGN_OR_RETURN(storage::ProgramRecord r, storage::GetProgram(pool_, request->id()));
    ToProgram(r, response->mutable_program());
    return absl::OkStatus();
  });
}

grpc::Status ProgramServiceImpl::ListPrograms(grpc::ServerContext* context,
                                              const v1::ListProgramsRequest* request,
                                              v1::ListProgramsResponse* response) {
  return HandleRpc(context, "ProgramService.ListPrograms", [&](const CallContext&) -> absl::Status {
    ViolationCollector v;
    const int size = PageSize(request->page_size(), v);
    if (!request->issuer().empty()) CheckSlug(request->issuer(), "issuer", v);
    if (!v1::ProgramState_IsValid(request->state())) v.Add("state", "must be a known state");
    const std::string filters =
        absl::StrCat(request->issuer(), ",", static_cast<int>(request->state()));
    std::optional<std::string> after = DecodePageToken(request->page_token(), filters, v);
    VCH_RETURN_IF_ERROR(v.Finish());
    storage::ProgramFilter filter{
        .issuer_id = request->issuer(), .after_id = *after, .limit = size + 1};
    if (request->state() != v1::PROGRAM_STATE_UNSPECIFIED) {
      filter.state = static_cast<policy::ProgramState>(request->state());
    }
    VCH_ASSIGN_OR_RETURN(std::vector<storage::ProgramRecord> rows,
                         storage::ListPrograms(pool_, filter));
    for (int i = 0; i < static_cast<int>(rows.size()) && i < size; ++i) {
      ToProgram(rows[i], response->add_programs());
    }
    if (static_cast<int>(rows.size()) > size) {
      response->set_next_page_token(EncodePageToken(rows[size - 1].id, filters));
    }
    return absl::OkStatus();
  });
}

grpc::Status ProgramServiceImpl::OpenProgram(grpc::ServerContext* context,
                                             const v1::OpenProgramRequest* request,
                                             v1::OpenProgramResponse* response) {
  return HandleRpc(context, "ProgramService.OpenProgram", [&](const CallContext& call) {
    return TransitionBody(pool_, call, "OpenProgram", *request, request->request_id(),
                          request->id(), policy::ProgramState::kOpen, response->mutable_program());
  });
}

grpc::Status ProgramServiceImpl::CloseProgram(grpc::ServerContext* context,
                                              const v1::CloseProgramRequest* request,
                                              v1::CloseProgramResponse* response) {
  return HandleRpc(context, "ProgramService.CloseProgram", [&](const CallContext& call) {
    return TransitionBody(pool_, call, "CloseProgram", *request, request->request_id(),
                          request->id(), policy::ProgramState::kClosed,
                          response->mutable_program());
  });
}

grpc::Status ProgramServiceImpl::ArchiveProgram(grpc::ServerContext* context,
                                                const v1::ArchiveProgramRequest* request,
                                                v1::ArchiveProgramResponse* response) {
  return HandleRpc(context, "ProgramService.ArchiveProgram", [&](const CallContext& call) {
    return TransitionBody(pool_, call, "ArchiveProgram", *request, request->request_id(),
                          request->id(), policy::ProgramState::kArchived,
                          response->mutable_program());
  });
}

grpc::Status ProgramServiceImpl::FundProgram(grpc::ServerContext* context,
                                             const v1::FundProgramRequest* request,
                                             v1::FundProgramResponse* response) {
  return HandleRpc(context, "ProgramService.FundProgram", [&](const CallContext& call) {
    VCH_RETURN_IF_ERROR(RequireIssuerAdmin(call.principal, "fund programs"));
    ViolationCollector v;
    CheckSlug(request->id(), "id", v);
    if (request->amount_fen() <= 0) v.Add("amount_fen", "must be a positive number of fen");
    if (request->note().size() > 500) v.Add("note", "at most 500 bytes");
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_ASSIGN_OR_RETURN(
        std::string bytes,
        storage::FundProgram(
            pool_,
            IdempotencyKeyFor(call.principal, "FundProgram", *request, request->request_id()),
            call.principal.tenant, request->id(), request->amount_fen(), request->note(),
            [](const storage::ProgramRecord& r, int64_t transfer_id) {
              v1::FundProgramResponse m;
              ToProgram(r, m.mutable_program());
              m.set_transfer_id(transfer_id);
              return m.SerializeAsString();
            }));
    return ParseStored(bytes, response);
  });
}

// ------------------------------------------------------------------------------------------
// EnterpriseService

namespace {

absl::StatusOr<storage::EnterpriseRecord> EnterpriseFromProto(const v1::Enterprise& e) {
  ViolationCollector v;
  if (absl::Status s = policy::ValidateUscc(e.uscc(), "enterprise.uscc"); !s.ok()) {
    for (const FieldViolation& fv : FieldViolationsOf(s)) v.Add(fv.field, fv.description);
  }
  if (e.display_name().empty() || e.display_name().size() > 400) {
    v.Add("enterprise.display_name", "required, at most 400 bytes");
  }
  if (absl::Status s = ValidateRegion(e.region_code(), "enterprise.region_code"); !s.ok()) {
    for (const FieldViolation& fv : FieldViolationsOf(s)) v.Add(fv.field, fv.description);
  }
  if (e.kind() < 1 || e.kind() > 3) {
    v.Add("enterprise.kind", "must be SME, RESEARCH_INSTITUTION or STARTUP");
  }
  if (e.size_class() < 1 || e.size_class() > 4) {
    v.Add("enterprise.size_class", "must be MICRO, SMALL, MEDIUM or LARGE");
  }
  VCH_RETURN_IF_ERROR(v.Finish());
  return storage::EnterpriseRecord{.uscc = e.uscc(),
                                   .display_name = e.display_name(),
                                   .region_code = e.region_code(),
                                   .kind = static_cast<policy::EnterpriseKind>(e.kind()),
                                   .size = static_cast<policy::SizeClass>(e.size_class())};
}

// Enterprises act for themselves; platform admins for anyone.
absl::Status MayManageEnterprise(const policy::Principal& p, const std::string& uscc) {
  if (p.role == Role::kPlatformAdmin) return absl::OkStatus();
  if (p.role == Role::kEnterprise && p.tenant == uscc) return absl::OkStatus();
  return PermissionDenied("an enterprise registers and updates only itself");
}

}  // namespace

grpc::Status EnterpriseServiceImpl::RegisterEnterprise(grpc::ServerContext* context,
                                                       const v1::RegisterEnterpriseRequest* request,
                                                       v1::RegisterEnterpriseResponse* response) {
  return HandleRpc(context, "EnterpriseService.RegisterEnterprise", [&](const CallContext& call) {
    VCH_ASSIGN_OR_RETURN(storage::EnterpriseRecord e, EnterpriseFromProto(request->enterprise()));
    VCH_RETURN_IF_ERROR(MayManageEnterprise(call.principal, e.uscc));
    VCH_ASSIGN_OR_RETURN(
        std::string bytes,
        storage::RegisterEnterprise(
            pool_,
            IdempotencyKeyFor(call.principal, "RegisterEnterprise", *request,
                              request->request_id()),
            e,
            EncodeAs<v1::RegisterEnterpriseResponse, storage::EnterpriseRecord>(
                [](const storage::EnterpriseRecord& r, v1::RegisterEnterpriseResponse* m) {
                  ToEnterprise(r, m->mutable_enterprise());
                })));
    return ParseStored(bytes, response);
  });
}

grpc::Status EnterpriseServiceImpl::UpdateEnterprise(grpc::ServerContext* context,
                                                     const v1::UpdateEnterpriseRequest* request,
                                                     v1::UpdateEnterpriseResponse* response) {
  return HandleRpc(context, "EnterpriseService.UpdateEnterprise", [&](const CallContext& call) {
    VCH_ASSIGN_OR_RETURN(storage::EnterpriseRecord e, EnterpriseFromProto(request->enterprise()));
    VCH_RETURN_IF_ERROR(MayManageEnterprise(call.principal, e.uscc));
    VCH_ASSIGN_OR_RETURN(
        std::string bytes,
        storage::UpdateEnterprise(
            pool_,
            IdempotencyKeyFor(call.principal, "UpdateEnterprise", *request, request->request_id()),
            e,
            EncodeAs<v1::UpdateEnterpriseResponse, storage::EnterpriseRecord>(
                [](const storage::EnterpriseRecord& r, v1::UpdateEnterpriseResponse* m) {
                  ToEnterprise(r, m->mutable_enterprise());
                })));
    return ParseStored(bytes, response);
  });
}

grpc::Status EnterpriseServiceImpl::GetEnterprise(grpc::ServerContext* context,
                                                  const v1::GetEnterpriseRequest* request,
                                                  v1::GetEnterpriseResponse* response) {
  return HandleRpc(context, "EnterpriseService.GetEnterprise", [&](const CallContext& call) {
    const policy::Principal& p = call.principal;
    ViolationCollector v;
    CheckUscc(request->uscc(), "uscc", v);
    VCH_RETURN_IF_ERROR(v.Finish());
    const bool visible = SeesEverything(p) || IsIssuerStaff(p) ||
                         (p.role == Role::kEnterprise && p.tenant == request->uscc());
    if (!visible) {
      return DomainError(absl::StatusCode::kNotFound, "ENTERPRISE_NOT_FOUND",
                         absl::StrCat("enterprise ", request->uscc(), " not found"));
    }
    VCH_ASSIGN_OR_RETURN(storage::EnterpriseRecord r,
                         storage::GetEnterprise(pool_, request->uscc()));
    ToEnterprise(r, response->mutable_enterprise());
    return absl::OkStatus();
  });
}

grpc::Status EnterpriseServiceImpl::ListEnterprises(grpc::ServerContext* context,
                                                    const v1::ListEnterprisesRequest* request,
                                                    v1::ListEnterprisesResponse* response) {
  return HandleRpc(context, "EnterpriseService.ListEnterprises", [&](const CallContext& call) {
    if (!SeesEverything(call.principal) && !IsIssuerStaff(call.principal)) {
      return PermissionDenied("only admins, auditors and issuer staff list enterprises");
    }
    ViolationCollector v;
    const int size = PageSize(request->page_size(), v);
    std::optional<std::string> after = DecodePageToken(request->page_token(), "enterprises", v);
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_ASSIGN_OR_RETURN(std::vector<storage::EnterpriseRecord> rows,
                         storage::ListEnterprises(pool_, *after, size + 1));
    for (int i = 0; i < static_cast<int>(rows.size()) && i < size; ++i) {
      ToEnterprise(rows[i], response->add_enterprises());
    }
    if (static_cast<int>(rows.size()) > size) {
      response->set_next_page_token(EncodePageToken(rows[size - 1].uscc, "enterprises"));
    }
    return absl::OkStatus();
  });
}

// ------------------------------------------------------------------------------------------
// ApplicationService

namespace {

template <typename Response>
storage::Encoder<storage::ApplicationRecord> EncodeApplication() {
  return EncodeAs<Response, storage::ApplicationRecord>(
      [](const storage::ApplicationRecord& r, Response* m) {
        ToApplication(r, m->mutable_application());
      });
}

absl::Status RequireReviewer(const policy::Principal& p) {
  if (!IsIssuerStaff(p)) {
    return PermissionDenied("only reviewers and admins of the program's issuer decide");
  }
  return absl::OkStatus();
}

void CheckId(int64_t id, ViolationCollector& v) {
  if (id <= 0) v.Add("id", "must be a positive application id");
}

}  // namespace

grpc::Status ApplicationServiceImpl::SubmitApplication(grpc::ServerContext* context,
                                                       const v1::SubmitApplicationRequest* request,
                                                       v1::SubmitApplicationResponse* response) {
  return HandleRpc(context, "ApplicationService.SubmitApplication", [&](const CallContext& call) {
    if (call.principal.role != Role::kEnterprise) {
      return PermissionDenied("only enterprises apply");
    }
    ViolationCollector v;
    CheckSlug(request->program(), "program", v);
    if (request->enterprise() != call.principal.tenant) {
      v.Add("enterprise", "must be your own unified social credit code");
    }
    if (request->requested_fen() <= 0) v.Add("requested_fen", "must be a positive number of fen");
    if (request->purpose().size() > 2000) v.Add("purpose", "at most 2000 bytes");
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_ASSIGN_OR_RETURN(
        std::string bytes,
        storage::SubmitApplication(
            pool_,
            IdempotencyKeyFor(call.principal, "SubmitApplication", *request, request->request_id()),
            request->program(), request->enterprise(), request->requested_fen(), request->purpose(),
            absl::Now(), EncodeApplication<v1::SubmitApplicationResponse>()));
    return ParseStored(bytes, response);
  });
}

grpc::Status ApplicationServiceImpl::GetApplication(grpc::ServerContext* context,
                                                    const v1::GetApplicationRequest* request,
                                                    v1::GetApplicationResponse* response) {
  return HandleRpc(context, "ApplicationService.GetApplication", [&](const CallContext& call) {
    VCH_ASSIGN_OR_RETURN(storage::ApplicationScope scope, ReadScope(call.principal));
    ViolationCollector v;
    CheckId(request->id(), v);
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_ASSIGN_OR_RETURN(storage::ApplicationRecord r,
                         storage::GetApplication(pool_, request->id(), scope));
    ToApplication(r, response->mutable_application());
    return absl::OkStatus();
  });
}

grpc::Status ApplicationServiceImpl::ListApplications(grpc::ServerContext* context,
                                                      const v1::ListApplicationsRequest* request,
                                                      v1::ListApplicationsResponse* response) {
  return HandleRpc(context, "ApplicationService.ListApplications", [&](const CallContext& call) {
    VCH_ASSIGN_OR_RETURN(storage::ApplicationScope scope, ReadScope(call.principal));
    ViolationCollector v;
    const int size = PageSize(request->page_size(), v);
    if (!request->program().empty()) CheckSlug(request->program(), "program", v);
    if (!v1::ApplicationState_IsValid(request->state())) v.Add("state", "must be a known state");
    if (!request->enterprise().empty()) CheckUscc(request->enterprise(), "enterprise", v);
    const std::string filters = absl::StrCat(
        request->program(), ",", static_cast<int>(request->state()), ",", request->enterprise());
    std::optional<std::string> after = DecodePageToken(request->page_token(), filters, v);
    int64_t after_id = 0;
    if (after && !after->empty() && !absl::SimpleAtoi(*after, &after_id)) {
      v.Add("page_token", "is not a page token returned by this method");
    }
    VCH_RETURN_IF_ERROR(v.Finish());
    storage::ApplicationFilter filter{.program_id = request->program(),
                                      .uscc = request->enterprise(),
                                      .after_id = after_id,
                                      .limit = size + 1};
    if (request->state() != v1::APPLICATION_STATE_UNSPECIFIED) {
      filter.state = static_cast<storage::ApplicationState>(request->state());
    }
    VCH_ASSIGN_OR_RETURN(std::vector<storage::ApplicationRecord> rows,
                         storage::ListApplications(pool_, filter, scope));
    for (int i = 0; i < static_cast<int>(rows.size()) && i < size; ++i) {
      ToApplication(rows[i], response->add_applications());
    }
    if (static_cast<int>(rows.size()) > size) {
      response->set_next_page_token(EncodePageToken(absl::StrCat(rows[size - 1].id), filters));
    }
    return absl::OkStatus();
  });
}

grpc::Status ApplicationServiceImpl::WithdrawApplication(
    grpc::ServerContext* context, const v1::WithdrawApplicationRequest* request,
    v1::WithdrawApplicationResponse* response) {
  return HandleRpc(context, "ApplicationService.WithdrawApplication", [&](const CallContext& call) {
    if (call.principal.role != Role::kEnterprise) {
      return PermissionDenied("only the applicant withdraws");
    }
    ViolationCollector v;
    CheckId(request->id(), v);
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_ASSIGN_OR_RETURN(
        std::string bytes,
        storage::WithdrawApplication(pool_,
                                     IdempotencyKeyFor(call.principal, "WithdrawApplication",
                                                       *request, request->request_id()),
                                     request->id(), call.principal.tenant,
                                     EncodeApplication<v1::WithdrawApplicationResponse>()));
    return ParseStored(bytes, response);
  });
}

grpc::Status ApplicationServiceImpl::ApproveApplication(
    grpc::ServerContext* context, const v1::ApproveApplicationRequest* request,
    v1::ApproveApplicationResponse* response) {
  return HandleRpc(context, "ApplicationService.ApproveApplication", [&](const CallContext& call) {
    VCH_RETURN_IF_ERROR(RequireReviewer(call.principal));
    ViolationCollector v;
    CheckId(request->id(), v);
    if (request->amount_fen() <= 0) v.Add("amount_fen", "must be a positive number of fen");
    if (request->note().size() > 2000) v.Add("note", "at most 2000 bytes");
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_ASSIGN_OR_RETURN(
        std::string bytes,
        storage::ApproveApplication(pool_,
                                    IdempotencyKeyFor(call.principal, "ApproveApplication",
                                                      *request, request->request_id()),
                                    request->id(), call.principal.tenant, call.principal.subject,
                                    request->amount_fen(), request->note(),
                                    EncodeApplication<v1::ApproveApplicationResponse>()));
    return ParseStored(bytes, response);
  });
}

grpc::Status ApplicationServiceImpl::RejectApplication(grpc::ServerContext* context,
                                                       const v1::RejectApplicationRequest* request,
                                                       v1::RejectApplicationResponse* response) {
  return HandleRpc(context, "ApplicationService.RejectApplication", [&](const CallContext& call) {
    VCH_RETURN_IF_ERROR(RequireReviewer(call.principal));
    ViolationCollector v;
    CheckId(request->id(), v);
    if (request->reason().empty() || request->reason().size() > 2000) {
      v.Add("reason", "required, at most 2000 bytes");
    }
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_ASSIGN_OR_RETURN(
        std::string bytes,
        storage::RejectApplication(
            pool_,
            IdempotencyKeyFor(call.principal, "RejectApplication", *request, request->request_id()),
            request->id(), call.principal.tenant, call.principal.subject, request->reason(),
            EncodeApplication<v1::RejectApplicationResponse>()));
    return ParseStored(bytes, response);
  });
}

grpc::Status ApplicationServiceImpl::ClawbackAward(grpc::ServerContext* context,
                                                   const v1::ClawbackAwardRequest* request,
                                                   v1::ClawbackAwardResponse* response) {
  return HandleRpc(context, "ApplicationService.ClawbackAward", [&](const CallContext& call) {
    VCH_RETURN_IF_ERROR(RequireIssuerAdmin(call.principal, "claw back awards"));
    ViolationCollector v;
    CheckSlug(request->program(), "program", v);
    if (absl::Status s = policy::ValidateUscc(request->enterprise(), "enterprise"); !s.ok()) {
      for (const FieldViolation& fv : FieldViolationsOf(s)) v.Add(fv.field, fv.description);
    }
    if (request->amount_fen() <= 0) v.Add("amount_fen", "must be a positive number of fen");
    if (request->reason().empty() || request->reason().size() > 2000) {
      v.Add("reason", "required, at most 2000 bytes");
    }
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_ASSIGN_OR_RETURN(
        std::string bytes,
        storage::ClawbackAward(
            pool_,
            IdempotencyKeyFor(call.principal, "ClawbackAward", *request, request->request_id()),
            call.principal.tenant, request->program(), request->enterprise(), request->amount_fen(),
            request->reason(), call.principal.subject,
            [](const storage::AwardRecord& r, int64_t transfer_id) {
              v1::ClawbackAwardResponse m;
              ToAward(r, m.mutable_award());
              m.set_transfer_id(transfer_id);
              return m.SerializeAsString();
            }));
    return ParseStored(bytes, response);
  });
}

grpc::Status ApplicationServiceImpl::GetAward(grpc::ServerContext* context,
                                              const v1::GetAwardRequest* request,
                                              v1::GetAwardResponse* response) {
  return HandleRpc(context, "ApplicationService.GetAward", [&](const CallContext& call) {
    VCH_ASSIGN_OR_RETURN(storage::ApplicationScope scope, ReadScope(call.principal));
    ViolationCollector v;
    CheckSlug(request->program(), "program", v);
    CheckUscc(request->enterprise(), "enterprise", v);
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_ASSIGN_OR_RETURN(storage::AwardRecord r, storage::GetAward(pool_, request->program(),
                                                                   request->enterprise(), scope));
    ToAward(r, response->mutable_award());
    return absl::OkStatus();
  });
}

}  // namespace vch::server
