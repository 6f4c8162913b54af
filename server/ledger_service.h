// vch.v1.LedgerService: read access to the double-entry ledger (accounts, statements, balances
// as of a time) and whole-ledger verification, each scoped by the caller's principal.
#ifndef VCH_SERVER_LEDGER_SERVICE_H_
#define VCH_SERVER_LEDGER_SERVICE_H_

#include "storage/pg_pool.h"
#include "vch/v1/ledger.grpc.pb.h"

namespace vch::server {

// Thin handlers: validate, derive the caller's policy::LedgerReadScope, call storage, convert.
// Thread-safe; `pool` must outlive the service.
class LedgerServiceImpl final : public vch::v1::LedgerService::Service {
 public:
  explicit LedgerServiceImpl(storage::PgPool& pool) : pool_(pool) {}

  grpc::Status GetAccount(grpc::ServerContext* context, const vch::v1::GetAccountRequest* request,
                          vch::v1::GetAccountResponse* response) override;
  grpc::Status ListTransfers(grpc::ServerContext* context,
                             const vch::v1::ListTransfersRequest* request,
                             vch::v1::ListTransfersResponse* response) override;
  grpc::Status GetBalanceAt(grpc::ServerContext* context,
                            const vch::v1::GetBalanceAtRequest* request,
                            vch::v1::GetBalanceAtResponse* response) override;
  grpc::Status VerifyLedger(grpc::ServerContext* context,
                            const vch::v1::VerifyLedgerRequest* request,
                            vch::v1::VerifyLedgerResponse* response) override;

 private:
  storage::PgPool& pool_;
};

}  // namespace vch::server

#endif  // VCH_SERVER_LEDGER_SERVICE_H_
