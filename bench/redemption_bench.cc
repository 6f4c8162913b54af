// redemption_bench: RequestCompute and ReportUsage per second end to end over gRPC against a
// running vchd (RedemptionService), closed loop and open loop. The world (an issuer, programs,
// enterprises with awards in every program, datacenters with one big pool each) is made through
// the public API with `--mode setup`; every other mode works in that world. Driven by
// bench/redemption.
//
//   redemption_bench --target HOST:PORT --mode setup|request|open|usage|verify
//                    [--programs 4] [--enterprises 64] [--datacenters 8] [--threads 64]
//                    [--seconds 20] [--warmup 2] [--hot] [--rate R] [--per-thread 4]
//                    [--channels 4] [--vchd-pid PID] [--pg-pid PID] [--seed N]
//
// Each request names the accelerator model of the datacenter it is meant for (every site's pool
// has a model of its own), so the bench decides where traffic goes: uniformly over all programs
// and datacenters ("spread"), or all of it on program 0 and datacenter 0 (--hot). Any failed
// RPC, and any answer that is not the placement or settlement asked for, is counted and printed
// by status; the exit status is then 1.
//
// The timed workloads use gRPC's callback API: --threads is the number of calls kept in flight
// (closed loop: clients, each starting its next call when one completes), not of OS threads.
//
// Last line of request/open/usage: key=value pairs (requests or reports, seconds, rps, p50_ms,
// p99_ms, failures, and the totals the driver checks against the database).
#include <dirent.h>
#include <grpc/grpc_security_constants.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "vch/v1/application.grpc.pb.h"
#include "vch/v1/capacity.grpc.pb.h"
#include "vch/v1/enterprise.grpc.pb.h"
#include "vch/v1/ledger.grpc.pb.h"
#include "vch/v1/program.grpc.pb.h"
#include "vch/v1/redemption.grpc.pb.h"

namespace vch::bench {
namespace {

namespace v1 = ::vch::v1;
using Clock = std::chrono::steady_clock;

constexpr char kIssuer[] = "bench-office";
// Every enterprise is awarded this much in every program (10 M CNY): far more than a run holds.
constexpr int64_t kAwardFen = int64_t{1'000'000'000};
// GPUs per pool, all reported free: capacity never runs out during a run.
constexpr int32_t kPoolGpus = 1'000'000;
constexpr int32_t kPriceCeilingFen = 5000;
// ReportUsage: one record of this many GPU-seconds per call, against holds of 8 GPUs x 100 h.
constexpr int64_t kUsageGpuSeconds = 60;
constexpr int32_t kUsageGpus = 8;
constexpr int32_t kUsageHours = 100;
constexpr int kSetupThreads = 16;
constexpr auto kCallTimeout = std::chrono::seconds(30);

// The sites: one per national hub (region code, hub, the accelerator model of its pool, fp8,
// price in fen per GPU-hour). Beyond 8 datacenters the list repeats with numbered models.
struct Site {
  const char* region;
  v1::NationalHub hub;
  const char* model;
  bool fp8;
  int64_t price_fen;
};
constexpr Site kSites[] = {
    {"110115", v1::NATIONAL_HUB_BEIJING_TIANJIN_HEBEI, "A800", false, 3000},
    {"310115", v1::NATIONAL_HUB_YANGTZE_RIVER_DELTA, "H800", true, 3200},
    {"440305", v1::NATIONAL_HUB_GUANGDONG_HONG_KONG_MACAO, "H20", true, 2800},
    {"510100", v1::NATIONAL_HUB_CHENGDU_CHONGQING, "L20", true, 2200},
    {"150900", v1::NATIONAL_HUB_INNER_MONGOLIA, "H100", true, 1800},
    {"520100", v1::NATIONAL_HUB_GUIZHOU, "A100", false, 1500},
    {"620100", v1::NATIONAL_HUB_GANSU, "L40S", true, 1600},
    {"640500", v1::NATIONAL_HUB_NINGXIA, "RTX 4090", false, 1200},
};
constexpr int kSiteCount = sizeof(kSites) / sizeof(kSites[0]);

enum class Mode { kSetup, kRequest, kOpen, kUsage, kVerify };

struct Options {
  std::string target;
  Mode mode = Mode::kRequest;
  int programs = 4;
  int enterprises = 64;
  int datacenters = 8;
  int threads = 64;
  double seconds = 20;
  double warmup_seconds = 2;
  bool hot = false;
  double rate = 0;     // open loop, requests per second
  int per_thread = 4;  // usage: redemptions per client thread
  int channels = 4;
  int vchd_pid = 0;
  int pg_pid = 0;
  uint64_t seed = 0;  // 0 = from the clock
};

constexpr char kUsage[] =
    "usage: redemption_bench --target HOST:PORT --mode setup|request|open|usage|verify\n"
    "         [--programs 4] [--enterprises 64] [--datacenters 8] [--threads 64]\n"
    "         [--seconds 20] [--warmup 2] [--hot] [--rate R (open)] [--per-thread 4 (usage)]\n"
    "         [--channels 4] [--vchd-pid PID] [--pg-pid PID] [--seed N]\n"
    "  setup    issuer, programs (funded, open), enterprises awarded in every program,\n"
    "           datacenters with one pool each (idempotent: request ids are fixed)\n"
    "  request  closed loop of RequestCompute (1 GPU, 1 hour) from --threads clients\n"
    "  open     RequestCompute at --rate per second (latency from the scheduled send time),\n"
    "           at most --threads calls in flight\n"
    "  usage    RequestCompute + ConfirmPlacement of --per-thread holds of 8 GPUs x 100 h per\n"
    "           client (untimed), then a closed loop of ReportUsage (60 GPU-seconds each)\n"
    "  verify   LedgerService.VerifyLedger\n"
    "  --hot    all traffic on program 0 and datacenter 0 (default: uniform over all)\n"
    "  --vchd-pid/--pg-pid  report the CPU time of vchd and of the postmaster's processes\n";

[[noreturn]] void Usage(const std::string& problem) {
  std::fprintf(stderr, "redemption_bench: %s\n%s", problem.c_str(), kUsage);
  std::exit(2);
}

Options ParseOptions(int argc, char** argv) {
  Options options;
  bool have_mode = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--hot") {
      options.hot = true;
      continue;
    }
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) Usage(absl::StrCat("missing value for ", arg));
    const std::string value = argv[++i];
    bool ok = true;
    if (arg == "--target") {
      options.target = value;
    } else if (arg == "--mode") {
      have_mode = true;
      static const std::map<std::string, Mode> kModes = {{"setup", Mode::kSetup},
                                                         {"request", Mode::kRequest},
                                                         {"open", Mode::kOpen},
                                                         {"usage", Mode::kUsage},
                                                         {"verify", Mode::kVerify}};
      auto it = kModes.find(value);
      ok = it != kModes.end();
      if (ok) options.mode = it->second;
    } else if (arg == "--programs") {
      ok = absl::SimpleAtoi(value, &options.programs) && options.programs > 0;
    } else if (arg == "--enterprises") {
      ok = absl::SimpleAtoi(value, &options.enterprises) && options.enterprises > 0;
    } else if (arg == "--datacenters") {
      ok = absl::SimpleAtoi(value, &options.datacenters) && options.datacenters > 0;
    } else if (arg == "--threads") {
      ok = absl::SimpleAtoi(value, &options.threads) && options.threads > 0;
    } else if (arg == "--seconds") {
      ok = absl::SimpleAtod(value, &options.seconds) && options.seconds > 0;
    } else if (arg == "--warmup") {
      ok = absl::SimpleAtod(value, &options.warmup_seconds) && options.warmup_seconds >= 0;
    } else if (arg == "--rate") {
      ok = absl::SimpleAtod(value, &options.rate) && options.rate > 0;
    } else if (arg == "--per-thread") {
      ok = absl::SimpleAtoi(value, &options.per_thread) && options.per_thread > 0;
    } else if (arg == "--channels") {
      ok = absl::SimpleAtoi(value, &options.channels) && options.channels > 0;
    } else if (arg == "--vchd-pid") {
      ok = absl::SimpleAtoi(value, &options.vchd_pid) && options.vchd_pid >= 0;
    } else if (arg == "--pg-pid") {
      ok = absl::SimpleAtoi(value, &options.pg_pid) && options.pg_pid >= 0;
    } else if (arg == "--seed") {
      ok = absl::SimpleAtoi(value, &options.seed);
    } else {
      Usage(absl::StrCat("unknown flag ", arg));
    }
    if (!ok) Usage(absl::StrCat("bad value for ", arg, ": ", value));
  }
  if (options.target.empty()) Usage("--target is required");
  if (!have_mode) Usage("--mode is required");
  if (options.mode == Mode::kOpen && options.rate <= 0) Usage("--mode open needs --rate");
  return options;
}

// --- The world's names. ---

std::string ProgramId(int p) { return absl::StrCat("bench-p", p); }
std::string DatacenterId(int d) { return absl::StrCat("bench-dc", d); }
const Site& SiteOf(int d) { return kSites[d % kSiteCount]; }
std::string ModelOf(int d) {
  return d < kSiteCount ? SiteOf(d).model : absl::StrCat(SiteOf(d).model, " #", d / kSiteCount);
}

// The n-th valid unified social credit code (GB 32100-2015) of an enterprise registered in
// `region`: "91", the region, "MA", n in base 31, then the check character.
std::string Uscc(int n, const std::string& region = "310115") {
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
  static constexpr int kWeights[] = {1,  3,  9,  27, 19, 26, 16, 17, 20,
                                     29, 25, 13, 8,  24, 10, 30, 28};
  std::string digits(7, '0');
  for (int i = 6; i >= 0; --i) {
    digits[i] = kAlphabet[n % 31];
    n /= 31;
  }
  const std::string first17 = absl::StrCat("91", region, "MA", digits);
  int total = 0;
  for (int i = 0; i < 17; ++i) {
    total += static_cast<int>(std::string_view(kAlphabet).find(first17[i])) * kWeights[i];
  }
  return first17 + kAlphabet[(31 - total % 31) % 31];
}
std::string EnterpriseUscc(int e) { return Uscc(1000 + e); }

// --- Calls. ---

std::vector<std::shared_ptr<grpc::Channel>> MakeChannels(const Options& options) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < options.channels; ++i) {
    grpc::ChannelArguments args;
    // Distinct arguments and a local subchannel pool: one TCP connection per channel.
    args.SetInt("vch.bench.channel", i);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channels.push_back(grpc::CreateCustomChannel(
        options.target, grpc::experimental::LocalCredentials(LOCAL_TCP), args));
  }
  return channels;
}

// "CODE reason: message" of a failed call (reason from the google.rpc.ErrorInfo detail).
std::string Describe(const grpc::Status& status) {
  static const char* const kCodes[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const int code = static_cast<int>(status.error_code());
  std::string out = code >= 0 && code <= 16 ? kCodes[code] : absl::StrCat("code ", code);
  google::rpc::Status details;
  if (!status.error_details().empty() && details.ParseFromString(status.error_details())) {
    for (const auto& any : details.details()) {
      google::rpc::ErrorInfo info;
      if (any.UnpackTo(&info)) absl::StrAppend(&out, " ", info.reason());
    }
  }
  absl::StrAppend(&out, ": ", status.error_message().substr(0, 200));
  return out;
}

// Runs one RPC as `principal`: fn(context) issues it.
grpc::Status Call(const std::string& principal,
                  const std::function<grpc::Status(grpc::ClientContext*)>& fn) {
  grpc::ClientContext context;
  context.AddMetadata("x-vch-principal", principal);
  context.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  return fn(&context);
}

// The same for a setup step (fixed request ids, so a second setup replays): prints a failure.
grpc::Status Setup(const std::string& what, const std::string& principal,
                   const std::function<grpc::Status(grpc::ClientContext*)>& fn) {
  grpc::Status status = Call(principal, fn);
  if (!status.ok()) {
    std::fprintf(stderr, "redemption_bench: setup: %s: %s\n", what.c_str(),
                 Describe(status).c_str());
  }
  return status;
}

google::protobuf::Timestamp TimestampIn(absl::Duration from_now) {
  google::protobuf::Timestamp t;
  t.set_seconds(absl::ToUnixSeconds(absl::Now() + from_now));
  return t;
}

// Failures seen by any thread, grouped by description.
class FailureLog {
 public:
  void Add(const std::string& what) {
    absl::MutexLock lock(&mu_);
    ++total_;
    ++by_what_[what];
  }
  int64_t total() const {
    absl::MutexLock lock(&mu_);
    return total_;
  }
  void Print() const {
    absl::MutexLock lock(&mu_);
    for (const auto& [what, count] : by_what_) {
      std::fprintf(stderr, "redemption_bench: %lld x %s\n", static_cast<long long>(count),
                   what.c_str());
    }
  }

 private:
  mutable absl::Mutex mu_;
  int64_t total_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int64_t> by_what_ ABSL_GUARDED_BY(mu_);
};

// Runs fn(i) for i in [0, n) on `threads` threads; false if any call failed.
bool ParallelFor(int n, int threads, const std::function<bool(int)>& fn) {
  std::atomic<int> next{0};
  std::atomic<bool> ok{true};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      for (int i = next++; i < n && ok; i = next++) {
        if (!fn(i)) ok = false;
      }
    });
  }
  for (std::thread& w : workers) w.join();
  return ok;
}

// --- CPU accounting over a measurement window (from /proc). ---

// Clock ticks of one process (all its threads), or of the postmaster and all its children.
int64_t ProcessTicks(int pid, int* ppid = nullptr) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(in, line)) return -1;
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(line.substr(paren + 2));
  std::vector<std::string> f;
  for (std::string x; fields >> x && f.size() < 13;) f.push_back(x);
  if (f.size() < 13) return -1;
  if (ppid != nullptr) *ppid = std::atoi(f[1].c_str());
  return std::atoll(f[11].c_str()) + std::atoll(f[12].c_str());  // utime + stime
}

int64_t ClusterTicks(int postmaster) {
  int64_t total = 0;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return -1;
  while (dirent* e = readdir(dir)) {
    int pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid)) continue;
    int ppid = 0;
    const int64_t ticks = ProcessTicks(pid, &ppid);
    if (ticks >= 0 && (pid == postmaster || ppid == postmaster)) total += ticks;
  }
  closedir(dir);
  return total;
}

// Busy and total ticks of the whole machine.
std::pair<int64_t, int64_t> MachineTicks() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  int64_t v[8] = {};
  in >> cpu;
  for (int64_t& x : v) in >> x;
  int64_t total = 0;
  for (int64_t x : v) total += x;
  return {total - v[3] - v[4], total};  // minus idle and iowait
}

double SelfCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

class CpuMeter {
 public:
  explicit CpuMeter(const Options& options) : options_(options) {}
  void Start() {
    start_ = Clock::now();
    self_ = SelfCpuSeconds();
    vchd_ = options_.vchd_pid > 0 ? ProcessTicks(options_.vchd_pid) : -1;
    pg_ = options_.pg_pid > 0 ? ClusterTicks(options_.pg_pid) : -1;
    machine_ = MachineTicks();
  }
  // "cpu: ..." in cores (1.0 = one CPU busy for the whole window).
  std::string Stop() const {
    const double wall = std::chrono::duration<double>(Clock::now() - start_).count();
    const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double self = SelfCpuSeconds() - self_;
    std::string out = absl::StrCat("cpu (cores busy over ", absl::StrFormat("%.1f", wall), " s):");
    if (vchd_ >= 0) {
      absl::StrAppend(
          &out,
          absl::StrFormat(" vchd=%.2f", (ProcessTicks(options_.vchd_pid) - vchd_) / tick / wall));
    }
    if (pg_ >= 0) {
      absl::StrAppend(&out, absl::StrFormat(" postgres=%.2f",
                                            (ClusterTicks(options_.pg_pid) - pg_) / tick / wall));
    }
    absl::StrAppend(&out, absl::StrFormat(" bench_client=%.2f", self / wall));
    const auto [busy, total] = MachineTicks();
    const double ncpu = static_cast<double>(std::thread::hardware_concurrency());
    if (total > machine_.second) {
      absl::StrAppend(&out, absl::StrFormat(" machine=%.2f of %.0f",
                                            ncpu * static_cast<double>(busy - machine_.first) /
                                                static_cast<double>(total - machine_.second),
                                            ncpu));
    }
    return out;
  }

 private:
  const Options& options_;
  Clock::time_point start_;
  double self_ = 0;
  int64_t vchd_ = -1, pg_ = -1;
  std::pair<int64_t, int64_t> machine_;
};

// --- Setup. ---

int RunSetup(const Options& options) {
  const absl::Time start = absl::Now();
  auto channel = MakeChannels(options)[0];
  auto issuers = v1::IssuerService::NewStub(channel);
  auto programs = v1::ProgramService::NewStub(channel);
  auto enterprises = v1::EnterpriseService::NewStub(channel);
  auto applications = v1::ApplicationService::NewStub(channel);
  auto capacity = v1::CapacityService::NewStub(channel);
  const std::string admin = absl::StrCat("ISSUER_ADMIN:", kIssuer);

  {
    v1::RegisterIssuerRequest req;
    req.set_request_id("setup-issuer");
    req.set_id(kIssuer);
    req.set_display_name("算力券基准测试办公室");
    req.set_region_code("310000");
    req.set_level(v1::ISSUER_LEVEL_PROVINCE);
    v1::RegisterIssuerResponse resp;
    if (!Setup("RegisterIssuer", "PLATFORM_ADMIN", [&](grpc::ClientContext* c) {
           return issuers->RegisterIssuer(c, req, &resp);
         }).ok()) {
      return 1;
    }
  }
  const int64_t budget = kAwardFen * options.enterprises;
  bool ok = ParallelFor(options.programs, kSetupThreads, [&](int p) {
    v1::CreateProgramRequest create;
    create.set_request_id(absl::StrCat("setup-create-", p));
    create.set_id(ProgramId(p));
    v1::ProgramRules* rules = create.mutable_rules();
    rules->set_display_name(absl::StrCat("基准测试算力券 ", p));
    rules->set_category(v1::PROGRAM_CATEGORY_AI_RENTAL);
    rules->set_planned_budget_fen(budget);
    rules->set_subsidy_ratio_bps(8000);
    rules->set_per_enterprise_cap_fen(kAwardFen);
    rules->add_eligible_kinds(v1::ENTERPRISE_KIND_SME);
    rules->add_eligible_sizes(v1::SIZE_CLASS_SMALL);
    *rules->mutable_application_start_time() = TimestampIn(absl::Hours(-24));
    *rules->mutable_application_end_time() = TimestampIn(absl::Hours(24 * 180));
    *rules->mutable_redemption_start_time() = TimestampIn(absl::Hours(-24));
    *rules->mutable_redemption_end_time() = TimestampIn(absl::Hours(24 * 360));
    rules->set_datacenter_scope(v1::DATACENTER_SCOPE_NATIONAL);
    rules->set_price_ceiling_fen_per_gpu_hour(kPriceCeilingFen);
    v1::CreateProgramResponse created;
    if (!Setup("CreateProgram", admin, [&](grpc::ClientContext* c) {
           return programs->CreateProgram(c, create, &created);
         }).ok()) {
      return false;
    }
    v1::FundProgramRequest fund;
    fund.set_request_id(absl::StrCat("setup-fund-", p));
    fund.set_id(ProgramId(p));
    fund.set_amount_fen(budget);
    v1::FundProgramResponse funded;
    if (!Setup("FundProgram", admin, [&](grpc::ClientContext* c) {
           return programs->FundProgram(c, fund, &funded);
         }).ok()) {
      return false;
    }
    v1::OpenProgramRequest open;
    open.set_request_id(absl::StrCat("setup-open-", p));
    open.set_id(ProgramId(p));
    v1::OpenProgramResponse opened;
    return Setup("OpenProgram", admin,
                 [&](grpc::ClientContext* c) { return programs->OpenProgram(c, open, &opened); })
        .ok();
  });
  ok = ok && ParallelFor(options.enterprises, kSetupThreads, [&](int e) {
         const std::string uscc = EnterpriseUscc(e);
         v1::RegisterEnterpriseRequest req;
         req.set_request_id(absl::StrCat("setup-enterprise-", e));
         v1::Enterprise* ent = req.mutable_enterprise();
         ent->set_uscc(uscc);
         ent->set_display_name(absl::StrCat("基准测试科技有限公司 ", e));
         ent->set_region_code("310115");
         ent->set_kind(v1::ENTERPRISE_KIND_SME);
         ent->set_size_class(v1::SIZE_CLASS_SMALL);
         v1::RegisterEnterpriseResponse resp;
         return Setup("RegisterEnterprise", absl::StrCat("ENTERPRISE:", uscc),
                      [&](grpc::ClientContext* c) {
                        return enterprises->RegisterEnterprise(c, req, &resp);
                      })
             .ok();
       });
  ok = ok && ParallelFor(options.enterprises * options.programs, kSetupThreads, [&](int i) {
         const int e = i / options.programs, p = i % options.programs;
         const std::string uscc = EnterpriseUscc(e);
         v1::SubmitApplicationRequest submit;
         submit.set_request_id(absl::StrCat("setup-apply-", e, "-", p));
         submit.set_program(ProgramId(p));
         submit.set_enterprise(uscc);
         submit.set_requested_fen(kAwardFen);
         submit.set_purpose("benchmark");
         v1::SubmitApplicationResponse submitted;
         if (!Setup("SubmitApplication", absl::StrCat("ENTERPRISE:", uscc),
                    [&](grpc::ClientContext* c) {
                      return applications->SubmitApplication(c, submit, &submitted);
                    })
                  .ok()) {
           return false;
         }
         v1::ApproveApplicationRequest approve;
         approve.set_request_id(absl::StrCat("setup-approve-", e, "-", p));
         approve.set_id(submitted.application().id());
         approve.set_amount_fen(kAwardFen);
         v1::ApproveApplicationResponse approved;
         return Setup("ApproveApplication", absl::StrCat("REVIEWER:", kIssuer),
                      [&](grpc::ClientContext* c) {
                        return applications->ApproveApplication(c, approve, &approved);
                      })
             .ok();
       });
  ok = ok && ParallelFor(options.datacenters, kSetupThreads, [&](int d) {
         const Site& site = SiteOf(d);
         const std::string dc = DatacenterId(d);
         const std::string op = absl::StrCat("OPERATOR:", dc);
         v1::RegisterDatacenterRequest reg;
         reg.set_request_id(absl::StrCat("setup-dc-", d));
         v1::Datacenter* center = reg.mutable_datacenter();
         center->set_id(dc);
         center->set_display_name(dc);
         center->set_operator_name(absl::StrCat(dc, " Ltd"));
         center->set_region_code(site.region);
         center->set_hub(site.hub);
         center->set_national_network(true);
         v1::RegisterDatacenterResponse registered;
         if (!Setup("RegisterDatacenter", op, [&](grpc::ClientContext* c) {
                return capacity->RegisterDatacenter(c, reg, &registered);
              }).ok()) {
           return false;
         }
         v1::RegisterPoolRequest pool;
         pool.set_request_id(absl::StrCat("setup-pool-", d));
         v1::Pool* p = pool.mutable_pool();
         p->set_datacenter(dc);
         p->set_id("gpu");
         p->set_accelerator_model(ModelOf(d));
         p->set_fp8(site.fp8);
         p->set_domestic(false);
         p->set_memory_gib(80);
         p->set_gpus_total(kPoolGpus);
         p->set_price_fen_per_gpu_hour(site.price_fen);
         v1::RegisterPoolResponse pooled;
         if (!Setup("RegisterPool", op, [&](grpc::ClientContext* c) {
                return capacity->RegisterPool(c, pool, &pooled);
              }).ok()) {
           return false;
         }
         v1::ReportCapacityRequest report;
         report.set_request_id(absl::StrCat("setup-report-", d));
         report.set_datacenter(dc);
         v1::PoolReport* r = report.add_reports();
         r->set_pool("gpu");
         r->set_gpus_free(kPoolGpus);
         v1::ReportCapacityResponse reported;
         return Setup("ReportCapacity", op,
                      [&](grpc::ClientContext* c) {
                        return capacity->ReportCapacity(c, report, &reported);
                      })
             .ok();
       });
  if (!ok) return 1;
  std::printf(
      "setup: issuer %s, %d programs (NATIONAL, ratio 8000 bps, ceiling %d fen/GPU-h), %d "
      "enterprises awarded %lld fen in each, %d datacenters with one pool of %d GPUs each, in "
      "%.1f s\n",
      kIssuer, options.programs, kPriceCeilingFen, options.enterprises,
      static_cast<long long>(kAwardFen), options.datacenters, kPoolGpus,
      absl::ToDoubleSeconds(absl::Now() - start));
  return 0;
}

// --- Workloads. ---

enum Phase : int { kWarmup = 0, kMeasure = 1, kStop = 2 };

// Where one request goes.
struct Target {
  int enterprise = 0;
  int program = 0;
  int datacenter = 0;
};

Target PickTarget(const Options& options, std::mt19937_64& rng) {
  Target t;
  t.enterprise = static_cast<int>(rng() % options.enterprises);
  if (!options.hot) {
    t.program = static_cast<int>(rng() % options.programs);
    t.datacenter = static_cast<int>(rng() % options.datacenters);
  }
  return t;
}

v1::RequestComputeRequest ComputeRequest(const Target& t, const std::string& request_id, int gpus,
                                         int hours) {
  v1::RequestComputeRequest req;
  req.set_request_id(request_id);
  req.mutable_requirement()->set_program(ProgramId(t.program));
  req.mutable_requirement()->set_accelerator_model(ModelOf(t.datacenter));
  req.mutable_requirement()->set_gpus(gpus);
  req.set_hours(hours);
  return req;
}

// "" if the answer is the placement asked for, else what is wrong with it.
std::string CheckPlaced(const v1::RequestComputeResponse& resp, const Target& t, int gpus) {
  if (!resp.placed()) {
    std::string why = "RequestCompute OK but not placed:";
    for (const auto& e : resp.exclusions()) absl::StrAppend(&why, " ", e.reason(), "=", e.pools());
    return why;
  }
  const v1::Redemption& r = resp.redemption();
  if (r.datacenter() != DatacenterId(t.datacenter) || r.program() != ProgramId(t.program) ||
      r.enterprise() != EnterpriseUscc(t.enterprise) || r.requirement().gpus() != gpus ||
      r.held_fen() <= 0 || r.state() != v1::REDEMPTION_STATE_PLACED || r.id() <= 0) {
    return "RequestCompute placed something other than asked";
  }
  return "";
}

struct LoopResult {
  std::vector<int64_t> latencies_us;  // measured window, sorted
  double seconds = 0;
  int64_t ok_total = 0;  // every OK answer, warm-up and drain included
  int64_t failures = 0;
  std::string cpu;
  std::string window;  // "window_unix=START-END" of the measured window
};

std::string WindowLine(absl::Time start, absl::Time end) {
  return absl::StrFormat("window_unix=%.3f-%.3f", absl::ToDoubleSeconds(start - absl::UnixEpoch()),
                         absl::ToDoubleSeconds(end - absl::UnixEpoch()));
}

double Percentile(const std::vector<int64_t>& sorted_us, double p) {
  if (sorted_us.empty()) return 0;
  const size_t i = std::min(sorted_us.size() - 1, static_cast<size_t>(p * sorted_us.size()));
  return static_cast<double>(sorted_us[i]) / 1000.0;
}

// One workload call, made with gRPC's callback API: the load generator keeps calls in flight
// without a thread per call, so that its own CPU (on the same two cores as vchd and PostgreSQL)
// stays small. `done` is called once, on a gRPC thread, with "" on success or what failed.
using CallDone = std::function<void(std::string)>;

// Runs one asynchronous unary call of `method` (e.g. &Stub::async::RequestCompute) as
// `principal`; check(status, response) returns "" or what is wrong.
template <typename Async, typename Request, typename Response>
void StartCall(Async* async,
               void (Async::*method)(grpc::ClientContext*, const Request*, Response*,
                                     std::function<void(grpc::Status)>),
               const std::string& principal, Request request,
               std::function<std::string(const grpc::Status&, const Response&)> check,
               CallDone done) {
  struct Call {
    grpc::ClientContext context;
    Request request;
    Response response;
  };
  auto* call = new Call;
  call->request = std::move(request);
  call->context.AddMetadata("x-vch-principal", principal);
  call->context.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  (async->*method)(&call->context, &call->request, &call->response,
                   [call, check = std::move(check), done = std::move(done)](grpc::Status status) {
                     std::string failed = check(status, call->response);
                     delete call;
                     done(std::move(failed));
                   });
}

// Starts the `seq`-th call of client `slot`; exactly one call per slot is in flight, so per-slot
// state (its random generator) needs no lock.
using StartFn = std::function<void(int slot, int64_t seq, CallDone done)>;

// Waits until `count` reaches zero.
class InFlight {
 public:
  explicit InFlight(int64_t count) : count_(count) {}
  void Add() {
    absl::MutexLock lock(&mu_);
    ++count_;
  }
  void Done() {
    absl::MutexLock lock(&mu_);
    --count_;
  }
  // Blocks while `count` >= limit.
  void WaitBelow(int64_t limit) {
    absl::MutexLock lock(&mu_);
    auto below = [this, limit]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return count_ < limit; };
    mu_.Await(absl::Condition(&below));
  }

 private:
  absl::Mutex mu_;
  int64_t count_ ABSL_GUARDED_BY(mu_);
};

// Closed loop: each of options.threads clients has one call in flight and starts its next as
// soon as one completes. Measures options.seconds after options.warmup_seconds.
LoopResult ClosedLoop(const Options& options, FailureLog& failures, const StartFn& start) {
  std::atomic<int> phase{kWarmup};
  std::vector<std::vector<int64_t>> latencies(options.threads);
  std::vector<int64_t> ok(options.threads, 0);
  InFlight running(options.threads);
  std::function<void(int, int64_t)> issue = [&](int slot, int64_t seq) {
    const Clock::time_point begin = Clock::now();
    start(slot, seq, [&, slot, seq, begin](std::string failed) {
      const Clock::time_point end = Clock::now();
      if (!failed.empty()) {
        failures.Add(failed);
      } else {
        ++ok[slot];
        if (phase.load() == kMeasure) {
          latencies[slot].push_back(
              std::chrono::duration_cast<std::chrono::microseconds>(end - begin).count());
        }
      }
      if (phase.load() == kStop) {
        running.Done();
        return;
      }
      issue(slot, seq + 1);
    });
  };
  CpuMeter cpu(options);
  for (int slot = 0; slot < options.threads; ++slot) {
    latencies[slot].reserve(1 << 15);
    issue(slot, 0);
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(options.warmup_seconds));
  const Clock::time_point measure_start = Clock::now();
  const absl::Time window_start = absl::Now();
  cpu.Start();
  phase = kMeasure;
  std::this_thread::sleep_for(std::chrono::duration<double>(options.seconds));
  phase = kStop;
  LoopResult result;
  result.seconds = std::chrono::duration<double>(Clock::now() - measure_start).count();
  result.window = WindowLine(window_start, absl::Now());
  result.cpu = cpu.Stop();
  running.WaitBelow(1);
  for (int t = 0; t < options.threads; ++t) {
    result.latencies_us.insert(result.latencies_us.end(), latencies[t].begin(), latencies[t].end());
    result.ok_total += ok[t];
  }
  std::sort(result.latencies_us.begin(), result.latencies_us.end());
  result.failures = failures.total();
  return result;
}

std::string RunId(const char* what, const Options& options) {
  return absl::StrCat(what, options.hot ? "-hot-" : "-spread-", getpid(), "-",
                      absl::ToUnixSeconds(absl::Now()));
}

int RunRequest(const Options& options, uint64_t seed) {
  const std::string run_id = RunId("rq", options);
  std::printf("redemption_bench mode=request %s threads=%d seconds=%g warmup=%g seed=%llu run=%s\n",
              options.hot ? "hot" : "spread", options.threads, options.seconds,
              options.warmup_seconds, static_cast<unsigned long long>(seed), run_id.c_str());
  std::fflush(stdout);
  const auto channels = MakeChannels(options);
  std::vector<std::unique_ptr<v1::RedemptionService::Stub>> stubs;
  std::vector<std::mt19937_64> rngs;
  for (int t = 0; t < options.threads; ++t) {
    stubs.push_back(v1::RedemptionService::NewStub(channels[t % channels.size()]));
    rngs.emplace_back(seed + static_cast<uint64_t>(t) * 0x9E3779B97F4A7C15ull);
  }
  FailureLog failures;
  LoopResult r = ClosedLoop(options, failures, [&](int slot, int64_t seq, CallDone done) {
    const Target t = PickTarget(options, rngs[slot]);
    StartCall(stubs[slot]->async(), &v1::RedemptionService::Stub::async::RequestCompute,
              absl::StrCat("ENTERPRISE:", EnterpriseUscc(t.enterprise)),
              ComputeRequest(t, absl::StrCat(run_id, "-t", slot, "-", seq), 1, 1),
              std::function<std::string(const grpc::Status&, const v1::RequestComputeResponse&)>(
                  [t](const grpc::Status& status, const v1::RequestComputeResponse& resp) {
                    if (!status.ok()) return absl::StrCat("RequestCompute ", Describe(status));
                    return CheckPlaced(resp, t, 1);
                  }),
              std::move(done));
  });
  if (r.failures > 0) failures.Print();
  std::printf("%s\n%s\n", r.window.c_str(), r.cpu.c_str());
  const int64_t n = static_cast<int64_t>(r.latencies_us.size());
  std::printf(
      "requests=%lld seconds=%.2f rps=%.1f p50_ms=%.2f p99_ms=%.2f failures=%lld "
      "placed_total=%lld outside_window=%lld\n",
      static_cast<long long>(n), r.seconds, n / r.seconds, Percentile(r.latencies_us, 0.50),
      Percentile(r.latencies_us, 0.99), static_cast<long long>(r.failures),
      static_cast<long long>(r.ok_total), static_cast<long long>(r.ok_total - n));
  std::fflush(stdout);
  return r.failures == 0 ? 0 : 1;
}

// Open loop: request k is due at start + k / rate; a pool of sender threads sends each when it
// is due (or as soon as a sender is free) and measures from the due time, so a slow answer that
// delays later sends shows in their latency (no coordinated omission).
int RunOpen(const Options& options, uint64_t seed) {
  const std::string run_id = RunId("open", options);
  std::printf(
      "redemption_bench mode=open %s rate=%.1f/s max_in_flight=%d seconds=%g warmup=%g seed=%llu "
      "run=%s\n",
      options.hot ? "hot" : "spread", options.rate, options.threads, options.seconds,
      options.warmup_seconds, static_cast<unsigned long long>(seed), run_id.c_str());
  std::fflush(stdout);
  const auto channels = MakeChannels(options);
  std::vector<std::unique_ptr<v1::RedemptionService::Stub>> stubs;
  for (const auto& channel : channels) stubs.push_back(v1::RedemptionService::NewStub(channel));
  // Connect every channel before the clock starts.
  for (const auto& c : channels) {
    c->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }
  FailureLog failures;
  const Clock::time_point start = Clock::now() + std::chrono::milliseconds(50);
  const Clock::time_point measure_start =
      start + std::chrono::duration_cast<Clock::duration>(
                  std::chrono::duration<double>(options.warmup_seconds));
  const Clock::time_point end = measure_start + std::chrono::duration_cast<Clock::duration>(
                                                    std::chrono::duration<double>(options.seconds));
  // Request k is due at start + k / rate. One thread sends each when it is due (or as soon as
  // fewer than --threads calls are in flight); its latency counts from the due time.
  const int64_t total =
      static_cast<int64_t>(std::ceil(options.rate * (options.warmup_seconds + options.seconds)));
  std::vector<int64_t> latency_us(total, -1), lag_us(total, -1);
  std::vector<uint8_t> ok(total, 0);
  auto due_of = [&](int64_t k) {
    return start + std::chrono::duration_cast<Clock::duration>(
                       std::chrono::duration<double>(static_cast<double>(k) / options.rate));
  };
  InFlight in_flight(0);
  std::mt19937_64 rng(seed);
  CpuMeter cpu(options);
  bool measuring = false;
  absl::Time window_start;
  int64_t sent_count = 0;
  for (int64_t k = 0; k < total && due_of(k) < end; ++k) {
    const Clock::time_point due = due_of(k);
    if (!measuring && due >= measure_start) {
      std::this_thread::sleep_until(measure_start);
      window_start = absl::Now();
      cpu.Start();
      measuring = true;
    }
    std::this_thread::sleep_until(due);
    in_flight.WaitBelow(options.threads);
    in_flight.Add();
    ++sent_count;
    const Clock::time_point sent = Clock::now();
    const Target t = PickTarget(options, rng);
    StartCall(stubs[k % stubs.size()]->async(), &v1::RedemptionService::Stub::async::RequestCompute,
              absl::StrCat("ENTERPRISE:", EnterpriseUscc(t.enterprise)),
              ComputeRequest(t, absl::StrCat(run_id, "-t0-", k), 1, 1),
              std::function<std::string(const grpc::Status&, const v1::RequestComputeResponse&)>(
                  [t](const grpc::Status& status, const v1::RequestComputeResponse& resp) {
                    if (!status.ok()) return absl::StrCat("RequestCompute ", Describe(status));
                    return CheckPlaced(resp, t, 1);
                  }),
              [&, k, due, sent](std::string failed) {
                const Clock::time_point done = Clock::now();
                if (!failed.empty()) {
                  failures.Add(failed);
                } else {
                  ok[k] = 1;
                  latency_us[k] =
                      std::chrono::duration_cast<std::chrono::microseconds>(done - due).count();
                  lag_us[k] =
                      std::chrono::duration_cast<std::chrono::microseconds>(sent - due).count();
                }
                in_flight.Done();
              });
  }
  if (!measuring) {
    window_start = absl::Now();
    cpu.Start();
  }
  std::this_thread::sleep_until(end);
  const std::string window = WindowLine(window_start, absl::Now());
  const std::string cpu_line = cpu.Stop();
  in_flight.WaitBelow(1);
  std::vector<int64_t> all, all_lags;
  int64_t ok_total = 0;
  // Latency by 500 ms window of due time: whether the slow calls come together (a stall) or
  // are spread over the run (queueing).
  std::map<int64_t, std::vector<int64_t>> windows;
  for (int64_t k = 0; k < sent_count; ++k) {
    ok_total += ok[k];
    if (ok[k] == 0 || due_of(k) < measure_start) continue;
    all.push_back(latency_us[k]);
    all_lags.push_back(lag_us[k]);
    windows[std::chrono::duration_cast<std::chrono::milliseconds>(due_of(k) - measure_start)
                .count() /
            500]
        .push_back(latency_us[k]);
  }
  {
    std::vector<std::pair<double, int64_t>> worst;  // (max ms, window)
    for (auto& [w, lat] : windows) {
      std::sort(lat.begin(), lat.end());
      worst.push_back({static_cast<double>(lat.back()) / 1000.0, w});
    }
    std::sort(worst.rbegin(), worst.rend());
    std::string line = "slowest 500 ms windows (start s: p50/p99/max ms):";
    for (size_t i = 0; i < worst.size() && i < 5; ++i) {
      const std::vector<int64_t>& lat = windows[worst[i].second];
      absl::StrAppend(&line,
                      absl::StrFormat(" %.1f: %.1f/%.1f/%.1f", worst[i].second * 0.5,
                                      Percentile(lat, 0.5), Percentile(lat, 0.99), worst[i].first));
    }
    if (!worst.empty()) {
      std::vector<double> maxima;
      for (const auto& [m, w] : worst) maxima.push_back(m);
      absl::StrAppend(&line,
                      absl::StrFormat("; median window max %.1f ms", maxima[maxima.size() / 2]));
    }
    std::printf("%s\n", line.c_str());
  }
  std::sort(all.begin(), all.end());
  std::sort(all_lags.begin(), all_lags.end());
  const int64_t failed = failures.total();
  if (failed > 0) failures.Print();
  const double seconds = std::chrono::duration<double>(end - measure_start).count();
  std::printf("%s\n%s\n", window.c_str(), cpu_line.c_str());
  std::printf("send lag behind schedule: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
              Percentile(all_lags, 0.5), Percentile(all_lags, 0.99),
              all_lags.empty() ? 0.0 : static_cast<double>(all_lags.back()) / 1000.0);
  const int64_t n = static_cast<int64_t>(all.size());
  std::printf(
      "requests=%lld seconds=%.2f rate=%.1f rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f "
      "p999_ms=%.2f max_ms=%.2f failures=%lld placed_total=%lld\n",
      static_cast<long long>(n), seconds, options.rate, n / seconds, Percentile(all, 0.50),
      Percentile(all, 0.90), Percentile(all, 0.99), Percentile(all, 0.999),
      all.empty() ? 0.0 : static_cast<double>(all.back()) / 1000.0, static_cast<long long>(failed),
      static_cast<long long>(ok_total));
  std::fflush(stdout);
  return failed == 0 ? 0 : 1;
}

int RunUsage(const Options& options, uint64_t seed) {
  const std::string run_id = RunId("use", options);
  std::printf(
      "redemption_bench mode=usage %s threads=%d redemptions=%d seconds=%g warmup=%g seed=%llu "
      "run=%s\n",
      options.hot ? "hot" : "spread", options.threads, options.threads * options.per_thread,
      options.seconds, options.warmup_seconds, static_cast<unsigned long long>(seed),
      run_id.c_str());
  std::fflush(stdout);
  const auto channels = MakeChannels(options);
  std::vector<std::unique_ptr<v1::RedemptionService::Stub>> stubs;
  for (int t = 0; t < options.threads; ++t) {
    stubs.push_back(v1::RedemptionService::NewStub(channels[t % channels.size()]));
  }
  // Untimed: every client places and confirms its own redemptions, so no two calls in flight
  // ever touch the same redemption.
  struct Held {
    int64_t id = 0;
    int datacenter = 0;
    int64_t price_fen = 0;
  };
  std::vector<std::vector<Held>> held(options.threads);
  const absl::Time setup_start = absl::Now();
  FailureLog setup_failures;
  std::atomic<int64_t> placed{0}, confirmed{0};
  {
    std::vector<std::thread> threads;
    for (int thread = 0; thread < options.threads; ++thread) {
      threads.emplace_back([&, thread] {
        std::mt19937_64 rng(seed + static_cast<uint64_t>(thread) * 0x9E3779B97F4A7C15ull);
        for (int j = 0; j < options.per_thread; ++j) {
          const Target t = PickTarget(options, rng);
          const v1::RequestComputeRequest req = ComputeRequest(
              t, absl::StrCat(run_id, "-place-t", thread, "-", j), kUsageGpus, kUsageHours);
          v1::RequestComputeResponse resp;
          grpc::Status status = Call(
              absl::StrCat("ENTERPRISE:", EnterpriseUscc(t.enterprise)),
              [&](grpc::ClientContext* c) { return stubs[thread]->RequestCompute(c, req, &resp); });
          std::string failed = status.ok() ? CheckPlaced(resp, t, kUsageGpus)
                                           : absl::StrCat("RequestCompute ", Describe(status));
          if (!failed.empty()) {
            setup_failures.Add(failed);
            continue;
          }
          ++placed;
          v1::ConfirmPlacementRequest confirm;
          confirm.set_request_id(absl::StrCat(run_id, "-confirm-", resp.redemption().id()));
          confirm.set_id(resp.redemption().id());
          v1::ConfirmPlacementResponse confirmed_resp;
          status = Call(absl::StrCat("OPERATOR:", DatacenterId(t.datacenter)),
                        [&](grpc::ClientContext* c) {
                          return stubs[thread]->ConfirmPlacement(c, confirm, &confirmed_resp);
                        });
          if (!status.ok() ||
              confirmed_resp.redemption().state() != v1::REDEMPTION_STATE_CONFIRMED) {
            setup_failures.Add(status.ok() ? "ConfirmPlacement OK but not CONFIRMED"
                                           : absl::StrCat("ConfirmPlacement ", Describe(status)));
            continue;
          }
          ++confirmed;
          held[thread].push_back(
              {resp.redemption().id(), t.datacenter, resp.redemption().price_fen_per_gpu_hour()});
        }
      });
    }
    for (std::thread& t : threads) t.join();
  }
  std::printf("usage setup: %lld redemptions of %d GPUs x %d h placed, %lld confirmed in %.1f s\n",
              static_cast<long long>(placed.load()), kUsageGpus, kUsageHours,
              static_cast<long long>(confirmed.load()),
              absl::ToDoubleSeconds(absl::Now() - setup_start));
  std::fflush(stdout);
  if (setup_failures.total() > 0) {
    setup_failures.Print();
    std::printf("placed_total=%lld confirmed_total=%lld usage_total=0 failures=%lld\n",
                static_cast<long long>(placed.load()), static_cast<long long>(confirmed.load()),
                static_cast<long long>(setup_failures.total()));
    return 1;
  }

  FailureLog failures;
  LoopResult r = ClosedLoop(options, failures, [&](int slot, int64_t seq, CallDone done) {
    const Held& h = held[slot][seq % held[slot].size()];
    v1::ReportUsageRequest req;
    req.set_redemption(h.id);
    req.set_usage_id(absl::StrCat(run_id, "-t", slot, "-", seq));
    req.set_gpu_seconds(kUsageGpuSeconds);
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    req.mutable_start_time()->set_seconds(now - 60);
    req.mutable_end_time()->set_seconds(now);
    StartCall(stubs[slot]->async(), &v1::RedemptionService::Stub::async::ReportUsage,
              absl::StrCat("OPERATOR:", DatacenterId(h.datacenter)), std::move(req),
              std::function<std::string(const grpc::Status&, const v1::ReportUsageResponse&)>(
                  [h](const grpc::Status& status, const v1::ReportUsageResponse& resp) {
                    if (!status.ok()) return absl::StrCat("ReportUsage ", Describe(status));
                    const int64_t bill = kUsageGpuSeconds * h.price_fen / 3600;
                    if (resp.usage().redemption() != h.id || resp.usage().bill_fen() != bill ||
                        resp.usage().subsidy_fen() != bill * 8000 / 10000 ||
                        !resp.usage().capped_by().empty() ||
                        resp.redemption().state() != v1::REDEMPTION_STATE_ACTIVE) {
                      return std::string("ReportUsage settled something other than asked");
                    }
                    return std::string();
                  }),
              std::move(done));
  });
  if (r.failures > 0) failures.Print();
  std::printf("%s\n%s\n", r.window.c_str(), r.cpu.c_str());
  const int64_t n = static_cast<int64_t>(r.latencies_us.size());
  std::printf(
      "reports=%lld seconds=%.2f rps=%.1f p50_ms=%.2f p99_ms=%.2f failures=%lld "
      "placed_total=%lld confirmed_total=%lld usage_total=%lld outside_window=%lld\n",
      static_cast<long long>(n), r.seconds, n / r.seconds, Percentile(r.latencies_us, 0.50),
      Percentile(r.latencies_us, 0.99), static_cast<long long>(r.failures),
      static_cast<long long>(placed.load()), static_cast<long long>(confirmed.load()),
      static_cast<long long>(r.ok_total), static_cast<long long>(r.ok_total - n));
  std::fflush(stdout);
  return r.failures == 0 ? 0 : 1;
}

int RunVerify(const Options& options) {
  auto ledger = v1::LedgerService::NewStub(MakeChannels(options)[0]);
  const absl::Time start = absl::Now();
  v1::VerifyLedgerResponse resp;
  grpc::ClientContext context;
  context.AddMetadata("x-vch-principal", "AUDITOR");
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
  grpc::Status status = ledger->VerifyLedger(&context, v1::VerifyLedgerRequest(), &resp);
  if (!status.ok()) {
    std::fprintf(stderr, "redemption_bench: VerifyLedger: %s\n", Describe(status).c_str());
    return 1;
  }
  std::printf("VerifyLedger: %lld accounts, %lld transfers, %lld holds, %d violations (%.1f s)\n",
              static_cast<long long>(resp.accounts()), static_cast<long long>(resp.transfers()),
              static_cast<long long>(resp.holds()), resp.violations_size(),
              absl::ToDoubleSeconds(absl::Now() - start));
  for (int i = 0; i < resp.violations_size() && i < 10; ++i) {
    std::fprintf(stderr, "redemption_bench: %s\n", resp.violations(i).c_str());
  }
  return resp.ok() && resp.violations_size() == 0 ? 0 : 1;
}

int Run(const Options& options) {
  const uint64_t seed =
      options.seed != 0 ? options.seed : static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
  switch (options.mode) {
    case Mode::kSetup:
      return RunSetup(options);
    case Mode::kRequest:
      return RunRequest(options, seed);
    case Mode::kOpen:
      return RunOpen(options, seed);
    case Mode::kUsage:
      return RunUsage(options, seed);
    case Mode::kVerify:
      return RunVerify(options);
  }
  return 2;
}

}  // namespace
}  // namespace vch::bench

int main(int argc, char** argv) { return vch::bench::Run(vch::bench::ParseOptions(argc, argv)); }
