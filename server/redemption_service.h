// vch.v1.RedemptionService: compute requests against awards, the operators' confirmations and
// usage reports, settlement and payouts (storage/redemption_store.h does the work).
#ifndef VCH_SERVER_REDEMPTION_SERVICE_H_
#define VCH_SERVER_REDEMPTION_SERVICE_H_

#include "base/voucher.h"
#include "server/placement_rules.h"
#include "server/rpc.h"
#include "storage/pg_pool.h"
#include "storage/redemption_store.h"
#include "vch/v1/redemption.grpc.pb.h"

namespace vch::server {

// RequestCompute and ReportUsage, which wait for a batch, are on gRPC's callback API (no handler
// thread waits for them); the other methods on its synchronous API.
using RedemptionServiceBase = vch::v1::RedemptionService::WithCallbackMethod_RequestCompute<
    vch::v1::RedemptionService::WithCallbackMethod_ReportUsage<
        vch::v1::RedemptionService::Service>>;

class RedemptionServiceImpl final : public RedemptionServiceBase {
 public:
  RedemptionServiceImpl(storage::PgPool& pool, storage::RedemptionStore& store,
                        const VoucherSigner& signer)
      : pool_(pool), store_(store), signer_(signer) {}

  grpc::ServerUnaryReactor* RequestCompute(grpc::CallbackServerContext* context,
                                           const vch::v1::RequestComputeRequest* request,
                                           vch::v1::RequestComputeResponse* response) override;
  grpc::Status GetRedemption(grpc::ServerContext* context,
                             const vch::v1::GetRedemptionRequest* request,
                             vch::v1::GetRedemptionResponse* response) override;
  grpc::Status ListRedemptions(grpc::ServerContext* context,
                               const vch::v1::ListRedemptionsRequest* request,
                               vch::v1::ListRedemptionsResponse* response) override;
  grpc::Status CancelRedemption(grpc::ServerContext* context,
                                const vch::v1::CancelRedemptionRequest* request,
                                vch::v1::CancelRedemptionResponse* response) override;
  grpc::Status ListPendingPlacements(grpc::ServerContext* context,
                                     const vch::v1::ListPendingPlacementsRequest* request,
                                     vch::v1::ListPendingPlacementsResponse* response) override;
  grpc::Status ConfirmPlacement(grpc::ServerContext* context,
                                const vch::v1::ConfirmPlacementRequest* request,
                                vch::v1::ConfirmPlacementResponse* response) override;
  grpc::Status RejectPlacement(grpc::ServerContext* context,
                               const vch::v1::RejectPlacementRequest* request,
                               vch::v1::RejectPlacementResponse* response) override;
  grpc::ServerUnaryReactor* ReportUsage(grpc::CallbackServerContext* context,
                                        const vch::v1::ReportUsageRequest* request,
                                        vch::v1::ReportUsageResponse* response) override;
  grpc::Status CreatePayout(grpc::ServerContext* context,
                            const vch::v1::CreatePayoutRequest* request,
                            vch::v1::CreatePayoutResponse* response) override;
  grpc::Status GetPayout(grpc::ServerContext* context, const vch::v1::GetPayoutRequest* request,
                         vch::v1::GetPayoutResponse* response) override;
  grpc::Status ListPayouts(grpc::ServerContext* context, const vch::v1::ListPayoutsRequest* request,
                           vch::v1::ListPayoutsResponse* response) override;
  grpc::Status ListPayoutLines(grpc::ServerContext* context,
                               const vch::v1::ListPayoutLinesRequest* request,
                               vch::v1::ListPayoutLinesResponse* response) override;
  grpc::Status GetVoucherKey(grpc::ServerContext* context,
                             const vch::v1::GetVoucherKeyRequest* request,
                             vch::v1::GetVoucherKeyResponse* response) override;

 private:
  absl::Status StartRequestCompute(const CallContext& call,
                                   const vch::v1::RequestComputeRequest* request,
                                   vch::v1::RequestComputeResponse* response,
                                   const FinishRpc& finish);
  absl::Status StartReportUsage(const CallContext& call, const vch::v1::ReportUsageRequest* request,
                                vch::v1::ReportUsageResponse* response, const FinishRpc& finish);

  storage::PgPool& pool_;
  storage::RedemptionStore& store_;
  const VoucherSigner& signer_;
  PlacementRulesCache rules_;
};

}  // namespace vch::server

#endif  // VCH_SERVER_REDEMPTION_SERVICE_H_
