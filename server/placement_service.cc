#include "server/placement_service.h"

#include <algorithm>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/errors.h"
#include "base/status_macros.h"
#include "server/convert.h"
#include "server/placement_rules.h"
#include "server/rpc.h"
#include "storage/capacity_store.h"
#include "storage/idempotency.h"
#include "storage/program_store.h"

namespace vch::server {
namespace {

namespace v1 = ::vch::v1;
using policy::Role;

// Re-placement attempts when a reservation lost the race for a pool's last GPUs.
constexpr int kReserveAttempts = 3;

absl::Status MayPlace(const policy::Principal& p) {
  if (p.role == Role::kEnterprise || p.role == Role::kPlatformAdmin) return absl::OkStatus();
  return PermissionDenied("only enterprises (and platform admins) place compute requests");
}

// The engine's request for a requirement under its program, reading each program once per call.
absl::StatusOr<policy::PlacementRequest> ToEngineRequest(
    storage::PgPool& pool, std::map<std::string, ProgramPlacementRules>& scopes,
    const v1::ComputeRequirement& r, std::string request_id) {
  auto it = scopes.find(r.program());
  if (it == scopes.end()) {
    VCH_ASSIGN_OR_RETURN(ProgramPlacementRules rules,
                         LoadPlacementRules(pool, r.program(), /*require_open=*/true));
    it = scopes.emplace(r.program(), std::move(rules)).first;
  }
  return EngineRequest(r, it->second, std::move(request_id));
}

const policy::PoolState* FindPool(const std::vector<policy::PoolState>& pools,
                                  const std::string& id) {
  for (const policy::PoolState& p : pools) {
    if (p.pool_id == id) return &p;
  }
  return nullptr;
}

// `results` from a stored PlaceBatchResponse (one result per request).
absl::Status ParseResults(const std::string& bytes, std::vector<v1::PlaceResponse>& results) {
  v1::PlaceBatchResponse stored;
  if (!stored.ParseFromString(bytes) || stored.results_size() != static_cast<int>(results.size())) {
    return absl::InternalError("stored placement response unreadable");
  }
  for (size_t i = 0; i < results.size(); ++i) results[i] = stored.results(static_cast<int>(i));
  return absl::OkStatus();
}

// Places `requests` together, reserves the chosen capacity, and re-places the few that lost a
// race for a pool's last GPUs against a fresh snapshot. Fills one PlaceResponse per request.
absl::Status PlaceAndReserve(storage::PgPool& pool, const PlacementConfig& config,
                             const CallContext& call, absl::string_view method,
                             const google::protobuf::Message& request,
                             const std::string& request_id,
                             const std::vector<policy::PlacementRequest>& requests,
                             std::vector<v1::PlaceResponse>& results) {
  results.assign(requests.size(), v1::PlaceResponse());
  // A replay answers what the first call answered, before any fresh decision.
  const storage::IdempotencyKey rpc_key =
      IdempotencyKeyFor(call.principal, method, request, request_id);
  VCH_ASSIGN_OR_RETURN(std::optional<std::string> stored,
                       storage::FindIdempotentResponse(pool, rpc_key));
  if (stored) return ParseResults(*stored, results);
  std::vector<size_t> pending(requests.size());
  for (size_t i = 0; i < pending.size(); ++i) pending[i] = i;
  for (int attempt = 1; attempt <= kReserveAttempts && !pending.empty(); ++attempt) {
    VCH_ASSIGN_OR_RETURN(std::vector<policy::PoolState> pools, storage::LoadPoolStates(pool));
    std::vector<policy::PlacementRequest> batch;
    for (size_t i : pending) batch.push_back(requests[i]);
    const absl::Time now = absl::Now();
    std::vector<policy::PlacementDecision> decisions =
        batch.size() == 1 ? std::vector<policy::PlacementDecision>{policy::PlaceOne(
                                pools, batch[0], now, config.weights)}
                          : policy::PlaceBatch(pools, batch, now, config.weights);
    std::vector<storage::CapacityReservation> reservations;
    std::vector<size_t> reserved_index;  // index into `pending` of each reservation
    for (size_t k = 0; k < decisions.size(); ++k) {
      v1::PlaceResponse& out = results[pending[k]];
      out.Clear();
      if (!decisions[k].placed) {
        ToExclusions(decisions[k], out.mutable_exclusions());
        continue;
      }
      const policy::PoolState* p = FindPool(pools, decisions[k].pool_id);
      reservations.push_back({.datacenter_id = p->datacenter_id,
                              .pool_id = p->pool_id.substr(p->datacenter_id.size() + 1),
                              .gpus = batch[k].gpus,
                              .owner = call.principal.tenant,
                              .purpose = batch[k].request_id,
                              .expires_at = now + config.hold_ttl});
      reserved_index.push_back(k);
      out.set_placed(true);
      v1::Placement* placement = out.mutable_placement();
      placement->set_pool(
          absl::StrCat("datacenters/", p->datacenter_id, "/pools/", reservations.back().pool_id));
      placement->set_datacenter(p->datacenter_id);
      placement->set_gpus(batch[k].gpus);
      placement->set_price_fen_per_gpu_hour(p->price_fen_per_gpu_hour);
      ToScore(decisions[k].score, placement->mutable_score());
      ToTimestamp(reservations.back().expires_at, placement->mutable_expire_time());
    }
    if (reservations.empty()) return absl::OkStatus();
    // Each attempt is its own idempotent unit, storing the placements exactly as decided
    // (pool, price, score, expiry) with their hold ids (0 = lost the race), so a crash and a
    // retry between attempts report what was reserved, not a fresh decision.
    storage::IdempotencyKey key = rpc_key;
    key.request_id = absl::StrCat(request_id, "#", attempt);
    VCH_ASSIGN_OR_RETURN(
        std::string bytes,
        storage::ReserveCapacity(
            pool, key, reservations, [&](const std::vector<storage::CapacityReservation>& done) {
              v1::PlaceBatchResponse decided;
              for (size_t j = 0; j < done.size(); ++j) {
                v1::PlaceResponse* r = decided.add_results();
                *r->mutable_placement() = results[pending[reserved_index[j]]].placement();
                r->mutable_placement()->set_hold_id(done[j].hold_id);
              }
              return decided.SerializeAsString();
            }));
    v1::PlaceBatchResponse reserved;
    if (!reserved.ParseFromString(bytes) ||
        reserved.results_size() != static_cast<int>(reserved_index.size())) {
      return absl::InternalError("stored placement response unreadable");
    }
    std::vector<size_t> lost;
    for (size_t j = 0; j < reserved_index.size(); ++j) {
      v1::PlaceResponse& out = results[pending[reserved_index[j]]];
      if (reserved.results(j).placement().hold_id() == 0) {
        lost.push_back(pending[reserved_index[j]]);
        out.Clear();
        continue;
      }
      *out.mutable_placement() = reserved.results(j).placement();
      out.set_placed(true);
    }
    pending = lost;
  }
  for (size_t i : pending) {  // still losing races after every attempt
    v1::ExclusionCount* c = results[i].add_exclusions();
    c->set_reason("INSUFFICIENT_GPUS");
    c->set_pools(1);
  }
  // The whole answer, placed or not, under the RPC's key: a replay returns it as it was.
  v1::PlaceBatchResponse all;
  for (const v1::PlaceResponse& r : results) *all.add_results() = r;
  VCH_ASSIGN_OR_RETURN(std::string bytes,
                       storage::RunIdempotent(pool, rpc_key, [&](pqxx::dbtransaction&) {
                         return absl::StatusOr<std::string>(all.SerializeAsString());
                       }));
  return ParseResults(bytes, results);
}

}  // namespace

grpc::Status PlacementServiceImpl::Place(grpc::ServerContext* context,
                                         const v1::PlaceRequest* request,
                                         v1::PlaceResponse* response) {
  return HandleRpc(context, "PlacementService.Place", [&](const CallContext& call) {
    VCH_RETURN_IF_ERROR(MayPlace(call.principal));
    ViolationCollector v;
    if (request->request_id().empty() || request->request_id().size() > 100) {
      v.Add("request_id", "required: 1 to 100 characters");
    }
    CheckRequirement(request->requirement(), "requirement", v);
    VCH_RETURN_IF_ERROR(v.Finish());
    std::map<std::string, ProgramPlacementRules> scopes;
    VCH_ASSIGN_OR_RETURN(
        policy::PlacementRequest engine_request,
        ToEngineRequest(pool_, scopes, request->requirement(), request->request_id()));
    std::vector<v1::PlaceResponse> results;
    VCH_RETURN_IF_ERROR(PlaceAndReserve(pool_, config_, call, "Place", *request,
                                        request->request_id(), {engine_request}, results));
    *response = results[0];
    return absl::OkStatus();
  });
}

grpc::Status PlacementServiceImpl::PlaceBatch(grpc::ServerContext* context,
                                              const v1::PlaceBatchRequest* request,
                                              v1::PlaceBatchResponse* response) {
  return HandleRpc(context, "PlacementService.PlaceBatch", [&](const CallContext& call) {
    VCH_RETURN_IF_ERROR(MayPlace(call.principal));
    ViolationCollector v;
    if (request->request_id().empty() || request->request_id().size() > 100) {
      v.Add("request_id", "required: 1 to 100 characters");
    }
    if (request->requirements().empty() || request->requirements_size() > 1000) {
      v.Add("requirements", "1 to 1000 requirements");
    }
    for (int i = 0; i < request->requirements_size(); ++i) {
      CheckRequirement(request->requirements(i), absl::StrCat("requirements[", i, "]"), v);
    }
    VCH_RETURN_IF_ERROR(v.Finish());
    std::map<std::string, ProgramPlacementRules> scopes;
    std::vector<policy::PlacementRequest> engine_requests;
    for (int i = 0; i < request->requirements_size(); ++i) {
      VCH_ASSIGN_OR_RETURN(policy::PlacementRequest r,
                           ToEngineRequest(pool_, scopes, request->requirements(i),
                                           absl::StrCat(request->request_id(), "/", i)));
      engine_requests.push_back(std::move(r));
    }
    std::vector<v1::PlaceResponse> results;
    VCH_RETURN_IF_ERROR(PlaceAndReserve(pool_, config_, call, "PlaceBatch", *request,
                                        request->request_id(), engine_requests, results));
    for (v1::PlaceResponse& r : results) *response->add_results() = std::move(r);
    return absl::OkStatus();
  });
}

grpc::Status PlacementServiceImpl::Explain(grpc::ServerContext* context,
                                           const v1::ExplainRequest* request,
                                           v1::ExplainResponse* response) {
  return HandleRpc(context, "PlacementService.Explain", [&](const CallContext&) {
    ViolationCollector v;
    CheckRequirement(request->requirement(), "requirement", v);
    if (request->top() < 0 || request->top() > 100) v.Add("top", "must be 0..100");
    VCH_RETURN_IF_ERROR(v.Finish());
    const int top = request->top() == 0 ? 5 : request->top();
    std::map<std::string, ProgramPlacementRules> scopes;
    VCH_ASSIGN_OR_RETURN(policy::PlacementRequest r,
                         ToEngineRequest(pool_, scopes, request->requirement(), "explain"));
    VCH_ASSIGN_OR_RETURN(std::vector<policy::PoolState> pools, storage::LoadPoolStates(pool_));
    const absl::Time now = absl::Now();
    std::vector<std::pair<policy::ScoreBreakdown, const policy::PoolState*>> ranked;
    policy::PlacementDecision counts;
    for (const policy::PoolState& p : pools) {
      policy::ExclusionReason reason;
      if (policy::Excluded(p, r, now, config_.weights, &reason)) {
        ++counts.excluded[static_cast<int>(reason)];
        continue;
      }
      ranked.push_back({policy::Score(p, r, config_.weights), &p});
    }
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
      if (a.first.total != b.first.total) return a.first.total > b.first.total;
      return a.second->pool_id < b.second->pool_id;
    });
    for (int i = 0; i < static_cast<int>(ranked.size()) && i < top; ++i) {
      v1::RankedPool* out = response->add_ranking();
      const policy::PoolState& p = *ranked[i].second;
      out->set_pool(absl::StrCat("datacenters/", p.datacenter_id, "/pools/",
                                 p.pool_id.substr(p.datacenter_id.size() + 1)));
      ToScore(ranked[i].first, out->mutable_score());
      out->set_gpus_placeable(policy::PlaceableGpus(p));
      out->set_price_fen_per_gpu_hour(p.price_fen_per_gpu_hour);
    }
    ToExclusions(counts, response->mutable_exclusions());
    return absl::OkStatus();
  });
}

grpc::Status PlacementServiceImpl::ReleasePlacement(grpc::ServerContext* context,
                                                    const v1::ReleasePlacementRequest* request,
                                                    v1::ReleasePlacementResponse* response) {
  return HandleRpc(context, "PlacementService.ReleasePlacement", [&](const CallContext& call) {
    VCH_RETURN_IF_ERROR(MayPlace(call.principal));
    ViolationCollector v;
    if (request->hold_id() <= 0) v.Add("hold_id", "must be a positive hold id");
    VCH_RETURN_IF_ERROR(v.Finish());
    const std::string owner =
        call.principal.role == Role::kPlatformAdmin ? std::string() : call.principal.tenant;
    VCH_ASSIGN_OR_RETURN(bool released,
                         storage::ReleaseCapacityHold(pool_, request->hold_id(), owner));
    response->set_hold_id(request->hold_id());
    response->set_released(released);
    return absl::OkStatus();
  });
}

}  // namespace vch::server
