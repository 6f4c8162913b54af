// vch.v1.PlacementService: places compute requests with policy/placement and reserves capacity.
#ifndef VCH_SERVER_PLACEMENT_SERVICE_H_
#define VCH_SERVER_PLACEMENT_SERVICE_H_

#include "absl/time/time.h"
#include "policy/placement.h"
#include "storage/pg_pool.h"
#include "vch/v1/placement.grpc.pb.h"

namespace vch::server {

struct PlacementConfig {
  policy::PlacementWeights weights;
  absl::Duration hold_ttl = absl::Minutes(30);  // capacity holds lapse unless confirmed
};

class PlacementServiceImpl final : public vch::v1::PlacementService::Service {
 public:
  PlacementServiceImpl(storage::PgPool& pool, PlacementConfig config)
      : pool_(pool), config_(config) {}
  grpc::Status Place(grpc::ServerContext* context, const vch::v1::PlaceRequest* request,
                     vch::v1::PlaceResponse* response) override;
  grpc::Status PlaceBatch(grpc::ServerContext* context, const vch::v1::PlaceBatchRequest* request,
                          vch::v1::PlaceBatchResponse* response) override;
  grpc::Status Explain(grpc::ServerContext* context, const vch::v1::ExplainRequest* request,
                       vch::v1::ExplainResponse* response) override;
  grpc::Status ReleasePlacement(grpc::ServerContext* context,
                                const vch::v1::ReleasePlacementRequest* request,
                                vch::v1::ReleasePlacementResponse* response) override;

 private:
  storage::PgPool& pool_;
  const PlacementConfig config_;
};

}  // namespace vch::server

#endif  // VCH_SERVER_PLACEMENT_SERVICE_H_
