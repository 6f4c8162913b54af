"""vchd's public surface through Debian's python3-grpcio: health, reflection, authentication
and error details, plus the vch CLI against the same server."""

import json
import os
import subprocess
import sys
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vchtest  # noqa: E402


class ApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        base = os.environ["VCH_TEST_DSN"]
        db = "e2e_api_%d" % os.getpid()
        vchtest.psql(base + " dbname=postgres", "CREATE DATABASE %s TEMPLATE vch_template" % db)
        cls.vchd = vchtest.Vchd(base + " dbname=" + db)
        cls.channel = grpc.insecure_channel(cls.vchd.address)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        code = cls.vchd.stop()
        assert code == 0, "vchd exited with %d: %s" % (code, cls.vchd.logs())

    def whoami(self, principal=None, channel=None):
        from vch.v1 import identity_pb2, identity_pb2_grpc

        stub = identity_pb2_grpc.IdentityServiceStub(channel or self.channel)
        metadata = [("x-vch-principal", principal)] if principal else []
        return stub.WhoAmI(identity_pb2.WhoAmIRequest(), metadata=metadata, timeout=5)

    def test_health_reports_serving(self):
        from grpc.health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.channel)
        response = stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        self.assertEqual(response.status, health_pb2.HealthCheckResponse.SERVING)

    def test_reflection_lists_services_and_serves_descriptors(self):
        from google.protobuf import descriptor_pb2
        from grpc.reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        stub = reflection_pb2_grpc.ServerReflectionStub(self.channel)
        responses = list(stub.ServerReflectionInfo(iter([
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="vch.v1.IdentityService"),
        ]), timeout=5))
        names = {s.name for s in responses[0].list_services_response.service}
        self.assertIn("vch.v1.IdentityService", names)
        self.assertIn("grpc.health.v1.Health", names)
        self.assertIn("grpc.reflection.v1alpha.ServerReflection", names)
        files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
                 for raw in responses[1].file_descriptor_response.file_descriptor_proto]
        identity = [f for f in files if f.name == "vch/v1/identity.proto"]
        self.assertEqual(len(identity), 1)
        self.assertEqual(identity[0].package, "vch.v1")
        self.assertEqual([m.name for m in identity[0].service[0].method], ["WhoAmI"])

    def test_whoami_returns_the_header_principal(self):
        response = self.whoami("ENTERPRISE:91310000MA1FL4XY2K/alice")
        self.assertEqual(response.principal.role, 4)  # ROLE_ENTERPRISE
        self.assertEqual(response.principal.tenant, "91310000MA1FL4XY2K")
        self.assertEqual(response.principal.subject, "alice")
        self.assertGreaterEqual(response.schema_version, 1)

    def test_principals_are_per_call_on_one_connection(self):
        for i in range(20):
            tenant = "dc-%d" % i
            self.assertEqual(self.whoami("OPERATOR:" + tenant).principal.tenant, tenant)
            self.assertEqual(self.whoami("AUDITOR").principal.tenant, "")
        with self.assertRaises(grpc.RpcError) as caught:
            self.whoami()
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED)

    def test_missing_principal_is_unauthenticated_with_reason(self):
        with self.assertRaises(grpc.RpcError) as caught:
            self.whoami()
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(vchtest.error_details(caught.exception)[0], "UNAUTHENTICATED")

    def test_malformed_principal_is_unauthenticated_with_reason(self):
        for bad in ("WIZARD", "ENTERPRISE", "AUDITOR:x", "OPERATOR:a b"):
            with self.assertRaises(grpc.RpcError) as caught:
                self.whoami(bad)
            self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED, bad)
            self.assertEqual(vchtest.error_details(caught.exception)[0], "PRINCIPAL_INVALID", bad)

    def test_oversized_message_is_refused(self):
        from grpc.reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        stub = reflection_pb2_grpc.ServerReflectionStub(self.channel)
        huge = reflection_pb2.ServerReflectionRequest(file_by_filename="x" * (5 << 20))
        with self.assertRaises(grpc.RpcError) as caught:
            list(stub.ServerReflectionInfo(iter([huge]), timeout=10))
        self.assertEqual(caught.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)

    def test_vch_cli_health_and_whoami(self):
        out = subprocess.run([vchtest.ARGS.vch, "--server", self.vchd.address, "health"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "SERVING")
        out = subprocess.run([vchtest.ARGS.vch, "--server", self.vchd.address, "--json",
                              "--principal", "ISSUER_ADMIN:shanghai", "whoami"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["role"], "ISSUER_ADMIN")
        self.assertEqual(json.loads(out.stdout)["tenant"], "shanghai")
        out = subprocess.run([vchtest.ARGS.vch, "--server", self.vchd.address, "--json", "whoami"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 1)
        self.assertEqual(json.loads(out.stdout)["error"]["reason"], "UNAUTHENTICATED")


if __name__ == "__main__":
    unittest.main(argv=vchtest.parse_args(), verbosity=2)
