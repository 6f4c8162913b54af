"""vchd's life: start-up errors are one line and a non-zero exit, health follows the database
down and up without a restart, and SIGTERM/SIGINT drain and exit 0."""

import os
import signal
import subprocess
import sys
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vchtest  # noqa: E402


def run_vchd(*args, timeout=30):
    start = time.time()
    out = subprocess.run([vchtest.ARGS.vchd, *args], capture_output=True, text=True,
                         timeout=timeout)
    return out, time.time() - start


class StartupErrorTest(unittest.TestCase):
    def assert_one_line_error(self, out, code, needle):
        self.assertEqual(out.returncode, code, out.stderr)
        lines = out.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, out.stderr)
        self.assertIn(needle, lines[0])
        self.assertTrue(lines[0].startswith("vchd: "), lines[0])

    def test_unknown_flag(self):
        out, _ = run_vchd("--frobnicate", "--dsn", "x")
        self.assert_one_line_error(out, 2, "unknown flag --frobnicate")

    def test_missing_dsn(self):
        env = dict(os.environ)
        env.pop("VCH_DSN", None)
        out = subprocess.run([vchtest.ARGS.vchd], capture_output=True, text=True, timeout=30,
                             env=env)
        self.assert_one_line_error(out, 2, "--dsn")

    def test_bad_dsn(self):
        out, _ = run_vchd("--dsn", "no_such_keyword=1")
        self.assert_one_line_error(out, 1, 'invalid connection option "no_such_keyword"')

    def test_unreachable_database_fails_fast(self):
        out, seconds = run_vchd("--dsn", "host=/nonexistent-vch port=5432")
        self.assert_one_line_error(out, 1, "cannot connect to the database")
        self.assertLess(seconds, 10)
        out, seconds = run_vchd("--dsn", "host=127.0.0.1 port=1 connect_timeout=2")
        self.assert_one_line_error(out, 1, "cannot connect to the database")
        self.assertLess(seconds, 10)

    def test_help_documents_options(self):
        out, _ = run_vchd("--help")
        self.assertEqual(out.returncode, 0)
        self.assertIn("--dsn", out.stdout)
        self.assertIn("VCH_POOL_SIZE", out.stdout)


class LifecycleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = vchtest.Cluster("pg")
        cls.dsn = cls.cluster.start()

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()

    def make_db(self, name, migrate=True):
        vchtest.psql(self.dsn, "DROP DATABASE IF EXISTS %s" % name)
        vchtest.psql(self.dsn, "CREATE DATABASE %s" % name)
        dsn = self.dsn + " dbname=" + name
        if migrate:
            out, _ = run_vchd("migrate", "--dsn", dsn)
            self.assertEqual(out.returncode, 0, out.stderr)
        return dsn

    def test_refuses_an_unmigrated_schema(self):
        dsn = self.make_db("unmigrated", migrate=False)
        out, _ = run_vchd("--dsn", dsn, "--listen", "127.0.0.1:0")
        self.assertEqual(out.returncode, 1)
        self.assertIn("run `vchd migrate`", out.stderr)
        self.assertEqual(len(out.stderr.strip().splitlines()), 1, out.stderr)

    def test_migrate_twice_is_a_no_op(self):
        dsn = self.make_db("twice")
        out, _ = run_vchd("migrate", "--dsn", dsn)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn('"applied":""', out.stderr)

    def test_health_follows_the_database_without_restart(self):
        from grpc.health.v1 import health_pb2, health_pb2_grpc
        from vch.v1 import identity_pb2, identity_pb2_grpc

        dsn = self.make_db("health")
        vchd = vchtest.Vchd(dsn, name="health")
        try:
            channel = grpc.insecure_channel(vchd.address)
            health = health_pb2_grpc.HealthStub(channel)
            serving = health_pb2.HealthCheckResponse.SERVING
            not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
            vchtest.wait_for_health(health, serving)
            self.cluster.stop()
            vchtest.wait_for_health(health, not_serving)
            self.assertIsNone(vchd.proc.poll(), "vchd must keep running while the database is down")
            self.cluster.start()
            vchtest.wait_for_health(health, serving)
            identity = identity_pb2_grpc.IdentityServiceStub(channel)
            response = identity.WhoAmI(identity_pb2.WhoAmIRequest(),
                                       metadata=[("x-vch-principal", "AUDITOR")], timeout=5)
            self.assertEqual(response.principal.role, 6)
            channel.close()
        finally:
            code = vchd.stop()
        self.assertEqual(code, 0, vchd.logs())
        logs = vchd.logs()
        self.assertIn('"msg":"database unhealthy: NOT_SERVING"', logs)
        self.assertIn('"msg":"stopped"', logs)

    def test_sigint_drains_and_exits_zero(self):
        dsn = self.make_db("sigint")
        vchd = vchtest.Vchd(dsn, name="sigint")
        vchd.proc.send_signal(signal.SIGINT)
        self.assertEqual(vchd.proc.wait(timeout=30), 0)
        vchd.stop()
        self.assertIn('"signal":"SIGINT"', vchd.logs())

    def test_port_in_use_is_a_one_line_error(self):
        dsn = self.make_db("port")
        vchd = vchtest.Vchd(dsn, name="port")
        try:
            out, _ = run_vchd("--dsn", dsn, "--listen", vchd.address)
            self.assertEqual(out.returncode, 1)
            self.assertIn("cannot listen on " + vchd.address, out.stderr)
        finally:
            self.assertEqual(vchd.stop(), 0)


if __name__ == "__main__":
    unittest.main(argv=vchtest.parse_args(), verbosity=2)
