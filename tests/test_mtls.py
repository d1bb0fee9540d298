"""Production mode: mTLS, the principal taken from the client certificate's ecard:// URI SAN."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ecard import (
    AdminClient,
    ChannelClient,
    ClientOptions,
    PermissionDenied,
    PharmacyClient,
    TLSConfig,
    TokenSigner,
    Unauthenticated,
    generate_private_key,
    physical_cards,
    public_key_pem,
)
from ecard.testing import EcardServer
from ecard.v1 import types_pb2 as t

NOW = datetime.datetime.now(datetime.timezone.utc)


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, *,
          uris: list[str] = (), server: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(minutes=5))
        .not_valid_after(NOW + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
    if server:
        names += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TLSConfig | Path]:
    folder = tmp_path_factory.mktemp("pki")
    ca = _cert("ecard test CA", None)
    ca_pem = ca[0].public_bytes(serialization.Encoding.PEM)
    server_cert, server_key = _cert("ecard server", ca, server=True)
    (folder / "ca.pem").write_bytes(ca_pem)
    (folder / "server.pem").write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(_pem(server_key))
    out: dict[str, TLSConfig | Path] = {"folder": folder}
    for who, uris in {
        "admin": ["ecard://admin"],
        "channel": ["ecard://channel/tls-bank"],
        "merchant": ["ecard://merchant/tls-pharmacy"],
        "nobody": ["https://example.invalid/not-ecard"],
    }.items():
        cert, key = _cert(who, ca, uris=uris)
        out[who] = TLSConfig(ca_pem, cert.public_bytes(serialization.Encoding.PEM), _pem(key), server_name="localhost")
    return out


def test_principal_comes_from_the_client_certificate(pki: dict) -> None:
    folder = pki["folder"]
    server = EcardServer(
        extra_args=["--tls-cert", str(folder / "server.pem"), "--tls-key", str(folder / "server.key"),
                    "--client-ca", str(folder / "ca.pem")],
        client_options=ClientOptions(tls=pki["admin"]),
    )
    opts = {who: ClientOptions(tls=pki[who]) for who in ("admin", "channel", "merchant", "nobody")}
    with server:
        key = generate_private_key()
        with AdminClient(server.target, options=opts["admin"]) as admin:
            admin.upsert_issuer("tls-bank", "TLS Bank")
            kid = admin.register_key("tls-bank", public_key_pem(key)).kid
            admin.upsert_merchant("tls-pharmacy", kind=t.MERCHANT_KIND_PHARMACY)
            admin.enroll_cards(physical_cards([("M00000001", "周一", "330203198001010011", "330200", 0)]))
        with ChannelClient(server.target, issuer_id="tls-bank", options=opts["channel"]) as channel:
            ecard_id = channel.issue_ecard("M00000001", "周一", "330203198001010011").ecard_id
        token = TokenSigner(key, issuer_id="tls-bank", kid=kid).mint(ecard_id)
        # metadata cannot override the certificate: the merchant cert may verify, nobody else
        with PharmacyClient(server.target, merchant_id="tls-pharmacy", options=opts["merchant"]) as pos:
            assert pos.verify(token, purpose=t.PURPOSE_IDENTITY).reason == t.REASON_OK
        with PharmacyClient(server.target, merchant_id="tls-pharmacy", options=opts["channel"]) as pos, \
                pytest.raises(PermissionDenied):
            pos.verify(token, purpose=t.PURPOSE_IDENTITY)
        with PharmacyClient(server.target, merchant_id="tls-pharmacy", options=opts["nobody"]) as pos, \
                pytest.raises(Unauthenticated):
            pos.verify(token, purpose=t.PURPOSE_IDENTITY)
        # no client certificate at all: the handshake is refused before any call
        credentials = grpc.ssl_channel_credentials(pki["admin"].ca_cert)
        override = [("grpc.ssl_target_name_override", "localhost")]
        with grpc.secure_channel(server.target, credentials, override) as ch, pytest.raises(grpc.RpcError) as caught:
            health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=3)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_tls_options_must_come_together(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "ecard_server.cli", "serve", "--tls-cert", "x.pem",
                             "--db", f"sqlite:///{tmp_path}/x.db"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "--tls-key" in result.stderr
