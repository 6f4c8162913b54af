"""vch.v1.RedemptionService through Debian's python3-grpcio and the vch CLI against a real vchd:
the money path from award to payout, with every balance checked by hand at each step.

An enterprise spends its award on compute (RequestCompute places it and, in one transaction,
holds the voucher share of the estimate and the GPUs), the operator sees it pending, confirms it
and meters usage, each usage record settles at once (POST of the subsidy, capped by what is
still held and by the program's monthly limit; the final record releases the rest), and a payout
moves the settled claims from receivable (DIRECT) or payable (REIMBURSE) to paid. Also: the
domestic ratio, the monthly spend limit, rejection and the single re-placement, cancellation,
expiry of unconfirmed placements, idempotent replays, who may do what (including another site's
operator resending a usage record), concurrent usage reports against one hold and concurrent
requests against one award, signed vouchers verified offline with the CLI, and the CLI's
redemption, usage and payout commands with the payout's CSV statement. The ledger verifies
after every test.

Every test runs on a database of its own (copied from the fixture's template) and its own vchd.
The base world: a Shanghai issuer, a busy, expensive site in the Yangtze River Delta hub
(sh-lingang: 12 of 64 H800 free at 3,200 fen per GPU-hour) and an idle, cheap one in the Guizhou
hub (gz-guian: 96 of 128 Ascend 910B free at 1,500 fen per GPU-hour, a domestic accelerator),
both just reported. Programs are NATIONAL-scope AI-rental programs (price ceiling 3,500 fen),
ratio 8000 bps unless a test says otherwise, funded with 1,000,000.00 CNY; every award is
100,000.00 CNY = 10,000,000 fen.

Every expected amount is a literal worked out by hand (the comment next to it shows the
arithmetic): bill = floor(gpu_seconds * price / 3600), subsidy = floor(bill * ratio / 10000),
hold = floor(gpus * hours * price * ratio / 10000)."""

import csv
import datetime
import io
import json
import os
import subprocess
import sys
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vchtest  # noqa: E402

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def uscc(n, region="310115"):
    """The n-th valid unified social credit code of an enterprise registered in `region`."""
    digits = ""
    for _ in range(7):
        digits = USCC_ALPHABET[n % 31] + digits
        n //= 31
    first17 = "91" + region + "MA" + digits
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS))
    return first17 + USCC_ALPHABET[(31 - total % 31) % 31]


SME = uscc(1)
OTHER_SME = uscc(2)
ENTERPRISE = "ENTERPRISE:" + SME
OTHER_ENTERPRISE = "ENTERPRISE:" + OTHER_SME
ISSUER_ADMIN = "ISSUER_ADMIN:shanghai/wang.min"
EAST, EAST_POOL = "sh-lingang", "h800"
WEST, WEST_POOL = "gz-guian", "ascend"
EAST_NAME = "datacenters/%s/pools/%s" % (EAST, EAST_POOL)
WEST_NAME = "datacenters/%s/pools/%s" % (WEST, WEST_POOL)
EAST_OPERATOR = "OPERATOR:" + EAST
WEST_OPERATOR = "OPERATOR:" + WEST

AWARD_FEN = 10_000_000  # 100,000.00 CNY


def ts(days=0, seconds=0):
    """A Timestamp `days` and `seconds` from now (whole seconds)."""
    from google.protobuf import timestamp_pb2

    t = timestamp_pb2.Timestamp()
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    t.FromDatetime((now + datetime.timedelta(days=days, seconds=seconds)).replace(tzinfo=None))
    return t


def rfc3339(t):
    """A whole-second Timestamp as the CLI's flags and the CSV write it."""
    return datetime.datetime.fromtimestamp(t.seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def vchd_args(*args):
    """Runs the decorated test against a vchd started with these extra arguments."""
    def wrap(test):
        test.vchd_args = args
        return test
    return wrap


class RedemptionTest(unittest.TestCase):
    db_counter = 0

    def setUp(self):
        base = os.environ["VCH_TEST_DSN"]
        RedemptionTest.db_counter += 1
        db = "e2e_redemption_%d_%d" % (os.getpid(), RedemptionTest.db_counter)
        vchtest.psql(base + " dbname=postgres", "CREATE DATABASE %s TEMPLATE vch_template" % db)
        self.dsn = base + " dbname=" + db
        extra = getattr(getattr(self, self._testMethodName), "vchd_args", ())
        self.vchd = vchtest.Vchd(self.dsn, name="vchd-%d" % RedemptionTest.db_counter,
                                 extra=extra)
        self.channel = grpc.insecure_channel(self.vchd.address)
        self.next_request = 0
        self.registered = set()
        self.build_base_world()

    def tearDown(self):
        from vch.v1 import ledger_pb2

        try:
            # Whatever the test did, the ledger's invariants hold afterwards.
            report = self.call("VerifyLedger", ledger_pb2.VerifyLedgerRequest(), "AUDITOR",
                               service="LedgerService")
            self.assertTrue(report.ok, list(report.violations))
        finally:
            self.channel.close()
            code = self.vchd.stop()
            self.assertEqual(code, 0, "vchd exited with %d: %s" % (code, self.vchd.logs()))

    # --- calls ---

    def call(self, method, request, principal, service="RedemptionService"):
        from vch.v1 import (application_pb2_grpc, capacity_pb2_grpc, enterprise_pb2_grpc,
                            ledger_pb2_grpc, program_pb2_grpc, redemption_pb2_grpc)

        modules = {"RedemptionService": redemption_pb2_grpc,
                   "CapacityService": capacity_pb2_grpc,
                   "IssuerService": program_pb2_grpc, "ProgramService": program_pb2_grpc,
                   "EnterpriseService": enterprise_pb2_grpc,
                   "ApplicationService": application_pb2_grpc,
                   "LedgerService": ledger_pb2_grpc}
        stub = getattr(modules[service], service + "Stub")(self.channel)
        return getattr(stub, method)(request, metadata=[("x-vch-principal", principal)],
                                     timeout=20)

    def capacity(self, method, request, principal):
        return self.call(method, request, principal, service="CapacityService")

    def request_id(self):
        self.next_request += 1
        return "req-%d" % self.next_request

    def assert_fails(self, code, reason, method, request, principal, **kwargs):
        """Asserts the call fails with `code` and `reason`; returns its field violations."""
        with self.assertRaises(grpc.RpcError) as caught:
            self.call(method, request, principal, **kwargs)
        self.assertEqual(caught.exception.code(), code, caught.exception.details())
        got_reason, violations = vchtest.error_details(caught.exception)
        self.assertEqual(got_reason, reason, caught.exception.details())
        return violations

    def assert_invalid(self, fields, method, request, principal=ENTERPRISE):
        violations = self.assert_fails(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT",
                                       method, request, principal)
        self.assertEqual(sorted(f for f, _ in violations), sorted(fields), violations)
        for field, description in violations:
            self.assertTrue(description, field)

    def vch(self, principal, *args):
        return subprocess.run([vchtest.ARGS.vch, "--server", self.vchd.address, "--principal",
                               principal, *args], capture_output=True, text=True, timeout=30)

    # --- the world ---

    def build_base_world(self):
        from vch.v1 import capacity_pb2, program_pb2

        self.call("RegisterIssuer", program_pb2.RegisterIssuerRequest(
            request_id="issuer", id="shanghai", display_name="上海市经信委", region_code="310000",
            level=program_pb2.ISSUER_LEVEL_PROVINCE), "PLATFORM_ADMIN", service="IssuerService")
        self.add_site(EAST, "310115", capacity_pb2.NATIONAL_HUB_YANGTZE_RIVER_DELTA,
                      [(EAST_POOL, "H800", True, False, 80, 64, 3200, 12)])
        self.add_site(WEST, "520100", capacity_pb2.NATIONAL_HUB_GUIZHOU,
                      [(WEST_POOL, "Ascend 910B", False, True, 64, 128, 1500, 96)])

    def add_site(self, site, region, hub, pools):
        """Registers a site and its pools as its operator and reports them; `pools` is a list of
        (pool id, model, fp8, domestic, memory GiB, GPUs, fen per GPU-hour, free)."""
        from vch.v1 import capacity_pb2

        operator = "OPERATOR:" + site
        self.capacity("RegisterDatacenter", capacity_pb2.RegisterDatacenterRequest(
            request_id="reg-" + site, datacenter=capacity_pb2.Datacenter(
                id=site, display_name=site, operator_name=site + " Ltd", region_code=region,
                hub=hub, national_network=True)), operator)
        reports = []
        for pool_id, model, fp8, domestic, memory, gpus, price, free in pools:
            self.capacity("RegisterPool", capacity_pb2.RegisterPoolRequest(
                request_id="reg-%s-%s" % (site, pool_id), pool=capacity_pb2.Pool(
                    datacenter=site, id=pool_id, accelerator_model=model, fp8=fp8,
                    domestic=domestic, memory_gib=memory, gpus_total=gpus,
                    price_fen_per_gpu_hour=price)), operator)
            reports.append(capacity_pb2.PoolReport(pool=pool_id, gpus_free=free))
        self.capacity("ReportCapacity", capacity_pb2.ReportCapacityRequest(
            request_id=self.request_id(), datacenter=site, reports=reports), operator)

    def open_program(self, program_id, **overrides):
        """Creates, funds (1,000,000.00 CNY) and opens a program."""
        from google.protobuf import message
        from vch.v1 import program_pb2

        rules = program_pb2.ProgramRules(
            display_name="上海市人工智能算力券（测试）",
            category=program_pb2.PROGRAM_CATEGORY_AI_RENTAL,
            planned_budget_fen=1_000_000_000, subsidy_ratio_bps=8000,
            per_enterprise_cap_fen=50_000_000,
            eligible_kinds=[program_pb2.ENTERPRISE_KIND_SME],
            eligible_sizes=[program_pb2.SIZE_CLASS_SMALL],
            application_start_time=ts(-1), application_end_time=ts(180),
            redemption_start_time=ts(-1), redemption_end_time=ts(360),
            datacenter_scope=program_pb2.DATACENTER_SCOPE_NATIONAL,
            price_ceiling_fen_per_gpu_hour=3500)
        for name, value in overrides.items():
            if isinstance(value, list):
                rules.ClearField(name)
                getattr(rules, name).extend(value)
            elif isinstance(value, message.Message):
                getattr(rules, name).CopyFrom(value)
            else:
                setattr(rules, name, value)
        for method, request in (
                ("CreateProgram", program_pb2.CreateProgramRequest(
                    request_id=self.request_id(), id=program_id, rules=rules)),
                ("FundProgram", program_pb2.FundProgramRequest(
                    request_id=self.request_id(), id=program_id, amount_fen=100_000_000)),
                ("OpenProgram", program_pb2.OpenProgramRequest(
                    request_id=self.request_id(), id=program_id))):
            self.call(method, request, ISSUER_ADMIN, service="ProgramService")

    def register(self, code):
        from vch.v1 import enterprise_pb2, program_pb2

        if code in self.registered:
            return
        self.call("RegisterEnterprise", enterprise_pb2.RegisterEnterpriseRequest(
            request_id=self.request_id(), enterprise=enterprise_pb2.Enterprise(
                uscc=code, display_name="测试智算科技有限公司 %s" % code, region_code="310115",
                kind=program_pb2.ENTERPRISE_KIND_SME,
                size_class=program_pb2.SIZE_CLASS_SMALL)),
            "ENTERPRISE:" + code, service="EnterpriseService")
        self.registered.add(code)

    def award(self, program_id, code=SME, amount_fen=AWARD_FEN):
        """Registers the enterprise, applies and is approved for `amount_fen`; returns the
        award's wallet account id, checked to hold exactly the award."""
        from vch.v1 import application_pb2

        self.register(code)
        application = self.call("SubmitApplication", application_pb2.SubmitApplicationRequest(
            request_id=self.request_id(), program=program_id, enterprise=code,
            requested_fen=amount_fen, purpose="model training"), "ENTERPRISE:" + code,
            service="ApplicationService").application
        self.call("ApproveApplication", application_pb2.ApproveApplicationRequest(
            request_id=self.request_id(), id=application.id, amount_fen=amount_fen),
            "REVIEWER:shanghai/zhang.wei", service="ApplicationService")
        wallet = self.get_award(program_id, code).wallet_account_id
        self.assertGreater(wallet, 0)
        self.assert_wallet(program_id, code, wallet, pending=0, posted=0, available=amount_fen,
                           credits=amount_fen)
        return wallet

    # --- reads ---

    def get_award(self, program_id, code=SME):
        from vch.v1 import application_pb2

        return self.call("GetAward", application_pb2.GetAwardRequest(
            program=program_id, enterprise=code), "ENTERPRISE:" + code,
            service="ApplicationService").award

    def account(self, account_id, principal="AUDITOR"):
        from vch.v1 import ledger_pb2

        return self.call("GetAccount", ledger_pb2.GetAccountRequest(account_id=account_id),
                         principal, service="LedgerService").account

    def transfers(self, account_id=0, kind=0):
        from vch.v1 import ledger_pb2

        return list(self.call("ListTransfers", ledger_pb2.ListTransfersRequest(
            account_id=account_id, kind=kind, page_size=1000), "AUDITOR",
            service="LedgerService").transfers)

    def transfer(self, transfer_id):
        return next(t for t in self.transfers() if t.id == transfer_id)

    def balance(self, account_id):
        b = self.account(account_id).balance
        return (b.debits_pending_fen, b.debits_posted_fen, b.credits_pending_fen,
                b.credits_posted_fen, b.available_fen)

    def assert_balance(self, account_id, debits_pending, debits_posted, credits_pending,
                       credits_posted, available):
        self.assertEqual(self.balance(account_id), (debits_pending, debits_posted,
                                                    credits_pending, credits_posted, available))

    def assert_wallet(self, program_id, code, wallet, pending, posted, available,
                      credits=AWARD_FEN):
        """The wallet's ledger balance and the award's wallet_available_fen, both exact."""
        self.assert_balance(wallet, pending, posted, 0, credits, available)
        self.assertEqual(self.get_award(program_id, code).wallet_available_fen, available)

    def pool(self, site, pool_id):
        from vch.v1 import capacity_pb2

        pools = self.capacity("ListPools", capacity_pb2.ListPoolsRequest(datacenter=site),
                              "AUDITOR").pools
        return next(p for p in pools if p.id == pool_id)

    def held(self):
        """gpus_held of the base world's pools: (east, west)."""
        return (self.pool(EAST, EAST_POOL).gpus_held, self.pool(WEST, WEST_POOL).gpus_held)

    def get(self, redemption_id, principal="AUDITOR"):
        from vch.v1 import redemption_pb2

        return self.call("GetRedemption", redemption_pb2.GetRedemptionRequest(
            id=redemption_id), principal).redemption

    def pending(self, principal):
        from vch.v1 import redemption_pb2

        return [r.id for r in self.call("ListPendingPlacements",
                                        redemption_pb2.ListPendingPlacementsRequest(),
                                        principal).redemptions]

    def hold_credit_account(self, redemption):
        """The account the redemption's HOLD credits (receivable or payable), checked to be a
        HOLD of exactly held_fen from the wallet."""
        from vch.v1 import ledger_pb2

        hold = self.transfer(redemption.hold_transfer_id)
        self.assertEqual((hold.kind, hold.amount_fen),
                         (ledger_pb2.TRANSFER_KIND_HOLD, redemption.held_fen))
        return self.account(hold.credit_account_id)

    # --- requests ---

    def requirement(self, program, gpus=8, **fields):
        from vch.v1 import placement_pb2

        return placement_pb2.ComputeRequirement(program=program, gpus=gpus, **fields)

    def compute_request(self, program, request_id=None, hours=10, gpus=8, **fields):
        from vch.v1 import redemption_pb2

        return redemption_pb2.RequestComputeRequest(
            request_id=request_id or self.request_id(),
            requirement=self.requirement(program, gpus, **fields), hours=hours)

    def request_compute(self, program, principal=ENTERPRISE, **kwargs):
        response = self.call("RequestCompute", self.compute_request(program, **kwargs), principal)
        self.assertTrue(response.placed, response)
        return response.redemption

    def confirm(self, redemption_id, principal=WEST_OPERATOR):
        from vch.v1 import redemption_pb2

        return self.call("ConfirmPlacement", redemption_pb2.ConfirmPlacementRequest(
            request_id=self.request_id(), id=redemption_id), principal).redemption

    def usage_request(self, redemption_id, usage_id, gpu_seconds, final=False, start=None,
                      end=None):
        from vch.v1 import redemption_pb2

        return redemption_pb2.ReportUsageRequest(
            redemption=redemption_id, usage_id=usage_id, gpu_seconds=gpu_seconds,
            start_time=start or ts(seconds=-4 * 3600), end_time=end or ts(), final=final)

    def report(self, redemption_id, usage_id, gpu_seconds, final=False, principal=WEST_OPERATOR):
        return self.call("ReportUsage", self.usage_request(redemption_id, usage_id, gpu_seconds,
                                                           final), principal)

    def payout_request(self, program, datacenter="", enterprise="", request_id=None):
        from vch.v1 import redemption_pb2

        return redemption_pb2.CreatePayoutRequest(
            request_id=request_id or self.request_id(), program=program, datacenter=datacenter,
            enterprise=enterprise, period_start_time=ts(-1), period_end_time=ts(1))

    def assert_usage(self, usage, bill, subsidy, copay, capped_by="", ratio=8000, price=1500):
        self.assertEqual((usage.bill_fen, usage.subsidy_fen, usage.copay_fen, usage.capped_by,
                          usage.ratio_bps, usage.price_fen_per_gpu_hour),
                         (bill, subsidy, copay, capped_by, ratio, price))

    # --- 1. the whole DIRECT flow ---

    def test_direct_flow_from_award_to_payout_with_exact_balances_at_every_step(self):
        from vch.v1 import ledger_pb2, program_pb2, redemption_pb2

        self.open_program("sh-direct")
        wallet = self.award("sh-direct")

        # RequestCompute: 8 GPUs x 10 h goes to the idle, cheap Guizhou pool at 1,500 fen.
        before = time.time()
        r = self.request_compute("sh-direct", hours=10, gpus=8)
        self.assertEqual(r.name, "redemptions/%d" % r.id)
        self.assertEqual((r.program, r.enterprise, r.state, r.settlement_style),
                         ("sh-direct", SME, redemption_pb2.REDEMPTION_STATE_PLACED,
                          program_pb2.SETTLEMENT_STYLE_DIRECT))
        self.assertEqual((r.pool, r.datacenter, r.price_fen_per_gpu_hour, r.ratio_bps),
                         (WEST_NAME, WEST, 1500, 8000))
        self.assertEqual((r.requirement.gpus, r.hours), (8, 10))
        # Estimate 8 * 10 * 1,500 = 120,000 fen; hold floor(120,000 * 8000 / 10000) = 96,000.
        self.assertEqual((r.estimated_bill_fen, r.held_fen, r.remaining_hold_fen),
                         (120_000, 96_000, 96_000))
        self.assertEqual((r.gpu_seconds, r.billed_fen, r.subsidy_fen, r.copay_fen,
                          r.usage_records, r.replaces, r.replaced_by), (0, 0, 0, 0, 0, 0, 0))
        self.assertGreater(r.hold_transfer_id, 0)
        self.assertGreater(r.capacity_hold_id, 0)
        # The default placement TTL is 30 minutes.
        self.assertAlmostEqual(r.expire_time.seconds, before + 1800, delta=60)
        self.assertTrue(r.voucher.payload)
        self.assertEqual(len(r.voucher.signature), 64)
        self.assertEqual(self.get(r.id), r)

        # The wallet holds exactly 96,000: available 10,000,000 - 96,000 = 9,904,000.
        self.assert_wallet("sh-direct", SME, wallet, pending=96_000, posted=0,
                           available=9_904_000)
        receivable = self.hold_credit_account(r)
        self.assertEqual((receivable.kind, receivable.owner, receivable.program),
                         (ledger_pb2.ACCOUNT_KIND_RECEIVABLE, WEST, "sh-direct"))
        self.assertEqual(self.transfer(r.hold_transfer_id).debit_account_id, wallet)
        self.assert_balance(receivable.id, 0, 0, 96_000, 0, 0)
        # The operator reads its own receivable.
        self.assertEqual(self.account(receivable.id, WEST_OPERATOR).balance.credits_pending_fen,
                         96_000)
        # The capacity hold: the gang's 8 GPUs at the Guizhou pool.
        self.assertEqual(self.held(), (0, 8))

        # The operator sees it waiting; another operator does not.
        self.assertEqual(self.pending(WEST_OPERATOR), [r.id])
        self.assertEqual(self.pending(EAST_OPERATOR), [])
        self.assertEqual(self.get(r.id, WEST_OPERATOR).id, r.id)
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "REDEMPTION_NOT_FOUND", "GetRedemption",
                          redemption_pb2.GetRedemptionRequest(id=r.id), EAST_OPERATOR)

        # ConfirmPlacement: the GPUs are now the site's to schedule.
        confirm_request = redemption_pb2.ConfirmPlacementRequest(request_id="confirm-1", id=r.id)
        confirmed = self.call("ConfirmPlacement", confirm_request, WEST_OPERATOR).redemption
        self.assertEqual(confirmed.state, redemption_pb2.REDEMPTION_STATE_CONFIRMED)
        # Replayed: the same answer; confirmed again under a new request id: refused.
        self.assertEqual(self.call("ConfirmPlacement", confirm_request, WEST_OPERATOR).redemption,
                         confirmed)
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "REDEMPTION_NOT_PLACED",
                          "ConfirmPlacement", redemption_pb2.ConfirmPlacementRequest(
                              request_id="confirm-2", id=r.id), WEST_OPERATOR)
        self.assertEqual(confirmed.remaining_hold_fen, 96_000)
        self.assertEqual(self.held(), (0, 0))
        self.assertEqual(self.pending(WEST_OPERATOR), [])
        self.assert_wallet("sh-direct", SME, wallet, pending=96_000, posted=0,
                           available=9_904_000)
        self.assert_balance(receivable.id, 0, 0, 96_000, 0, 0)

        # Usage, not final: 86,417 GPU-seconds at 1,500 fen per GPU-hour.
        start, end = ts(seconds=-4 * 3600), ts()
        first_request = self.usage_request(r.id, "u-1", 86_417, start=start, end=end)
        first = self.call("ReportUsage", first_request, WEST_OPERATOR)
        u = first.usage
        self.assertEqual((u.name, u.redemption, u.usage_id, u.gpu_seconds, u.final),
                         ("redemptions/%d/usage/u-1" % r.id, r.id, "u-1", 86_417, False))
        self.assertEqual((u.start_time, u.end_time), (start, end))
        # bill floor(86,417 * 1,500 / 3,600) = floor(36,007.08) = 36,007;
        # subsidy floor(36,007 * 0.8) = floor(28,805.6) = 28,805; copay 36,007 - 28,805 = 7,202.
        self.assert_usage(u, bill=36_007, subsidy=28_805, copay=7_202)
        self.assertGreater(u.post_transfer_id, 0)
        self.assertEqual((u.release_transfer_id, u.payout), (0, ""))
        self.assertTrue(u.HasField("settle_time"))
        red = first.redemption
        # Still held: 96,000 - 28,805 = 67,195.
        self.assertEqual((red.state, red.remaining_hold_fen, red.gpu_seconds, red.billed_fen,
                          red.subsidy_fen, red.copay_fen, red.usage_records),
                         (redemption_pb2.REDEMPTION_STATE_ACTIVE, 67_195, 86_417, 36_007, 28_805,
                          7_202, 1))
        self.assertEqual(self.get(r.id), red)
        post = self.transfer(u.post_transfer_id)
        self.assertEqual((post.kind, post.amount_fen, post.pending_id, post.released_fen,
                          post.debit_account_id, post.credit_account_id),
                         (ledger_pb2.TRANSFER_KIND_POST, 28_805, r.hold_transfer_id, 0, wallet,
                          receivable.id))
        # Wallet: posted 28,805, pending 67,195; available 10,000,000 - 28,805 - 67,195 =
        # 9,904,000 (unchanged: the subsidy came out of the hold).
        self.assert_wallet("sh-direct", SME, wallet, pending=67_195, posted=28_805,
                           available=9_904_000)
        # Receivable: pending 67,195, posted 28,805; available 28,805.
        self.assert_balance(receivable.id, 0, 0, 67_195, 28_805, 28_805)
        transfers_before = len(self.transfers())

        # The same record again: the same answer, nothing more settled.
        self.assertEqual(self.call("ReportUsage", first_request, WEST_OPERATOR), first)
        self.assertEqual(len(self.transfers()), transfers_before)
        self.assert_wallet("sh-direct", SME, wallet, pending=67_195, posted=28_805,
                           available=9_904_000)
        # The same id with other content is refused and changes nothing.
        self.assert_fails(grpc.StatusCode.ALREADY_EXISTS, "USAGE_ID_REUSED", "ReportUsage",
                          self.usage_request(r.id, "u-1", 86_418, start=start, end=end),
                          WEST_OPERATOR)
        self.assertEqual(len(self.transfers()), transfers_before)
        self.assert_balance(receivable.id, 0, 0, 67_195, 28_805, 28_805)
        self.assertEqual(self.get(r.id), red)

        # Final usage beyond the estimate: 230,400 GPU-seconds (8 GPUs x 8 h).
        final = self.report(r.id, "u-2", 230_400, final=True)
        # bill 230,400 * 1,500 / 3,600 = 96,000; 96,000 * 0.8 = 76,800 > 67,195 still held:
        # subsidy 67,195 (capped by the hold), copay 96,000 - 67,195 = 28,805.
        self.assert_usage(final.usage, bill=96_000, subsidy=67_195, copay=28_805,
                          capped_by="HOLD")
        self.assertTrue(final.usage.final)
        # Nothing remained to release after that POST.
        self.assertEqual(final.usage.release_transfer_id, 0)
        red = final.redemption
        # Totals: 86,417 + 230,400 = 316,817 GPU-seconds; billed 36,007 + 96,000 = 132,007;
        # subsidy 28,805 + 67,195 = 96,000; copay 132,007 - 96,000 = 36,007.
        self.assertEqual((red.state, red.remaining_hold_fen, red.gpu_seconds, red.billed_fen,
                          red.subsidy_fen, red.copay_fen, red.usage_records),
                         (redemption_pb2.REDEMPTION_STATE_SETTLED, 0, 316_817, 132_007, 96_000,
                          36_007, 2))
        post = self.transfer(final.usage.post_transfer_id)
        self.assertEqual((post.kind, post.amount_fen, post.released_fen),
                         (ledger_pb2.TRANSFER_KIND_POST, 67_195, 0))
        # The wallet got nothing back (all of the hold was posted): 10,000,000 - 96,000.
        self.assert_wallet("sh-direct", SME, wallet, pending=0, posted=96_000,
                           available=9_904_000)
        self.assert_balance(receivable.id, 0, 0, 0, 96_000, 96_000)
        # A settled redemption takes no more usage.
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "REDEMPTION_SETTLED",
                          "ReportUsage", self.usage_request(r.id, "u-3", 60), WEST_OPERATOR)

        # A period that ends before the records settled pays nothing; the enterprise is owed
        # nothing under a DIRECT program.
        early = self.payout_request("sh-direct", datacenter=WEST)
        early.period_start_time.CopyFrom(ts(-2))
        early.period_end_time.CopyFrom(ts(seconds=-600))
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "NOTHING_TO_PAY", "CreatePayout",
                          early, ISSUER_ADMIN)
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "NOTHING_TO_PAY", "CreatePayout",
                          self.payout_request("sh-direct", enterprise=SME), ISSUER_ADMIN)

        # The payout of the period: 28,805 + 67,195 = 96,000 over 2 lines.
        payout_request = self.payout_request("sh-direct", datacenter=WEST)
        payout = self.call("CreatePayout", payout_request, ISSUER_ADMIN).payout
        self.assertEqual(payout.name, "datacenters/%s/payouts/%d" % (WEST, payout.id))
        self.assertEqual((payout.program, payout.datacenter, payout.enterprise, payout.amount_fen,
                          payout.lines, payout.created_by),
                         ("sh-direct", WEST, "", 96_000, 2, "wang.min"))
        self.assertEqual((payout.period_start_time, payout.period_end_time),
                         (payout_request.period_start_time, payout_request.period_end_time))
        paid_transfer = self.transfer(payout.transfer_id)
        self.assertEqual((paid_transfer.kind, paid_transfer.amount_fen,
                          paid_transfer.debit_account_id),
                         (ledger_pb2.TRANSFER_KIND_PAYOUT, 96_000, receivable.id))
        paid = self.account(paid_transfer.credit_account_id)
        self.assertEqual((paid.kind, paid.owner, paid.program),
                         (ledger_pb2.ACCOUNT_KIND_PAID, WEST, "sh-direct"))
        self.assert_balance(receivable.id, 0, 96_000, 0, 96_000, 0)
        self.assert_balance(paid.id, 0, 0, 0, 96_000, 96_000)
        self.assert_wallet("sh-direct", SME, wallet, pending=0, posted=96_000,
                           available=9_904_000)
        # Replayed with its request id: the same payout, paid once.
        self.assertEqual(self.call("CreatePayout", payout_request, ISSUER_ADMIN).payout, payout)
        self.assert_balance(paid.id, 0, 0, 0, 96_000, 96_000)

        # The statement: both usage records, in settlement order, each naming the payout.
        lines = self.call("ListPayoutLines", redemption_pb2.ListPayoutLinesRequest(
            payout=payout.id), ISSUER_ADMIN).lines
        self.assertEqual([(line.usage.redemption, line.usage.usage_id, line.usage.subsidy_fen,
                           line.usage.payout, line.enterprise, line.pool) for line in lines],
                         [(r.id, "u-1", 28_805, payout.name, SME, WEST_NAME),
                          (r.id, "u-2", 67_195, payout.name, SME, WEST_NAME)])
        self.assertEqual(lines[0].usage.post_transfer_id, first.usage.post_transfer_id)
        self.assertEqual(lines[1].usage.post_transfer_id, final.usage.post_transfer_id)
        # The payee reads its payout; another site does not.
        self.assertEqual(self.call("GetPayout", redemption_pb2.GetPayoutRequest(id=payout.id),
                                   WEST_OPERATOR).payout, payout)
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "PAYOUT_NOT_FOUND", "GetPayout",
                          redemption_pb2.GetPayoutRequest(id=payout.id), EAST_OPERATOR)

        # Nothing is left to pay in the period.
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "NOTHING_TO_PAY", "CreatePayout",
                          self.payout_request("sh-direct", datacenter=WEST), ISSUER_ADMIN)
        self.assert_balance(receivable.id, 0, 96_000, 0, 96_000, 0)

        report = self.call("VerifyLedger", ledger_pb2.VerifyLedgerRequest(), "AUDITOR",
                           service="LedgerService")
        self.assertTrue(report.ok, list(report.violations))

    def test_small_final_usage_returns_the_rest_of_the_hold_to_the_wallet(self):
        from vch.v1 import ledger_pb2, redemption_pb2

        self.open_program("sh-direct")
        wallet = self.award("sh-direct")
        a = self.request_compute("sh-direct")
        b = self.request_compute("sh-direct")
        # Two holds of 96,000: 10,000,000 - 192,000 = 9,808,000.
        self.assert_wallet("sh-direct", SME, wallet, pending=192_000, posted=0,
                           available=9_808_000)
        self.assertEqual(self.held(), (0, 16))
        self.confirm(a.id)
        self.confirm(b.id)
        self.assertEqual(self.held(), (0, 0))
        receivable = self.hold_credit_account(a).id

        # bill 36,007, subsidy 28,805 (as in the flow above); 67,195 still held for a.
        self.assert_usage(self.report(a.id, "a-1", 86_417).usage, 36_007, 28_805, 7_202)
        self.assert_wallet("sh-direct", SME, wallet, pending=163_195, posted=28_805,
                           available=9_808_000)  # 10,000,000 - 28,805 - (67,195 + 96,000)
        # Final: 3,601 GPU-seconds -> bill floor(3,601 * 1,500 / 3,600) = floor(1,500.4) =
        # 1,500, subsidy 1,500 * 0.8 = 1,200, copay 300; 67,195 - 1,200 = 65,995 returns.
        final = self.report(a.id, "a-2", 3_601, final=True)
        self.assert_usage(final.usage, bill=1_500, subsidy=1_200, copay=300)
        # The final POST closes the hold, releasing the rest with it.
        self.assertEqual(final.usage.release_transfer_id, final.usage.post_transfer_id)
        post = self.transfer(final.usage.post_transfer_id)
        self.assertEqual((post.kind, post.amount_fen, post.released_fen),
                         (ledger_pb2.TRANSFER_KIND_POST, 1_200, 65_995))
        self.assertEqual((final.redemption.state, final.redemption.remaining_hold_fen,
                          final.redemption.subsidy_fen, final.redemption.billed_fen),
                         (redemption_pb2.REDEMPTION_STATE_SETTLED, 0, 30_005, 37_507))
        # Wallet: posted 28,805 + 1,200 = 30,005; pending only b's 96,000;
        # available 10,000,000 - 30,005 - 96,000 = 9,873,995.
        self.assert_wallet("sh-direct", SME, wallet, pending=96_000, posted=30_005,
                           available=9_873_995)
        self.assert_balance(receivable, 0, 0, 96_000, 30_005, 30_005)

        # b ends with a final record of no usage: nothing settles, a VOID returns all 96,000.
        empty = self.report(b.id, "b-1", 0, final=True)
        self.assert_usage(empty.usage, bill=0, subsidy=0, copay=0)
        self.assertEqual(empty.usage.post_transfer_id, 0)
        void = self.transfer(empty.usage.release_transfer_id)
        self.assertEqual((void.kind, void.amount_fen, void.pending_id),
                         (ledger_pb2.TRANSFER_KIND_VOID, 96_000, b.hold_transfer_id))
        self.assertEqual((empty.redemption.state, empty.redemption.remaining_hold_fen),
                         (redemption_pb2.REDEMPTION_STATE_SETTLED, 0))
        # 10,000,000 - 30,005 = 9,969,995.
        self.assert_wallet("sh-direct", SME, wallet, pending=0, posted=30_005,
                           available=9_969_995)
        self.assert_balance(receivable, 0, 0, 0, 30_005, 30_005)

        # The payout pays the two records with a subsidy (not b's empty one): 30,005.
        payout = self.call("CreatePayout", self.payout_request("sh-direct", datacenter=WEST),
                           "PLATFORM_ADMIN").payout
        self.assertEqual((payout.amount_fen, payout.lines), (30_005, 2))
        self.assert_balance(receivable, 0, 30_005, 0, 30_005, 0)

    # --- 2. REIMBURSE ---

    def test_reimburse_program_holds_to_the_enterprise_payable_and_pays_the_enterprise(self):
        from vch.v1 import ledger_pb2, program_pb2, redemption_pb2

        self.open_program("sh-reimburse", settlement_style=program_pb2.SETTLEMENT_STYLE_REIMBURSE)
        wallet = self.award("sh-reimburse")
        r = self.request_compute("sh-reimburse")
        self.assertEqual(r.settlement_style, program_pb2.SETTLEMENT_STYLE_REIMBURSE)
        # Hold floor(8 * 10 * 1,500 * 0.8) = 96,000, credited to the enterprise's payable.
        self.assertEqual(r.held_fen, 96_000)
        payable = self.hold_credit_account(r)
        self.assertEqual((payable.kind, payable.owner, payable.program),
                         (ledger_pb2.ACCOUNT_KIND_PAYABLE, SME, "sh-reimburse"))
        self.assert_balance(payable.id, 0, 0, 96_000, 0, 0)
        self.assert_wallet("sh-reimburse", SME, wallet, pending=96_000, posted=0,
                           available=9_904_000)
        # The enterprise reads its own payable; the site does not (it is owed nothing).
        self.assertEqual(self.account(payable.id, ENTERPRISE).kind,
                         ledger_pb2.ACCOUNT_KIND_PAYABLE)
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND", "GetAccount",
                          ledger_pb2.GetAccountRequest(account_id=payable.id), WEST_OPERATOR,
                          service="LedgerService")

        self.confirm(r.id)
        # bill 36,007, subsidy 28,805 (floor(36,007 * 0.8)).
        self.assert_usage(self.report(r.id, "u-1", 86_417).usage, 36_007, 28_805, 7_202)
        self.assert_balance(payable.id, 0, 0, 67_195, 28_805, 28_805)
        # Final 3,601 s: bill 1,500, subsidy 1,200; releases 96,000 - 28,805 - 1,200 = 65,995.
        final = self.report(r.id, "u-2", 3_601, final=True)
        self.assert_usage(final.usage, bill=1_500, subsidy=1_200, copay=300)
        self.assertEqual(final.redemption.state, redemption_pb2.REDEMPTION_STATE_SETTLED)
        # Payable: posted 28,805 + 1,200 = 30,005. Wallet: 10,000,000 - 30,005 = 9,969,995.
        self.assert_balance(payable.id, 0, 0, 0, 30_005, 30_005)
        self.assert_wallet("sh-reimburse", SME, wallet, pending=0, posted=30_005,
                           available=9_969_995)

        # The datacenter is owed nothing under a REIMBURSE program.
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "NOTHING_TO_PAY", "CreatePayout",
                          self.payout_request("sh-reimburse", datacenter=WEST), ISSUER_ADMIN)
        # The enterprise is: payable -> paid, 30,005 over 2 lines.
        payout = self.call("CreatePayout", self.payout_request("sh-reimburse", enterprise=SME),
                           ISSUER_ADMIN).payout
        self.assertEqual(payout.name, "enterprises/%s/payouts/%d" % (SME, payout.id))
        self.assertEqual((payout.program, payout.datacenter, payout.enterprise, payout.amount_fen,
                          payout.lines), ("sh-reimburse", "", SME, 30_005, 2))
        moved = self.transfer(payout.transfer_id)
        self.assertEqual((moved.kind, moved.amount_fen, moved.debit_account_id),
                         (ledger_pb2.TRANSFER_KIND_PAYOUT, 30_005, payable.id))
        paid = self.account(moved.credit_account_id)
        self.assertEqual((paid.kind, paid.owner), (ledger_pb2.ACCOUNT_KIND_PAID, SME))
        self.assert_balance(payable.id, 0, 30_005, 0, 30_005, 0)
        self.assert_balance(paid.id, 0, 0, 0, 30_005, 30_005)
        lines = self.call("ListPayoutLines", redemption_pb2.ListPayoutLinesRequest(
            payout=payout.id), ENTERPRISE).lines
        self.assertEqual([(x.usage.usage_id, x.usage.subsidy_fen, x.usage.payout)
                          for x in lines], [("u-1", 28_805, payout.name),
                                            ("u-2", 1_200, payout.name)])
        # The payee reads its payout; another enterprise does not.
        self.assertEqual(self.call("GetPayout", redemption_pb2.GetPayoutRequest(id=payout.id),
                                   ENTERPRISE).payout, payout)
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "PAYOUT_NOT_FOUND", "GetPayout",
                          redemption_pb2.GetPayoutRequest(id=payout.id), OTHER_ENTERPRISE)
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "NOTHING_TO_PAY", "CreatePayout",
                          self.payout_request("sh-reimburse", enterprise=SME), ISSUER_ADMIN)

    # --- 3. domestic ratio ---

    def test_domestic_ratio_applies_on_domestic_pools_only(self):
        from vch.v1 import capacity_pb2

        # A domestic Hygon pool at an odd price, so that the hold's floor matters.
        self.add_site("nm-ulanqab", "150900", capacity_pb2.NATIONAL_HUB_INNER_MONGOLIA,
                      [("hygon", "Hygon DCU K100", False, True, 64, 96, 1199, 60)])
        self.open_program("sh-domestic", domestic_ratio_bps=9000)
        wallet = self.award("sh-domestic")

        ascend = self.request_compute("sh-domestic", accelerator_model="Ascend 910B")
        # Domestic: 9000 bps. Estimate 8 * 10 * 1,500 = 120,000; hold 120,000 * 0.9 = 108,000.
        self.assertEqual((ascend.pool, ascend.ratio_bps, ascend.estimated_bill_fen,
                          ascend.held_fen), (WEST_NAME, 9000, 120_000, 108_000))
        # 10,000,000 - 108,000 = 9,892,000.
        self.assert_wallet("sh-domestic", SME, wallet, pending=108_000, posted=0,
                           available=9_892_000)

        hygon = self.request_compute("sh-domestic", gpus=7, hours=3,
                                     accelerator_model="Hygon DCU K100")
        # 7 * 3 * 1,199 = 25,179; hold floor(25,179 * 0.9) = floor(22,661.1) = 22,661.
        self.assertEqual((hygon.pool, hygon.ratio_bps, hygon.estimated_bill_fen, hygon.held_fen),
                         ("datacenters/nm-ulanqab/pools/hygon", 9000, 25_179, 22_661))
        # 9,892,000 - 22,661 = 9,869,339.
        self.assert_wallet("sh-domestic", SME, wallet, pending=130_661, posted=0,
                           available=9_869_339)

        h800 = self.request_compute("sh-domestic", gpus=4, fp8_required=True)
        # Not domestic: 8000 bps. 4 * 10 * 3,200 = 128,000; hold 128,000 * 0.8 = 102,400.
        self.assertEqual((h800.pool, h800.ratio_bps, h800.estimated_bill_fen, h800.held_fen),
                         (EAST_NAME, 8000, 128_000, 102_400))
        # 9,869,339 - 102,400 = 9,766,939; pending 108,000 + 22,661 + 102,400 = 233,061.
        self.assert_wallet("sh-domestic", SME, wallet, pending=233_061, posted=0,
                           available=9_766_939)

        self.confirm(hygon.id, "OPERATOR:nm-ulanqab")
        final = self.report(hygon.id, "h-1", 25_201, final=True, principal="OPERATOR:nm-ulanqab")
        # bill floor(25,201 * 1,199 / 3,600) = floor(8,393.3) = 8,393;
        # subsidy floor(8,393 * 0.9) = floor(7,553.7) = 7,553; copay 840.
        self.assert_usage(final.usage, bill=8_393, subsidy=7_553, copay=840, ratio=9000,
                          price=1199)
        # Released 22,661 - 7,553 = 15,108: available 9,766,939 + 15,108 = 9,782,047
        # (= 10,000,000 - 7,553 - 108,000 - 102,400).
        self.assert_wallet("sh-domestic", SME, wallet, pending=210_400, posted=7_553,
                           available=9_782_047)

    # --- 4. monthly spend limit ---

    def test_monthly_spend_limit_caps_the_program_subsidy_exactly(self):
        from vch.v1 import ledger_pb2

        # 500.00 CNY a month. (A run that straddles midnight at the end of a month in China
        # Standard Time would see two months; the test takes well under a minute.)
        self.open_program("sh-monthly", monthly_spend_limit_fen=50_000)
        wallet = self.award("sh-monthly")
        r = self.request_compute("sh-monthly")
        self.confirm(r.id)
        receivable = self.hold_credit_account(r).id

        first = self.report(r.id, "m-1", 86_417).usage
        # Within the limit: subsidy 28,805 of the 50,000.
        self.assert_usage(first, bill=36_007, subsidy=28_805, copay=7_202)
        second = self.report(r.id, "m-2", 86_417)
        # Would be 28,805 again, but 50,000 - 28,805 = 21,195 remain this month:
        # subsidy 21,195, copay 36,007 - 21,195 = 14,812.
        self.assert_usage(second.usage, bill=36_007, subsidy=21_195, copay=14_812,
                          capped_by="MONTHLY_LIMIT")
        # 28,805 + 21,195 = 50,000: exactly the limit.
        self.assertEqual(second.redemption.subsidy_fen, 50_000)
        # Still held: 96,000 - 50,000 = 46,000.
        self.assertEqual(second.redemption.remaining_hold_fen, 46_000)
        self.assert_wallet("sh-monthly", SME, wallet, pending=46_000, posted=50_000,
                           available=9_904_000)
        self.assert_balance(receivable, 0, 0, 46_000, 50_000, 50_000)

        # Nothing is left this month: 3,601 s bills 1,500 and the enterprise pays all of it.
        third = self.report(r.id, "m-3", 3_601).usage
        self.assert_usage(third, bill=1_500, subsidy=0, copay=1_500, capped_by="MONTHLY_LIMIT")
        self.assertEqual(third.post_transfer_id, 0)
        # The limit is the program's: another enterprise's usage gets nothing either.
        other_wallet = self.award("sh-monthly", OTHER_SME)
        other = self.request_compute("sh-monthly", principal=OTHER_ENTERPRISE)
        self.confirm(other.id)
        self.assert_usage(self.report(other.id, "o-1", 3_601).usage, bill=1_500, subsidy=0,
                          copay=1_500, capped_by="MONTHLY_LIMIT")
        self.assert_wallet("sh-monthly", OTHER_SME, other_wallet, pending=96_000, posted=0,
                           available=9_904_000)

        # The final record of no usage releases the 46,000 still held: wallet 10,000,000 -
        # 50,000 = 9,950,000.
        final = self.report(r.id, "m-4", 0, final=True)
        self.assertEqual(self.transfer(final.usage.release_transfer_id).kind,
                         ledger_pb2.TRANSFER_KIND_VOID)
        self.assert_wallet("sh-monthly", SME, wallet, pending=0, posted=50_000,
                           available=9_950_000)
        self.assert_balance(receivable, 0, 0, 96_000, 50_000, 50_000)  # other's hold pending
        payout = self.call("CreatePayout", self.payout_request("sh-monthly", datacenter=WEST),
                           ISSUER_ADMIN).payout
        self.assertEqual((payout.amount_fen, payout.lines), (50_000, 2))

    # --- 5. rejection and the single re-placement ---

    def test_rejection_releases_both_holds_and_replaces_once_elsewhere(self):
        from vch.v1 import ledger_pb2, redemption_pb2

        self.open_program("sh-direct")
        wallet = self.award("sh-direct")
        r = self.request_compute("sh-direct")
        self.assertEqual(r.datacenter, WEST)
        self.assertEqual(self.held(), (0, 8))

        # A reason is required.
        self.assert_invalid(["reason"], "RejectPlacement", redemption_pb2.RejectPlacementRequest(
            request_id=self.request_id(), id=r.id), WEST_OPERATOR)
        # Only the site it was placed at may reject it.
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "REDEMPTION_NOT_FOUND", "RejectPlacement",
                          redemption_pb2.RejectPlacementRequest(
                              request_id=self.request_id(), id=r.id, reason="no"),
                          EAST_OPERATOR)
        self.assertEqual(self.get(r.id).state, redemption_pb2.REDEMPTION_STATE_PLACED)
        self.assertEqual(self.held(), (0, 8))

        reject_request = redemption_pb2.RejectPlacementRequest(
            request_id="reject-1", id=r.id, reason="maintenance window")
        rejected = self.call("RejectPlacement", reject_request, WEST_OPERATOR)
        self.assertTrue(rejected.replaced)
        self.assertEqual(list(rejected.exclusions), [])
        first, second = rejected.rejected, rejected.replacement
        self.assertEqual((first.id, first.state, first.state_reason, first.remaining_hold_fen,
                          first.replaced_by),
                         (r.id, redemption_pb2.REDEMPTION_STATE_REJECTED, "maintenance window", 0,
                          second.id))
        # Placed again at the other site: 8 * 10 * 3,200 = 256,000; hold 256,000 * 0.8 =
        # 204,800.
        self.assertEqual((second.state, second.datacenter, second.pool, second.replaces,
                          second.estimated_bill_fen, second.held_fen, second.enterprise),
                         (redemption_pb2.REDEMPTION_STATE_PLACED, EAST, EAST_NAME, r.id, 256_000,
                          204_800, SME))
        self.assertEqual(self.get(r.id), first)
        self.assertEqual(self.get(second.id), second)
        # The first holds are gone: the wallet holds only the new estimate
        # (10,000,000 - 204,800 = 9,795,200) and only the eastern pool holds GPUs.
        self.assertEqual(self.held(), (8, 0))
        self.assert_wallet("sh-direct", SME, wallet, pending=204_800, posted=0,
                           available=9_795_200)
        self.assertEqual([(t.kind, t.amount_fen) for t in self.transfers(wallet)],
                         [(ledger_pb2.TRANSFER_KIND_AWARD, 10_000_000),
                          (ledger_pb2.TRANSFER_KIND_HOLD, 96_000),
                          (ledger_pb2.TRANSFER_KIND_VOID, 96_000),
                          (ledger_pb2.TRANSFER_KIND_HOLD, 204_800)])
        self.assertEqual(self.pending(WEST_OPERATOR), [])
        self.assertEqual(self.pending(EAST_OPERATOR), [second.id])
        # Replayed with its request id: the same answer, and nothing placed or held again.
        self.assertEqual(self.call("RejectPlacement", reject_request, WEST_OPERATOR), rejected)
        self.assertEqual(self.held(), (8, 0))
        self.assert_wallet("sh-direct", SME, wallet, pending=204_800, posted=0,
                           available=9_795_200)

        # The replacement's own rejection is final: not placed a third time, although the
        # Guizhou pool could take it.
        again = self.call("RejectPlacement", redemption_pb2.RejectPlacementRequest(
            request_id=self.request_id(), id=second.id, reason="no capacity after all"),
            EAST_OPERATOR)
        self.assertFalse(again.replaced)
        self.assertFalse(again.HasField("replacement"))
        self.assertEqual((again.rejected.state, again.rejected.replaced_by,
                          again.rejected.remaining_hold_fen),
                         (redemption_pb2.REDEMPTION_STATE_REJECTED, 0, 0))
        self.assertEqual(self.held(), (0, 0))
        self.assert_wallet("sh-direct", SME, wallet, pending=0, posted=0, available=10_000_000)
        # A rejected placement can be neither rejected nor confirmed again.
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "REDEMPTION_NOT_PLACED",
                          "ConfirmPlacement", redemption_pb2.ConfirmPlacementRequest(
                              request_id=self.request_id(), id=second.id), EAST_OPERATOR)
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "REDEMPTION_NOT_PLACED",
                          "RejectPlacement", redemption_pb2.RejectPlacementRequest(
                              request_id=self.request_id(), id=r.id, reason="again"),
                          WEST_OPERATOR)
        listed = self.call("ListRedemptions", redemption_pb2.ListRedemptionsRequest(
            state=redemption_pb2.REDEMPTION_STATE_REJECTED), ENTERPRISE).redemptions
        self.assertEqual([x.id for x in listed], [second.id, r.id])

    def test_rejection_stands_when_the_award_cannot_cover_the_replacement(self):
        from vch.v1 import redemption_pb2

        self.open_program("sh-direct")
        # 1,000.00 CNY: enough for the Guizhou estimate (hold 96,000) but not for the eastern
        # one (8 * 10 * 3,200 * 0.8 = 204,800).
        wallet = self.award("sh-direct", amount_fen=100_000)
        r = self.request_compute("sh-direct")
        self.assertEqual((r.datacenter, r.held_fen), (WEST, 96_000))
        # 100,000 - 96,000 = 4,000.
        self.assert_wallet("sh-direct", SME, wallet, pending=96_000, posted=0, available=4_000,
                           credits=100_000)
        rejected = self.call("RejectPlacement", redemption_pb2.RejectPlacementRequest(
            request_id=self.request_id(), id=r.id, reason="maintenance"), WEST_OPERATOR)
        self.assertFalse(rejected.replaced)
        self.assertEqual((rejected.rejected.state, rejected.rejected.replaced_by),
                         (redemption_pb2.REDEMPTION_STATE_REJECTED, 0))
        # Nothing is held any more, anywhere.
        self.assertEqual(self.held(), (0, 0))
        self.assert_wallet("sh-direct", SME, wallet, pending=0, posted=0, available=100_000,
                           credits=100_000)
        self.assertEqual(self.pending(EAST_OPERATOR), [])
        listed = self.call("ListRedemptions", redemption_pb2.ListRedemptionsRequest(),
                           ENTERPRISE).redemptions
        self.assertEqual([x.id for x in listed], [r.id])

    # --- 6. cancellation ---

    def test_cancel_releases_both_holds_once_and_only_for_its_enterprise(self):
        from vch.v1 import redemption_pb2

        self.open_program("sh-direct")
        wallet = self.award("sh-direct")
        self.award("sh-direct", OTHER_SME)
        placed = self.request_compute("sh-direct")
        confirmed = self.request_compute("sh-direct")
        self.confirm(confirmed.id)
        # 10,000,000 - 2 * 96,000 = 9,808,000; only the unconfirmed one holds GPUs.
        self.assert_wallet("sh-direct", SME, wallet, pending=192_000, posted=0,
                           available=9_808_000)
        self.assertEqual(self.held(), (0, 8))

        def cancel(redemption_id, reason=""):
            return redemption_pb2.CancelRedemptionRequest(
                request_id=self.request_id(), id=redemption_id, reason=reason)

        # Another enterprise cannot see it, let alone cancel it.
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "REDEMPTION_NOT_FOUND", "CancelRedemption",
                          cancel(placed.id), OTHER_ENTERPRISE)
        # Nor can its operator (only the enterprise cancels).
        self.assert_fails(grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED",
                          "CancelRedemption", cancel(placed.id), WEST_OPERATOR)
        self.assertEqual(self.held(), (0, 8))

        cancelled = self.call("CancelRedemption", cancel(placed.id), ENTERPRISE).redemption
        self.assertEqual((cancelled.state, cancelled.remaining_hold_fen, cancelled.state_reason),
                         (redemption_pb2.REDEMPTION_STATE_CANCELLED, 0,
                          "cancelled by the enterprise"))
        self.assertEqual(self.get(placed.id), cancelled)
        self.assertEqual(self.held(), (0, 0))
        self.assertEqual(self.pending(WEST_OPERATOR), [])
        # 10,000,000 - 96,000 = 9,904,000.
        self.assert_wallet("sh-direct", SME, wallet, pending=96_000, posted=0,
                           available=9_904_000)
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "REDEMPTION_NOT_CANCELLABLE",
                          "CancelRedemption", cancel(placed.id), ENTERPRISE)
        # A cancelled redemption can be neither confirmed nor metered.
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "REDEMPTION_NOT_PLACED",
                          "ConfirmPlacement", redemption_pb2.ConfirmPlacementRequest(
                              request_id=self.request_id(), id=placed.id), WEST_OPERATOR)
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "REDEMPTION_NOT_ACTIVE",
                          "ReportUsage", self.usage_request(placed.id, "late", 3_600),
                          WEST_OPERATOR)
        self.assert_wallet("sh-direct", SME, wallet, pending=96_000, posted=0,
                           available=9_904_000)

        # A confirmed one without usage can be cancelled too; its reason is kept.
        done = self.call("CancelRedemption", cancel(confirmed.id, reason="job finished early"),
                         ENTERPRISE).redemption
        self.assertEqual((done.state, done.state_reason),
                         (redemption_pb2.REDEMPTION_STATE_CANCELLED, "job finished early"))
        self.assert_wallet("sh-direct", SME, wallet, pending=0, posted=0, available=10_000_000)
        self.assertEqual(self.held(), (0, 0))
        # Once usage is reported it can no longer be cancelled.
        active = self.request_compute("sh-direct")
        self.confirm(active.id)
        self.report(active.id, "u-1", 3_601)
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "REDEMPTION_NOT_CANCELLABLE",
                          "CancelRedemption", cancel(active.id), ENTERPRISE)
        # The same request id replays the first answer.
        fresh = self.request_compute("sh-direct")
        request = cancel(fresh.id)
        first = self.call("CancelRedemption", request, ENTERPRISE)
        self.assertEqual(first.redemption.state, redemption_pb2.REDEMPTION_STATE_CANCELLED)
        self.assertEqual(self.call("CancelRedemption", request, ENTERPRISE), first)
        # Posted 1,200 (3,601 s: bill 1,500, subsidy 1,200); pending 96,000 - 1,200 = 94,800;
        # available 10,000,000 - 1,200 - 94,800 = 9,904,000.
        self.assert_wallet("sh-direct", SME, wallet, pending=94_800, posted=1_200,
                           available=9_904_000)

    # --- 7. expiry ---

    @vchd_args("--capacity-hold-ttl-ms", "2000")
    def test_unconfirmed_placement_expires_and_releases_both_holds(self):
        from vch.v1 import ledger_pb2, redemption_pb2

        self.open_program("sh-direct")
        wallet = self.award("sh-direct")
        start = time.time()
        lapsing = self.request_compute("sh-direct")
        kept = self.request_compute("sh-direct")
        self.assertAlmostEqual(lapsing.expire_time.seconds + lapsing.expire_time.nanos / 1e9,
                               start + 2, delta=5)
        self.confirm(kept.id)
        self.assertEqual(self.held(), (0, 8))
        self.assert_wallet("sh-direct", SME, wallet, pending=192_000, posted=0,
                           available=9_808_000)

        # The expiry job runs every 5 s: within 15 s of the request it has expired.
        deadline = start + 15
        state = None
        while time.time() < deadline:
            state = self.get(lapsing.id).state
            if state == redemption_pb2.REDEMPTION_STATE_EXPIRED:
                break
            time.sleep(0.1)
        self.assertEqual(state, redemption_pb2.REDEMPTION_STATE_EXPIRED,
                         "not expired %.1f s after the request" % (time.time() - start))
        expired = self.get(lapsing.id)
        self.assertEqual(expired.remaining_hold_fen, 0)
        # Both holds released: GPUs back, 96,000 back (10,000,000 - 96,000 still held for the
        # confirmed one = 9,904,000).
        self.assertEqual(self.held(), (0, 0))
        self.assert_wallet("sh-direct", SME, wallet, pending=96_000, posted=0,
                           available=9_904_000)
        released = [t for t in self.transfers(wallet) if t.pending_id == lapsing.hold_transfer_id]
        self.assertEqual(len(released), 1)
        self.assertIn(released[0].kind, (ledger_pb2.TRANSFER_KIND_VOID,
                                         ledger_pb2.TRANSFER_KIND_EXPIRE))
        self.assertEqual(released[0].amount_fen, 96_000)
        self.assertEqual(self.pending(WEST_OPERATOR), [])
        # Too late to confirm.
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "REDEMPTION_NOT_PLACED",
                          "ConfirmPlacement", redemption_pb2.ConfirmPlacementRequest(
                              request_id=self.request_id(), id=lapsing.id), WEST_OPERATOR)
        # The confirmed one did not expire.
        self.assertEqual(self.get(kept.id).state, redemption_pb2.REDEMPTION_STATE_CONFIRMED)
        self.assertEqual(self.get(kept.id).remaining_hold_fen, 96_000)

        # Confirming once the TTL has passed fails whether or not the expiry job ran yet
        # (PLACEMENT_EXPIRED before it, REDEMPTION_NOT_PLACED after), and confirms nothing.
        late = self.request_compute("sh-direct")
        expires = late.expire_time.seconds + late.expire_time.nanos / 1e9
        while time.time() < expires + 0.2:
            time.sleep(0.05)
        with self.assertRaises(grpc.RpcError) as caught:
            self.confirm(late.id)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn(vchtest.error_details(caught.exception)[0],
                      ("PLACEMENT_EXPIRED", "REDEMPTION_NOT_PLACED"))
        self.assertIn(self.get(late.id).state, (redemption_pb2.REDEMPTION_STATE_PLACED,
                                                redemption_pb2.REDEMPTION_STATE_EXPIRED))

    # --- 8. idempotency ---

    def test_request_compute_replays_and_refuses_a_reused_request_id(self):
        from vch.v1 import ledger_pb2, redemption_pb2

        self.open_program("sh-direct")
        wallet = self.award("sh-direct")
        request = self.compute_request("sh-direct", request_id="compute-once", hours=10)
        first = self.call("RequestCompute", request, ENTERPRISE)
        again = self.call("RequestCompute", request, ENTERPRISE)
        self.assertEqual(again, first)
        # One hold only: 10,000,000 - 96,000 = 9,904,000; 8 GPUs.
        self.assert_wallet("sh-direct", SME, wallet, pending=96_000, posted=0,
                           available=9_904_000)
        self.assertEqual(self.held(), (0, 8))
        self.assertEqual(len(self.transfers(wallet, ledger_pb2.TRANSFER_KIND_HOLD)), 1)
        listed = self.call("ListRedemptions", redemption_pb2.ListRedemptionsRequest(
            program="sh-direct"), ENTERPRISE).redemptions
        self.assertEqual([r.id for r in listed], [first.redemption.id])

        # The same id for another request.
        self.assert_fails(grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED",
                          "RequestCompute",
                          self.compute_request("sh-direct", request_id="compute-once", hours=11),
                          ENTERPRISE)
        self.assert_wallet("sh-direct", SME, wallet, pending=96_000, posted=0,
                           available=9_904_000)
        self.assertEqual(self.held(), (0, 8))
        # Another enterprise's request id space is its own.
        self.award("sh-direct", OTHER_SME)
        other = self.call("RequestCompute", request, OTHER_ENTERPRISE)
        self.assertNotEqual(other.redemption.id, first.redemption.id)
        self.assertEqual(self.held(), (0, 16))

    # --- 9. authorization and validation ---

    def test_who_may_do_what_and_field_violations(self):
        from vch.v1 import redemption_pb2

        self.open_program("sh-direct")
        wallet = self.award("sh-direct")
        r = self.request_compute("sh-direct")

        # Only enterprises request compute.
        for principal in (WEST_OPERATOR, "AUDITOR", ISSUER_ADMIN, "PLATFORM_ADMIN"):
            self.assert_fails(grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED",
                              "RequestCompute", self.compute_request("sh-direct"), principal)
        # An enterprise without an award.
        self.register(OTHER_SME)
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "NO_AWARD",
                          "RequestCompute", self.compute_request("sh-direct"), OTHER_ENTERPRISE)
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "PROGRAM_NOT_FOUND", "RequestCompute",
                          self.compute_request("no-such-program"), ENTERPRISE)
        # An award too small for the estimate: 500.00 CNY against a hold of 96,000 fen. Neither
        # credit nor GPUs are held.
        small = uscc(3)
        small_wallet = self.award("sh-direct", small, amount_fen=50_000)
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS",
                          "RequestCompute", self.compute_request("sh-direct"),
                          "ENTERPRISE:" + small)
        self.assert_wallet("sh-direct", small, small_wallet, pending=0, posted=0,
                           available=50_000, credits=50_000)
        # 4 GPUs x 5 h: 4 * 5 * 1,500 * 0.8 = 24,000 fits (50,000 - 24,000 = 26,000 left).
        fits = self.request_compute("sh-direct", principal="ENTERPRISE:" + small, gpus=4,
                                    hours=5)
        self.assertEqual(fits.held_fen, 24_000)
        self.assert_wallet("sh-direct", small, small_wallet, pending=24_000, posted=0,
                           available=26_000, credits=50_000)
        self.assertEqual(self.held(), (0, 12))
        self.call("CancelRedemption", redemption_pb2.CancelRedemptionRequest(
            request_id=self.request_id(), id=fits.id), "ENTERPRISE:" + small)
        # Hours must be 1..2160; GPUs at least 1; a request id is required.
        self.assert_invalid(["hours"], "RequestCompute",
                            self.compute_request("sh-direct", hours=0))
        self.assert_invalid(["hours"], "RequestCompute",
                            self.compute_request("sh-direct", hours=2161))
        self.assert_invalid(["requirement.gpus", "hours"], "RequestCompute",
                            self.compute_request("sh-direct", gpus=0, hours=-1))
        request = self.compute_request("sh-direct")
        request.request_id = ""
        self.assert_invalid(["request_id"], "RequestCompute", request)
        # None of that held anything.
        self.assert_wallet("sh-direct", SME, wallet, pending=96_000, posted=0,
                           available=9_904_000)
        self.assertEqual(self.held(), (0, 8))

        # Another enterprise reads neither the redemption nor it in a list.
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "REDEMPTION_NOT_FOUND", "GetRedemption",
                          redemption_pb2.GetRedemptionRequest(id=r.id), OTHER_ENTERPRISE)
        self.assertEqual(list(self.call("ListRedemptions", redemption_pb2.ListRedemptionsRequest(),
                                        OTHER_ENTERPRISE).redemptions), [])
        self.assertEqual(self.get(r.id, ENTERPRISE).id, r.id)
        self.assertEqual(self.get(r.id, ISSUER_ADMIN).id, r.id)
        # Nor does the office of another city.
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "REDEMPTION_NOT_FOUND", "GetRedemption",
                          redemption_pb2.GetRedemptionRequest(id=r.id), "ISSUER_ADMIN:chengdu")

        # Confirming: operators of the site only.
        self.assert_fails(grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED",
                          "ConfirmPlacement", redemption_pb2.ConfirmPlacementRequest(
                              request_id=self.request_id(), id=r.id), ENTERPRISE)
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "REDEMPTION_NOT_FOUND", "ConfirmPlacement",
                          redemption_pb2.ConfirmPlacementRequest(
                              request_id=self.request_id(), id=r.id), EAST_OPERATOR)
        self.assert_fails(grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED",
                          "ListPendingPlacements",
                          redemption_pb2.ListPendingPlacementsRequest(), ENTERPRISE)

        # Usage on a placement not yet confirmed.
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "REDEMPTION_NOT_CONFIRMED",
                          "ReportUsage", self.usage_request(r.id, "early", 3_600),
                          WEST_OPERATOR)
        self.confirm(r.id)
        # Usage by another site's operator, or by the enterprise.
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "REDEMPTION_NOT_FOUND", "ReportUsage",
                          self.usage_request(r.id, "foreign", 3_600), EAST_OPERATOR)
        self.assert_fails(grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED", "ReportUsage",
                          self.usage_request(r.id, "self", 3_600), ENTERPRISE)
        self.assert_invalid(["usage_id", "gpu_seconds"], "ReportUsage",
                            self.usage_request(r.id, "", -1), WEST_OPERATOR)
        bad_window = self.usage_request(r.id, "w", 60, start=ts(), end=ts(seconds=-60))
        self.assert_invalid(["end_time"], "ReportUsage", bad_window, WEST_OPERATOR)
        # None of the refused records settled anything; the refused usage ids are still free.
        self.assert_wallet("sh-direct", SME, wallet, pending=96_000, posted=0,
                           available=9_904_000)
        # 3,600 s: bill 3,600 * 1,500 / 3,600 = 1,500; subsidy 1,500 * 0.8 = 1,200.
        self.assertEqual(self.report(r.id, "early", 3_600).usage.subsidy_fen, 1_200)

        # Payouts: the program's issuer admin (or a platform admin) only.
        for principal in (WEST_OPERATOR, ENTERPRISE, "AUDITOR", "REVIEWER:shanghai/zhang.wei"):
            self.assert_fails(grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED",
                              "CreatePayout", self.payout_request("sh-direct", datacenter=WEST),
                              principal)
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "PROGRAM_NOT_FOUND", "CreatePayout",
                          self.payout_request("sh-direct", datacenter=WEST),
                          "ISSUER_ADMIN:chengdu")
        self.assert_invalid(["datacenter"], "CreatePayout",
                            self.payout_request("sh-direct", datacenter=WEST, enterprise=SME),
                            ISSUER_ADMIN)
        backwards = self.payout_request("sh-direct", datacenter=WEST)
        backwards.period_end_time.CopyFrom(backwards.period_start_time)
        self.assert_invalid(["period_end_time"], "CreatePayout", backwards, ISSUER_ADMIN)

        # A request no pool can take: placed = false with the reasons, and nothing held.
        unplaced = self.call("RequestCompute", self.compute_request("sh-direct", gpus=200),
                             ENTERPRISE)
        self.assertFalse(unplaced.placed)
        self.assertFalse(unplaced.HasField("redemption"))
        self.assertEqual({e.reason: e.pools for e in unplaced.exclusions},
                         {"INSUFFICIENT_GPUS": 2})
        # Posted 1,200 (the record above); pending 96,000 - 1,200 = 94,800; available
        # 10,000,000 - 1,200 - 94,800 = 9,904,000: unchanged.
        self.assert_wallet("sh-direct", SME, wallet, pending=94_800, posted=1_200,
                           available=9_904_000)
        self.assertEqual(self.held(), (0, 0))

        # Before the program's redemption window opens.
        self.open_program("sh-later", redemption_start_time=ts(10))
        self.award("sh-later")
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "REDEMPTION_WINDOW_CLOSED",
                          "RequestCompute", self.compute_request("sh-later"), ENTERPRISE)
        self.assertEqual(self.held(), (0, 0))

    def test_another_operator_learns_nothing_by_resending_a_usage_record(self):
        """A usage id is scoped to its redemption, and the redemption to its site: another site's
        operator that resends an existing record (same or other content) must read NOT_FOUND,
        like for any other record of a redemption it cannot see."""
        from vch.v1 import redemption_pb2

        self.open_program("sh-direct")
        wallet = self.award("sh-direct")
        r = self.request_compute("sh-direct")
        self.confirm(r.id)
        start, end = ts(seconds=-3600), ts()
        record = self.usage_request(r.id, "u-1", 86_417, start=start, end=end)
        settled = self.call("ReportUsage", record, WEST_OPERATOR)
        self.assertEqual(settled.usage.subsidy_fen, 28_805)

        def outcome(request):
            try:
                response = self.call("ReportUsage", request, EAST_OPERATOR)
                return ("OK", response.redemption.enterprise, response.usage.subsidy_fen)
            except grpc.RpcError as e:
                return (e.code().name, vchtest.error_details(e)[0])

        # Another content under the same id, and the very same record (whose answer would copy
        # the settlement: enterprise, amounts).
        self.assertEqual([outcome(self.usage_request(r.id, "u-1", 1, start=start, end=end)),
                          outcome(record)],
                         [("NOT_FOUND", "REDEMPTION_NOT_FOUND")] * 2)
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "REDEMPTION_NOT_FOUND", "GetRedemption",
                          redemption_pb2.GetRedemptionRequest(id=r.id), EAST_OPERATOR)
        # Nothing changed: 96,000 - 28,805 = 67,195 still held.
        self.assert_wallet("sh-direct", SME, wallet, pending=67_195, posted=28_805,
                           available=9_904_000)

    # --- concurrency ---

    def test_concurrent_usage_reports_never_settle_more_than_the_hold(self):
        import concurrent.futures
        import threading

        self.open_program("sh-direct")
        wallet = self.award("sh-direct")
        r = self.request_compute("sh-direct")
        self.confirm(r.id)
        receivable = self.hold_credit_account(r).id
        barrier = threading.Barrier(8)
        start, end = ts(seconds=-3600), ts()

        def one(i):
            barrier.wait(timeout=20)
            return self.call("ReportUsage", self.usage_request(r.id, "c-%d" % i, 86_417,
                                                               start=start, end=end),
                             WEST_OPERATOR).usage

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(one, range(8)))
        # Each would be 28,805 (bill 36,007); the hold of 96,000 covers three of them
        # (86,415), the fourth gets the 96,000 - 86,415 = 9,585 left, the rest nothing.
        self.assertEqual(sorted(u.subsidy_fen for u in results),
                         [0, 0, 0, 0, 9_585, 28_805, 28_805, 28_805])
        self.assertEqual(sorted(u.capped_by for u in results),
                         ["", "", "", "HOLD", "HOLD", "HOLD", "HOLD", "HOLD"])
        self.assertEqual({u.bill_fen for u in results}, {36_007})
        red = self.get(r.id)
        # 8 * 36,007 = 288,056 billed; 96,000 subsidised; copay 192,056.
        self.assertEqual((red.usage_records, red.billed_fen, red.subsidy_fen, red.copay_fen,
                          red.remaining_hold_fen), (8, 288_056, 96_000, 192_056, 0))
        self.assert_wallet("sh-direct", SME, wallet, pending=0, posted=96_000,
                           available=9_904_000)
        self.assert_balance(receivable, 0, 0, 0, 96_000, 96_000)

    def test_concurrent_requests_hold_no_more_than_the_award(self):
        import concurrent.futures
        import threading

        self.open_program("sh-direct")
        # 3,000.00 CNY: three holds of 96,000 (288,000), not four (384,000).
        wallet = self.award("sh-direct", amount_fen=300_000)
        barrier = threading.Barrier(8)

        def one(i):
            barrier.wait(timeout=20)
            try:
                return self.call("RequestCompute", self.compute_request(
                    "sh-direct", request_id="race-%d" % i), ENTERPRISE)
            except grpc.RpcError as e:
                return (e.code(), vchtest.error_details(e)[0])

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(one, range(8)))
        placed = [x.redemption for x in results if not isinstance(x, tuple)]
        refused = [x for x in results if isinstance(x, tuple)]
        self.assertEqual(len(placed), 3, results)
        self.assertEqual(refused, [(grpc.StatusCode.FAILED_PRECONDITION,
                                    "INSUFFICIENT_FUNDS")] * 5)
        self.assertEqual({p.held_fen for p in placed}, {96_000})
        # 300,000 - 288,000 = 12,000; 3 * 8 = 24 GPUs held.
        self.assert_wallet("sh-direct", SME, wallet, pending=288_000, posted=0,
                           available=12_000, credits=300_000)
        self.assertEqual(self.held(), (0, 24))
        self.assertEqual(sorted(self.pending(WEST_OPERATOR)), sorted(p.id for p in placed))
        # Listed newest first, two a page.
        from vch.v1 import redemption_pb2

        page = self.call("ListRedemptions", redemption_pb2.ListRedemptionsRequest(
            datacenter=WEST, page_size=2), ENTERPRISE)
        self.assertTrue(page.next_page_token)
        rest = self.call("ListRedemptions", redemption_pb2.ListRedemptionsRequest(
            datacenter=WEST, page_size=2, page_token=page.next_page_token), ENTERPRISE)
        self.assertEqual(rest.next_page_token, "")
        self.assertEqual([x.id for x in page.redemptions] + [x.id for x in rest.redemptions],
                         sorted((p.id for p in placed), reverse=True))
        self.assertEqual(list(self.call("ListRedemptions", redemption_pb2.ListRedemptionsRequest(
            datacenter=EAST), ENTERPRISE).redemptions), [])

    # --- 10. vouchers verify offline ---

    def test_voucher_verifies_offline_and_any_changed_byte_fails(self):
        from vch.v1 import redemption_pb2

        self.open_program("sh-direct")
        self.award("sh-direct")
        r = self.request_compute("sh-direct")
        payload = r.voucher.payload.decode("ascii")
        fields = dict(line.split("=", 1) for line in payload.splitlines())
        self.assertEqual(list(fields), ["vch-voucher", "redemption", "enterprise", "pool", "gpus",
                                        "hours", "held_fen", "expires", "key_id"])
        self.assertEqual((fields["vch-voucher"], fields["redemption"], fields["enterprise"],
                          fields["pool"], fields["gpus"], fields["hours"], fields["held_fen"],
                          fields["key_id"]),
                         ("1", str(r.id), SME, WEST_NAME, "8", "10", "96000", r.voucher.key_id))
        # Expiry to the microsecond, as the redemption's expire_time.
        expires = datetime.datetime.fromtimestamp(r.expire_time.seconds, datetime.timezone.utc)
        self.assertEqual(fields["expires"], "%s.%06dZ" % (expires.strftime("%Y-%m-%dT%H:%M:%S"),
                                                          r.expire_time.nanos // 1000))

        key = self.call("GetVoucherKey", redemption_pb2.GetVoucherKeyRequest(), OTHER_ENTERPRISE)
        self.assertEqual(key.key_id, r.voucher.key_id)
        key_file = os.path.join(vchtest.ARGS.work, "voucher-key-%d.pem" % r.id)
        with open(key_file, "w") as f:
            f.write(key.public_key_pem)
        voucher_file = os.path.join(vchtest.ARGS.work, "voucher-%d.txt" % r.id)
        document = r.voucher.payload + b"signature=" + r.voucher.signature.hex().encode() + b"\n"
        with open(voucher_file, "wb") as f:
            f.write(document)

        out = self.vch("AUDITOR", "voucher", "verify", voucher_file, "--public-key", key_file)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"^voucher OK\n")
        self.assertRegex(out.stdout, r"\nheld\s+960\.00 CNY \(96000 fen\)\n")
        out = self.vch("AUDITOR", "--json", "voucher", "verify", voucher_file, "--public-key",
                       key_file)
        self.assertEqual(out.returncode, 0, out.stderr)
        terms = json.loads(out.stdout)
        self.assertEqual((terms["ok"], terms["redemption_id"], terms["enterprise"], terms["pool"],
                          terms["gpus"], terms["hours"], terms["held_fen"]),
                         (True, r.id, SME, WEST_NAME, 8, 10, 96000))

        # The CLI writes the very same document, and the key it fetches is the same key.
        cli_voucher = voucher_file + ".cli"
        out = self.vch(ENTERPRISE, "redemption", "get", str(r.id), "--voucher-out", cli_voucher)
        self.assertEqual(out.returncode, 0, out.stderr)
        with open(cli_voucher, "rb") as f:
            self.assertEqual(f.read(), document)
        cli_key = key_file + ".cli"
        out = self.vch(WEST_OPERATOR, "voucher", "key", "--out", cli_key)
        self.assertEqual(out.returncode, 0, out.stderr)
        with open(cli_key) as f:
            self.assertEqual(f.read(), key.public_key_pem)

        # One byte changed: the amount held (96000 -> 96001), or the signature's last digit.
        tampered = voucher_file + ".tampered"
        at = document.index(b"held_fen=96000") + len(b"held_fen=9600")
        with open(tampered, "wb") as f:
            f.write(document[:at] + b"1" + document[at + 1:])
        out = self.vch("AUDITOR", "voucher", "verify", tampered, "--public-key", key_file)
        self.assertEqual(out.returncode, 1, out.stdout)
        self.assertIn("VOUCHER_SIGNATURE_INVALID", out.stderr)
        last = document[-2:-1]
        with open(tampered, "wb") as f:
            f.write(document[:-2] + (b"0" if last != b"0" else b"1") + b"\n")
        out = self.vch("AUDITOR", "voucher", "verify", tampered, "--public-key", key_file)
        self.assertEqual(out.returncode, 1, out.stdout)
        self.assertIn("NOT valid", out.stderr)

    # --- 11. the CLI end to end ---

    def test_vch_cli_request_confirm_report_payout_and_csv_export(self):
        self.open_program("sh-direct")
        wallet = self.award("sh-direct")

        out = self.vch(ENTERPRISE, "--json", "redemption", "request", "--program", "sh-direct",
                       "--gpus", "8", "--hours", "10", "--request-id", "cli-request-1")
        self.assertEqual(out.returncode, 0, out.stderr)
        got = json.loads(out.stdout)
        self.assertEqual((got["request_id"], got["placed"]), ("cli-request-1", True))
        r = got["redemption"]
        self.assertEqual((r["state"], r["pool"], r["price_fen_per_gpu_hour"], r["ratio_bps"],
                          r["estimated_bill_fen"], r["held_fen"], r["hours"]),
                         ("REDEMPTION_STATE_PLACED", WEST_NAME, "1500", 8000, "120000", "96000",
                          10))
        rid = int(r["id"])
        # Replayed: the same redemption.
        again = json.loads(self.vch(ENTERPRISE, "--json", "redemption", "request", "--program",
                                    "sh-direct", "--gpus", "8", "--hours", "10", "--request-id",
                                    "cli-request-1").stdout)
        self.assertEqual(again["redemption"], r)
        self.assert_wallet("sh-direct", SME, wallet, pending=96_000, posted=0,
                           available=9_904_000)
        # Human output of a second request (then cancelled).
        out = self.vch(ENTERPRISE, "redemption", "request", "--program", "sh-direct", "--gpus",
                       "4", "--hours", "5", "--fp8")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"placed\s+yes\n")
        self.assertRegex(out.stdout, r"\npool\s+%s\n" % EAST_NAME)
        # 4 * 5 * 3,200 = 64,000 (640.00 CNY); 64,000 * 0.8 = 51,200 (512.00 CNY).
        self.assertRegex(out.stdout, r"\nestimated_bill\s+640\.00 CNY\n")
        self.assertRegex(out.stdout, r"\nheld\s+512\.00 CNY\n")
        other = int(next(line.split()[1] for line in out.stdout.splitlines()
                         if line.startswith("id ")))
        out = self.vch(ENTERPRISE, "redemption", "cancel", str(other), "--reason", "wrong pool")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"\nstate\s+CANCELLED\n")

        out = self.vch(WEST_OPERATOR, "redemption", "pending")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual([line.split()[0] for line in out.stdout.splitlines()[1:]], [str(rid)])
        out = self.vch(WEST_OPERATOR, "redemption", "confirm", str(rid))
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"\nstate\s+CONFIRMED\n")
        self.assertEqual(self.held(), (0, 0))

        start, end = ts(seconds=-4 * 3600), ts()
        window = ["--start", rfc3339(start), "--end", rfc3339(end)]
        out = self.vch(WEST_OPERATOR, "usage", "report", str(rid), "--usage-id", "cli-u-1",
                       "--gpu-seconds", "86417", *window)
        self.assertEqual(out.returncode, 0, out.stderr)
        # bill 36,007 (360.07 CNY), subsidy 28,805 (288.05), copay 7,202 (72.02).
        self.assertRegex(out.stdout, r"\nbill\s+360\.07 CNY\n")
        self.assertRegex(out.stdout, r"\nsubsidy\s+288\.05 CNY\n")
        self.assertRegex(out.stdout, r"\ncopay\s+72\.02 CNY\n")
        self.assertRegex(out.stdout, r"\nredemption_state\s+ACTIVE\n")
        # 96,000 - 28,805 = 67,195 (671.95 CNY).
        self.assertRegex(out.stdout, r"\nremaining_hold\s+671\.95 CNY\n")
        out = self.vch(WEST_OPERATOR, "--json", "usage", "report", str(rid), "--usage-id",
                       "cli-u-2", "--gpu-seconds", "3601", "--final", *window)
        self.assertEqual(out.returncode, 0, out.stderr)
        final = json.loads(out.stdout)
        # bill 1,500, subsidy 1,200, copay 300; 67,195 - 1,200 = 65,995 returns to the wallet.
        self.assertEqual((final["usage"]["bill_fen"], final["usage"]["subsidy_fen"],
                          final["usage"]["copay_fen"], final["usage"]["final"],
                          final["redemption"]["state"]),
                         ("1500", "1200", "300", True, "REDEMPTION_STATE_SETTLED"))
        # 10,000,000 - 28,805 - 1,200 = 9,969,995.
        self.assert_wallet("sh-direct", SME, wallet, pending=0, posted=30_005,
                           available=9_969_995)

        period = ["--start", rfc3339(ts(-1)), "--end", rfc3339(ts(1))]
        out = self.vch(ISSUER_ADMIN, "payout", "create", "--program", "sh-direct",
                       "--datacenter", WEST, *period)
        self.assertEqual(out.returncode, 0, out.stderr)
        # 28,805 + 1,200 = 30,005 (300.05 CNY).
        self.assertRegex(out.stdout, r"\namount\s+300\.05 CNY\n")
        self.assertRegex(out.stdout, r"\nlines\s+2\n")
        self.assertRegex(out.stdout, r"\npayee\s+datacenters/%s\n" % WEST)
        payout_id = int(next(line.split()[1] for line in out.stdout.splitlines()
                             if line.startswith("id ")))
        out = self.vch(ISSUER_ADMIN, "payout", "create", "--program", "sh-direct",
                       "--datacenter", WEST, *period)
        self.assertEqual(out.returncode, 1)

        csv_file = os.path.join(vchtest.ARGS.work, "payout-%d.csv" % payout_id)
        out = self.vch(WEST_OPERATOR, "payout", "export", str(payout_id), "--out", csv_file)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"\nlines\s+2\n")
        self.assertRegex(out.stdout, r"\namount\s+300\.05 CNY\n")
        with open(csv_file, "rb") as f:
            raw = f.read()
        # To standard output: the same bytes (read as bytes, so the CRLF line ends survive).
        to_stdout = subprocess.run(
            [vchtest.ARGS.vch, "--server", self.vchd.address, "--principal", "AUDITOR", "payout",
             "export", str(payout_id)], capture_output=True, timeout=30)
        self.assertEqual(to_stdout.returncode, 0, to_stdout.stderr)
        self.assertEqual(to_stdout.stdout, raw)
        self.assertTrue(raw.endswith(b"\r\n"))
        self.assertEqual(raw.count(b"\r\n"), 3)
        rows = list(csv.reader(io.StringIO(raw.decode())))
        self.assertEqual(rows[0], [
            "payout_id", "program", "payee", "usage_name", "redemption_id", "usage_id",
            "enterprise", "pool", "start_time", "end_time", "gpu_seconds",
            "price_fen_per_gpu_hour", "ratio_bps", "bill_fen", "subsidy_fen", "copay_fen",
            "final", "settle_time", "post_transfer_id"])
        from vch.v1 import redemption_pb2

        lines = self.call("ListPayoutLines", redemption_pb2.ListPayoutLinesRequest(
            payout=payout_id), "AUDITOR").lines
        common = [str(payout_id), "sh-direct", "datacenters/" + WEST]
        expected = []
        for line, usage_id, seconds, bill, subsidy, copay, is_final in (
                (lines[0], "cli-u-1", "86417", "36007", "28805", "7202", "false"),
                (lines[1], "cli-u-2", "3601", "1500", "1200", "300", "true")):
            settled = datetime.datetime.fromtimestamp(
                line.usage.settle_time.seconds, datetime.timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%S")
            if line.usage.settle_time.nanos:
                settled += ("." + "%09d" % line.usage.settle_time.nanos).rstrip("0")
            expected.append(common + [
                "redemptions/%d/usage/%s" % (rid, usage_id), str(rid), usage_id, SME, WEST_NAME,
                rfc3339(start), rfc3339(end), seconds, "1500", "8000", bill, subsidy, copay,
                is_final, settled + "Z", str(line.usage.post_transfer_id)])
        self.assertEqual(rows[1:], expected)


if __name__ == "__main__":
    unittest.main(argv=vchtest.parse_args(), verbosity=2)
