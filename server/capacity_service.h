// vch.v1.CapacityService: datacenters, GPU pools and operators' capacity reports.
#ifndef VCH_SERVER_CAPACITY_SERVICE_H_
#define VCH_SERVER_CAPACITY_SERVICE_H_

#include "storage/pg_pool.h"
#include "vch/v1/capacity.grpc.pb.h"

namespace vch::server {

class CapacityServiceImpl final : public vch::v1::CapacityService::Service {
 public:
  explicit CapacityServiceImpl(storage::PgPool& pool) : pool_(pool) {}
  grpc::Status RegisterDatacenter(grpc::ServerContext* context,
                                  const vch::v1::RegisterDatacenterRequest* request,
                                  vch::v1::RegisterDatacenterResponse* response) override;
  grpc::Status GetDatacenter(grpc::ServerContext* context,
                             const vch::v1::GetDatacenterRequest* request,
                             vch::v1::GetDatacenterResponse* response) override;
  grpc::Status ListDatacenters(grpc::ServerContext* context,
                               const vch::v1::ListDatacentersRequest* request,
                               vch::v1::ListDatacentersResponse* response) override;
  grpc::Status RegisterPool(grpc::ServerContext* context,
                            const vch::v1::RegisterPoolRequest* request,
                            vch::v1::RegisterPoolResponse* response) override;
  grpc::Status ListPools(grpc::ServerContext* context, const vch::v1::ListPoolsRequest* request,
                         vch::v1::ListPoolsResponse* response) override;
  grpc::Status ReportCapacity(grpc::ServerContext* context,
                              const vch::v1::ReportCapacityRequest* request,
                              vch::v1::ReportCapacityResponse* response) override;
  grpc::Status SetDatacenterState(grpc::ServerContext* context,
                                  const vch::v1::SetDatacenterStateRequest* request,
                                  vch::v1::SetDatacenterStateResponse* response) override;
  grpc::Status GetUtilization(grpc::ServerContext* context,
                              const vch::v1::GetUtilizationRequest* request,
                              vch::v1::GetUtilizationResponse* response) override;

 private:
  storage::PgPool& pool_;
};

}  // namespace vch::server

#endif  // VCH_SERVER_CAPACITY_SERVICE_H_
