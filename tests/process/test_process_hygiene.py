"""What an SRE's process supervisor and probes rely on: a TLS key that does not match is said as such,
SIGHUP reloads the server certificate and the client CA without a restart, readiness can be probed in
plaintext under mTLS (a health-only listener), and a draining server reports NOT_SERVING while it still
answers."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ecard import AdminClient, ClientOptions, Unavailable, write_private_file
from ecard.testing import EcardServer, free_port
from loadtest.rig.pki import CertificateAuthority, new_key_pem

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def serve_args(folder: Path) -> list[str]:
    return ["--tls-cert", str(folder / "server.crt"), "--tls-key", str(folder / "server.key"),
            "--client-ca", str(folder / "ca.pem")]


def test_a_key_that_does_not_match_its_certificate_is_said_as_such(tmp_path: Path) -> None:
    CertificateAuthority(tmp_path)  # ca.pem, server.crt, server.key
    write_private_file(tmp_path / "other.key", new_key_pem())
    done = subprocess.run(
        [sys.executable, "-m", "ecard_server.cli", "serve", "--db", f"sqlite:///{tmp_path}/x.db", "--listen",
         f"127.0.0.1:{free_port()}", "--tls-cert", str(tmp_path / "server.crt"), "--tls-key",
         str(tmp_path / "other.key"), "--client-ca", str(tmp_path / "ca.pem")],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"ecard: error: TLS key {tmp_path / 'other.key'} does not match the certificate "
                                   f"{tmp_path / 'server.crt'}")


def server_certificate(port: int, client: tuple[bytes, bytes], ca: bytes) -> x509.Certificate:
    """The certificate the server presents to a new connection (a TLS handshake with a client certificate)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cadata=ca.decode())
    context.set_alpn_protocols(["h2"])
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = Path(tmp) / "c.pem", Path(tmp) / "c.key"
        cert_path.write_bytes(client[0])
        write_private_file(key_path, client[1])
        context.load_cert_chain(cert_path, key_path)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_sighup_reloads_the_server_certificate_and_the_client_ca(tmp_path: Path) -> None:
    authority = CertificateAuthority(tmp_path)
    admin = authority.certificate("ops", "ecard://admin")
    server = EcardServer(extra_args=serve_args(tmp_path), client_options=ClientOptions(tls=admin))
    with server:
        assert server.process is not None
        before = server_certificate(server.port, (admin.client_cert, admin.client_key), admin.ca_cert)
        # A new CA: the server's certificate and the client CA file change on disk; a client of the new
        # CA is refused until the server is told.
        (tmp_path / "renewed").mkdir()
        renewed = CertificateAuthority(tmp_path / "renewed")
        new_admin = renewed.certificate("ops-2", "ecard://admin")
        for name in ("server.crt", "server.key", "ca.pem"):
            (tmp_path / name).write_bytes((tmp_path / "renewed" / name).read_bytes())
        with AdminClient(server.target, options=ClientOptions(tls=new_admin, timeout=2)) as refused, \
                pytest.raises(Unavailable):
            refused.list_keys()
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30  # a loaded machine: the reload is at once, the handshake may be slow
        while True:
            try:  # until the reload, the old certificate is presented: the new CA cannot verify it
                after = server_certificate(server.port, (new_admin.client_cert, new_admin.client_key),
                                           new_admin.ca_cert)
            except ssl.SSLCertVerificationError:
                after = before
            if after.serial_number != before.serial_number:
                break
            assert time.monotonic() < deadline, "the server still presents its old certificate"
            time.sleep(0.1)
        with AdminClient(server.target, options=ClientOptions(tls=new_admin)) as accepted:
            accepted.list_keys()
        assert server.process.poll() is None  # reloaded, not restarted


def test_a_bad_reload_keeps_the_files_in_use(tmp_path: Path) -> None:
    authority = CertificateAuthority(tmp_path)
    admin = authority.certificate("ops", "ecard://admin")
    server = EcardServer(extra_args=serve_args(tmp_path), client_options=ClientOptions(tls=admin),
                         log_path=tmp_path / "serve.log")
    with server:
        assert server.process is not None
        write_private_file(tmp_path / "server.key", new_key_pem())  # does not match server.crt
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "tls_reload_failed" not in (tmp_path / "serve.log").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        with AdminClient(server.target, options=ClientOptions(tls=admin)) as still:
            still.list_keys()


def test_readiness_can_be_probed_in_plaintext_under_mtls(tmp_path: Path) -> None:
    authority = CertificateAuthority(tmp_path)
    admin = authority.certificate("ops", "ecard://admin")
    health_port = free_port()
    server = EcardServer(extra_args=[*serve_args(tmp_path), "--health-listen", f"127.0.0.1:{health_port}"],
                         client_options=ClientOptions(tls=admin))
    with server, grpc.insecure_channel(f"127.0.0.1:{health_port}") as probe:
        health = health_pb2_grpc.HealthStub(probe)
        for service in ("", "ecard.v1.Verifier", "ecard.v1.Settlement"):
            assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status == SERVING
        # nothing else answers there: no ecard service, no reflection
        list_issuers = probe.unary_unary("/ecard.v1.Admin/ListIssuers")
        with pytest.raises(grpc.RpcError) as other:
            list_issuers(b"", timeout=5)
        assert other.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_a_draining_server_reports_not_serving_while_it_still_answers(tmp_path: Path) -> None:
    server = EcardServer(extra_args=["--drain-delay", "2", "--grace", "2"])
    with server, grpc.insecure_channel(server.target) as channel:
        assert server.process is not None
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status == SERVING
        server.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status != NOT_SERVING:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        seen_not_serving = time.monotonic()
        # still answering calls for the delay: a health check is a call like any other
        answered = 0
        while time.monotonic() - seen_not_serving < 1.0:
            health.Check(health_pb2.HealthCheckRequest(service="ecard.v1.Verifier"), timeout=5)
            answered += 1
            time.sleep(0.05)
        assert answered >= 5
        assert server.process.wait(15) == 0


def test_the_metrics_port_answers_only_on_metrics() -> None:
    port = free_port()
    with EcardServer(extra_args=["--metrics-listen", f"127.0.0.1:{port}"]):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            body = answer.read().decode()
        assert answer.status == 200 and "ecard_rpc_requests_total" in body
        version = subprocess.run([sys.executable, "-m", "ecard_server.cli", "--version"], capture_output=True,
                                 text=True, timeout=30).stdout.strip()
        assert version.startswith("ecard ") and f'version="{version.split()[1]}"' in body  # ecard_build_info
        for path in ("/", "/favicon.ico", "/metrics/x", "/healthz"):
            with pytest.raises(urllib.error.HTTPError) as missing:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5)
            assert missing.value.code == 404, path
