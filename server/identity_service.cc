#include "server/identity_service.h"

#include "server/rpc.h"
#include "server/version.h"

namespace vch::server {

grpc::Status IdentityServiceImpl::WhoAmI(grpc::ServerContext* context,
                                         const vch::v1::WhoAmIRequest* /*request*/,
                                         vch::v1::WhoAmIResponse* response) {
  return HandleRpc(context, "IdentityService.WhoAmI", [&](const CallContext& call) {
    vch::v1::Principal* p = response->mutable_principal();
    p->set_role(static_cast<vch::v1::Role>(call.principal.role));
    p->set_tenant(call.principal.tenant);
    p->set_subject(call.principal.subject);
    response->set_schema_version(schema_version_);
    response->set_server_version(kVchVersion);
    return absl::OkStatus();
  });
}

}  // namespace vch::server
