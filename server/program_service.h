// vch.v1.IssuerService, ProgramService, EnterpriseService and ApplicationService: the program
// office and SME workflow (DESIGN §3). Thin handlers: convert, authorize, call storage.
#ifndef VCH_SERVER_PROGRAM_SERVICE_H_
#define VCH_SERVER_PROGRAM_SERVICE_H_

#include "storage/pg_pool.h"
#include "vch/v1/application.grpc.pb.h"
#include "vch/v1/enterprise.grpc.pb.h"
#include "vch/v1/program.grpc.pb.h"

namespace vch::server {

class IssuerServiceImpl final : public vch::v1::IssuerService::Service {
 public:
  explicit IssuerServiceImpl(storage::PgPool& pool) : pool_(pool) {}
  grpc::Status RegisterIssuer(grpc::ServerContext* context,
                              const vch::v1::RegisterIssuerRequest* request,
                              vch::v1::RegisterIssuerResponse* response) override;
  grpc::Status GetIssuer(grpc::ServerContext* context, const vch::v1::GetIssuerRequest* request,
                         vch::v1::GetIssuerResponse* response) override;
  grpc::Status ListIssuers(grpc::ServerContext* context, const vch::v1::ListIssuersRequest* request,
                           vch::v1::ListIssuersResponse* response) override;

 private:
  storage::PgPool& pool_;
};

class ProgramServiceImpl final : public vch::v1::ProgramService::Service {
 public:
  explicit ProgramServiceImpl(storage::PgPool& pool) : pool_(pool) {}
  grpc::Status CreateProgram(grpc::ServerContext* context,
                             const vch::v1::CreateProgramRequest* request,
                             vch::v1::CreateProgramResponse* response) override;
  grpc::Status UpdateProgram(grpc::ServerContext* context,
                             const vch::v1::UpdateProgramRequest* request,
                             vch::v1::UpdateProgramResponse* response) override;
  grpc::Status GetProgram(grpc::ServerContext* context, const vch::v1::GetProgramRequest* request,
                          vch::v1::GetProgramResponse* response) override;
  grpc::Status ListPrograms(grpc::ServerContext* context,
                            const vch::v1::ListProgramsRequest* request,
                            vch::v1::ListProgramsResponse* response) override;
  grpc::Status OpenProgram(grpc::ServerContext* context, const vch::v1::OpenProgramRequest* request,
                           vch::v1::OpenProgramResponse* response) override;
  grpc::Status CloseProgram(grpc::ServerContext* context,
                            const vch::v1::CloseProgramRequest* request,
                            vch::v1::CloseProgramResponse* response) override;
  grpc::Status ArchiveProgram(grpc::ServerContext* context,
                              const vch::v1::ArchiveProgramRequest* request,
                              vch::v1::ArchiveProgramResponse* response) override;
  grpc::Status FundProgram(grpc::ServerContext* context, const vch::v1::FundProgramRequest* request,
                           vch::v1::FundProgramResponse* response) override;

 private:
  storage::PgPool& pool_;
};

class EnterpriseServiceImpl final : public vch::v1::EnterpriseService::Service {
 public:
  explicit EnterpriseServiceImpl(storage::PgPool& pool) : pool_(pool) {}
  grpc::Status RegisterEnterprise(grpc::ServerContext* context,
                                  const vch::v1::RegisterEnterpriseRequest* request,
                                  vch::v1::RegisterEnterpriseResponse* response) override;
  grpc::Status UpdateEnterprise(grpc::ServerContext* context,
                                const vch::v1::UpdateEnterpriseRequest* request,
                                vch::v1::UpdateEnterpriseResponse* response) override;
  grpc::Status GetEnterprise(grpc::ServerContext* context,
                             const vch::v1::GetEnterpriseRequest* request,
                             vch::v1::GetEnterpriseResponse* response) override;
  grpc::Status ListEnterprises(grpc::ServerContext* context,
                               const vch::v1::ListEnterprisesRequest* request,
                               vch::v1::ListEnterprisesResponse* response) override;

 private:
  storage::PgPool& pool_;
};

class ApplicationServiceImpl final : public vch::v1::ApplicationService::Service {
 public:
  explicit ApplicationServiceImpl(storage::PgPool& pool) : pool_(pool) {}
  grpc::Status SubmitApplication(grpc::ServerContext* context,
                                 const vch::v1::SubmitApplicationRequest* request,
                                 vch::v1::SubmitApplicationResponse* response) override;
  grpc::Status GetApplication(grpc::ServerContext* context,
                              const vch::v1::GetApplicationRequest* request,
                              vch::v1::GetApplicationResponse* response) override;
  grpc::Status ListApplications(grpc::ServerContext* context,
                                const vch::v1::ListApplicationsRequest* request,
                                vch::v1::ListApplicationsResponse* response) override;
  grpc::Status WithdrawApplication(grpc::ServerContext* context,
                                   const vch::v1::WithdrawApplicationRequest* request,
                                   vch::v1::WithdrawApplicationResponse* response) override;
  grpc::Status ApproveApplication(grpc::ServerContext* context,
                                  const vch::v1::ApproveApplicationRequest* request,
                                  vch::v1::ApproveApplicationResponse* response) override;
  grpc::Status RejectApplication(grpc::ServerContext* context,
                                 const vch::v1::RejectApplicationRequest* request,
                                 vch::v1::RejectApplicationResponse* response) override;
  grpc::Status ClawbackAward(grpc::ServerContext* context,
                             const vch::v1::ClawbackAwardRequest* request,
                             vch::v1::ClawbackAwardResponse* response) override;
  grpc::Status GetAward(grpc::ServerContext* context, const vch::v1::GetAwardRequest* request,
                        vch::v1::GetAwardResponse* response) override;

 private:
  storage::PgPool& pool_;
};

}  // namespace vch::server

#endif  // VCH_SERVER_PROGRAM_SERVICE_H_
