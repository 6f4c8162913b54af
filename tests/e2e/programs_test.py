"""The program-office and SME workflow through Debian's python3-grpcio and the vch CLI, against
a real vchd on a database of its own: create program -> fund -> enterprise registers -> applies
-> approved -> balance visible to that enterprise only, with exact numbers; and the bad-input
rules: every malformed field is INVALID_ARGUMENT with a field violation; approving twice, a
withdrawn application or over budget is FAILED_PRECONDITION with its reason and writes nothing;
idempotent replays; another issuer's staff cannot touch a program. The ledger verifies at the
end."""

import datetime
import json
import os
import subprocess
import sys
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vchtest  # noqa: E402

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def uscc(n, region="310115"):
    """The n-th valid unified social credit code (GB 32100-2015) of an enterprise registered in
    `region`: "91", the region, "MA" and n in base 31, then the check character."""
    digits = ""
    for _ in range(7):
        digits = USCC_ALPHABET[n % 31] + digits
        n //= 31
    first17 = "91" + region + "MA" + digits
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS))
    return first17 + USCC_ALPHABET[(31 - total % 31) % 31]


def with_wrong_check(code):
    """The code with a check character that does not fit it."""
    return code[:-1] + next(c for c in USCC_ALPHABET if c != code[-1])


def rpc(channel, service, method, request, principal):
    """Calls vch.v1.`service`.`method` as `principal` (development-mode header)."""
    from vch.v1 import (application_pb2_grpc, enterprise_pb2_grpc, ledger_pb2_grpc,
                        program_pb2_grpc)

    modules = {"IssuerService": program_pb2_grpc, "ProgramService": program_pb2_grpc,
               "EnterpriseService": enterprise_pb2_grpc,
               "ApplicationService": application_pb2_grpc, "LedgerService": ledger_pb2_grpc}
    stub = getattr(modules[service], service + "Stub")(channel)
    return getattr(stub, method)(request, metadata=[("x-vch-principal", principal)], timeout=10)


def ts(days):
    """A Timestamp `days` from now (whole seconds)."""
    from google.protobuf import timestamp_pb2

    t = timestamp_pb2.Timestamp()
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    t.FromDatetime((now + datetime.timedelta(days=days)).replace(tzinfo=None))
    return t


class ProgramsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from vch.v1 import program_pb2

        base = os.environ["VCH_TEST_DSN"]
        db = "e2e_programs_%d" % os.getpid()
        vchtest.psql(base + " dbname=postgres", "CREATE DATABASE %s TEMPLATE vch_template" % db)
        cls.vchd = vchtest.Vchd(base + " dbname=" + db)
        cls.channel = grpc.insecure_channel(cls.vchd.address)
        cls.next_request = 0
        cls.next_enterprise = 100
        for issuer, region, level in (("shanghai", "310000", program_pb2.ISSUER_LEVEL_PROVINCE),
                                      ("chengdu", "510100", program_pb2.ISSUER_LEVEL_CITY)):
            rpc(cls.channel, "IssuerService", "RegisterIssuer", program_pb2.RegisterIssuerRequest(
                request_id="setup-" + issuer, id=issuer, display_name=issuer + " office",
                region_code=region, level=level), "PLATFORM_ADMIN")

    @classmethod
    def tearDownClass(cls):
        from vch.v1 import ledger_pb2

        try:
            # Whatever the tests did, the ledger's invariants hold afterwards.
            report = rpc(cls.channel, "LedgerService", "VerifyLedger",
                         ledger_pb2.VerifyLedgerRequest(), "AUDITOR")
            assert report.ok, "ledger does not verify: %s" % list(report.violations)
        finally:
            cls.channel.close()
            code = cls.vchd.stop()
            assert code == 0, "vchd exited with %d: %s" % (code, cls.vchd.logs())

    # --- helpers ---

    def call(self, service, method, request, principal):
        return rpc(self.channel, service, method, request, principal)

    def assert_fails(self, code, reason, service, method, request, principal):
        """Asserts the call fails with `code` and `reason`; returns its field violations."""
        with self.assertRaises(grpc.RpcError) as caught:
            self.call(service, method, request, principal)
        self.assertEqual(caught.exception.code(), code, caught.exception.details())
        got_reason, violations = vchtest.error_details(caught.exception)
        self.assertEqual(got_reason, reason, caught.exception.details())
        return violations

    def request_id(self):
        ProgramsTest.next_request += 1
        return "req-%d" % ProgramsTest.next_request

    def rules(self, **overrides):
        from google.protobuf import message
        from vch.v1 import program_pb2

        rules = program_pb2.ProgramRules(
            display_name="上海市人工智能算力券（测试）",
            category=program_pb2.PROGRAM_CATEGORY_AI_RENTAL,
            planned_budget_fen=1_000_000_000,       # 10 M CNY
            subsidy_ratio_bps=8000,
            per_enterprise_cap_fen=50_000_000,      # 500,000 CNY
            eligible_kinds=[program_pb2.ENTERPRISE_KIND_SME, program_pb2.ENTERPRISE_KIND_STARTUP],
            eligible_sizes=[program_pb2.SIZE_CLASS_MICRO, program_pb2.SIZE_CLASS_SMALL,
                            program_pb2.SIZE_CLASS_MEDIUM],
            local_enterprises_only=True,
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
        return rules

    def open_program(self, program_id, fund_fen, issuer="shanghai", **overrides):
        """Creates, funds and opens a program; returns it as GetProgram reads it."""
        from vch.v1 import program_pb2

        admin = "ISSUER_ADMIN:" + issuer
        self.call("ProgramService", "CreateProgram", program_pb2.CreateProgramRequest(
            request_id=self.request_id(), id=program_id, rules=self.rules(**overrides)), admin)
        self.call("ProgramService", "FundProgram", program_pb2.FundProgramRequest(
            request_id=self.request_id(), id=program_id, amount_fen=fund_fen), admin)
        self.call("ProgramService", "OpenProgram", program_pb2.OpenProgramRequest(
            request_id=self.request_id(), id=program_id), admin)
        return self.get_program(program_id)

    def get_program(self, program_id):
        from vch.v1 import program_pb2

        return self.call("ProgramService", "GetProgram",
                         program_pb2.GetProgramRequest(id=program_id), "AUDITOR").program

    def new_enterprise(self, region="310115", kind=None, size=None):
        """Registers a new enterprise as itself; returns its USCC."""
        from vch.v1 import enterprise_pb2, program_pb2

        ProgramsTest.next_enterprise += 1
        code = uscc(ProgramsTest.next_enterprise, region)
        request = enterprise_pb2.RegisterEnterpriseRequest(
            request_id=self.request_id(), enterprise=enterprise_pb2.Enterprise(
                uscc=code, display_name="测试科技有限公司 %s" % code, region_code=region,
                kind=kind or program_pb2.ENTERPRISE_KIND_SME,
                size_class=size or program_pb2.SIZE_CLASS_SMALL))
        self.call("EnterpriseService", "RegisterEnterprise", request, "ENTERPRISE:" + code)
        return code

    def submit(self, program_id, code, requested_fen):
        from vch.v1 import application_pb2

        return self.call("ApplicationService", "SubmitApplication",
                         application_pb2.SubmitApplicationRequest(
                             request_id=self.request_id(), program=program_id, enterprise=code,
                             requested_fen=requested_fen, purpose="model training"),
                         "ENTERPRISE:" + code).application

    def approve_request(self, application_id, amount_fen):
        from vch.v1 import application_pb2

        return application_pb2.ApproveApplicationRequest(
            request_id=self.request_id(), id=application_id, amount_fen=amount_fen)

    def get_application(self, application_id):
        from vch.v1 import application_pb2

        return self.call("ApplicationService", "GetApplication",
                         application_pb2.GetApplicationRequest(id=application_id),
                         "AUDITOR").application

    def budget_transfers(self, program):
        from vch.v1 import ledger_pb2

        return list(self.call("LedgerService", "ListTransfers", ledger_pb2.ListTransfersRequest(
            account_id=program.budget_account_id, page_size=1000), "AUDITOR").transfers)

    def ledger_report(self):
        from vch.v1 import ledger_pb2

        report = self.call("LedgerService", "VerifyLedger", ledger_pb2.VerifyLedgerRequest(),
                           "AUDITOR")
        self.assertTrue(report.ok, list(report.violations))
        return report

    def vch(self, principal, *args):
        return subprocess.run([vchtest.ARGS.vch, "--server", self.vchd.address, "--principal",
                               principal, *args], capture_output=True, text=True, timeout=30)

    # --- the issue's flow ---

    def test_create_fund_apply_approve_balance_visible_to_that_enterprise_only(self):
        from vch.v1 import application_pb2, enterprise_pb2, ledger_pb2, program_pb2

        admin = "ISSUER_ADMIN:shanghai/wang.min"
        created = self.call("ProgramService", "CreateProgram", program_pb2.CreateProgramRequest(
            request_id=self.request_id(), id="flow-ai-rental", rules=self.rules()), admin).program
        self.assertEqual(created.name, "programs/flow-ai-rental")
        self.assertEqual(created.issuer, "shanghai")
        self.assertEqual(created.state, program_pb2.PROGRAM_STATE_DRAFT)
        self.assertEqual((created.funded_fen, created.budget_available_fen), (0, 0))
        self.assertEqual(created.rules.subsidy_ratio_bps, 8000)
        self.assertEqual(created.rules.per_enterprise_cap_fen, 50_000_000)

        funded = self.call("ProgramService", "FundProgram", program_pb2.FundProgramRequest(
            request_id=self.request_id(), id="flow-ai-rental", amount_fen=300_000_000,
            note="first tranche"), admin)
        self.assertGreater(funded.transfer_id, 0)
        self.assertEqual(funded.program.funded_fen, 300_000_000)
        self.assertEqual(funded.program.budget_available_fen, 300_000_000)
        opened = self.call("ProgramService", "OpenProgram", program_pb2.OpenProgramRequest(
            request_id=self.request_id(), id="flow-ai-rental"), admin).program
        self.assertEqual(opened.state, program_pb2.PROGRAM_STATE_OPEN)
        self.assertEqual(opened.budget_available_fen, 300_000_000)

        code = uscc(1)
        other = uscc(2)
        for c in (code, other):
            registered = self.call(
                "EnterpriseService", "RegisterEnterprise",
                enterprise_pb2.RegisterEnterpriseRequest(
                    request_id=self.request_id(), enterprise=enterprise_pb2.Enterprise(
                        uscc=c, display_name="上海深瞳智算科技有限公司", region_code="310115",
                        kind=program_pb2.ENTERPRISE_KIND_SME,
                        size_class=program_pb2.SIZE_CLASS_SMALL)),
                "ENTERPRISE:" + c).enterprise
            self.assertEqual(registered.name, "enterprises/" + c)

        application = self.submit("flow-ai-rental", code, 40_000_000)
        self.assertEqual(application.state, application_pb2.APPLICATION_STATE_SUBMITTED)
        self.assertEqual(application.requested_fen, 40_000_000)
        self.assertEqual(application.enterprise, code)
        self.assertEqual(application.name,
                         "programs/flow-ai-rental/applications/%d" % application.id)

        approved = self.call("ApplicationService", "ApproveApplication",
                             self.approve_request(application.id, 35_000_000),
                             "REVIEWER:shanghai/zhang.wei").application
        self.assertEqual(approved.state, application_pb2.APPLICATION_STATE_APPROVED)
        self.assertEqual(approved.awarded_fen, 35_000_000)
        self.assertEqual(approved.decided_by, "zhang.wei")
        self.assertGreater(approved.award_transfer_id, funded.transfer_id)
        self.assertEqual(self.get_application(application.id), approved)

        program = self.get_program("flow-ai-rental")
        self.assertEqual(program.funded_fen, 300_000_000)
        self.assertEqual(program.budget_available_fen, 265_000_000)

        award = self.call("ApplicationService", "GetAward", application_pb2.GetAwardRequest(
            program="flow-ai-rental", enterprise=code), "ENTERPRISE:" + code).award
        self.assertEqual((award.awarded_fen, award.clawed_back_fen, award.cap_fen,
                          award.wallet_available_fen), (35_000_000, 0, 50_000_000, 35_000_000))
        self.assertGreater(award.wallet_account_id, 0)

        wallet = self.call("LedgerService", "GetAccount", ledger_pb2.GetAccountRequest(
            account_id=award.wallet_account_id), "ENTERPRISE:" + code).account
        self.assertEqual(wallet.kind, ledger_pb2.ACCOUNT_KIND_WALLET)
        self.assertEqual((wallet.program, wallet.issuer, wallet.owner),
                         ("flow-ai-rental", "shanghai", code))
        self.assertEqual(wallet.balance.credits_posted_fen, 35_000_000)
        self.assertEqual(wallet.balance.debits_posted_fen, 0)
        self.assertEqual(wallet.balance.debits_pending_fen, 0)
        self.assertEqual(wallet.balance.available_fen, 35_000_000)

        # Another enterprise sees neither the wallet, nor the award, nor the application.
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND", "LedgerService",
                          "GetAccount",
                          ledger_pb2.GetAccountRequest(account_id=award.wallet_account_id),
                          "ENTERPRISE:" + other)
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "AWARD_NOT_FOUND", "ApplicationService",
                          "GetAward", application_pb2.GetAwardRequest(
                              program="flow-ai-rental", enterprise=code), "ENTERPRISE:" + other)
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "APPLICATION_NOT_FOUND",
                          "ApplicationService", "GetApplication",
                          application_pb2.GetApplicationRequest(id=application.id),
                          "ENTERPRISE:" + other)
        listed = self.call("ApplicationService", "ListApplications",
                           application_pb2.ListApplicationsRequest(program="flow-ai-rental"),
                           "ENTERPRISE:" + other)
        self.assertEqual(list(listed.applications), [])
        # Nor does the office of another city.
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND", "LedgerService",
                          "GetAccount",
                          ledger_pb2.GetAccountRequest(account_id=award.wallet_account_id),
                          "ISSUER_ADMIN:chengdu")

        # The budget's statement: the FUND in, the AWARD out.
        transfers = self.budget_transfers(program)
        self.assertEqual([(t.kind, t.amount_fen) for t in transfers],
                         [(ledger_pb2.TRANSFER_KIND_FUND, 300_000_000),
                          (ledger_pb2.TRANSFER_KIND_AWARD, 35_000_000)])
        self.assertEqual(transfers[1].id, approved.award_transfer_id)
        self.assertEqual(transfers[1].credit_account_id, award.wallet_account_id)

    # --- refusals that write nothing ---

    def test_approving_twice_withdrawn_or_over_budget_is_refused_and_writes_nothing(self):
        from vch.v1 import application_pb2

        program = self.open_program("deny-rules", 10_000_000, per_enterprise_cap_fen=8_000_000)
        reviewer = "REVIEWER:shanghai/li.qiang"
        first, second, third = (self.new_enterprise() for _ in range(3))

        approved = self.call("ApplicationService", "ApproveApplication", self.approve_request(
            self.submit("deny-rules", first, 5_000_000).id, 5_000_000), reviewer).application
        self.assertEqual(self.get_program("deny-rules").budget_available_fen, 5_000_000)
        transfers = self.budget_transfers(program)
        self.assertEqual(len(transfers), 2)

        accounts = self.ledger_report().accounts

        def assert_nothing_written(application):
            after = self.get_program("deny-rules")
            self.assertEqual((after.funded_fen, after.budget_available_fen),
                             (10_000_000, 5_000_000))
            self.assertEqual(self.get_application(application.id), application)
            self.assertEqual(self.budget_transfers(program), transfers)
            # Not even the wallet a successful approval would have opened.
            self.assertEqual(self.ledger_report().accounts, accounts)

        # Approving twice: the second approval is refused, the first stands.
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "APPLICATION_NOT_PENDING",
                          "ApplicationService", "ApproveApplication",
                          self.approve_request(approved.id, 5_000_000), reviewer)
        assert_nothing_written(approved)

        # Approving a withdrawn application.
        withdrawn = self.call("ApplicationService", "WithdrawApplication",
                              application_pb2.WithdrawApplicationRequest(
                                  request_id=self.request_id(),
                                  id=self.submit("deny-rules", second, 3_000_000).id),
                              "ENTERPRISE:" + second).application
        self.assertEqual(withdrawn.state, application_pb2.APPLICATION_STATE_WITHDRAWN)
        self.assertTrue(withdrawn.HasField("withdraw_time"))
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "APPLICATION_NOT_PENDING",
                          "ApplicationService", "ApproveApplication",
                          self.approve_request(withdrawn.id, 3_000_000), reviewer)
        assert_nothing_written(withdrawn)
        # ...and rejecting or withdrawing it again.
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "APPLICATION_NOT_PENDING",
                          "ApplicationService", "RejectApplication",
                          application_pb2.RejectApplicationRequest(
                              request_id=self.request_id(), id=withdrawn.id, reason="late"),
                          reviewer)
        assert_nothing_written(withdrawn)

        # Approving over budget: 8,000,000 is within the cap, but only 5,000,000 is left.
        pending = self.submit("deny-rules", third, 8_000_000)
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "BUDGET_EXHAUSTED",
                          "ApplicationService", "ApproveApplication",
                          self.approve_request(pending.id, 8_000_000), reviewer)
        assert_nothing_written(pending)
        award = self.call("ApplicationService", "GetAward", application_pb2.GetAwardRequest(
            program="deny-rules", enterprise=third), "AUDITOR").award
        self.assertEqual((award.awarded_fen, award.wallet_account_id), (0, 0))

        # Exactly what is left can be awarded; then the budget is empty.
        last = self.call("ApplicationService", "ApproveApplication",
                         self.approve_request(pending.id, 5_000_000), reviewer).application
        self.assertEqual(last.awarded_fen, 5_000_000)
        self.assertEqual(self.get_program("deny-rules").budget_available_fen, 0)

    def test_ineligible_kind_is_refused_at_submission(self):
        from vch.v1 import application_pb2, program_pb2

        self.open_program("research-only", 50_000_000, issuer="chengdu",
                          category=program_pb2.PROGRAM_CATEGORY_RESEARCH,
                          eligible_kinds=[program_pb2.ENTERPRISE_KIND_RESEARCH_INSTITUTION])
        sme = self.new_enterprise(region="510107")
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "NOT_ELIGIBLE_KIND",
                          "ApplicationService", "SubmitApplication",
                          application_pb2.SubmitApplicationRequest(
                              request_id=self.request_id(), program="research-only",
                              enterprise=sme, requested_fen=1_000_000),
                          "ENTERPRISE:" + sme)
        # A Shanghai institution is the right kind but outside Chengdu.
        outsider = self.new_enterprise(kind=program_pb2.ENTERPRISE_KIND_RESEARCH_INSTITUTION)
        self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "NOT_ELIGIBLE_REGION",
                          "ApplicationService", "SubmitApplication",
                          application_pb2.SubmitApplicationRequest(
                              request_id=self.request_id(), program="research-only",
                              enterprise=outsider, requested_fen=1_000_000),
                          "ENTERPRISE:" + outsider)
        listed = self.call("ApplicationService", "ListApplications",
                           application_pb2.ListApplicationsRequest(program="research-only"),
                           "AUDITOR")
        self.assertEqual(list(listed.applications), [])
        institute = self.new_enterprise(
            region="510107", kind=program_pb2.ENTERPRISE_KIND_RESEARCH_INSTITUTION)
        self.assertEqual(self.submit("research-only", institute, 1_000_000).state,
                         application_pb2.APPLICATION_STATE_SUBMITTED)

    # --- malformed input ---

    def test_every_malformed_field_is_invalid_argument_with_a_field_violation(self):
        from vch.v1 import application_pb2, enterprise_pb2, program_pb2

        program = self.open_program("malformed", 20_000_000)
        code = self.new_enterprise()
        application = self.submit("malformed", code, 1_000_000)
        me = "ENTERPRISE:" + code
        admin = "ISSUER_ADMIN:shanghai"
        reviewer = "REVIEWER:shanghai"
        rid = self.request_id
        cases = [
            ("ProgramService", "FundProgram",
             program_pb2.FundProgramRequest(request_id=rid(), id="malformed", amount_fen=0),
             admin, ["amount_fen"]),
            ("ProgramService", "FundProgram",
             program_pb2.FundProgramRequest(request_id=rid(), id="Bad_Id", amount_fen=-5,
                                            note="x" * 501),
             admin, ["id", "amount_fen", "note"]),
            ("ProgramService", "OpenProgram",
             program_pb2.OpenProgramRequest(request_id=rid(), id="-x"), admin, ["id"]),
            ("ProgramService", "CreateProgram",
             program_pb2.CreateProgramRequest(request_id=rid(), id="UPPER", rules=self.rules()),
             admin, ["id"]),
            ("IssuerService", "RegisterIssuer",
             program_pb2.RegisterIssuerRequest(request_id=rid(), id="beijing",
                                               display_name="", region_code="110000",
                                               level=program_pb2.ISSUER_LEVEL_UNSPECIFIED),
             "PLATFORM_ADMIN", ["display_name", "level"]),
            ("IssuerService", "RegisterIssuer",
             program_pb2.RegisterIssuerRequest(request_id=rid(), id="beijing",
                                               display_name="北京", region_code="110100",
                                               level=program_pb2.ISSUER_LEVEL_PROVINCE),
             "PLATFORM_ADMIN", ["region_code"]),
            ("EnterpriseService", "RegisterEnterprise",
             enterprise_pb2.RegisterEnterpriseRequest(request_id=rid(), enterprise=(
                 enterprise_pb2.Enterprise(uscc=uscc(90), display_name="", region_code="990000",
                                           kind=0, size_class=9))),
             "PLATFORM_ADMIN", ["enterprise.display_name", "enterprise.region_code",
                                "enterprise.kind", "enterprise.size_class"]),
            ("ApplicationService", "SubmitApplication",
             application_pb2.SubmitApplicationRequest(request_id=rid(), program="malformed",
                                                      enterprise=code, requested_fen=0),
             me, ["requested_fen"]),
            ("ApplicationService", "SubmitApplication",
             application_pb2.SubmitApplicationRequest(request_id=rid(), program="Mal formed",
                                                      enterprise=uscc(91), requested_fen=-1,
                                                      purpose="p" * 2001),
             me, ["program", "enterprise", "requested_fen", "purpose"]),
            ("ApplicationService", "ApproveApplication",
             application_pb2.ApproveApplicationRequest(request_id=rid(), id=application.id,
                                                       amount_fen=0),
             reviewer, ["amount_fen"]),
            ("ApplicationService", "ApproveApplication",
             application_pb2.ApproveApplicationRequest(request_id=rid(), id=0, amount_fen=-3),
             reviewer, ["id", "amount_fen"]),
            ("ApplicationService", "RejectApplication",
             application_pb2.RejectApplicationRequest(request_id=rid(), id=application.id,
                                                      reason=""),
             reviewer, ["reason"]),
            ("ApplicationService", "WithdrawApplication",
             application_pb2.WithdrawApplicationRequest(request_id=rid(), id=-1), me, ["id"]),
            ("ApplicationService", "ClawbackAward",
             application_pb2.ClawbackAwardRequest(request_id=rid(), program="malformed",
                                                  enterprise=with_wrong_check(code), amount_fen=0,
                                                  reason=""),
             admin, ["enterprise", "amount_fen", "reason"]),
            ("ApplicationService", "ListApplications",
             application_pb2.ListApplicationsRequest(page_size=-1, page_token="!!"), "AUDITOR",
             ["page_size", "page_token"]),
            # Reads validate what they are given, too.
            ("ProgramService", "GetProgram", program_pb2.GetProgramRequest(id="Not A Slug"),
             "AUDITOR", ["id"]),
            ("IssuerService", "GetIssuer", program_pb2.GetIssuerRequest(id=""), "AUDITOR",
             ["id"]),
            ("ProgramService", "ListPrograms",
             program_pb2.ListProgramsRequest(issuer="Shanghai!", state=42), "AUDITOR",
             ["issuer", "state"]),
            ("EnterpriseService", "GetEnterprise",
             enterprise_pb2.GetEnterpriseRequest(uscc=with_wrong_check(code)), me, ["uscc"]),
            ("ApplicationService", "GetApplication", application_pb2.GetApplicationRequest(id=0),
             me, ["id"]),
            ("ApplicationService", "ListApplications",
             application_pb2.ListApplicationsRequest(program="-x", state=9, enterprise="91"),
             "AUDITOR", ["program", "state", "enterprise"]),
            ("ApplicationService", "GetAward",
             application_pb2.GetAwardRequest(program="malformed", enterprise="bad"), "AUDITOR",
             ["enterprise"]),
            ("ApplicationService", "GetAward", application_pb2.GetAwardRequest(), me,
             ["program", "enterprise"]),
            # A well-formed request without its idempotency key, or with one too long.
            ("ProgramService", "FundProgram",
             program_pb2.FundProgramRequest(request_id="", id="malformed", amount_fen=100),
             admin, ["request_id"]),
            ("ApplicationService", "ApproveApplication",
             application_pb2.ApproveApplicationRequest(request_id="r" * 129, id=application.id,
                                                       amount_fen=100),
             reviewer, ["request_id"]),
        ]
        for service, method, request, principal, fields in cases:
            with self.subTest(method=method, fields=fields):
                violations = self.assert_fails(grpc.StatusCode.INVALID_ARGUMENT,
                                               "INVALID_ARGUMENT", service, method, request,
                                               principal)
                self.assertEqual(sorted(f for f, _ in violations), sorted(fields), violations)
                self.assertTrue(all(d for _, d in violations), violations)
        # None of them wrote anything.
        after = self.get_program("malformed")
        self.assertEqual((after.funded_fen, after.budget_available_fen),
                         (20_000_000, 20_000_000))
        self.assertEqual(after.state, program.state)
        self.assertEqual(self.get_application(application.id), application)
        self.assertEqual(len(self.budget_transfers(program)), 1)
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "ISSUER_NOT_FOUND", "IssuerService",
                          "GetIssuer", program_pb2.GetIssuerRequest(id="beijing"), "AUDITOR")

    def test_bad_uscc_check_character_is_a_violation_on_enterprise_uscc(self):
        from vch.v1 import enterprise_pb2, program_pb2

        good = uscc(500)
        bad = with_wrong_check(good)
        request = enterprise_pb2.RegisterEnterpriseRequest(
            request_id=self.request_id(), enterprise=enterprise_pb2.Enterprise(
                uscc=bad, display_name="上海校验位错误科技有限公司", region_code="310115",
                kind=program_pb2.ENTERPRISE_KIND_SME, size_class=program_pb2.SIZE_CLASS_SMALL))
        for principal in ("PLATFORM_ADMIN", "ENTERPRISE:" + bad):
            violations = self.assert_fails(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT",
                                           "EnterpriseService", "RegisterEnterprise", request,
                                           principal)
            self.assertEqual([f for f, _ in violations], ["enterprise.uscc"])
            self.assertIn("check character should be " + good[-1], violations[0][1])
        for code, problem in ((good[:17], "must be 18 characters"),
                              (good[:5] + "I" + good[6:], "character 6")):
            request.enterprise.uscc = code
            violations = self.assert_fails(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT",
                                           "EnterpriseService", "RegisterEnterprise", request,
                                           "PLATFORM_ADMIN")
            self.assertEqual([f for f, _ in violations], ["enterprise.uscc"])
            self.assertIn(problem, violations[0][1])
        # Nothing was registered under any of them.
        listed = self.call("EnterpriseService", "ListEnterprises",
                           enterprise_pb2.ListEnterprisesRequest(page_size=1000), "AUDITOR")
        registered = {e.uscc for e in listed.enterprises}
        self.assertTrue(registered)
        self.assertFalse(registered & {bad, good, good[:17], good[:5] + "I" + good[6:]})

    def test_program_rules_with_several_problems_get_one_violation_each(self):
        from vch.v1 import program_pb2

        rules = self.rules(subsidy_ratio_bps=0, per_enterprise_cap_fen=2_000_000_000,
                           eligible_kinds=[], application_end_time=ts(-2),
                           price_ceiling_fen_per_gpu_hour=0, display_name="")
        violations = self.assert_fails(
            grpc.StatusCode.INVALID_ARGUMENT, "PROGRAM_RULES_INVALID", "ProgramService",
            "CreateProgram", program_pb2.CreateProgramRequest(
                request_id=self.request_id(), id="many-problems", rules=rules),
            "ISSUER_ADMIN:shanghai")
        self.assertEqual(sorted(f for f, _ in violations), [
            "rules.application_end_time", "rules.display_name", "rules.eligible_kinds",
            "rules.per_enterprise_cap_fen", "rules.price_ceiling_fen_per_gpu_hour",
            "rules.subsidy_ratio_bps"])
        # Missing timestamps are named each.
        rules = self.rules()
        rules.ClearField("redemption_start_time")
        rules.ClearField("redemption_end_time")
        violations = self.assert_fails(
            grpc.StatusCode.INVALID_ARGUMENT, "PROGRAM_RULES_INVALID", "ProgramService",
            "CreateProgram", program_pb2.CreateProgramRequest(
                request_id=self.request_id(), id="many-problems", rules=rules),
            "ISSUER_ADMIN:shanghai")
        self.assertEqual(sorted(f for f, _ in violations),
                         ["rules.redemption_end_time", "rules.redemption_start_time"])
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "PROGRAM_NOT_FOUND", "ProgramService",
                          "GetProgram", program_pb2.GetProgramRequest(id="many-problems"),
                          "AUDITOR")

    # --- idempotency ---

    def test_same_request_id_replays_and_a_different_request_is_refused(self):
        from vch.v1 import application_pb2, program_pb2

        self.open_program("replays", 1_000_000)
        admin = "ISSUER_ADMIN:shanghai"
        fund = program_pb2.FundProgramRequest(request_id="fund-once", id="replays",
                                              amount_fen=2_000_000, note="second tranche")
        first = self.call("ProgramService", "FundProgram", fund, admin)
        again = self.call("ProgramService", "FundProgram", fund, admin)
        self.assertEqual(again, first)
        self.assertEqual(first.program.funded_fen, 3_000_000)
        self.assertEqual(self.get_program("replays").budget_available_fen, 3_000_000)

        different = program_pb2.FundProgramRequest(request_id="fund-once", id="replays",
                                                   amount_fen=9_000_000)
        self.assert_fails(grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED",
                          "ProgramService", "FundProgram", different, admin)
        self.assertEqual(self.get_program("replays").funded_fen, 3_000_000)

        code = self.new_enterprise()
        submit = application_pb2.SubmitApplicationRequest(
            request_id="apply-once", program="replays", enterprise=code, requested_fen=500_000)
        one = self.call("ApplicationService", "SubmitApplication", submit, "ENTERPRISE:" + code)
        two = self.call("ApplicationService", "SubmitApplication", submit, "ENTERPRISE:" + code)
        self.assertEqual(two, one)
        submit.requested_fen = 600_000
        self.assert_fails(grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED",
                          "ApplicationService", "SubmitApplication", submit, "ENTERPRISE:" + code)
        listed = self.call("ApplicationService", "ListApplications",
                           application_pb2.ListApplicationsRequest(program="replays"), "AUDITOR")
        self.assertEqual([a.id for a in listed.applications], [one.application.id])

    # --- object-level authorization ---

    def test_another_issuers_staff_cannot_touch_the_program(self):
        from vch.v1 import application_pb2, program_pb2

        program = self.open_program("sh-only", 5_000_000)
        code = self.new_enterprise()
        application = self.submit("sh-only", code, 1_000_000)
        chengdu = "ISSUER_ADMIN:chengdu"
        rid = self.request_id
        for method, request in (
                ("FundProgram", program_pb2.FundProgramRequest(request_id=rid(), id="sh-only",
                                                               amount_fen=100)),
                ("OpenProgram", program_pb2.OpenProgramRequest(request_id=rid(), id="sh-only")),
                ("CloseProgram", program_pb2.CloseProgramRequest(request_id=rid(), id="sh-only")),
                ("UpdateProgram", program_pb2.UpdateProgramRequest(
                    request_id=rid(), id="sh-only", rules=self.rules()))):
            with self.subTest(method=method):
                self.assert_fails(grpc.StatusCode.NOT_FOUND, "PROGRAM_NOT_FOUND",
                                  "ProgramService", method, request, chengdu)
        for principal in ("REVIEWER:chengdu", chengdu):
            self.assert_fails(grpc.StatusCode.NOT_FOUND, "APPLICATION_NOT_FOUND",
                              "ApplicationService", "ApproveApplication",
                              self.approve_request(application.id, 1_000_000), principal)
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "AWARD_NOT_FOUND", "ApplicationService",
                          "ClawbackAward", application_pb2.ClawbackAwardRequest(
                              request_id=rid(), program="sh-only", enterprise=code,
                              amount_fen=1, reason="not ours"), chengdu)
        # Roles that may not do it at all are told so.
        self.assert_fails(grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED",
                          "ProgramService", "FundProgram",
                          program_pb2.FundProgramRequest(request_id=rid(), id="sh-only",
                                                         amount_fen=100),
                          "ENTERPRISE:" + code)
        after = self.get_program("sh-only")
        self.assertEqual(after, program)
        self.assertEqual(self.get_application(application.id), application)

    # --- the CLI against the same server ---

    def test_vch_cli_program_and_application_commands(self):
        program = self.open_program("cli-program", 123_456_789)
        code = self.new_enterprise()
        out = self.vch("AUDITOR", "program", "get", "cli-program")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"budget_available\s+1234567\.89 CNY")
        self.assertRegex(out.stdout, r"subsidy_ratio\s+80\.00 %")
        self.assertRegex(out.stdout, r"state\s+OPEN")

        # Submit through the CLI, retry with the same request id: one application.
        submit = ["--json", "application", "submit", "--program", "cli-program", "--enterprise",
                  code, "--requested-fen", "250000", "--purpose", "推理服务",
                  "--request-id", "cli-apply-1"]
        first = self.vch("ENTERPRISE:" + code, *submit)
        self.assertEqual(first.returncode, 0, first.stderr)
        first = json.loads(first.stdout)
        self.assertEqual(first["request_id"], "cli-apply-1")
        self.assertEqual(first["application"]["state"], "APPLICATION_STATE_SUBMITTED")
        self.assertEqual(first["application"]["requested_fen"], "250000")
        second = json.loads(self.vch("ENTERPRISE:" + code, *submit).stdout)
        self.assertEqual(second, first)
        app_id = first["application"]["id"]

        out = self.vch("REVIEWER:shanghai/chen.jie", "application", "approve", app_id,
                       "--amount-fen", "200000", "--note", "核减")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"awarded\s+2000\.00 CNY")
        self.assertRegex(out.stdout, r"request_id\s+[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-"
                                     r"[89ab][0-9a-f]{3}-[0-9a-f]{12}\n")

        out = self.vch("REVIEWER:shanghai", "--json", "application", "list", "--program",
                       "cli-program")
        self.assertEqual(out.returncode, 0, out.stderr)
        listed = json.loads(out.stdout)
        self.assertEqual([(a["id"], a["state"], a["awarded_fen"], a["enterprise"])
                          for a in listed["applications"]],
                         [(app_id, "APPLICATION_STATE_APPROVED", "200000", code)])
        self.assertEqual(listed["next_page_token"], "")
        out = self.vch("ENTERPRISE:" + uscc(999), "--json", "application", "list", "--program",
                       "cli-program")
        self.assertEqual(json.loads(out.stdout)["applications"], [])

        out = self.vch("AUDITOR", "--json", "program", "get", "cli-program")
        got = json.loads(out.stdout)["program"]
        self.assertEqual(got["budget_available_fen"], str(123_456_789 - 200_000))
        self.assertEqual(got["rules"]["category"], "PROGRAM_CATEGORY_AI_RENTAL")
        self.assertEqual(got["budget_account_id"], str(program.budget_account_id))

        # Errors carry their reason; a refused approval also prints its request id.
        out = self.vch("REVIEWER:shanghai", "--json", "application", "approve", app_id,
                       "--amount-fen", "1", "--request-id", "cli-again")
        self.assertEqual(out.returncode, 1)
        error = json.loads(out.stdout)["error"]
        self.assertEqual((error["reason"], error["request_id"]),
                         ("APPLICATION_NOT_PENDING", "cli-again"))
        out = self.vch("ISSUER_ADMIN:shanghai", "program", "fund", "cli-program",
                       "--amount-fen", "lots")
        self.assertEqual(out.returncode, 2)
        out = self.vch("ENTERPRISE:" + code, "--json", "award", "get", "--program",
                       "cli-program", "--enterprise", code)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["award"]["wallet_available_fen"], "200000")

    def test_vch_cli_program_create_from_a_rules_file(self):
        rules = {
            "display_name": "成都市科研机构算力券",
            "category": "PROGRAM_CATEGORY_RESEARCH",
            "planned_budget_fen": 10_000_000_000,
            "subsidy_ratio_bps": 7000,
            "per_enterprise_cap_fen": 100_000_000,
            "eligible_kinds": ["ENTERPRISE_KIND_RESEARCH_INSTITUTION"],
            "eligible_sizes": ["SIZE_CLASS_SMALL", "SIZE_CLASS_MEDIUM"],
            "local_enterprises_only": True,
            "application_start_time": "2026-01-01T00:00:00+08:00",
            "application_end_time": "2026-07-01T00:00:00+08:00",
            "redemption_start_time": "2026-01-01T00:00:00+08:00",
            "redemption_end_time": "2026-12-31T00:00:00+08:00",
            "datacenter_scope": "DATACENTER_SCOPE_LOCAL",
            "price_ceiling_fen_per_gpu_hour": 3000,
        }
        path = os.path.join(vchtest.ARGS.work, "rules.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(rules, f, ensure_ascii=False)
        out = self.vch("ISSUER_ADMIN:chengdu", "--json", "program", "create", "--id",
                       "cli-research", "--file", path)
        self.assertEqual(out.returncode, 0, out.stderr)
        created = json.loads(out.stdout)
        self.assertEqual(created["program"]["state"], "PROGRAM_STATE_DRAFT")
        self.assertEqual(created["program"]["rules"]["application_start_time"],
                         "2025-12-31T16:00:00Z")
        self.assertEqual(len(created["request_id"]), 36)
        # A misspelt field is a usage error, not a silently ignored one.
        with open(path, "w", encoding="utf-8") as f:
            json.dump(dict(rules, subsidy_ratio=1), f)
        out = self.vch("ISSUER_ADMIN:chengdu", "program", "update", "--id", "cli-research",
                       "--file", path)
        self.assertEqual(out.returncode, 2, out.stderr)
        # Rules the server refuses come back with their violations.
        with open(path, "w", encoding="utf-8") as f:
            json.dump(dict(rules, subsidy_ratio_bps=20000), f)
        out = self.vch("ISSUER_ADMIN:chengdu", "--json", "program", "update", "--id",
                       "cli-research", "--file", path)
        self.assertEqual(out.returncode, 1)
        error = json.loads(out.stdout)["error"]
        self.assertEqual(error["reason"], "PROGRAM_RULES_INVALID")
        self.assertEqual([v["field"] for v in error["field_violations"]],
                         ["rules.subsidy_ratio_bps"])
        out = self.vch("AUDITOR", "program", "list", "--issuer", "chengdu", "--state", "draft")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("cli-research", out.stdout)
        self.assertIn("成都市科研机构算力券", out.stdout)
        # A valid update of the draft, then it opens, and its rules are fixed.
        with open(path, "w", encoding="utf-8") as f:
            json.dump(dict(rules, subsidy_ratio_bps=7500), f)
        out = self.vch("ISSUER_ADMIN:chengdu", "program", "update", "--id", "cli-research",
                       "--file", path)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"subsidy_ratio\s+75\.00 %")
        out = self.vch("ISSUER_ADMIN:chengdu", "program", "open", "cli-research")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"state\s+OPEN")
        out = self.vch("ISSUER_ADMIN:chengdu", "--json", "program", "update", "--id",
                       "cli-research", "--file", path)
        self.assertEqual(json.loads(out.stdout)["error"]["reason"], "PROGRAM_NOT_DRAFT")

    def test_vch_cli_enterprise_register_reports_a_bad_check_character(self):
        good = uscc(700, "510107")
        args = ["enterprise", "register", "--uscc", with_wrong_check(good), "--name",
                "成都锦城遥感应用研究所", "--region", "510107", "--kind", "research", "--size",
                "small"]
        out = self.vch("PLATFORM_ADMIN", *args)
        self.assertEqual(out.returncode, 1)
        self.assertIn("enterprise.uscc: check character should be " + good[-1], out.stderr)
        self.assertIn("request_id: ", out.stderr)
        args[3] = good
        out = self.vch("ENTERPRISE:" + good, "--json", *args)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["enterprise"]["kind"],
                         "ENTERPRISE_KIND_RESEARCH_INSTITUTION")
        out = self.vch("REVIEWER:chengdu", "enterprise", "get", good)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"kind\s+RESEARCH_INSTITUTION\n")
        self.assertEqual(self.vch("PLATFORM_ADMIN", *args[:-1], "huge").returncode, 2)


if __name__ == "__main__":
    unittest.main(argv=vchtest.parse_args(), verbosity=2)
