// vch.v1.IdentityService: tells callers who the server authenticated them as.
#ifndef VCH_SERVER_IDENTITY_SERVICE_H_
#define VCH_SERVER_IDENTITY_SERVICE_H_

#include <cstdint>

#include "vch/v1/identity.grpc.pb.h"

namespace vch::server {

class IdentityServiceImpl final : public vch::v1::IdentityService::Service {
 public:
  explicit IdentityServiceImpl(int64_t schema_version) : schema_version_(schema_version) {}

  grpc::Status WhoAmI(grpc::ServerContext* context, const vch::v1::WhoAmIRequest* request,
                      vch::v1::WhoAmIResponse* response) override;

 private:
  const int64_t schema_version_;
};

}  // namespace vch::server

#endif  // VCH_SERVER_IDENTITY_SERVICE_H_
