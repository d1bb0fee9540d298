"""What an operator sees of mTLS callers: failed TLS handshakes counted on /metrics, refusals naming the
certificate's principal in the request log.

The bad handshakes are made with Python's ssl module and raw sockets, one connection each, so each is
exactly one handshake: a client that trusts another CA (it hangs up on the server's certificate),
plaintext HTTP/2 to the TLS port, a client certificate signed by another CA. The good ones are real
gRPC channels that make one call and close at once (the shortest a client can be).
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from ecard import ClientOptions, TLSConfig
from ecard.testing import EcardServer, free_port
from ecard.v1 import types_pb2 as t
from ecard.v1 import verifier_pb2, verifier_pb2_grpc
from loadtest.rig.pki import SERVER_NAME, CertificateAuthority
from tests.helpers.deployment import scrape
from tests.helpers.polling import until

COUNTERS = ("ecard_tls_handshakes_total", "ecard_tls_handshakes_completed_total", "ecard_tls_handshake_failures_total")
SETTLE_S = 20  # the server's handshake timeout (10 s), its readings twice a second, and a loaded machine


@pytest.fixture(scope="module")
def tls_server(pki: dict) -> Iterator[tuple[EcardServer, int]]:
    folder = pki["folder"]
    metrics_port = free_port()
    server = EcardServer(
        extra_args=["--tls-cert", str(folder / "server.crt"), "--tls-key", str(folder / "server.key"),
                    "--client-ca", str(folder / "ca.pem"), "--metrics-listen", f"127.0.0.1:{metrics_port}"],
        client_options=ClientOptions(tls=pki["admin"]), dev_principals=False,
    )
    with server:
        yield server, metrics_port


def counts(metrics_port: int) -> tuple[float, ...]:
    """Handshakes begun, completed and failed, as /metrics says now."""
    return tuple(scrape(metrics_port, name).get("", 0.0) for name in COUNTERS)


def handshake(target: str, context: ssl.SSLContext) -> str:
    """One connection, one TLS handshake as `context` has it; what the client saw."""
    host, port = target.rsplit(":", 1)
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls:
                tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                return "answered" if tls.recv(64) else "closed"
        except (ssl.SSLError, OSError) as exc:
            return type(exc).__name__


def plaintext(target: str) -> bytes:
    host, port = target.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        try:
            return raw.recv(64)
        except OSError:
            return b""


def one_call(target: str, tls: TLSConfig) -> grpc.StatusCode:
    """A gRPC channel that makes one Verify (refused: the rig's channel may not verify) and closes."""
    credentials = grpc.ssl_channel_credentials(tls.ca_cert, tls.client_key, tls.client_cert)
    with grpc.secure_channel(target, credentials, [("grpc.ssl_target_name_override", SERVER_NAME)]) as channel:
        try:
            verifier_pb2_grpc.VerifierStub(channel).Verify(
                verifier_pb2.VerifyRequest(token="EC1:X", purpose=t.PURPOSE_IDENTITY), timeout=5)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def settled(metrics_port: int, before: tuple[float, ...]) -> tuple[float, ...]:
    """The counters' rise since `before`, once every handshake begun since is completed or failed."""

    def rise() -> tuple[float, ...] | None:
        now = tuple(after - then for after, then in zip(counts(metrics_port), before, strict=True))
        return now if now[0] == now[1] + now[2] else None

    return until(rise, within=SETTLE_S, what="every handshake completed or failed", interval=0.5)[0]


def test_failed_handshakes_are_counted(tls_server: tuple[EcardServer, int], pki: dict, tmp_path: Path) -> None:
    server, metrics_port = tls_server
    folder = pki["folder"]
    other = CertificateAuthority(tmp_path / "other-ca")
    other.client("channel:tls-bank")  # the same principal, signed by a CA the server does not trust
    settled(metrics_port, (0.0, 0.0, 0.0))  # the start-up health checks settled
    before = counts(metrics_port)

    # two good connections: completed, not failed, though each closes right after its one call
    assert one_call(server.target, pki["channel"]) == grpc.StatusCode.PERMISSION_DENIED
    assert one_call(server.target, pki["channel"]) == grpc.StatusCode.PERMISSION_DENIED

    wrong_ca = ssl.create_default_context(cafile=str(other.ca))  # does not trust the server's certificate
    wrong_ca.load_cert_chain(folder / "channel.crt", folder / "channel.key")
    assert handshake(server.target, wrong_ca) == "SSLCertVerificationError"

    assert not plaintext(server.target).startswith(b"\x00")  # no HTTP/2 frame comes back to plaintext

    foreign = ssl.create_default_context(cafile=str(folder / "ca.pem"))
    foreign.load_cert_chain(other.folder / "channel-tls-bank.crt", other.folder / "channel-tls-bank.key")
    assert handshake(server.target, foreign) != "answered"

    begun, completed, failed = settled(metrics_port, before)
    assert (begun, completed, failed) == (5, 2, 3)


def test_refusals_name_the_certificate_principal(tls_server: tuple[EcardServer, int], pki: dict) -> None:
    server, _ = tls_server
    assert one_call(server.target, pki["channel"]) == grpc.StatusCode.PERMISSION_DENIED  # tls-bank: no issuer yet
    assert one_call(server.target, pki["nobody"]) == grpc.StatusCode.UNAUTHENTICATED  # no ecard:// SAN
    lines = [json.loads(line) for line in server.logs().splitlines() if '"event": "rpc"' in line]
    refused = [(line["code"], line["reason"], line["principal"]) for line in lines if line["method"] == "Verify"]
    assert ("PERMISSION_DENIED", "ROLE_NOT_ALLOWED", "channel:tls-bank") in refused
    assert ("UNAUTHENTICATED", "BAD_PRINCIPAL", "unknown") in refused
