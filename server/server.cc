#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <signal.h>

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/errors.h"
#include "base/json_log.h"
#include "server/auth.h"
#include "server/capacity_service.h"
#include "server/health.h"
#include "server/identity_service.h"
#include "server/ledger_service.h"
#include "server/metrics.h"
#include "server/periodic_job.h"
#include "server/placement_service.h"
#include "server/program_service.h"
#include "server/redemption_service.h"
#include "server/version.h"
#include "storage/capacity_store.h"
#include "storage/ledger_writer.h"
#include "storage/migrator.h"
#include "storage/pg_pool.h"
#include "storage/program_store.h"

namespace vch::server {
namespace {

int Fail(absl::string_view message) {
  std::fprintf(stderr, "vchd: %.*s\n", static_cast<int>(message.size()), message.data());
  return 1;
}

absl::StatusOr<std::vector<storage::Migration>> BinaryMigrations() {
  return storage::ParseMigrations(storage::EmbeddedMigrationFiles());
}

}  // namespace

int RunMigrate(const VchdConfig& config) {
  absl::StatusOr<std::vector<storage::Migration>> migrations = BinaryMigrations();
  if (!migrations.ok()) return Fail(migrations.status().message());
  absl::StatusOr<std::unique_ptr<storage::PgPool>> pool =
      storage::PgPool::Create({.dsn = config.dsn, .size = 1});
  if (!pool.ok()) return Fail(pool.status().message());
  absl::StatusOr<storage::PgPool::Lease> lease = (*pool)->Acquire();
  if (!lease.ok()) return Fail(lease.status().message());
  absl::StatusOr<storage::MigrationReport> report =
      storage::Migrate(lease->connection(), *migrations);
  if (!report.ok()) return Fail(report.status().message());
  Log(LogLevel::kInfo, "migrated",
      {{"from_version", report->from_version},
       {"to_version", report->to_version},
       {"applied", absl::StrJoin(report->applied, ",")}});
  return 0;
}

int RunServe(const VchdConfig& config) {
  absl::StatusOr<std::vector<storage::Migration>> migrations = BinaryMigrations();
  if (!migrations.ok()) return Fail(migrations.status().message());
  const int64_t schema_version = storage::LatestVersion(*migrations);

  absl::StatusOr<std::unique_ptr<storage::PgPool>> pool =
      storage::PgPool::Create({.dsn = config.dsn, .size = config.pool_size});
  if (!pool.ok()) return Fail(pool.status().message());
  {
    absl::StatusOr<storage::PgPool::Lease> lease = (*pool)->Acquire();
    if (!lease.ok()) return Fail(lease.status().message());
    absl::Status schema = storage::CheckSchemaVersion(lease->connection(), schema_version);
    if (!schema.ok()) return Fail(schema.message());
  }

  std::unique_ptr<MetricsEndpoint> metrics;
  if (!config.metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
        StartMetricsEndpoint(config.metrics_listen);
    if (!endpoint.ok()) return Fail(endpoint.status().message());
    metrics = std::move(*endpoint);
  }

  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds =
      MakeServerCredentials(config.auth);
  if (!creds.ok()) return Fail(creds.status().message());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  IdentityServiceImpl identity(schema_version);
  LedgerServiceImpl ledger(**pool);
  // The ledger's only writer in this process, on connections of its own (a batch and the
  // background expiry) so that handlers holding every pooled connection never starve it. Its
  // expiry resolves due holds while vchd runs; it stops after the last handler finished.
  absl::StatusOr<std::unique_ptr<storage::PgPool>> writer_pool =
      storage::PgPool::Create({.dsn = config.dsn, .size = 3, .application_name = "vchd-ledger"});
  if (!writer_pool.ok()) return Fail(writer_pool.status().message());
  auto ledger_writer = std::make_unique<storage::LedgerWriter>(**writer_pool);
  IssuerServiceImpl issuers(**pool);
  ProgramServiceImpl programs(**pool);
  EnterpriseServiceImpl enterprises(**pool);
  ApplicationServiceImpl applications(**pool);
  CapacityServiceImpl capacity(**pool);
  PlacementServiceImpl placement(**pool,
                                 {.weights = {.utilization = config.placement_weight_utilization,
                                              .price = config.placement_weight_price,
                                              .region_preference = config.placement_weight_region,
                                              .max_report_age = config.placement_max_report_age},
                                  .hold_ttl = config.capacity_hold_ttl});
  // Vouchers are signed with the configured key (or a fresh one in development).
  absl::StatusOr<std::unique_ptr<VoucherSigner>> signer =
      config.voucher_key_file.empty()
          ? VoucherSigner::Generate(config.voucher_key_id)
          : VoucherSigner::FromPemFile(config.voucher_key_file, config.voucher_key_id);
  if (!signer.ok()) return Fail(signer.status().message());
  if (config.voucher_key_file.empty()) {
    Log(LogLevel::kWarning,
        "no --voucher-key-file: vouchers are signed with a key made for this run",
        {{"key_id", (*signer)->key_id()}});
  }
  // Redemptions batch on connections of their own: one writer per hot path (and a spare each).
  absl::StatusOr<std::unique_ptr<storage::PgPool>> redemption_pool = storage::PgPool::Create(
      {.dsn = config.dsn, .size = 4, .application_name = "vchd-redemption"});
  if (!redemption_pool.ok()) return Fail(redemption_pool.status().message());
  auto redemption_store = std::make_unique<storage::RedemptionStore>(
      **pool, **redemption_pool,
      storage::RedemptionOptions{.placement_ttl = config.capacity_hold_ttl,
                                 .weights = {.utilization = config.placement_weight_utilization,
                                             .price = config.placement_weight_price,
                                             .region_preference = config.placement_weight_region,
                                             .max_report_age = config.placement_max_report_age},
                                 .signer = signer->get(),
                                 .max_queued = config.max_queued_requests});
  RedemptionServiceImpl redemptions(**pool, *redemption_store, **signer);
  // Capacity holds lapse when neither confirmed nor released in time; so do unconfirmed
  // redemptions, releasing their credit holds too.
  PeriodicJob capacity_expiry("capacity hold expiry", absl::Seconds(5), [&]() -> absl::Status {
    absl::StatusOr<int64_t> placements = redemption_store->ExpirePlacements(absl::Now());
    if (!placements.ok()) return placements.status();
    if (*placements > 0) {
      Log(LogLevel::kInfo, "placements expired", {{"redemptions", *placements}});
    }
    absl::StatusOr<int64_t> expired = storage::ExpireCapacityHolds(**writer_pool, absl::Now());
    if (expired.ok() && *expired > 0) {
      Log(LogLevel::kInfo, "capacity holds expired", {{"holds", *expired}});
    }
    return expired.status();
  });
  // Awards expire when their program's redemption window ends (batched EXPIRE transfers).
  PeriodicJob award_expiry("award expiry", config.award_expiry_interval, [&]() -> absl::Status {
    absl::StatusOr<int64_t> swept =
        storage::ExpireAwards(**writer_pool, *ledger_writer, absl::Now());
    if (swept.ok() && *swept > 0) Log(LogLevel::kInfo, "awards expired", {{"wallets", *swept}});
    return swept.status();
  });

  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(config.listen, *creds, &bound_port);
  builder.RegisterService(&identity);
  builder.RegisterService(&ledger);
  builder.RegisterService(&issuers);
  builder.RegisterService(&programs);
  builder.RegisterService(&enterprises);
  builder.RegisterService(&applications);
  builder.RegisterService(&capacity);
  builder.RegisterService(&placement);
  builder.RegisterService(&redemptions);
  // Without this a second vchd on the same port would silently share it (SO_REUSEPORT).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(config.max_message_bytes));
  // Every call in flight holds a handler thread, also while it waits for its batch (ledger,
  // redemptions) or for a database connection (up to the pool's acquire timeout). Up to
  // kMaxPollers idle threads stay alive between calls, so a steady load does not create and
  // destroy a thread per call.
  constexpr int kMinPollers = 2;
  constexpr int kMaxPollers = 32;
  grpc::ResourceQuota quota("vchd");
  quota.SetMaxThreads(config.max_threads);
  builder.SetResourceQuota(quota);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, kMinPollers);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, kMaxPollers);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    return Fail(absl::StrCat("cannot listen on ", config.listen,
                             " (address in use or not a local address)"));
  }

  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  // The database answered at the expected schema moments ago (checked above), so the server is
  // SERVING from the first call on; the watcher takes over from here.
  health->SetServingStatus(true);
  auto watcher = std::make_unique<HealthWatcher>(
      config.dsn, schema_version, config.health_interval,
      [health](bool serving) { health->SetServingStatus(serving); });

  if (!config.port_file.empty()) {
    std::ofstream out(config.port_file + ".tmp");
    out << bound_port << "\n";
    out.close();
    std::rename((config.port_file + ".tmp").c_str(), config.port_file.c_str());
  }
  Log(LogLevel::kInfo, "serving",
      {{"listen", config.listen},
       {"port", bound_port},
       {"schema_version", schema_version},
       {"pool_size", config.pool_size},
       {"auth", config.auth},
       {"metrics", config.metrics_listen},
       {"version", kVchVersion}});

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  Log(LogLevel::kInfo, "shutting down",
      {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"}});
  watcher.reset();
  health->SetServingStatus(false);
  server->Shutdown(std::chrono::system_clock::now() +
                   absl::ToChronoMilliseconds(config.shutdown_grace));
  server->Wait();
  award_expiry.Stop();
  capacity_expiry.Stop();
  ledger_writer.reset();
  redemption_store.reset();
  Log(LogLevel::kInfo, "stopped");
  return 0;
}

}  // namespace vch::server
