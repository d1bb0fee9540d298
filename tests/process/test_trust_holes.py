"""The smaller holes of issue 17, each tried as an attacker would, against a real `ecard serve`.

- a client certificate naming several ecard:// principals: UNAUTHENTICATED (before: the first won);
- under mTLS the SDK and CLI send the merchant id they were configured with: a certificate of another
  merchant is PERMISSION_DENIED (before: the call silently acted as the certificate's merchant);
- GetSettlement and Refund answer another merchant's settlement exactly as an unknown id (before:
  PERMISSION_DENIED told the id exists);
- terminal_id and other free text with a line break or a bidirectional override are refused before
  they reach the audit trail (before: written there as sent);
- refused and unauthenticated calls are logged at a bounded rate (before: one line each);
- a malformed --redis or --db URL never prints its password (before: quoted whole);
- the metrics listener refuses a non-loopback address unless --metrics-allow-remote.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from ecard import (
    AdminClient,
    ChannelClient,
    ClientOptions,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PharmacyClient,
    TokenSigner,
    Unauthenticated,
    generate_private_key,
    line_item,
    physical_cards,
    public_key_pem,
)
from ecard.testing import EcardServer, World
from ecard.v1 import types_pb2 as t
from ecard.v1 import verifier_pb2, verifier_pb2_grpc
from loadtest.rig.pki import SERVER_NAME, CertificateAuthority

SETTLE = {"purpose": t.PURPOSE_MEDICAL_SETTLEMENT, "min_assurance": t.ASSURANCE_PIN}


@pytest.fixture(scope="module")
def mtls(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[EcardServer, CertificateAuthority, TokenSigner, str]]:
    authority = CertificateAuthority(tmp_path_factory.mktemp("pki"))
    admin = ClientOptions(tls=authority.client("admin"))
    with EcardServer(extra_args=authority.server_args(), client_options=admin) as server:
        key = generate_private_key()
        with AdminClient(server.target, options=admin) as operator:
            operator.upsert_issuer("holes-bank", "Bank")
            kid = operator.register_key("holes-bank", public_key_pem(key)).kid
            for merchant in ("holes-ph-a", "holes-ph-b"):
                operator.upsert_merchant(merchant, kind=t.MERCHANT_KIND_PHARMACY)
            operator.enroll_cards(physical_cards([("H00000001", "周一", "330203198001010011", "330200", 100_000)]))
        signer = TokenSigner(key, issuer_id="holes-bank", kid=kid)
        channel_tls = ClientOptions(tls=authority.client("channel:holes-bank"))
        with ChannelClient(server.target, issuer_id="holes-bank", signer=signer, options=channel_tls) as channel:
            ecard_id = channel.issue_ecard("H00000001", "周一", "330203198001010011",
                                           assurance=t.ASSURANCE_FACE).ecard_id
        yield server, authority, signer, ecard_id


def test_a_certificate_naming_several_principals_is_refused(mtls) -> None:  # type: ignore[no-untyped-def]
    server, authority, signer, ecard_id = mtls
    both = ClientOptions(tls=authority.certificate("two", "ecard://merchant/holes-ph-a", "ecard://admin"))
    with PharmacyClient(server.target, merchant_id="holes-ph-a", options=both) as pos, \
            pytest.raises(Unauthenticated) as caught:
        pos.verify(signer.mint(ecard_id), **SETTLE)
    assert caught.value.reason == "BAD_PRINCIPAL" and "several" in str(caught.value)
    with AdminClient(server.target, options=ClientOptions(tls=authority.certificate(
            "two-admin", "ecard://admin", "ecard://merchant/holes-ph-a"))) as admin, pytest.raises(Unauthenticated):
        admin.upsert_issuer("evil", "Evil")


def test_the_sdk_and_cli_send_their_merchant_id_so_another_certificate_is_refused(mtls, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, authority, signer, ecard_id = mtls
    cert_a = authority.client("merchant:holes-ph-a")
    token = signer.mint(ecard_id)
    with PharmacyClient(server.target, merchant_id="holes-ph-b", options=ClientOptions(tls=cert_a)) as pos:
        with pytest.raises(PermissionDenied) as caught:
            pos.verify(token, **SETTLE)
        assert caught.value.reason == "PRINCIPAL_MISMATCH"
        with pytest.raises(PermissionDenied):
            pos.settle([line_item("X1", "drug", t.DRUG_CLASS_A, 100)], token=token, idempotency_key=uuid.uuid4().hex)
        with pytest.raises(PermissionDenied):
            list(pos.verify_stream([verifier_pb2.VerifyRequest(token=token, purpose=t.PURPOSE_IDENTITY,
                                                               request_id="s1")]))
    with PharmacyClient(server.target, merchant_id="holes-ph-a", options=ClientOptions(tls=cert_a)) as pos:
        assert pos.verify(token, **SETTLE).reason == t.REASON_OK  # the token was not consumed by the refusals
    for name, data in (("ca.pem", cert_a.ca_cert), ("a.pem", cert_a.client_cert), ("a.key", cert_a.client_key)):
        (tmp_path / name).write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-m", "ecard_server.cli", "verify", signer.mint(ecard_id), "--merchant", "holes-ph-b",
         "--target", server.target, "--tls-ca", str(tmp_path / "ca.pem"), "--tls-cert", str(tmp_path / "a.pem"),
         "--tls-key", str(tmp_path / "a.key"), "--tls-server-name", SERVER_NAME],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "PERMISSION_DENIED" in done.stderr, done.stderr


def test_another_merchants_settlement_answers_as_an_unknown_one(world: World) -> None:
    with world.pharmacy() as pos:
        record = pos.settle([line_item("X1", "drug", t.DRUG_CLASS_A, 100)], token=world.mint(0),
                            idempotency_key=uuid.uuid4().hex)
    answers = []
    with PharmacyClient(world.target, merchant_id=world.hospital_id) as other:
        for settlement_id in (record.settlement_id, "S" + uuid.uuid4().hex[:20]):
            with pytest.raises(NotFound) as got:
                other.get_settlement(settlement_id)
            with pytest.raises(NotFound) as refund:
                other.refund(settlement_id, idempotency_key=uuid.uuid4().hex, full=True)
            answers.append((got.value.status_name, got.value.reason, str(got.value),
                            refund.value.reason, str(refund.value)))
    assert answers[0] == answers[1]
    assert answers[0][:2] == ("NOT_FOUND", "SETTLEMENT_UNKNOWN") and answers[0][2].endswith("no such settlement")


def test_free_text_with_control_or_formatting_characters_never_reaches_the_audit_trail(world: World) -> None:
    forged = 'T1\n{"event": "audit", "kind": "CREDIT"}'
    with world.pharmacy() as pos:
        for terminal in (forged, "T1\u202egnp.exe", "T" * 65):
            with pytest.raises(InvalidArgument) as caught:
                pos.verify(world.mint(1), purpose=t.PURPOSE_IDENTITY, terminal_id=terminal)
            assert caught.value.reason in ("FIELD_NOT_PRINTABLE", "FIELD_TOO_LONG")
        answers = pos.verify_batch([verifier_pb2.VerifyRequest(token=world.mint(1), purpose=t.PURPOSE_IDENTITY,
                                                               terminal_id=forged)])
        assert answers[0].reason == t.REASON_MALFORMED
        assert pos.verify(world.mint(1), purpose=t.PURPOSE_IDENTITY, terminal_id="柜台 3").reason == t.REASON_OK
        record = pos.settle([line_item("X1", "drug", t.DRUG_CLASS_A, 100)], token=world.mint(1),
                            idempotency_key=uuid.uuid4().hex)
        with pytest.raises(InvalidArgument) as caught:
            pos.refund(record.settlement_id, idempotency_key=uuid.uuid4().hex, full=True, reason="ok\x1b[2Kforged")
        assert caught.value.reason == "INVALID_REASON"
        with pytest.raises(InvalidArgument):
            pos.settle([line_item("X1", "drug", t.DRUG_CLASS_A, 100)], token=world.mint(1),
                       idempotency_key="r1\nr2")
    deadline, details = time.monotonic() + 10, []
    with world.admin() as admin:
        while not any(d.startswith("柜台 3 ") for d in details) and time.monotonic() < deadline:
            time.sleep(0.2)  # the trail is written in batches
            details = [e.detail for e in admin.audit_events(kind="VERIFY", subject=world.ecard_ids[1])]
    assert details and all(d.isprintable() for d in details) and any(d.startswith("柜台 3 ") for d in details)


def test_refused_and_unauthenticated_calls_are_logged_at_a_bounded_rate(tmp_path: Path) -> None:
    config = tmp_path / "log.toml"
    config.write_text("request_log_refused_per_second = 10\n")
    with EcardServer(extra_args=["--config", str(config)]) as server:
        started = time.monotonic()
        with grpc.insecure_channel(server.target) as channel:
            stub = verifier_pb2_grpc.VerifierStub(channel)
            for _ in range(400):  # no principal at all
                with pytest.raises(grpc.RpcError):
                    stub.Verify(verifier_pb2.VerifyRequest(token="EC1:x"), timeout=5)
        seconds = time.monotonic() - started
        time.sleep(1.1)
        with grpc.insecure_channel(server.target) as channel, pytest.raises(grpc.RpcError):
            verifier_pb2_grpc.VerifierStub(channel).Verify(verifier_pb2.VerifyRequest(token="EC1:x"), timeout=5)
        time.sleep(0.3)
        lines = [json.loads(line) for line in server.logs().splitlines() if '"event": "rpc"' in line]
    refused = [line for line in lines if line["code"] == "UNAUTHENTICATED"]
    print(f"\n401 unauthenticated calls in {seconds:.2f} s: {len(refused)} lines")
    assert len(refused) <= 10 * (int(seconds) + 3)
    assert sum(line.get("skipped_refused", 0) for line in refused) + len(refused) == 401


@pytest.mark.parametrize("flag, url", [
    ("--redis", "redis://:s3cr3t-pw@127.0.0.1:notaport/0"),
    ("--redis", "redis://user:s3cr3t-pw@[::1/0"),
    ("--redis", "http://user:s3cr3t-pw@127.0.0.1/0"),
    ("--db", "postgresql://u:s3cr3t-pw@[::1/x"),
    ("--db", "mysql://root:s3cr3t-pw@127.0.0.1/x"),
    ("--db", "postgresql://u@127.0.0.1:1/x?password=s3cr3t-pw"),
])
def test_a_bad_store_url_never_prints_its_password(tmp_path: Path, flag: str, url: str) -> None:
    args = [flag, url] if flag == "--db" else ["--db", f"sqlite:///{tmp_path}/e.db", flag, url]
    done = subprocess.run([sys.executable, "-m", "ecard_server.cli", "serve", *args, "--listen", "127.0.0.1:0",
                           "--secret-file", str(tmp_path / "secret")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("ecard: error:"), done.stderr
    assert "s3cr3t-pw" not in done.stderr + done.stdout


@pytest.mark.parametrize("address", ["0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:9464"])
def test_the_metrics_listener_refuses_a_non_loopback_address(tmp_path: Path, address: str) -> None:
    done = subprocess.run([sys.executable, "-m", "ecard_server.cli", "serve", "--db", f"sqlite:///{tmp_path}/e.db",
                           "--listen", "127.0.0.1:0", "--metrics-listen", address],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--metrics-allow-remote" in done.stderr, done.stderr
