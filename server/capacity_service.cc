#include "server/capacity_service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/errors.h"
#include "base/status_macros.h"
#include "policy/programs.h"
#include "server/convert.h"
#include "server/rpc.h"
#include "storage/capacity_store.h"

namespace vch::server {
namespace {

namespace v1 = ::vch::v1;
using policy::Role;

void ToDatacenter(const storage::DatacenterRecord& r, v1::Datacenter* out) {
  out->set_name(absl::StrCat("datacenters/", r.id));
  out->set_id(r.id);
  out->set_display_name(r.display_name);
  out->set_operator_name(r.operator_name);
  out->set_region_code(r.region_code);
  out->set_hub(static_cast<v1::NationalHub>(r.hub));
  out->set_national_network(r.national_network);
  out->set_state(r.active ? v1::DATACENTER_STATE_ACTIVE : v1::DATACENTER_STATE_SUSPENDED);
  ToTimestamp(r.created_at, out->mutable_create_time());
}

void ToPool(const storage::PoolRecord& r, v1::Pool* out) {
  out->set_name(absl::StrCat("datacenters/", r.datacenter_id, "/pools/", r.id));
  out->set_id(r.id);
  out->set_datacenter(r.datacenter_id);
  out->set_accelerator_model(r.accelerator_model);
  out->set_vendor(r.vendor);
  out->set_domestic(r.domestic);
  out->set_fp8(r.fp8);
  out->set_memory_gib(r.memory_gib);
  out->set_fp16_tflops(r.fp16_tflops);
  out->set_fp8_tflops(r.fp8_tflops);
  out->set_gpus_total(r.gpus_total);
  out->set_gpus_free(r.gpus_free);
  out->set_gpus_held(r.gpus_held);
  out->set_price_fen_per_gpu_hour(r.price_fen_per_gpu_hour);
  if (r.reported_at) ToTimestamp(*r.reported_at, out->mutable_report_time());
}

// Operators act for their own datacenter; platform admins for any.
absl::Status MayOperate(const policy::Principal& p, const std::string& datacenter) {
  if (p.role == Role::kPlatformAdmin) return absl::OkStatus();
  if (p.role == Role::kOperator && p.tenant == datacenter) return absl::OkStatus();
  return PermissionDenied("only the datacenter's operator (or a platform admin) may do this");
}

}  // namespace

grpc::Status CapacityServiceImpl::RegisterDatacenter(grpc::ServerContext* context,
                                                     const v1::RegisterDatacenterRequest* request,
                                                     v1::RegisterDatacenterResponse* response) {
  return HandleRpc(context, "CapacityService.RegisterDatacenter", [&](const CallContext& call) {
    const v1::Datacenter& dc = request->datacenter();
    ViolationCollector v;
    CheckSlug(dc.id(), "datacenter.id", v);
    if (dc.display_name().empty()) v.Add("datacenter.display_name", "required");
    if (dc.region_code().size() != 6 ||
        !std::all_of(dc.region_code().begin(), dc.region_code().end(),
                     [](char c) { return c >= '0' && c <= '9'; })) {
      v.Add("datacenter.region_code", "must be a 6-digit GB/T 2260 code");
    }
    if (dc.hub() < 1 || dc.hub() > 8) v.Add("datacenter.hub", "must be one of the eight hubs");
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_RETURN_IF_ERROR(MayOperate(call.principal, dc.id()));
    VCH_ASSIGN_OR_RETURN(
        std::string bytes,
        storage::RegisterDatacenter(pool_,
                                    IdempotencyKeyFor(call.principal, "RegisterDatacenter",
                                                      *request, request->request_id()),
                                    {.id = dc.id(),
                                     .display_name = dc.display_name(),
                                     .operator_name = dc.operator_name(),
                                     .region_code = dc.region_code(),
                                     .hub = static_cast<policy::NationalHub>(dc.hub()),
                                     .national_network = dc.national_network()},
                                    [](const storage::DatacenterRecord& r) {
                                      v1::RegisterDatacenterResponse m;
                                      ToDatacenter(r, m.mutable_datacenter());
                                      return m.SerializeAsString();
                                    }));
    return ParseStored(bytes, response);
  });
}

grpc::Status CapacityServiceImpl::GetDatacenter(grpc::ServerContext* context,
                                                const v1::GetDatacenterRequest* request,
                                                v1::GetDatacenterResponse* response) {
  return HandleRpc(context, "CapacityService.GetDatacenter", [&](const CallContext&) {
    VCH_ASSIGN_OR_RETURN(storage::DatacenterRecord r, storage::GetDatacenter(pool_, request->id()));
    ToDatacenter(r, response->mutable_datacenter());
    return absl::OkStatus();
  });
}

grpc::Status CapacityServiceImpl::ListDatacenters(grpc::ServerContext* context,
                                                  const v1::ListDatacentersRequest* request,
                                                  v1::ListDatacentersResponse* response) {
  return HandleRpc(context, "CapacityService.ListDatacenters", [&](const CallContext&) {
    ViolationCollector v;
    const int size = PageSize(request->page_size(), v);
    const std::string filters = absl::StrCat(static_cast<int>(request->hub()));
    std::optional<std::string> after = DecodePageToken(request->page_token(), filters, v);
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_ASSIGN_OR_RETURN(
        std::vector<storage::DatacenterRecord> rows,
        storage::ListDatacenters(pool_, static_cast<policy::NationalHub>(request->hub()), *after,
                                 size + 1));
    for (int i = 0; i < static_cast<int>(rows.size()) && i < size; ++i) {
      ToDatacenter(rows[i], response->add_datacenters());
    }
    if (static_cast<int>(rows.size()) > size) {
      response->set_next_page_token(EncodePageToken(rows[size - 1].id, filters));
    }
    return absl::OkStatus();
  });
}

grpc::Status CapacityServiceImpl::RegisterPool(grpc::ServerContext* context,
                                               const v1::RegisterPoolRequest* request,
                                               v1::RegisterPoolResponse* response) {
  return HandleRpc(context, "CapacityService.RegisterPool", [&](const CallContext& call) {
    const v1::Pool& p = request->pool();
    ViolationCollector v;
    CheckSlug(p.datacenter(), "pool.datacenter", v);
    CheckSlug(p.id(), "pool.id", v);
    if (p.accelerator_model().empty()) v.Add("pool.accelerator_model", "required");
    if (p.memory_gib() <= 0) v.Add("pool.memory_gib", "must be positive");
    if (p.gpus_total() <= 0) v.Add("pool.gpus_total", "must be positive");
    if (p.price_fen_per_gpu_hour() <= 0) v.Add("pool.price_fen_per_gpu_hour", "must be positive");
    if (p.fp16_tflops() < 0) v.Add("pool.fp16_tflops", "must not be negative");
    if (p.fp8_tflops() < 0 || (!p.fp8() && p.fp8_tflops() != 0)) {
      v.Add("pool.fp8_tflops", "must be 0 unless the pool is FP8-capable");
    }
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_RETURN_IF_ERROR(MayOperate(call.principal, p.datacenter()));
    VCH_ASSIGN_OR_RETURN(
        std::string bytes,
        storage::RegisterPool(
            pool_,
            IdempotencyKeyFor(call.principal, "RegisterPool", *request, request->request_id()),
            {.datacenter_id = p.datacenter(),
             .id = p.id(),
             .accelerator_model = p.accelerator_model(),
             .vendor = p.vendor(),
             .domestic = p.domestic(),
             .fp8 = p.fp8(),
             .memory_gib = p.memory_gib(),
             .fp16_tflops = p.fp16_tflops(),
             .fp8_tflops = p.fp8_tflops(),
             .gpus_total = p.gpus_total(),
             .price_fen_per_gpu_hour = p.price_fen_per_gpu_hour()},
            [](const storage::PoolRecord& r) {
              v1::RegisterPoolResponse m;
              ToPool(r, m.mutable_pool());
              return m.SerializeAsString();
            }));
    return ParseStored(bytes, response);
  });
}

grpc::Status CapacityServiceImpl::ListPools(grpc::ServerContext* context,
                                            const v1::ListPoolsRequest* request,
                                            v1::ListPoolsResponse* response) {
  return HandleRpc(context, "CapacityService.ListPools", [&](const CallContext&) {
    VCH_ASSIGN_OR_RETURN(std::vector<storage::PoolRecord> rows,
                         storage::ListPools(pool_, request->datacenter()));
    for (const storage::PoolRecord& r : rows) ToPool(r, response->add_pools());
    return absl::OkStatus();
  });
}

grpc::Status CapacityServiceImpl::ReportCapacity(grpc::ServerContext* context,
                                                 const v1::ReportCapacityRequest* request,
                                                 v1::ReportCapacityResponse* response) {
  return HandleRpc(context, "CapacityService.ReportCapacity", [&](const CallContext& call) {
    if (call.principal.role != Role::kOperator || call.principal.tenant != request->datacenter()) {
      return PermissionDenied("only the datacenter's operator reports its capacity");
    }
    ViolationCollector v;
    if (request->reports().empty()) v.Add("reports", "at least one pool report");
    std::vector<storage::PoolReport> reports;
    for (int i = 0; i < request->reports_size(); ++i) {
      const v1::PoolReport& r = request->reports(i);
      if (r.gpus_free() < 0) v.Add(absl::StrCat("reports[", i, "].gpus_free"), "must be >= 0");
      for (int j = 0; j < i; ++j) {
        if (request->reports(j).pool() == r.pool()) {
          v.Add(absl::StrCat("reports[", i, "].pool"), "names a pool already reported above");
          break;
        }
      }
      reports.push_back({r.pool(), r.gpus_free()});
    }
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_ASSIGN_OR_RETURN(std::string bytes,
                         storage::ReportCapacity(pool_,
                                                 IdempotencyKeyFor(call.principal, "ReportCapacity",
                                                                   *request, request->request_id()),
                                                 request->datacenter(), reports, absl::Now(),
                                                 [](const std::vector<storage::PoolRecord>& pools) {
                                                   v1::ReportCapacityResponse m;
                                                   for (const storage::PoolRecord& p : pools)
                                                     ToPool(p, m.add_pools());
                                                   return m.SerializeAsString();
                                                 }));
    return ParseStored(bytes, response);
  });
}

grpc::Status CapacityServiceImpl::SetDatacenterState(grpc::ServerContext* context,
                                                     const v1::SetDatacenterStateRequest* request,
                                                     v1::SetDatacenterStateResponse* response) {
  return HandleRpc(context, "CapacityService.SetDatacenterState", [&](const CallContext& call) {
    if (call.principal.role != Role::kPlatformAdmin && call.principal.role != Role::kAuditor) {
      return PermissionDenied("only platform admins and auditors suspend or resume sites");
    }
    ViolationCollector v;
    CheckSlug(request->id(), "id", v);
    if (request->state() != v1::DATACENTER_STATE_ACTIVE &&
        request->state() != v1::DATACENTER_STATE_SUSPENDED) {
      v.Add("state", "must be ACTIVE or SUSPENDED");
    }
    if (request->state() == v1::DATACENTER_STATE_SUSPENDED && request->reason().empty()) {
      v.Add("reason", "required when suspending");
    }
    VCH_RETURN_IF_ERROR(v.Finish());
    VCH_ASSIGN_OR_RETURN(
        std::string bytes,
        storage::SetDatacenterState(pool_,
                                    IdempotencyKeyFor(call.principal, "SetDatacenterState",
                                                      *request, request->request_id()),
                                    request->id(), request->state() == v1::DATACENTER_STATE_ACTIVE,
                                    request->reason(), [](const storage::DatacenterRecord& r) {
                                      v1::SetDatacenterStateResponse m;
                                      ToDatacenter(r, m.mutable_datacenter());
                                      return m.SerializeAsString();
                                    }));
    return ParseStored(bytes, response);
  });
}

grpc::Status CapacityServiceImpl::GetUtilization(grpc::ServerContext* context,
                                                 const v1::GetUtilizationRequest* request,
                                                 v1::GetUtilizationResponse* response) {
  return HandleRpc(context, "CapacityService.GetUtilization", [&](const CallContext&) {
    ViolationCollector v;
    storage::UtilizationQuery q;
    const int selectors = (request->pool().empty() ? 0 : 1) +
                          (request->datacenter().empty() ? 0 : 1) +
                          (request->hub() == v1::NATIONAL_HUB_UNSPECIFIED ? 0 : 1);
    if (selectors != 1) v.Add("pool", "give exactly one of pool, datacenter or hub");
    if (!request->pool().empty()) {
      std::vector<std::string> parts = absl::StrSplit(request->pool(), '/');
      if (parts.size() == 4 && parts[0] == "datacenters" && parts[2] == "pools") {
        parts = {parts[1], parts[3]};
      }
      ViolationCollector names;
      if (parts.size() == 2) {
        CheckSlug(parts[0], "pool", names);
        CheckSlug(parts[1], "pool", names);
      }
      if (parts.size() != 2 || !names.empty()) {
        v.Add("pool", "must be datacenters/{dc}/pools/{pool} or {dc}/{pool}");
      } else {
        q.datacenter_id = parts[0];
        q.pool_id = parts[1];
      }
    }
    if (!request->datacenter().empty()) q.datacenter_id = request->datacenter();
    q.hub = static_cast<policy::NationalHub>(request->hub());
    std::optional<absl::Time> start =
        RequiredTime(request->start_time(), request->has_start_time(), "start_time", v);
    std::optional<absl::Time> end =
        RequiredTime(request->end_time(), request->has_end_time(), "end_time", v);
    if (start && end && *end <= *start) v.Add("end_time", "must be after start_time");
    if (request->bucket_seconds() < 60) v.Add("bucket_seconds", "must be at least 60");
    if (start && end && request->bucket_seconds() >= 60 &&
        (*end - *start) / absl::Seconds(request->bucket_seconds()) > 10000) {
      v.Add("bucket_seconds", "at most 10000 buckets per query");
    }
    VCH_RETURN_IF_ERROR(v.Finish());
    q.start = *start;
    q.end = *end;
    q.bucket = absl::Seconds(request->bucket_seconds());
    VCH_ASSIGN_OR_RETURN(std::vector<storage::UtilizationPoint> points,
                         storage::GetUtilization(pool_, q));
    for (const storage::UtilizationPoint& p : points) {
      v1::UtilizationPoint* out = response->add_points();
      ToTimestamp(p.bucket_start, out->mutable_time());
      out->set_gpus_total(static_cast<int32_t>(p.gpus_total));
      out->set_gpus_busy(static_cast<int32_t>(p.gpus_busy));
      out->set_utilization_bps(
          p.gpus_total == 0 ? 0 : static_cast<int32_t>(p.gpus_busy * 10000 / p.gpus_total));
    }
    return absl::OkStatus();
  });
}

}  // namespace vch::server
