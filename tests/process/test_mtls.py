"""Production mode: mTLS, the principal taken from the client certificate's ecard:// URI SAN."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ecard import (
    AdminClient,
    ChannelClient,
    ClientOptions,
    PermissionDenied,
    PharmacyClient,
    TokenSigner,
    Unauthenticated,
    generate_private_key,
    physical_cards,
    public_key_pem,
)
from ecard.testing import EcardServer
from ecard.v1 import types_pb2 as t


def test_principal_comes_from_the_client_certificate(pki: dict) -> None:
    folder = pki["folder"]
    server = EcardServer(
        extra_args=["--tls-cert", str(folder / "server.crt"), "--tls-key", str(folder / "server.key"),
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
        signer = TokenSigner(key, issuer_id="tls-bank", kid=kid)
        with ChannelClient(server.target, issuer_id="tls-bank", signer=signer, options=opts["channel"]) as channel:
            ecard_id = channel.issue_ecard("M00000001", "周一", "330203198001010011",
                                           assurance=t.ASSURANCE_FACE).ecard_id
        token = signer.mint(ecard_id)
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
