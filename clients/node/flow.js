#!/usr/bin/env node
// The whole money flow of vch through @grpc/grpc-js, as its four parties would run it: a program
// office funds an AI-rental program, an SME applies and is awarded credit, a western datacenter
// offers idle GPUs, the SME redeems credit for 8 GPUs x 10 hours, the operator confirms and meters
// usage, the office pays the datacenter, and an auditor verifies the ledger. Every amount is
// checked against a constant worked out by hand (DESIGN §3: floor everywhere, against the
// subsidy).
//
// Usage: node clients/node/flow.js [--server HOST:PORT] [--tag SLUG] [--proto-root DIR]
//                                  [--node-modules DIR]
//   --server        a vchd serving with the development principal header (default
//                   127.0.0.1:50051, where ./deploy/run-local serves)
//   --tag           suffix of every id the flow creates, so it can run more than once against
//                   one database (default: derived from the current time)
//   --proto-root    the proto/ folder (default: ../../proto from this file)
//   --node-modules  where @grpc/grpc-js and @grpc/proto-loader are installed (default:
//                   ../../tools/node_modules from this file, which `npm ci` in tools/ fills)
// Exits 0 when every step checked out, 1 on the first failure (with the call that failed).
'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..');

const USAGE = 'usage: flow.js [--server HOST:PORT] [--tag SLUG] [--proto-root DIR] ' +
              '[--node-modules DIR]';

// Exits 2 with the usage on a bad command line.
function parseArgs(argv) {
  const bad = (why) => {
    console.error(`${why}\n${USAGE}`);
    process.exit(2);
  };
  const args = {
    server: '127.0.0.1:50051',
    tag: Math.floor(Date.now() / 1000).toString(36),
    protoRoot: path.join(REPO, 'proto'),
    nodeModules: path.join(REPO, 'tools', 'node_modules'),
  };
  const names = {'--server': 'server', '--tag': 'tag', '--proto-root': 'protoRoot',
                 '--node-modules': 'nodeModules'};
  for (let i = 0; i < argv.length; i += 2) {
    const key = names[argv[i]];
    if (argv[i] === '--help' || argv[i] === '-h') {
      console.log(USAGE);
      process.exit(0);
    }
    if (!key || i + 1 >= argv.length) bad(`flow.js: bad argument ${argv[i]}`);
    args[key] = argv[i + 1];
  }
  if (!/^[a-z0-9][a-z0-9-]{0,20}$/.test(args.tag)) {
    bad(`flow.js: --tag must be 1-21 lower-case letters, digits and '-', got ${args.tag}`);
  }
  return args;
}

const ARGS = parseArgs(process.argv.slice(2));
function requireTool(name) {
  const dir = path.join(ARGS.nodeModules, name);
  if (!fs.existsSync(path.join(dir, 'package.json'))) {
    throw new Error(`${name} is not installed in ${ARGS.nodeModules}: run deploy/install-deps ` +
                    '(or `npm ci` in tools/)');
  }
  return require(dir);
}
const grpc = requireTool('@grpc/grpc-js');
const protoLoader = requireTool('@grpc/proto-loader');

// --- Unified social credit codes (GB 32100-2015), as tests/e2e/placement_test.py makes them ---

const USCC_ALPHABET = '0123456789ABCDEFGHJKLMNPQRTUWXY';
const USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

// The n-th valid code of an enterprise registered in `region`.
function uscc(n, region) {
  let digits = '';
  for (let i = 0; i < 7; i++) {
    digits = USCC_ALPHABET[n % 31] + digits;
    n = Math.floor(n / 31);
  }
  const first17 = '91' + region + 'MA' + digits;
  let total = 0;
  for (let i = 0; i < 17; i++) total += USCC_ALPHABET.indexOf(first17[i]) * USCC_WEIGHTS[i];
  return first17 + USCC_ALPHABET[(31 - (total % 31)) % 31];
}

// --- The world this run creates (ids carry the tag; amounts are constants) ---

const T = ARGS.tag;
const ISSUER = `shanghai-${T}`;
const PROGRAM = `sh-ai-${T}`;
const DATACENTER = `nx-${T}`;
const POOL = 'h800';
const POOL_NAME = `datacenters/${DATACENTER}/pools/${POOL}`;
// Spread over 31^7 codes so runs with different tags register different enterprises.
const USCC = uscc(parseInt(crypto.createHash('sha256').update(T).digest('hex').slice(0, 8), 16),
                  '310115');

const PLATFORM_ADMIN = 'PLATFORM_ADMIN';
const ISSUER_ADMIN = `ISSUER_ADMIN:${ISSUER}/wang.fang`;
const REVIEWER = `REVIEWER:${ISSUER}/li.na`;
const ENTERPRISE = `ENTERPRISE:${USCC}`;
const OPERATOR = `OPERATOR:${DATACENTER}`;
const AUDITOR = 'AUDITOR';

const PRICE_FEN_PER_GPU_HOUR = 1837;  // 18.37 CNY per H800-hour, under the 35 CNY ceiling
const GPUS = 8;
const HOURS = 10;

const FUNDED = 60_000_000n;           // 600,000 CNY: the first tranche
const REQUESTED = 15_000_000n;
const AWARDED = 12_000_000n;          // the reviewer awards less than requested
const BUDGET_LEFT = 48_000_000n;      // 60,000,000 - 12,000,000
// Estimated bill: 8 GPUs x 10 h x 1,837 fen = 146,960 fen.
const ESTIMATED_BILL = 146_960n;
// Held: floor(146,960 x 8,000 / 10,000) = floor(117,568.0) = 117,568 fen.
const HELD = 117_568n;
// Wallet while held: 12,000,000 - 117,568 = 11,882,432 fen.
const AVAILABLE_WHILE_HELD = 11_882_432n;

// Usage 1 (not final): 8 GPUs x 12,307 s (3 h 25 min 7 s) = 98,456 GPU-seconds.
const USAGE1_GPU_SECONDS = 98_456;
// Bill: floor(98,456 x 1,837 / 3,600) = floor(180,863,672 / 3,600) = floor(50,239.908...) = 50,239.
const USAGE1_BILL = 50_239n;
// Subsidy: floor(50,239 x 8,000 / 10,000) = floor(40,191.2) = 40,191 (below the 117,568 held).
const USAGE1_SUBSIDY = 40_191n;
// Copay: 50,239 - 40,191 = 10,048.
const USAGE1_COPAY = 10_048n;
// Still held: 117,568 - 40,191 = 77,377.
const HELD_AFTER_USAGE1 = 77_377n;

// Usage 2 (final): 8 GPUs x 19,577 s (5 h 26 min 17 s) = 156,616 GPU-seconds.
const USAGE2_GPU_SECONDS = 156_616;
// Bill: floor(156,616 x 1,837 / 3,600) = floor(287,703,592 / 3,600) = floor(79,917.664...)
//     = 79,917.
const USAGE2_BILL = 79_917n;
// Subsidy: floor(79,917 x 8,000 / 10,000) = floor(63,933.6) = 63,933 (below the 77,377 held).
const USAGE2_SUBSIDY = 63_933n;
// Copay: 79,917 - 63,933 = 15,984.
const USAGE2_COPAY = 15_984n;
// Released by the final record: 77,377 - 63,933 = 13,444.
const RELEASED = 13_444n;

// Totals: 98,456 + 156,616 = 255,072 GPU-seconds; bills 50,239 + 79,917 = 130,156;
// subsidies 40,191 + 63,933 = 104,124; copays 10,048 + 15,984 = 26,032.
const TOTAL_GPU_SECONDS = 255_072n;
const TOTAL_BILL = 130_156n;
const TOTAL_SUBSIDY = 104_124n;
const TOTAL_COPAY = 26_032n;
// Wallet after settlement: 12,000,000 - 104,124 = 11,895,876.
const AVAILABLE_AFTER = 11_895_876n;

// --- gRPC plumbing ---

function loadServices() {
  const dir = path.join(ARGS.protoRoot, 'vch', 'v1');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.proto')).sort()
      .map((f) => `vch/v1/${f}`);
  const definition = protoLoader.loadSync(files, {
    keepCase: true, longs: String, enums: String, defaults: true, includeDirs: [ARGS.protoRoot],
  });
  return grpc.loadPackageDefinition(definition).vch.v1;
}

// A minimal reader of the protobuf wire format, enough for the google.rpc.Status trailer
// (reason of its ErrorInfo detail) without generated code.
function readFields(buf) {
  const fields = [];
  let i = 0;
  const varint = () => {
    let value = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const b = buf[i++];
      value |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return value;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const wire = key & 7;
    if (wire === 0) {
      fields.push({field: key >> 3, value: varint()});
    } else if (wire === 2) {
      const n = Number(varint());
      fields.push({field: key >> 3, value: buf.subarray(i, i + n)});
      i += n;
    } else if (wire === 1 || wire === 5) {
      i += wire === 1 ? 8 : 4;
    } else {
      throw new Error(`unexpected wire type ${wire} in a status detail`);
    }
  }
  return fields;
}

// The ErrorInfo reason of a failed call ("" when it carries none).
function errorReason(err) {
  const bins = err.metadata ? err.metadata.get('grpc-status-details-bin') : [];
  if (bins.length === 0) return '';
  for (const any of readFields(bins[0]).filter((f) => f.field === 3)) {
    const parts = readFields(any.value);
    const typeUrl = parts.find((f) => f.field === 1);
    const value = parts.find((f) => f.field === 2);
    if (typeUrl && value &&
        typeUrl.value.toString() === 'type.googleapis.com/google.rpc.ErrorInfo') {
      const reason = readFields(value.value).find((f) => f.field === 1);
      return reason ? reason.value.toString() : '';
    }
  }
  return '';
}

class Vch {
  constructor(address, services) {
    this.channel = new grpc.Channel(address, grpc.credentials.createInsecure(), {});
    this.clients = {};
    for (const name of Object.keys(services)) {
      if (name.endsWith('Service') && typeof services[name] === 'function') {
        this.clients[name] = new services[name](address, grpc.credentials.createInsecure(),
                                                {channelOverride: this.channel});
      }
    }
  }

  // Calls Service.Method as `principal`; rejects with an Error naming the call, code and reason.
  call(service, method, request, principal) {
    const client = this.clients[service];
    if (!client || typeof client[method] !== 'function') {
      return Promise.reject(new Error(`no RPC ${service}.${method} in the protos`));
    }
    const metadata = new grpc.Metadata();
    metadata.set('x-vch-principal', principal);
    return new Promise((resolve, reject) => {
      client[method](request, metadata, {deadline: Date.now() + 20_000}, (err, response) => {
        if (!err) return resolve(response);
        const failure = new Error(`${service}.${method} as ${principal} failed: ` +
                                  `${grpc.status[err.code]} ${errorReason(err)} ${err.details}`);
        failure.code = err.code;
        failure.reason = errorReason(err);
        reject(failure);
      });
    });
  }

  // Calls and expects a failure with this code and ErrorInfo reason.
  async callFails(code, reason, service, method, request, principal) {
    let failure = null;
    try {
      await this.call(service, method, request, principal);
    } catch (e) {
      failure = e;
    }
    assert.ok(failure, `${service}.${method} as ${principal} succeeded; expected ${reason}`);
    assert.equal(grpc.status[failure.code], grpc.status[code], failure.message);
    assert.equal(failure.reason, reason, failure.message);
  }

  close() {
    for (const client of Object.values(this.clients)) client.close();
    this.channel.close();
  }
}

// --- Helpers ---

function timestamp(ms) {
  return {seconds: String(Math.floor(ms / 1000)), nanos: 0};
}

const DAY_MS = 24 * 3600 * 1000;

// The five totals of a ledger Balance as BigInts, for deepStrictEqual with literal constants.
function balance(b) {
  return {
    debits_pending_fen: BigInt(b.debits_pending_fen),
    debits_posted_fen: BigInt(b.debits_posted_fen),
    credits_pending_fen: BigInt(b.credits_pending_fen),
    credits_posted_fen: BigInt(b.credits_posted_fen),
    available_fen: BigInt(b.available_fen),
  };
}

function want(dPending, dPosted, cPending, cPosted, available) {
  return {debits_pending_fen: dPending, debits_posted_fen: dPosted,
          credits_pending_fen: cPending, credits_posted_fen: cPosted, available_fen: available};
}

const started = Date.now();
function step(text) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(2)}s] ${text}`);
}

// --- The flow ---

async function main() {
  const vch = new Vch(ARGS.server, loadServices());
  let requestCount = 0;
  const rid = (what) => `flow-${T}-${what}-${++requestCount}`;
  const now = Date.now();
  const periodStart = timestamp(now - 3600 * 1000);

  try {
    // 1. The program office.
    step(`program office: issuer ${ISSUER}, program ${PROGRAM}`);
    const issuer = (await vch.call('IssuerService', 'RegisterIssuer', {
      request_id: rid('issuer'), id: ISSUER, display_name: '上海市经济和信息化委员会',
      region_code: '310000', level: 'ISSUER_LEVEL_PROVINCE',  // a province-level municipality
    }, PLATFORM_ADMIN)).issuer;
    assert.equal(issuer.name, `issuers/${ISSUER}`);
    assert.equal(issuer.region_code, '310000');
    assert.equal(issuer.level, 'ISSUER_LEVEL_PROVINCE');

    const rules = {
      display_name: '上海市人工智能算力券（智算租赁）',
      category: 'PROGRAM_CATEGORY_AI_RENTAL',
      planned_budget_fen: '100000000',
      subsidy_ratio_bps: 8000,
      per_enterprise_cap_fen: '20000000',
      eligible_kinds: ['ENTERPRISE_KIND_SME', 'ENTERPRISE_KIND_STARTUP'],
      eligible_sizes: ['SIZE_CLASS_MICRO', 'SIZE_CLASS_SMALL', 'SIZE_CLASS_MEDIUM'],
      application_start_time: timestamp(now - DAY_MS),
      application_end_time: timestamp(now + 180 * DAY_MS),
      redemption_start_time: timestamp(now - DAY_MS),
      redemption_end_time: timestamp(now + 365 * DAY_MS),
      datacenter_scope: 'DATACENTER_SCOPE_NATIONAL',
      price_ceiling_fen_per_gpu_hour: '3500',
      settlement_style: 'SETTLEMENT_STYLE_DIRECT',
    };
    let program = (await vch.call('ProgramService', 'CreateProgram',
                                  {request_id: rid('program'), id: PROGRAM, rules},
                                  ISSUER_ADMIN)).program;
    assert.equal(program.state, 'PROGRAM_STATE_DRAFT');
    assert.equal(program.issuer, ISSUER);
    assert.equal(program.rules.subsidy_ratio_bps, 8000);
    assert.equal(program.rules.settlement_style, 'SETTLEMENT_STYLE_DIRECT');
    program = (await vch.call('ProgramService', 'OpenProgram',
                              {request_id: rid('open'), id: PROGRAM}, ISSUER_ADMIN)).program;
    assert.equal(program.state, 'PROGRAM_STATE_OPEN');
    const funded = await vch.call('ProgramService', 'FundProgram', {
      request_id: rid('fund'), id: PROGRAM, amount_fen: String(FUNDED), note: '2026 first tranche',
    }, ISSUER_ADMIN);
    assert.equal(BigInt(funded.program.funded_fen), FUNDED);
    assert.equal(BigInt(funded.program.budget_available_fen), FUNDED);
    assert.ok(BigInt(funded.transfer_id) > 0n);

    // 2. The enterprise applies; a reviewer awards less than requested.
    step(`enterprise ${USCC}: register, apply for ${REQUESTED} fen, awarded ${AWARDED}`);
    const enterprise = (await vch.call('EnterpriseService', 'RegisterEnterprise', {
      request_id: rid('enterprise'), enterprise: {
        uscc: USCC, display_name: '上海深瞳智算科技有限公司', region_code: '310115',
        kind: 'ENTERPRISE_KIND_SME', size_class: 'SIZE_CLASS_SMALL',
      },
    }, ENTERPRISE)).enterprise;
    assert.equal(enterprise.name, `enterprises/${USCC}`);
    const submitted = (await vch.call('ApplicationService', 'SubmitApplication', {
      request_id: rid('apply'), program: PROGRAM, enterprise: USCC,
      requested_fen: String(REQUESTED), purpose: 'fine-tuning a 70B model for medical imaging',
    }, ENTERPRISE)).application;
    assert.equal(submitted.state, 'APPLICATION_STATE_SUBMITTED');
    assert.equal(BigInt(submitted.requested_fen), REQUESTED);
    const approved = (await vch.call('ApplicationService', 'ApproveApplication', {
      request_id: rid('approve'), id: submitted.id, amount_fen: String(AWARDED),
      note: 'awarded within the remaining 2026 budget',
    }, REVIEWER)).application;
    assert.equal(approved.state, 'APPLICATION_STATE_APPROVED');
    assert.equal(BigInt(approved.awarded_fen), AWARDED);
    assert.equal(approved.decided_by, 'li.na');
    assert.ok(BigInt(approved.award_transfer_id) > BigInt(funded.transfer_id));

    const award = (await vch.call('ApplicationService', 'GetAward',
                                  {program: PROGRAM, enterprise: USCC}, ENTERPRISE)).award;
    assert.equal(BigInt(award.awarded_fen), AWARDED);
    assert.equal(BigInt(award.clawed_back_fen), 0n);
    assert.equal(BigInt(award.cap_fen), 20_000_000n);
    assert.equal(BigInt(award.wallet_available_fen), AWARDED);
    const walletId = award.wallet_account_id;
    assert.ok(BigInt(walletId) > 0n);
    const getWallet = async () => (await vch.call('LedgerService', 'GetAccount',
                                                  {account_id: walletId}, ENTERPRISE)).account;
    let wallet = await getWallet();
    assert.equal(wallet.kind, 'ACCOUNT_KIND_WALLET');
    assert.equal(wallet.owner, USCC);
    assert.equal(wallet.program, PROGRAM);
    assert.equal(wallet.no_overdraft, true);
    assert.deepStrictEqual(balance(wallet.balance), want(0n, 0n, 0n, AWARDED, AWARDED));
    program = (await vch.call('ProgramService', 'GetProgram', {id: PROGRAM}, AUDITOR)).program;
    assert.equal(BigInt(program.budget_available_fen), BUDGET_LEFT);  // 60,000,000 - 12,000,000

    // 3. The operator: an idle site in the Ningxia hub (western "East Data, West Compute").
    step(`operator: datacenter ${DATACENTER} (Ningxia hub), pool ${POOL} 64 x H800 all free`);
    const dc = (await vch.call('CapacityService', 'RegisterDatacenter', {
      request_id: rid('dc'), datacenter: {
        id: DATACENTER, display_name: '中卫西部云基地智算中心（示例）',
        operator_name: '宁夏中卫云数据有限公司', region_code: '640500',
        hub: 'NATIONAL_HUB_NINGXIA', national_network: true,
      },
    }, OPERATOR)).datacenter;
    assert.equal(dc.state, 'DATACENTER_STATE_ACTIVE');
    assert.equal(dc.hub, 'NATIONAL_HUB_NINGXIA');
    const pool = (await vch.call('CapacityService', 'RegisterPool', {
      request_id: rid('pool'), pool: {
        datacenter: DATACENTER, id: POOL, accelerator_model: 'H800', vendor: 'NVIDIA',
        domestic: false, fp8: true, memory_gib: 80, fp16_tflops: 989, fp8_tflops: 1979,
        gpus_total: 64, price_fen_per_gpu_hour: String(PRICE_FEN_PER_GPU_HOUR),
      },
    }, OPERATOR)).pool;
    assert.equal(pool.name, POOL_NAME);
    const reported = (await vch.call('CapacityService', 'ReportCapacity', {
      request_id: rid('report'), datacenter: DATACENTER, reports: [{pool: POOL, gpus_free: 64}],
    }, OPERATOR)).pools;
    assert.equal(reported.length, 1);
    assert.equal(reported[0].gpus_free, 64);
    assert.equal(reported[0].gpus_held, 0);
    const poolState = async () => {
      const pools = (await vch.call('CapacityService', 'ListPools', {datacenter: DATACENTER},
                                    AUDITOR)).pools;
      return pools.find((p) => p.id === POOL);
    };

    // The engine should rank this run's idle site first (the flow's constants assume it). On a
    // shared database an idle site of an earlier run may tie with it for 15 minutes.
    const requirement = {program: PROGRAM, gpus: GPUS, fp8_required: true,
                         preferred_region_prefix: '64'};
    const explained = await vch.call('PlacementService', 'Explain', {requirement, top: 3},
                                     ENTERPRISE);
    assert.ok(explained.ranking.length >= 1, 'Explain ranks no pool');
    if (explained.ranking[0].pool !== POOL_NAME) {
      throw new Error(`placement would pick ${explained.ranking[0].pool}, not ${POOL_NAME}: ` +
                      'run on a fresh database, or wait until earlier runs\' reports are stale');
    }

    // 4. The enterprise redeems: 8 GPUs for 10 hours; credit and GPUs are held together.
    step(`enterprise: RequestCompute ${GPUS} GPUs x ${HOURS} h`);
    const computeRequest = {request_id: rid('compute'), requirement, hours: HOURS};
    const placedResponse = await vch.call('RedemptionService', 'RequestCompute', computeRequest,
                                          ENTERPRISE);
    assert.equal(placedResponse.placed, true);
    assert.deepStrictEqual(placedResponse.exclusions, []);
    let redemption = placedResponse.redemption;
    const redemptionId = redemption.id;
    assert.equal(redemption.name, `redemptions/${redemptionId}`);
    assert.equal(redemption.state, 'REDEMPTION_STATE_PLACED');
    assert.equal(redemption.program, PROGRAM);
    assert.equal(redemption.enterprise, USCC);
    assert.equal(redemption.settlement_style, 'SETTLEMENT_STYLE_DIRECT');
    assert.equal(redemption.pool, POOL_NAME);
    assert.equal(redemption.datacenter, DATACENTER);
    assert.equal(redemption.hours, HOURS);
    assert.equal(redemption.requirement.gpus, GPUS);
    assert.equal(BigInt(redemption.price_fen_per_gpu_hour), BigInt(PRICE_FEN_PER_GPU_HOUR));
    assert.equal(redemption.ratio_bps, 8000);
    assert.equal(BigInt(redemption.estimated_bill_fen), ESTIMATED_BILL);  // 8 x 10 x 1,837
    assert.equal(BigInt(redemption.held_fen), HELD);                      // floor(146,960 x 0.8)
    assert.equal(BigInt(redemption.remaining_hold_fen), HELD);
    assert.ok(BigInt(redemption.hold_transfer_id) > BigInt(approved.award_transfer_id));
    assert.ok(Number(redemption.expire_time.seconds) * 1000 > now, 'expire_time in the past');
    // The same request id again: the stored answer, nothing held twice.
    const replayed = await vch.call('RedemptionService', 'RequestCompute', computeRequest,
                                    ENTERPRISE);
    assert.deepStrictEqual(replayed, placedResponse);

    // The voucher verifies offline with the published key.
    const key = await vch.call('RedemptionService', 'GetVoucherKey', {}, OPERATOR);
    assert.equal(redemption.voucher.key_id, key.key_id);
    assert.equal(redemption.voucher.signature.length, 64);
    assert.ok(crypto.verify(null, redemption.voucher.payload,
                            crypto.createPublicKey(key.public_key_pem),
                            redemption.voucher.signature), 'voucher signature does not verify');
    const terms = Object.fromEntries(redemption.voucher.payload.toString().trimEnd().split('\n')
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
    assert.deepStrictEqual(
        [terms['vch-voucher'], terms.redemption, terms.enterprise, terms.pool, terms.gpus,
         terms.hours, terms.held_fen, terms.key_id],
        ['1', redemptionId, USCC, POOL_NAME, '8', '10', '117568', key.key_id]);

    // Balances while held: the wallet's available drops by exactly the hold.
    wallet = await getWallet();
    assert.deepStrictEqual(balance(wallet.balance),
                           want(HELD, 0n, 0n, AWARDED, AVAILABLE_WHILE_HELD));
    assert.equal(BigInt((await vch.call('ApplicationService', 'GetAward',
                                        {program: PROGRAM, enterprise: USCC},
                                        ENTERPRISE)).award.wallet_available_fen),
                 AVAILABLE_WHILE_HELD);  // 12,000,000 - 117,568
    // The wallet's statement: the AWARD, then the HOLD into the datacenter's receivable.
    const walletTransfers = (await vch.call('LedgerService', 'ListTransfers',
                                            {account_id: walletId}, ENTERPRISE)).transfers;
    assert.deepStrictEqual(walletTransfers.map((t) => [t.kind, BigInt(t.amount_fen)]),
                           [['TRANSFER_KIND_AWARD', AWARDED], ['TRANSFER_KIND_HOLD', HELD]]);
    const hold = walletTransfers[1];
    assert.equal(hold.id, redemption.hold_transfer_id);
    assert.equal(hold.debit_account_id, walletId);
    const receivableId = hold.credit_account_id;
    const getReceivable = async () => (await vch.call('LedgerService', 'GetAccount',
                                                      {account_id: receivableId},
                                                      OPERATOR)).account;
    let receivable = await getReceivable();
    assert.equal(receivable.kind, 'ACCOUNT_KIND_RECEIVABLE');
    assert.equal(receivable.owner, DATACENTER);
    assert.equal(receivable.program, PROGRAM);
    assert.deepStrictEqual(balance(receivable.balance), want(0n, 0n, HELD, 0n, 0n));
    // The enterprise cannot read the datacenter's account: it reads as missing.
    await vch.callFails(grpc.status.NOT_FOUND, 'ACCOUNT_NOT_FOUND', 'LedgerService', 'GetAccount',
                        {account_id: receivableId}, ENTERPRISE);
    let held = await poolState();
    assert.equal(held.gpus_free, 64);
    assert.equal(held.gpus_held, GPUS);

    // 5. The operator confirms the placement and meters usage.
    step(`operator: confirm redemption ${redemptionId}, report usage`);
    const pending = (await vch.call('RedemptionService', 'ListPendingPlacements', {},
                                    OPERATOR)).redemptions;
    assert.deepStrictEqual(pending.map((r) => [r.id, r.state]),
                           [[redemptionId, 'REDEMPTION_STATE_PLACED']]);
    redemption = (await vch.call('RedemptionService', 'ConfirmPlacement',
                                 {request_id: rid('confirm'), id: redemptionId},
                                 OPERATOR)).redemption;
    assert.equal(redemption.state, 'REDEMPTION_STATE_CONFIRMED');
    assert.equal(BigInt(redemption.remaining_hold_fen), HELD);
    assert.deepStrictEqual((await vch.call('RedemptionService', 'ListPendingPlacements', {},
                                           OPERATOR)).redemptions, []);
    // The GPUs are the site's own to schedule now: vch holds none, the next report shows them.
    held = await poolState();
    assert.equal(held.gpus_held, 0);
    const busy = (await vch.call('CapacityService', 'ReportCapacity', {
      request_id: rid('report'), datacenter: DATACENTER, reports: [{pool: POOL, gpus_free: 56}],
    }, OPERATOR)).pools;
    assert.equal(busy[0].gpus_free, 56);  // 64 - 8 running the job
    assert.equal(busy[0].gpus_held, 0);

    const jobStart = now - 9 * 3600 * 1000;
    const usage1Request = {
      redemption: redemptionId, usage_id: `job-${T}-part-1`, gpu_seconds: USAGE1_GPU_SECONDS,
      start_time: timestamp(jobStart), end_time: timestamp(jobStart + 12_307 * 1000),
      final: false,
    };
    const usage1 = await vch.call('RedemptionService', 'ReportUsage', usage1Request, OPERATOR);
    assert.equal(usage1.usage.name, `redemptions/${redemptionId}/usage/job-${T}-part-1`);
    assert.equal(usage1.usage.final, false);
    assert.equal(BigInt(usage1.usage.gpu_seconds), BigInt(USAGE1_GPU_SECONDS));
    assert.equal(BigInt(usage1.usage.price_fen_per_gpu_hour), BigInt(PRICE_FEN_PER_GPU_HOUR));
    assert.equal(usage1.usage.ratio_bps, 8000);
    assert.equal(BigInt(usage1.usage.bill_fen), USAGE1_BILL);  // floor(98,456 x 1,837 / 3,600)
    assert.equal(BigInt(usage1.usage.subsidy_fen), USAGE1_SUBSIDY);  // floor(50,239 x 0.8)
    assert.equal(BigInt(usage1.usage.copay_fen), USAGE1_COPAY);      // 50,239 - 40,191
    assert.equal(usage1.usage.capped_by, '');
    assert.ok(BigInt(usage1.usage.post_transfer_id) > 0n);
    assert.equal(BigInt(usage1.usage.release_transfer_id), 0n);
    assert.equal(usage1.usage.payout, '');
    assert.equal(usage1.redemption.state, 'REDEMPTION_STATE_ACTIVE');
    assert.equal(usage1.redemption.usage_records, 1);
    // 117,568 - 40,191 still held.
    assert.equal(BigInt(usage1.redemption.remaining_hold_fen), HELD_AFTER_USAGE1);
    assert.equal(BigInt(usage1.redemption.billed_fen), USAGE1_BILL);
    assert.equal(BigInt(usage1.redemption.subsidy_fen), USAGE1_SUBSIDY);
    assert.equal(BigInt(usage1.redemption.copay_fen), USAGE1_COPAY);
    // The resend of a usage record returns the first answer; different content is refused.
    assert.deepStrictEqual(
        await vch.call('RedemptionService', 'ReportUsage', usage1Request, OPERATOR), usage1);
    await vch.callFails(grpc.status.ALREADY_EXISTS, 'USAGE_ID_REUSED', 'RedemptionService',
                        'ReportUsage', {...usage1Request, gpu_seconds: USAGE1_GPU_SECONDS + 1},
                        OPERATOR);
    // Posted part of the hold: the wallet's available is unchanged (the hold already counted).
    wallet = await getWallet();
    assert.deepStrictEqual(balance(wallet.balance),
                           want(HELD_AFTER_USAGE1, USAGE1_SUBSIDY, 0n, AWARDED,
                                AVAILABLE_WHILE_HELD));
    receivable = await getReceivable();
    assert.deepStrictEqual(balance(receivable.balance),
                           want(0n, 0n, HELD_AFTER_USAGE1, USAGE1_SUBSIDY, USAGE1_SUBSIDY));

    const part2Start = jobStart + 12_307 * 1000;
    const usage2 = await vch.call('RedemptionService', 'ReportUsage', {
      redemption: redemptionId, usage_id: `job-${T}-part-2`, gpu_seconds: USAGE2_GPU_SECONDS,
      start_time: timestamp(part2Start), end_time: timestamp(part2Start + 19_577 * 1000),
      final: true,
    }, OPERATOR);
    assert.equal(usage2.usage.final, true);
    assert.equal(BigInt(usage2.usage.bill_fen), USAGE2_BILL);  // floor(156,616 x 1,837 / 3,600)
    assert.equal(BigInt(usage2.usage.subsidy_fen), USAGE2_SUBSIDY);  // floor(79,917 x 0.8)
    assert.equal(BigInt(usage2.usage.copay_fen), USAGE2_COPAY);      // 79,917 - 63,933
    assert.equal(usage2.usage.capped_by, '');
    // The final POST closes the hold, releasing what it does not post.
    assert.ok(BigInt(usage2.usage.post_transfer_id) > BigInt(usage1.usage.post_transfer_id));
    assert.equal(usage2.usage.release_transfer_id, usage2.usage.post_transfer_id);
    redemption = usage2.redemption;
    assert.equal(redemption.state, 'REDEMPTION_STATE_SETTLED');
    assert.equal(redemption.usage_records, 2);
    assert.equal(BigInt(redemption.remaining_hold_fen), 0n);
    assert.equal(BigInt(redemption.gpu_seconds), TOTAL_GPU_SECONDS);  // 98,456 + 156,616
    assert.equal(BigInt(redemption.billed_fen), TOTAL_BILL);           // 50,239 + 79,917
    assert.equal(BigInt(redemption.subsidy_fen), TOTAL_SUBSIDY);       // 40,191 + 63,933
    assert.equal(BigInt(redemption.copay_fen), TOTAL_COPAY);           // 10,048 + 15,984
    assert.deepStrictEqual(
        (await vch.call('RedemptionService', 'GetRedemption', {id: redemptionId},
                        ENTERPRISE)).redemption, redemption);

    wallet = await getWallet();
    assert.deepStrictEqual(balance(wallet.balance),
                           want(0n, TOTAL_SUBSIDY, 0n, AWARDED, AVAILABLE_AFTER));
    assert.equal(BigInt((await vch.call('ApplicationService', 'GetAward',
                                        {program: PROGRAM, enterprise: USCC},
                                        ENTERPRISE)).award.wallet_available_fen),
                 AVAILABLE_AFTER);  // 12,000,000 - 104,124
    receivable = await getReceivable();
    assert.deepStrictEqual(balance(receivable.balance),
                           want(0n, 0n, 0n, TOTAL_SUBSIDY, TOTAL_SUBSIDY));
    const receivableTransfers = (await vch.call('LedgerService', 'ListTransfers',
                                                {account_id: receivableId}, OPERATOR)).transfers;
    assert.deepStrictEqual(
        receivableTransfers.map((t) => [t.kind, BigInt(t.amount_fen), BigInt(t.released_fen),
                                        t.pending_id]),
        [['TRANSFER_KIND_HOLD', HELD, 0n, '0'],
         ['TRANSFER_KIND_POST', USAGE1_SUBSIDY, 0n, hold.id],
         ['TRANSFER_KIND_POST', USAGE2_SUBSIDY, RELEASED, hold.id]]);  // 77,377 - 63,933 released

    // 6. The program office pays the datacenter its settled claims.
    step(`program office: payout to ${DATACENTER}`);
    const payoutRequest = {
      request_id: rid('payout'), program: PROGRAM, datacenter: DATACENTER,
      period_start_time: periodStart, period_end_time: timestamp(Date.now() + 60_000),
    };
    const created = await vch.call('RedemptionService', 'CreatePayout', payoutRequest,
                                   ISSUER_ADMIN);
    const payout = created.payout;
    assert.equal(payout.name, `datacenters/${DATACENTER}/payouts/${payout.id}`);
    assert.equal(payout.program, PROGRAM);
    assert.equal(payout.datacenter, DATACENTER);
    assert.equal(payout.enterprise, '');
    assert.equal(BigInt(payout.amount_fen), TOTAL_SUBSIDY);  // 40,191 + 63,933
    assert.equal(payout.lines, 2);
    assert.equal(payout.created_by, 'wang.fang');
    assert.deepStrictEqual(
        await vch.call('RedemptionService', 'CreatePayout', payoutRequest, ISSUER_ADMIN), created);
    await vch.callFails(grpc.status.FAILED_PRECONDITION, 'NOTHING_TO_PAY', 'RedemptionService',
                        'CreatePayout', {...payoutRequest, request_id: rid('payout-again')},
                        ISSUER_ADMIN);
    const lines = (await vch.call('RedemptionService', 'ListPayoutLines', {payout: payout.id},
                                  OPERATOR)).lines;
    assert.deepStrictEqual(
        lines.map((l) => [l.usage.usage_id, BigInt(l.usage.bill_fen), BigInt(l.usage.subsidy_fen),
                          l.usage.payout, l.enterprise, l.pool]),
        [[`job-${T}-part-1`, USAGE1_BILL, USAGE1_SUBSIDY, payout.name, USCC, POOL_NAME],
         [`job-${T}-part-2`, USAGE2_BILL, USAGE2_SUBSIDY, payout.name, USCC, POOL_NAME]]);

    receivable = await getReceivable();
    assert.deepStrictEqual(balance(receivable.balance),
                           want(0n, TOTAL_SUBSIDY, 0n, TOTAL_SUBSIDY, 0n));
    const payoutTransfer = (await vch.call('LedgerService', 'ListTransfers', {
      account_id: receivableId, kind: 'TRANSFER_KIND_PAYOUT',
    }, OPERATOR)).transfers;
    assert.equal(payoutTransfer.length, 1);
    assert.equal(payoutTransfer[0].id, payout.transfer_id);
    assert.equal(BigInt(payoutTransfer[0].amount_fen), TOTAL_SUBSIDY);
    assert.equal(payoutTransfer[0].debit_account_id, receivableId);
    const paid = (await vch.call('LedgerService', 'GetAccount',
                                 {account_id: payoutTransfer[0].credit_account_id},
                                 OPERATOR)).account;
    assert.equal(paid.kind, 'ACCOUNT_KIND_PAID');
    assert.equal(paid.owner, DATACENTER);
    assert.deepStrictEqual(balance(paid.balance),
                           want(0n, 0n, 0n, TOTAL_SUBSIDY, TOTAL_SUBSIDY));
    // Settlement spends awarded credit, not the budget: it is still 48,000,000.
    program = (await vch.call('ProgramService', 'GetProgram', {id: PROGRAM}, AUDITOR)).program;
    assert.equal(BigInt(program.budget_available_fen), BUDGET_LEFT);
    assert.equal(BigInt(program.funded_fen), FUNDED);

    // 7. The auditor verifies the whole ledger.
    step('auditor: VerifyLedger');
    const verified = await vch.call('LedgerService', 'VerifyLedger', {}, AUDITOR);
    assert.deepStrictEqual(verified.violations, []);
    assert.equal(verified.ok, true);
    assert.ok(BigInt(verified.transfers) >= 6n);  // FUND, AWARD, HOLD, 2 POSTs, PAYOUT at least

    step(`ok: redemption ${redemptionId} settled ${TOTAL_SUBSIDY} fen of subsidy, ` +
         `paid out in payout ${payout.id}`);
  } finally {
    vch.close();
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(`flow failed: ${err.stack || err}`);
  process.exit(1);
});
