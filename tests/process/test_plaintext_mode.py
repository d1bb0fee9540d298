"""Plaintext is not a way in: without `ecard serve --dev-principals`, the `x-ecard-principal` metadata
names nobody. Attack: any local user (even `nobody`) sends `x-ecard-principal: admin` to the loopback
port and credits an account. Before the flag existed that call succeeded; now it is UNAUTHENTICATED,
while health and reflection still answer and the server says at start what it serves."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from ecard import AdminClient, EcardError
from ecard.testing import EcardServer, World
from ecard.v1 import admin_pb2, admin_pb2_grpc


def test_without_dev_principals_metadata_names_nobody_and_only_health_and_reflection_answer() -> None:
    with EcardServer(dev_principals=False) as server:
        with grpc.insecure_channel(server.target) as channel:
            admin = admin_pb2_grpc.AdminStub(channel)
            for who in ("admin", "merchant:m1", "channel:bank"):
                with pytest.raises(grpc.RpcError) as caught:
                    admin.UpsertIssuer(admin_pb2.Issuer(issuer_id="evil", display_name="x"),
                                       metadata=(("x-ecard-principal", who),), timeout=5)
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, who
                assert "--dev-principals" in (caught.value.details() or "")
            with pytest.raises(grpc.RpcError) as caught:
                admin.CreditAccount(admin_pb2.CreditRequest(card_no="A1", amount_fen=10**9, idempotency_key="k"),
                                    metadata=(("x-ecard-principal", "admin"),), timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            assert "ecard.v1.Admin" in set(ProtoReflectionDescriptorDatabase(channel).get_services())
        assert "only health and reflection answer" in server.output()
        assert '"dev_principals": false' in server.logs()


def test_with_dev_principals_the_metadata_names_the_caller_and_the_server_says_so() -> None:
    with EcardServer() as server:  # ecard.testing passes --dev-principals on plaintext
        assert "--dev-principals" in server.command()
        with AdminClient(server.target) as admin:
            admin.upsert_issuer("bank-dev", "Dev Bank")
        assert "development mode (--dev-principals)" in server.output()


def test_dev_principals_with_mtls_is_refused(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from ecard_server.cli import main

    for name in ("c.pem", "k.pem", "ca.pem"):
        (tmp_path / name).write_text("x")
    status = main(["serve", "--db", f"sqlite:///{tmp_path}/e.db", "--listen", "127.0.0.1:0", "--dev-principals",
                   "--tls-cert", str(tmp_path / "c.pem"), "--tls-key", str(tmp_path / "k.pem"),
                   "--client-ca", str(tmp_path / "ca.pem")])
    assert status == 2
    assert "--dev-principals is for plaintext on loopback" in capsys.readouterr().err


def test_world_seeding_needs_the_flag() -> None:
    with EcardServer(dev_principals=False) as server, pytest.raises(EcardError) as caught:
        World.seed(server.target, cards=1)
    assert caught.value.status_name == "UNAUTHENTICATED"

