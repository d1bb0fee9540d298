"""No identity number and no full name in clear, anywhere the server writes: a day at the counters
(enrolment, issuance, a wrong identity, verifications accepted and rejected, settlements, a refund,
credits, a lost card found again, a cancelled one, a key rotated), then every log line, the audit
trail and the database files (SQLite's main file and its write-ahead log) are searched for each
holder's identity number and full name."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ecard import (
    ED25519,
    EcardError,
    FailedPrecondition,
    Purpose,
    TokenSigner,
    generate_private_key,
    line_item,
    physical_cards,
    public_key_pem,
)
from ecard.testing import EcardServer, World, fake_holder
from ecard.v1 import types_pb2 as t


@dataclass
class Day:
    server: EcardServer
    folder: Path
    secrets: list[str]  # every identity number and full name the day used


def _day(server: EcardServer) -> list[str]:
    world = World.seed(server.target, cards=6, balance_fen=50_000)
    late = [fake_holder(100 + n, "late") for n in range(3)]
    secrets = [s for _, name, idn in world.cards + late for s in (name, idn)]
    with world.admin() as admin:
        admin.enroll_cards(physical_cards([(no, name, idn, "330200", 1_000) for no, name, idn in late]))
        bad = admin.enroll_cards(physical_cards([("", late[0][1], late[0][2], "330200", 0)]))  # a malformed row
        assert bad.rejected == 1
        admin.credit_account(world.cards[0][0], 5_000, "credit-1")
        key = generate_private_key()
        kid = admin.register_key(world.issuer_id, public_key_pem(key)).kid
        admin.revoke_key(world.issuer_id, kid)
    with world.channel() as channel:
        for no, name, idn in late[:2]:
            channel.issue_ecard(no, name, idn, assurance=t.ASSURANCE_FACE)
        with pytest.raises(FailedPrecondition):  # a wrong identity number: refused, and not logged
            channel.issue_ecard(late[2][0], late[2][1], late[2][2][:-1] + "9", assurance=t.ASSURANCE_FACE)
        channel.report_lost(ecard_id=world.ecard_ids[1])
    with world.pharmacy() as pos:
        for card in range(6):
            pos.verify(world.mint(card), purpose=Purpose.IDENTITY)
        token = world.mint(0, purposes=[t.PURPOSE_MEDICAL_SETTLEMENT])
        record = pos.settle([line_item("XA01", "amoxicillin", t.DRUG_CLASS_A, unit_price_fen=1280, quantity=2)],
                            idempotency_key="receipt-1", token=token)
        pos.refund(record.settlement_id, idempotency_key="refund-1", reason="returned", full=True)
        with pytest.raises(EcardError):
            pos.settle([line_item("XA01", "amoxicillin", t.DRUG_CLASS_A, unit_price_fen=1280)],
                       idempotency_key="receipt-2", token=token)  # replayed
    with world.admin() as admin:
        admin.reinstate(ecard_id=world.ecard_ids[1])
        admin.cancel(ecard_id=world.ecard_ids[2])
    return secrets


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Day]:
    folder = tmp_path_factory.mktemp("pii")
    server = EcardServer(db=f"sqlite:///{folder}/ecard.db", log_path=folder / "serve.log").start()
    try:
        secrets = _day(server)
    finally:
        server.stop()
    yield Day(server, folder, secrets)


def _found(secrets: list[str], data: bytes) -> list[str]:
    return [s for s in secrets if s.encode("utf-8") in data]


def test_the_day_used_names_and_identity_numbers(day: Day) -> None:
    assert len(day.secrets) == 18 and all(day.secrets)


def test_no_log_line_holds_an_identity_number_or_a_full_name(day: Day) -> None:
    lines = (day.folder / "serve.log").read_bytes().splitlines() + (day.folder / "serve.out").read_bytes().splitlines()
    assert len(lines) >= 3
    assert [(line[:120], _found(day.secrets, line)) for line in lines if _found(day.secrets, line)] == []


def test_the_audit_trail_holds_who_what_and_no_personal_data(day: Day) -> None:
    with sqlite3.connect(day.folder / "ecard.db") as db:
        rows = db.execute("SELECT at, kind, actor, subject, detail FROM audit").fetchall()
    kinds = {kind for _, kind, *_ in rows}
    assert {"VERIFY", "SETTLE", "REFUND", "CARD_STATUS", "ECARD_ISSUED", "ACCOUNT_CREDIT"} <= kinds
    assert _found(day.secrets, repr(rows).encode("utf-8")) == []


def test_the_database_files_hold_no_identity_number_or_full_name(day: Day) -> None:
    files = sorted(day.folder.glob("ecard.db*"))
    assert files
    assert {f.name: _found(day.secrets, f.read_bytes()) for f in files} == {f.name: [] for f in files}


def test_cards_enrolled_before_holders_were_sealed_are_sealed_on_start(tmp_path: Path) -> None:
    """A row of an older version (full name, hash of the identity number alone) is sealed when the
    server starts, and still issues with the right name and number, and only with them."""
    from ecard_server.app import Deployment
    from ecard_server.config import Settings
    from ecard_server.core.admin import EnrollInput
    from ecard_server.core.assurance import Statement
    from ecard_server.core.identity import IdentityHasher
    from ecard_server.core.principals import CHANNEL, Principal
    from ecard_server.keyring import read_keyring_file

    db = f"sqlite:///{tmp_path}/old.db"
    no, name, idn = fake_holder(7, "old")
    deployment = Deployment.open(Settings(), db)
    try:
        deployment.admin.upsert_issuer("bank", "Bank")
        deployment.admin.enroll_cards([EnrollInput(no, name, idn, "330200", 0)])
        keyring = read_keyring_file(f"{tmp_path}/old.db.secret")
        assert keyring is not None
        legacy = IdentityHasher(keyring.identity[0]).hash(idn)
        with deployment.store.transaction() as cur:  # as an older version wrote it
            cur.execute("UPDATE cards SET holder_name = ?, id_hash = ?, holder_sealed = FALSE WHERE card_no = ?",
                        (name, legacy, no))
    finally:
        deployment.close()
    deployment = Deployment.open(Settings(), db)
    try:
        card = deployment.store.get_card(card_no=no)
        assert card is not None and card.holder_name == name[0] + "*" * (len(name) - 1) and card.id_hash != legacy
        bank = Principal(CHANNEL, "bank")
        key = generate_private_key()
        kid = deployment.admin.register_key("bank", "", ED25519, public_key_pem(key), None, None).kid
        face = Statement.of(TokenSigner(key, issuer_id="bank", kid=kid).attest(no))
        with pytest.raises(FailedPrecondition) as wrong:
            deployment.cards.issue_ecard(bank, no, name[:-1] + "X", idn, face)
        assert wrong.value.reason == "IDENTITY_MISMATCH"
        assert deployment.cards.issue_ecard(bank, no, name, idn, face).ecard_id
    finally:
        deployment.close()


def test_identity_numbers_are_never_stored_or_logged_in_clear() -> None:
    with EcardServer() as server:
        world = World.seed(server.target, cards=3)
        with world.pharmacy() as pos:
            pos.verify(world.mint(0), purpose=t.PURPOSE_IDENTITY)
        with world.channel() as channel, pytest.raises(FailedPrecondition):
            channel.issue_ecard(world.cards[0][0], world.cards[0][1], "110101190001011111", assurance=t.ASSURANCE_FACE)
        server.stop()
        db_path = server.db.removeprefix("sqlite:///")
        stored = b"".join(Path(p).read_bytes() for p in (db_path, db_path + "-wal") if Path(p).exists())
        logs = server.logs()
        for _card_no, _name, id_number in world.cards:
            assert id_number.encode() not in stored
            assert id_number not in logs
        assert "110101190001011111" not in logs
