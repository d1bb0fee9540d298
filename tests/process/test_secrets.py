"""Secrets are never in the store they guard (issue 17).

Attack: a reader of the whole database (the SQLite file and its WAL, every PostgreSQL table) takes every
value it holds as a candidate server secret, forges a `verification_id` for a card bound to another
channel with each, and sends it to Settle; and checks identity guesses offline against a card's stored
hash. Before: `meta.server_secret` was one of the values, the forged handle settled money with no token
and no holder, and the guess matched. Now: every forged handle is INVALID_ARGUMENT (VERIFICATION_INVALID),
no guess matches, and no byte of the secrets is in the database's files.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecard import InvalidArgument, line_item
from ecard.testing import EcardServer, World
from ecard.v1 import types_pb2 as t
from ecard_server.app import Deployment
from ecard_server.config import Settings
from ecard_server.core.handles import VerificationHandles
from ecard_server.core.identity import IdentityHasher, derive_key
from ecard_server.keyring import CHECK, LEGACY, Keyring, SecretSource, SigningSecret, read_keyring_file
from ecard_server.storage import open_store
from ecard_server.storage.memory import LocalChangeBus, MemoryNonceStore


def _candidates(rows: Iterator[tuple[object, ...]]) -> set[bytes]:
    """Every value of every row, as the bytes an attacker would try as a key."""
    found: set[bytes] = set()
    for row in rows:
        for value in row:
            if isinstance(value, bytes | bytearray | memoryview):
                found.add(bytes(value))
            elif isinstance(value, str) and value:
                found.add(value.encode())
                with contextlib.suppress(ValueError):
                    found.add(bytes.fromhex(value))
    return found


def _sqlite_rows(path: str) -> Iterator[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            yield from conn.execute(f'SELECT * FROM "{table}"').fetchall()
    finally:
        conn.close()


def _attack(world: World, holder_hash: bytes, candidates: set[bytes]) -> None:
    """Forges a handle with each candidate for the world's first e-card and tries to settle it; checks the
    holder's identity against its stored hash with each candidate."""
    assert candidates, "the attacker read nothing"
    _, name, idn = world.cards[0]
    ecard_id = world.ecard_ids[0]
    forged = 0
    with world.pharmacy() as pos:
        for candidate in candidates:
            handle = VerificationHandles(candidate).issue_for(
                ecard_id, world.pharmacy_id, t.PURPOSE_MEDICAL_SETTLEMENT, t.ASSURANCE_FACE,
                int(time.time()) + 300, os.urandom(16),
            )
            with pytest.raises(InvalidArgument) as refused:
                pos.settle([line_item("X1", "drug", t.DRUG_CLASS_A, 1000)], verification_id=handle,
                           idempotency_key=uuid.uuid4().hex)
            assert refused.value.reason == "VERIFICATION_INVALID"
            forged += 1
            assert not IdentityHasher(candidate).matches_holder(idn, name, holder_hash)
    assert forged == len(candidates)


def _secret_bytes(keyring: Keyring) -> list[bytes]:
    """The secrets and every key derived from them: none may appear in the database's files."""
    out = []
    for secret in (*keyring.identity, *(s.secret for s in keyring.signing)):
        out += [secret, *(derive_key(secret, p) for p in ("identity", "holder", "verification"))]
    return out


def test_a_reader_of_the_whole_sqlite_database_cannot_forge_a_handle_nor_confirm_an_identity(tmp_path: Path) -> None:
    db = tmp_path / "ecard.db"
    with EcardServer(db=f"sqlite:///{db}") as server:
        world = World.seed(server.target, cards=2)
        files = [p for p in (db, Path(f"{db}-wal")) if p.exists()]
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files), "database files are 0600"
        holder_hash = next(r[0] for r in sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute(
            "SELECT id_hash FROM cards WHERE card_no = ?", (world.cards[0][0],)))
        _attack(world, bytes(holder_hash), _candidates(_sqlite_rows(str(db))))
        raw = b"".join(p.read_bytes() for p in files)
    secret_file = Path(f"{db}.secret")
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    keyring = read_keyring_file(str(secret_file))
    assert keyring is not None
    assert not [s for s in _secret_bytes(keyring) if s in raw]


@pytest.mark.postgres
def test_a_reader_of_every_postgresql_table_cannot_forge_a_handle_nor_confirm_an_identity(pg_url: str) -> None:
    import psycopg

    with EcardServer(db=pg_url) as server:
        world = World.seed(server.target, cards=2)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").fetchall()]
            rows = [row for table in tables for row in conn.execute(f'SELECT * FROM "{table}"').fetchall()]
            holder_hash = conn.execute(
                "SELECT id_hash FROM cards WHERE card_no = %s", (world.cards[0][0],)).fetchone()[0]
        assert "meta" in tables and "cards" in tables
        _attack(world, bytes(holder_hash), _candidates(iter(rows)))


def test_a_secret_kept_in_an_older_database_is_moved_out_and_scrubbed(tmp_path: Path) -> None:
    """A database of an earlier version holds its secret in meta.server_secret: the first start moves it
    to the secret file (0600), scrubs it from the database's files, and everything enrolled keeps working;
    a handle the old secret signed settles until it expires, and no longer."""
    db = f"sqlite:///{tmp_path}/old.db"
    old = os.urandom(32)
    store = open_store(db)
    legacy = Keyring((old,), (SigningSecret(old, 0),))  # what an earlier version used: one secret for all
    before = Deployment.assemble(Settings(), store, LocalChangeBus(), MemoryNonceStore(), clock=time.time,
                                 keyring=legacy)
    before.admin.enroll_cards(_enroll_rows())
    store.scrub_meta_value(CHECK)
    store.set_meta_value(LEGACY, old)
    handle = before.handles.issue_for(
        "E1", "ph", t.PURPOSE_IDENTITY, t.ASSURANCE_PIN, int(time.time()) + 300, b"n" * 16)
    before.close()
    assert old in (tmp_path / "old.db").read_bytes() + _wal(tmp_path / "old.db")

    now = time.time()
    after = Deployment.open(Settings(), db, clock=lambda: now)
    try:
        keyring = read_keyring_file(f"{tmp_path}/old.db.secret")
        assert keyring is not None and keyring.identity == (old,)
        assert stat.S_IMODE(os.stat(f"{tmp_path}/old.db.secret").st_mode) == 0o600
        assert after.store.meta_value(LEGACY) is None
        card = after.store.get_card(card_no="L0000001")
        assert card is not None
        assert IdentityHasher(*keyring.identity).matches_holder("330200199001010011", "朱小明", card.id_hash)
        assert after.handles.open(handle, merchant_id="ph", now=int(now)).ecard_id == "E1"  # within its window
        fresh = after.handles.issue_for("E1", "ph", t.PURPOSE_IDENTITY, t.ASSURANCE_PIN, int(now) + 300, b"m" * 16)
        with pytest.raises(InvalidArgument):  # the old secret signs nothing new
            VerificationHandles(old).open(fresh, merchant_id="ph", now=int(now))
        with pytest.raises(InvalidArgument):  # past the window the old secret opens nothing
            VerificationHandles(keyring.handle_keys()).open(handle, merchant_id="ph", now=int(now) + 301)
    finally:
        after.close()
    assert old not in (tmp_path / "old.db").read_bytes() + _wal(tmp_path / "old.db")


def test_a_secret_file_of_another_deployment_or_none_is_refused(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/e.db"
    Deployment.open(Settings(), db).close()
    other = Keyring.generate(int(time.time()))
    with pytest.raises(ValueError, match="not this database's server secret"):
        Deployment.open(Settings(), db, secrets=SecretSource(text=other.text()))
    os.rename(f"{tmp_path}/e.db.secret", f"{tmp_path}/elsewhere")
    with pytest.raises(ValueError, match="no server secret at"):
        Deployment.open(Settings(), db)
    os.chmod(f"{tmp_path}/elsewhere", 0o640)
    with pytest.raises(ValueError, match="may be read by others"):
        Deployment.open(Settings(), db, secrets=SecretSource(path=f"{tmp_path}/elsewhere"))
    with pytest.raises(ValueError, match="--secret-file"):
        SecretSource.for_database("postgresql://db/ecard", environ={})


def test_rotation_signs_with_the_new_secret_and_the_old_opens_until_its_handles_expire(tmp_path: Path) -> None:
    from ecard_server.cli import main

    path = str(tmp_path / "secret")
    assert main(["secret", "init", path]) == 0 and main(["secret", "init", path]) == 2
    first = read_keyring_file(path)
    assert first is not None and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    now = int(time.time())
    before = VerificationHandles(first.handle_keys(), now=now)
    old_handle = before.issue_for("E1", "ph", t.PURPOSE_IDENTITY, t.ASSURANCE_PIN, now + 300, b"a" * 16)
    assert main(["secret", "rotate", path]) == 0
    second = read_keyring_file(path)
    assert second is not None and second.identity == first.identity and len(second.signing) == 2
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    after = VerificationHandles(second.handle_keys(), now=now + 1)
    new_handle = after.issue_for("E1", "ph", t.PURPOSE_IDENTITY, t.ASSURANCE_PIN, now + 301, b"b" * 16)
    with pytest.raises(InvalidArgument):
        before.open(new_handle, merchant_id="ph", now=now + 1)  # the new secret signed it
    assert after.open(old_handle, merchant_id="ph", now=now + 299).ecard_id == "E1"
    forged_late = VerificationHandles(first.signing[0].secret).issue_for(
        "E1", "ph", t.PURPOSE_IDENTITY, t.ASSURANCE_PIN, now + 10_000, b"c" * 16)
    with pytest.raises(InvalidArgument):  # a leaked old secret opens nothing once its time is over
        after.open(forged_late, merchant_id="ph", now=now + 302)
    # a staged rotation: the new secret signs only from its time on, without a restart
    staged = Keyring.parse(second.text(), "x").rotated(now, 300, after_s=60)
    handles = VerificationHandles(staged.handle_keys(), window_s=300, now=now)
    early = handles.issue_for("E1", "ph", t.PURPOSE_IDENTITY, t.ASSURANCE_PIN, now + 300, b"d" * 16)
    late = handles.issue_for("E1", "ph", t.PURPOSE_IDENTITY, t.ASSURANCE_PIN, now + 60 + 300, b"e" * 16)
    assert after.open(early, merchant_id="ph", now=now).ecard_id == "E1"
    with pytest.raises(InvalidArgument):
        after.open(late, merchant_id="ph", now=now)


def test_private_files_are_never_readable_by_others_not_even_for_a_moment(  # type: ignore[no-untyped-def]
        tmp_path: Path, monkeypatch) -> None:
    """Under umask 0: keygen's key, the demo-style key writer, the load test's PKI and the secret file are
    0600 from their first byte (a chmod after the write would find them 0666 first)."""
    from ecard_server.cli import main
    from loadtest.rig.pki import CertificateAuthority

    real_chmod = os.chmod

    def watched_chmod(path, mode, *args, **kwargs):  # type: ignore[no-untyped-def]
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, f"{path} was readable by others before chmod"
        return real_chmod(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "chmod", watched_chmod)
    previous = os.umask(0)
    try:
        assert main(["keygen", "--issuer", "bank", "--out", str(tmp_path / "keys")]) == 0
        assert main(["secret", "init", str(tmp_path / "secret")]) == 0
        pki = CertificateAuthority(tmp_path / "pki", ["127.0.0.1"])
        pki.client("admin")
    finally:
        os.umask(previous)
    private = [*(tmp_path / "keys").glob("*.key.pem"), tmp_path / "secret", *(tmp_path / "pki").glob("*.key")]
    assert len(private) >= 4
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in private} == {p.name: 0o600 for p in private}


def _enroll_rows():  # type: ignore[no-untyped-def]
    from ecard_server.core.admin import EnrollInput

    return [EnrollInput("L0000001", "朱小明", "330200199001010011", "330200", 0)]


def _wal(path: Path) -> bytes:
    wal = Path(f"{path}-wal")
    return wal.read_bytes() if wal.exists() else b""
