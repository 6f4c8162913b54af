#include "server/redemption_service.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/errors.h"
#include "base/status_macros.h"
#include "policy/programs.h"
#include "server/convert.h"
#include "server/rpc.h"

namespace vch::server {
namespace {

namespace v1 = ::vch::v1;
using policy::Role;
using storage::RedemptionRecord;
using storage::RedemptionScope;

// Who sees which redemptions and payouts: an enterprise its own, an operator its site's, issuer
// staff their programs', auditors and platform admins all.
RedemptionScope ScopeOf(const policy::Principal& p) {
  switch (p.role) {
    case Role::kEnterprise:
      return {.uscc = p.tenant};
    case Role::kOperator:
      return {.datacenter_id = p.tenant};
    case Role::kIssuerAdmin:
    case Role::kReviewer:
      return {.issuer_id = p.tenant};
    case Role::kPlatformAdmin:
    case Role::kAuditor:
      return {};
  }
  return {.uscc = "\x01"};  // unreachable; matches nothing
}

absl::Status RequireRole(const policy::Principal& p, std::initializer_list<Role> roles,
                         absl::string_view what) {
  for (Role r : roles) {
    if (p.role == r) return absl::OkStatus();
  }
  return PermissionDenied(what);
}

// The operator's datacenter, or "" for a platform admin acting for any site.
absl::StatusOr<std::string> OperatorScope(const policy::Principal& p) {
  VCH_RETURN_IF_ERROR(
      RequireRole(p, {Role::kOperator, Role::kPlatformAdmin},
                  "only the datacenter's operator (or a platform admin) may do this"));
  return p.role == Role::kOperator ? p.tenant : std::string();
}

void CheckRequestId(const std::string& id, ViolationCollector& v) {
  if (id.empty() || id.size() > 100) v.Add("request_id", "required: 1 to 100 characters");
}

void ToRequirement(const RedemptionRecord& r, v1::ComputeRequirement* out) {
  out->set_program(r.program_id);
  out->set_accelerator_model(r.accelerator_model);
  out->set_fp8_required(r.fp8_required);
  out->set_domestic_required(r.domestic_required);
  out->set_min_memory_gib(r.min_memory_gib);
  out->set_gpus(r.gpus);
  out->set_max_price_fen_per_gpu_hour(r.max_price_fen_per_gpu_hour);
  out->set_preferred_region_prefix(r.preferred_region_prefix);
}

void ToRedemption(const RedemptionRecord& r, v1::Redemption* out) {
  out->set_name(absl::StrCat("redemptions/", r.id));
  out->set_id(r.id);
  out->set_program(r.program_id);
  out->set_enterprise(r.uscc);
  out->set_state(static_cast<v1::RedemptionState>(r.state));
  out->set_settlement_style(static_cast<v1::SettlementStyle>(r.style));
  ToRequirement(r, out->mutable_requirement());
  out->set_hours(r.hours);
  out->set_pool(absl::StrCat("datacenters/", r.datacenter_id, "/pools/", r.pool_id));
  out->set_datacenter(r.datacenter_id);
  out->set_price_fen_per_gpu_hour(r.price_fen_per_gpu_hour);
  out->set_ratio_bps(r.ratio_bps);
  out->set_estimated_bill_fen(r.estimated_bill_fen);
  out->set_held_fen(r.held_fen);
  out->set_remaining_hold_fen(r.remaining_hold_fen);
  out->set_hold_transfer_id(r.hold_transfer_id);
  out->set_capacity_hold_id(r.capacity_hold_id);
  ToTimestamp(r.expires_at, out->mutable_expire_time());
  out->set_gpu_seconds(r.gpu_seconds);
  out->set_billed_fen(r.billed_fen);
  out->set_subsidy_fen(r.subsidy_fen);
  out->set_copay_fen(r.billed_fen - r.subsidy_fen);
  out->set_usage_records(r.usage_records);
  out->set_replaces(r.replaces);
  out->set_replaced_by(r.replaced_by);
  out->set_state_reason(r.state_reason);
  v1::Voucher* voucher = out->mutable_voucher();
  voucher->set_payload(CanonicalVoucherPayload(r.Voucher()));
  voucher->set_signature(r.voucher_signature);
  voucher->set_key_id(r.voucher_key_id);
  ToTimestamp(r.created_at, out->mutable_create_time());
  ToTimestamp(r.updated_at, out->mutable_update_time());
}

void ToUsage(const storage::UsageRecord& u, v1::UsageRecord* out) {
  out->set_name(absl::StrCat("redemptions/", u.redemption_id, "/usage/", u.usage_id));
  out->set_redemption(u.redemption_id);
  out->set_usage_id(u.usage_id);
  out->set_gpu_seconds(u.gpu_seconds);
  ToTimestamp(u.start, out->mutable_start_time());
  ToTimestamp(u.end, out->mutable_end_time());
  out->set_final(u.final);
  out->set_price_fen_per_gpu_hour(u.price_fen_per_gpu_hour);
  out->set_ratio_bps(u.ratio_bps);
  out->set_bill_fen(u.bill_fen);
  out->set_subsidy_fen(u.subsidy_fen);
  out->set_copay_fen(u.copay_fen);
  out->set_capped_by(policy::SubsidyCapName(u.capped_by));
  out->set_post_transfer_id(u.post_transfer_id);
  out->set_release_transfer_id(u.release_transfer_id);
  if (u.payout_id != 0) out->set_payout(absl::StrCat(u.payout_payee, "/payouts/", u.payout_id));
  ToTimestamp(u.settled_at, out->mutable_settle_time());
}

void ToPayout(const storage::PayoutRecord& p, v1::Payout* out) {
  const bool dc = p.payee_kind == storage::PayeeKind::kDatacenter;
  out->set_name(absl::StrCat(dc ? "datacenters/" : "enterprises/", p.payee, "/payouts/", p.id));
  out->set_id(p.id);
  out->set_program(p.program_id);
  if (dc) {
    out->set_datacenter(p.payee);
  } else {
    out->set_enterprise(p.payee);
  }
  ToTimestamp(p.period_start, out->mutable_period_start_time());
  ToTimestamp(p.period_end, out->mutable_period_end_time());
  out->set_amount_fen(p.amount_fen);
  out->set_lines(p.lines);
  out->set_transfer_id(p.transfer_id);
  out->set_created_by(p.created_by);
  ToTimestamp(p.created_at, out->mutable_create_time());
}

// Page tokens over descending or ascending int64 ids.
std::optional<int64_t> DecodeIdToken(const std::string& token, absl::string_view filters,
                                     ViolationCollector& v) {
  std::optional<std::string> cursor = DecodePageToken(token, filters, v);
  if (!cursor) return std::nullopt;
  if (cursor->empty()) return 0;
  int64_t id = 0;
  if (!absl::SimpleAtoi(*cursor, &id)) {
    v.Add("page_token", "not a token this method issued");
    return std::nullopt;
  }
  return id;
}

}  // namespace

grpc::ServerUnaryReactor* RedemptionServiceImpl::RequestCompute(
    grpc::CallbackServerContext* context, const v1::RequestComputeRequest* request,
    v1::RequestComputeResponse* response) {
  return HandleRpcAsync(
      context, "RedemptionService.RequestCompute", [&](const CallContext& call, FinishRpc finish) {
        absl::Status started = StartRequestCompute(call, request, response, finish);
        if (!started.ok()) finish(started);
      });
}

// Validates and queues a RequestCompute; `finish` is called when its batch has decided.
absl::Status RedemptionServiceImpl::StartRequestCompute(const CallContext& call,
                                                        const v1::RequestComputeRequest* request,
                                                        v1::RequestComputeResponse* response,
                                                        const FinishRpc& finish) {
  VCH_RETURN_IF_ERROR(RequireRole(call.principal, {Role::kEnterprise},
                                  "only enterprises request compute against their awards"));
  ViolationCollector v;
  CheckRequestId(request->request_id(), v);
  CheckRequirement(request->requirement(), "requirement", v);
  if (request->hours() < 1 || request->hours() > 2160) v.Add("hours", "must be 1..2160");
  VCH_RETURN_IF_ERROR(v.Finish());
  VCH_ASSIGN_OR_RETURN(ProgramPlacementRules rules,
                       rules_.Get(pool_, request->requirement().program()));
  storage::ComputeRequest req;
  req.key = IdempotencyKeyFor(call.principal, "RequestCompute", *request, request->request_id());
  req.uscc = call.principal.tenant;
  req.program_id = request->requirement().program();
  req.placement = EngineRequest(request->requirement(), rules, request->request_id());
  req.hours = request->hours();
  store_.RequestComputeAsync(
      std::move(req),
      [](const storage::ComputeOutcome& o) {
        v1::RequestComputeResponse out;
        out.set_placed(o.placed);
        if (o.placed) {
          ToRedemption(o.redemption, out.mutable_redemption());
        } else {
          ToExclusions(o.decision, out.mutable_exclusions());
        }
        return out.SerializeAsString();
      },
      [response, finish](absl::StatusOr<std::string> bytes) {
        finish(bytes.ok() ? ParseStored(*bytes, response) : bytes.status());
      });
  return absl::OkStatus();
}

grpc::Status RedemptionServiceImpl::GetRedemption(grpc::ServerContext* context,
                                                  const v1::GetRedemptionRequest* request,
                                                  v1::GetRedemptionResponse* response) {
  return HandleRpc(context, "RedemptionService.GetRedemption", [&](const CallContext& call) {
    VCH_ASSIGN_OR_RETURN(RedemptionRecord r, store_.Get(request->id(), ScopeOf(call.principal)));
    ToRedemption(r, response->mutable_redemption());
    return absl::OkStatus();
  });
}

grpc::Status RedemptionServiceImpl::ListRedemptions(grpc::ServerContext* context,
                                                    const v1::ListRedemptionsRequest* request,
                                                    v1::ListRedemptionsResponse* response) {
  return HandleRpc(context, "RedemptionService.ListRedemptions", [&](const CallContext& call) {
    ViolationCollector v;
    const int size = PageSize(request->page_size(), v);
    const std::string filters =
        absl::StrCat(request->program(), "|", request->enterprise(), "|", request->datacenter(),
                     "|", static_cast<int>(request->state()));
    std::optional<int64_t> before = DecodeIdToken(request->page_token(), filters, v);
    VCH_RETURN_IF_ERROR(v.Finish());
    storage::RedemptionStore::Filter f;
    f.program_id = request->program();
    f.uscc = request->enterprise();
    f.datacenter_id = request->datacenter();
    if (request->state() != v1::REDEMPTION_STATE_UNSPECIFIED) {
      f.state = static_cast<storage::RedemptionState>(request->state());
    }
    f.before_id = *before;
    f.limit = size + 1;
    VCH_ASSIGN_OR_RETURN(std::vector<RedemptionRecord> rows,
                         store_.List(f, ScopeOf(call.principal)));
    for (int i = 0; i < static_cast<int>(rows.size()) && i < size; ++i) {
      ToRedemption(rows[i], response->add_redemptions());
    }
    if (static_cast<int>(rows.size()) > size) {
      response->set_next_page_token(EncodePageToken(absl::StrCat(rows[size - 1].id), filters));
    }
    return absl::OkStatus();
  });
}

grpc::Status RedemptionServiceImpl::CancelRedemption(grpc::ServerContext* context,
                                                     const v1::CancelRedemptionRequest* request,
                                                     v1::CancelRedemptionResponse* response) {
  return HandleRpc(context, "RedemptionService.CancelRedemption", [&](const CallContext& call) {
    VCH_RETURN_IF_ERROR(RequireRole(call.principal, {Role::kEnterprise},
                                    "only the enterprise that requested it may cancel"));
    ViolationCollector v;
    CheckRequestId(request->request_id(), v);
    if (request->id() <= 0) v.Add("id", "must be a redemption id");
    if (request->reason().size() > 500) v.Add("reason", "at most 500 characters");
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_ASSIGN_OR_RETURN(
        std::string bytes,
        store_.Cancel(
            IdempotencyKeyFor(call.principal, "CancelRedemption", *request, request->request_id()),
            request->id(), call.principal.tenant,
            request->reason().empty() ? "cancelled by the enterprise" : request->reason(),
            [](const RedemptionRecord& r) {
              v1::CancelRedemptionResponse out;
              ToRedemption(r, out.mutable_redemption());
              return out.SerializeAsString();
            }));
    return ParseStored(bytes, response);
  });
}

grpc::Status RedemptionServiceImpl::ListPendingPlacements(
    grpc::ServerContext* context, const v1::ListPendingPlacementsRequest* request,
    v1::ListPendingPlacementsResponse* response) {
  return HandleRpc(
      context, "RedemptionService.ListPendingPlacements", [&](const CallContext& call) {
        VCH_ASSIGN_OR_RETURN(std::string dc, OperatorScope(call.principal));
        ViolationCollector v;
        const int size = PageSize(request->page_size(), v);
        std::optional<int64_t> after = DecodeIdToken(request->page_token(), dc, v);
        VCH_RETURN_IF_ERROR(v.Finish());
        VCH_ASSIGN_OR_RETURN(std::vector<RedemptionRecord> rows,
                             store_.ListPending(dc, *after, size + 1));
        for (int i = 0; i < static_cast<int>(rows.size()) && i < size; ++i) {
          ToRedemption(rows[i], response->add_redemptions());
        }
        if (static_cast<int>(rows.size()) > size) {
          response->set_next_page_token(EncodePageToken(absl::StrCat(rows[size - 1].id), dc));
        }
        return absl::OkStatus();
      });
}

grpc::Status RedemptionServiceImpl::ConfirmPlacement(grpc::ServerContext* context,
                                                     const v1::ConfirmPlacementRequest* request,
                                                     v1::ConfirmPlacementResponse* response) {
  return HandleRpc(context, "RedemptionService.ConfirmPlacement", [&](const CallContext& call) {
    VCH_ASSIGN_OR_RETURN(std::string dc, OperatorScope(call.principal));
    ViolationCollector v;
    CheckRequestId(request->request_id(), v);
    if (request->id() <= 0) v.Add("id", "must be a redemption id");
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_ASSIGN_OR_RETURN(std::string bytes,
                         store_.Confirm(IdempotencyKeyFor(call.principal, "ConfirmPlacement",
                                                          *request, request->request_id()),
                                        request->id(), dc, [](const RedemptionRecord& r) {
                                          v1::ConfirmPlacementResponse out;
                                          ToRedemption(r, out.mutable_redemption());
                                          return out.SerializeAsString();
                                        }));
    return ParseStored(bytes, response);
  });
}

grpc::Status RedemptionServiceImpl::RejectPlacement(grpc::ServerContext* context,
                                                    const v1::RejectPlacementRequest* request,
                                                    v1::RejectPlacementResponse* response) {
  return HandleRpc(context, "RedemptionService.RejectPlacement", [&](const CallContext& call) {
    VCH_ASSIGN_OR_RETURN(std::string dc, OperatorScope(call.principal));
    ViolationCollector v;
    CheckRequestId(request->request_id(), v);
    if (request->id() <= 0) v.Add("id", "must be a redemption id");
    if (request->reason().empty() || request->reason().size() > 500) {
      v.Add("reason", "required: 1 to 500 characters");
    }
    VCH_RETURN_IF_ERROR(v.Finish());
    // The same request again, for the re-placement (the store decides whether it runs).
    VCH_ASSIGN_OR_RETURN(RedemptionRecord current,
                         store_.Get(request->id(), {.datacenter_id = dc}));
    std::optional<storage::ComputeRequest> replacement;
    if (current.replaces == 0) {
      v1::ComputeRequirement requirement;
      ToRequirement(current, &requirement);
      VCH_ASSIGN_OR_RETURN(ProgramPlacementRules rules, rules_.Get(pool_, current.program_id));
      replacement.emplace();
      replacement->uscc = current.uscc;
      replacement->program_id = current.program_id;
      replacement->placement =
          EngineRequest(requirement, rules, absl::StrCat("replace-", current.id));
      replacement->hours = current.hours;
    }
    VCH_ASSIGN_OR_RETURN(std::string bytes,
                         store_.Reject(IdempotencyKeyFor(call.principal, "RejectPlacement",
                                                         *request, request->request_id()),
                                       request->id(), dc, request->reason(), std::move(replacement),
                                       [](const storage::RejectOutcome& o) {
                                         v1::RejectPlacementResponse out;
                                         ToRedemption(o.rejected, out.mutable_rejected());
                                         out.set_replaced(o.replaced);
                                         if (o.replaced) {
                                           ToRedemption(o.replacement, out.mutable_replacement());
                                         } else {
                                           ToExclusions(o.decision, out.mutable_exclusions());
                                         }
                                         return out.SerializeAsString();
                                       }));
    return ParseStored(bytes, response);
  });
}

grpc::ServerUnaryReactor* RedemptionServiceImpl::ReportUsage(grpc::CallbackServerContext* context,
                                                             const v1::ReportUsageRequest* request,
                                                             v1::ReportUsageResponse* response) {
  return HandleRpcAsync(context, "RedemptionService.ReportUsage",
                        [&](const CallContext& call, FinishRpc finish) {
                          absl::Status started = StartReportUsage(call, request, response, finish);
                          if (!started.ok()) finish(started);
                        });
}

// Validates and queues a ReportUsage; `finish` is called when its batch has settled it.
absl::Status RedemptionServiceImpl::StartReportUsage(const CallContext& call,
                                                     const v1::ReportUsageRequest* request,
                                                     v1::ReportUsageResponse* response,
                                                     const FinishRpc& finish) {
  VCH_ASSIGN_OR_RETURN(std::string dc, OperatorScope(call.principal));
  ViolationCollector v;
  if (request->redemption() <= 0) v.Add("redemption", "must be a redemption id");
  if (request->usage_id().empty() || request->usage_id().size() > 128) {
    v.Add("usage_id", "required: 1 to 128 characters");
  }
  if (request->gpu_seconds() < 0) v.Add("gpu_seconds", "must be >= 0");
  std::optional<absl::Time> start =
      RequiredTime(request->start_time(), request->has_start_time(), "start_time", v);
  std::optional<absl::Time> end =
      RequiredTime(request->end_time(), request->has_end_time(), "end_time", v);
  if (start && end && *end < *start) v.Add("end_time", "must not be before start_time");
  VCH_RETURN_IF_ERROR(v.Finish());
  storage::UsageReport report;
  report.redemption_id = request->redemption();
  report.usage_id = request->usage_id();
  // The hash covers the record only: the same record resent by anyone is the same record.
  report.request_hash = IdempotencyKeyFor({}, "ReportUsage", *request, "").request_hash;
  report.datacenter_scope = dc;
  report.gpu_seconds = request->gpu_seconds();
  report.start = *start;
  report.end = *end;
  report.final = request->final();
  store_.ReportUsageAsync(
      std::move(report),
      [](const storage::UsageOutcome& o) {
        v1::ReportUsageResponse out;
        ToUsage(o.usage, out.mutable_usage());
        ToRedemption(o.redemption, out.mutable_redemption());
        return out.SerializeAsString();
      },
      [response, finish](absl::StatusOr<std::string> bytes) {
        finish(bytes.ok() ? ParseStored(*bytes, response) : bytes.status());
      });
  return absl::OkStatus();
}

grpc::Status RedemptionServiceImpl::CreatePayout(grpc::ServerContext* context,
                                                 const v1::CreatePayoutRequest* request,
                                                 v1::CreatePayoutResponse* response) {
  return HandleRpc(context, "RedemptionService.CreatePayout", [&](const CallContext& call) {
    VCH_RETURN_IF_ERROR(
        RequireRole(call.principal, {Role::kIssuerAdmin, Role::kPlatformAdmin},
                    "only the program's issuer admin (or a platform admin) creates payouts"));
    ViolationCollector v;
    CheckRequestId(request->request_id(), v);
    CheckSlug(request->program(), "program", v);
    storage::PayoutRequest req;
    if (request->datacenter().empty() == request->enterprise().empty()) {
      v.Add("datacenter", "exactly one of datacenter and enterprise names the payee");
    } else if (!request->datacenter().empty()) {
      CheckSlug(request->datacenter(), "datacenter", v);
      req.payee_kind = storage::PayeeKind::kDatacenter;
      req.payee = request->datacenter();
    } else {
      if (!policy::ValidateUscc(request->enterprise(), "enterprise").ok()) {
        v.Add("enterprise", "not a valid unified social credit code");
      }
      req.payee_kind = storage::PayeeKind::kEnterprise;
      req.payee = request->enterprise();
    }
    std::optional<absl::Time> start = RequiredTime(
        request->period_start_time(), request->has_period_start_time(), "period_start_time", v);
    std::optional<absl::Time> end = RequiredTime(
        request->period_end_time(), request->has_period_end_time(), "period_end_time", v);
    if (start && end && *end <= *start) v.Add("period_end_time", "must be after period_start_time");
    VCH_RETURN_IF_ERROR(v.Finish());
    req.program_id = request->program();
    req.period_start = *start;
    req.period_end = *end;
    req.issuer_scope = call.principal.role == Role::kIssuerAdmin ? call.principal.tenant : "";
    req.actor = call.principal.subject.empty() ? absl::StrCat(policy::RoleName(call.principal.role),
                                                              ":", call.principal.tenant)
                                               : call.principal.subject;
    VCH_ASSIGN_OR_RETURN(std::string bytes,
                         store_.CreatePayout(IdempotencyKeyFor(call.principal, "CreatePayout",
                                                               *request, request->request_id()),
                                             req, [](const storage::PayoutRecord& p) {
                                               v1::CreatePayoutResponse out;
                                               ToPayout(p, out.mutable_payout());
                                               return out.SerializeAsString();
                                             }));
    return ParseStored(bytes, response);
  });
}

grpc::Status RedemptionServiceImpl::GetPayout(grpc::ServerContext* context,
                                              const v1::GetPayoutRequest* request,
                                              v1::GetPayoutResponse* response) {
  return HandleRpc(context, "RedemptionService.GetPayout", [&](const CallContext& call) {
    VCH_ASSIGN_OR_RETURN(storage::PayoutRecord p,
                         store_.GetPayout(request->id(), ScopeOf(call.principal)));
    ToPayout(p, response->mutable_payout());
    return absl::OkStatus();
  });
}

grpc::Status RedemptionServiceImpl::ListPayouts(grpc::ServerContext* context,
                                                const v1::ListPayoutsRequest* request,
                                                v1::ListPayoutsResponse* response) {
  return HandleRpc(context, "RedemptionService.ListPayouts", [&](const CallContext& call) {
    ViolationCollector v;
    const int size = PageSize(request->page_size(), v);
    if (!request->datacenter().empty() && !request->enterprise().empty()) {
      v.Add("enterprise", "filter by datacenter or by enterprise, not both");
    }
    const std::string filters =
        absl::StrCat(request->program(), "|", request->datacenter(), "|", request->enterprise());
    std::optional<int64_t> before = DecodeIdToken(request->page_token(), filters, v);
    VCH_RETURN_IF_ERROR(v.Finish());
    storage::RedemptionStore::PayoutFilter f;
    f.program_id = request->program();
    if (!request->datacenter().empty()) {
      f.payee_kind = storage::PayeeKind::kDatacenter;
      f.payee = request->datacenter();
    } else if (!request->enterprise().empty()) {
      f.payee_kind = storage::PayeeKind::kEnterprise;
      f.payee = request->enterprise();
    }
    f.before_id = *before;
    f.limit = size + 1;
    VCH_ASSIGN_OR_RETURN(std::vector<storage::PayoutRecord> rows,
                         store_.ListPayouts(f, ScopeOf(call.principal)));
    for (int i = 0; i < static_cast<int>(rows.size()) && i < size; ++i) {
      ToPayout(rows[i], response->add_payouts());
    }
    if (static_cast<int>(rows.size()) > size) {
      response->set_next_page_token(EncodePageToken(absl::StrCat(rows[size - 1].id), filters));
    }
    return absl::OkStatus();
  });
}

grpc::Status RedemptionServiceImpl::ListPayoutLines(grpc::ServerContext* context,
                                                    const v1::ListPayoutLinesRequest* request,
                                                    v1::ListPayoutLinesResponse* response) {
  return HandleRpc(context, "RedemptionService.ListPayoutLines", [&](const CallContext& call) {
    ViolationCollector v;
    const int size = PageSize(request->page_size(), v);
    const std::string filters = absl::StrCat(request->payout());
    std::optional<int64_t> after = DecodeIdToken(request->page_token(), filters, v);
    VCH_RETURN_IF_ERROR(v.Finish());
    // Authorizes: the payout must be visible to the caller.
    VCH_RETURN_IF_ERROR(store_.GetPayout(request->payout(), ScopeOf(call.principal)).status());
    VCH_ASSIGN_OR_RETURN(std::vector<storage::UsageRecord> rows,
                         store_.ListPayoutLines(request->payout(), *after, size + 1));
    for (int i = 0; i < static_cast<int>(rows.size()) && i < size; ++i) {
      v1::PayoutLine* line = response->add_lines();
      ToUsage(rows[i], line->mutable_usage());
      line->set_enterprise(rows[i].uscc);
      line->set_pool(
          absl::StrCat("datacenters/", rows[i].datacenter_id, "/pools/", rows[i].pool_id));
    }
    if (static_cast<int>(rows.size()) > size) {
      response->set_next_page_token(EncodePageToken(absl::StrCat(rows[size - 1].seq), filters));
    }
    return absl::OkStatus();
  });
}

grpc::Status RedemptionServiceImpl::GetVoucherKey(grpc::ServerContext* context,
                                                  const v1::GetVoucherKeyRequest*,
                                                  v1::GetVoucherKeyResponse* response) {
  return HandleRpc(context, "RedemptionService.GetVoucherKey", [&](const CallContext&) {
    response->set_key_id(signer_.key_id());
    response->set_public_key_pem(signer_.public_key_pem());
    return absl::OkStatus();
  });
}

}  // namespace vch::server
