"""The storage suite, run on each backend: a fresh SQLite file, then a fresh PostgreSQL database."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from ecard.errors import AlreadyExists, Unavailable
from ecard.v1 import types_pb2 as t
from ecard_server.core.records import ACTIVE, LOST, EnrollRow, Issuer, IssuerKey, Merchant
from ecard_server.storage import SqlStore, open_store
from ecard_server.storage.migrations import MIGRATIONS
from ecard_server.storage.postgres import pyformat

LATEST = MIGRATIONS[-1][0]
PEM_A = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
PEM_B = "-----BEGIN PUBLIC KEY-----\nBBBB\n-----END PUBLIC KEY-----\n"


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    opened = open_store(db_url)
    yield opened
    opened.close()


def row(card_no: str, name: str = "朱测试", balance: int = 1000, id_hash: bytes = b"\x00\xffhash") -> EnrollRow:
    return EnrollRow(card_no, name, id_hash, "330200", balance)


def issued(store: SqlStore, card_no: str = "C1", issuer_id: str = "bank", ecard_id: str = "E1") -> None:
    store.upsert_issuer(Issuer(issuer_id, "Bank"), 1)
    store.enroll([row(card_no)], 1)
    store.bind_ecard(card_no, issuer_id, ecard_id, 2)


# -- schema ---------------------------------------------------------------------------------------
def test_migrate_twice_is_a_no_op(db_url: str, store: SqlStore) -> None:
    assert store.migrate() == LATEST
    assert store.migrate() == LATEST
    again = open_store(db_url)  # a restart migrates again: nothing to do
    try:
        assert again.migrate() == LATEST
        assert again.rows("SELECT COUNT(*) FROM schema_migrations")[0][0] == len(MIGRATIONS)
        store.set_meta_value("probe", b"\x00\xff")  # bytes on every backend, seen by another connection
        assert again.meta_value("probe") == b"\x00\xff" and again.meta_value("absent") is None
        again.scrub_meta_value("probe")
        assert store.meta_value("probe") is None
    finally:
        again.close()


_META_INSERT = "INSERT INTO meta (name, value) VALUES (?, ?)"
_META_UPDATE = "UPDATE meta SET value = ? WHERE name = ?"


def test_writes_sent_together_land_together_and_none_when_the_block_raises(store: SqlStore) -> None:
    with store.transaction(pipelined=True) as cur, store.writes(cur) as writes:  # PostgreSQL: one statement
        writes.execute(_META_INSERT, ("w1", b"1"))
        writes.execute(_META_INSERT, ("w2", b"2"))
        writes.execute(_META_UPDATE, (b"3", "probe-absent"))
    assert (store.meta_value("w1"), store.meta_value("w2")) == (b"1", b"2")
    with pytest.raises(RuntimeError), store.transaction(pipelined=True) as cur, store.writes(cur) as writes:
        writes.execute(_META_INSERT, ("w3", b"3"))
        raise RuntimeError("the block fails: nothing of it is written")
    assert store.meta_value("w3") is None
    with pytest.raises(store.unique_errors), store.transaction(pipelined=True) as cur, store.writes(cur) as writes:
        writes.execute(_META_INSERT, ("w4", b"4"))  # and the next breaks the key: neither lands
        writes.execute(_META_INSERT, ("w1", b"again"))
    assert (store.meta_value("w4"), store.meta_value("w1")) == (None, b"1")


def test_statements_in_turn_commit_together_or_not_at_all(store: SqlStore) -> None:
    store.set_meta_value("a", b"1")
    store.in_turn([(_META_UPDATE, (b"2", "a")), (_META_INSERT, ("b", b"it's \\ 3"))])  # values quoted client side
    assert (store.meta_value("a"), store.meta_value("b")) == (b"2", b"it's \\ 3")
    with pytest.raises(store.unique_errors):  # the second statement breaks the key: the first rolls back with it
        store.in_turn([(_META_UPDATE, (b"4", "a")), (_META_INSERT, ("b", b"5"))])
    assert (store.meta_value("a"), store.meta_value("b")) == (b"2", b"it's \\ 3")
    for n in range(20):  # no pooled connection was left inside the failed transaction
        store.in_turn([(_META_UPDATE, (bytes([n]), "a"))])
        assert store.meta_value("a") == bytes([n])


@pytest.mark.postgres
def test_stores_opened_at_once_migrate_once(pg_empty_url: str) -> None:
    """Workers starting together all migrate the same empty database (the advisory lock)."""
    barrier = threading.Barrier(4)

    def start(_: int) -> SqlStore:
        barrier.wait()
        return open_store(pg_empty_url)

    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(start, range(4)))
    try:
        assert {s.migrate() for s in stores} == {LATEST}
        assert stores[0].rows("SELECT COUNT(*) FROM schema_migrations")[0][0] == len(MIGRATIONS)
    finally:
        for s in stores:
            s.close()


def test_placeholders_become_pyformat_outside_literals() -> None:
    assert pyformat("SELECT a FROM t WHERE b = ? AND c LIKE 'x?%' AND d = ?") == (
        "SELECT a FROM t WHERE b = %s AND c LIKE 'x?%%' AND d = %s"
    )
    assert pyformat("SELECT 5 % 2, '?'") == "SELECT 5 %% 2, '?'"


def test_literal_percent_and_question_mark_survive(store: SqlStore) -> None:
    assert store.rows("SELECT '100%', '?', ?", ("x",)) == [("100%", "?", "x")]


# -- issuers and keys -----------------------------------------------------------------------------
def key(kid: str = "k1", pem: str = PEM_A, not_before: int | None = None, not_after: int | None = None) -> IssuerKey:
    return IssuerKey("bank", kid, t.KEY_ALGORITHM_ED25519, pem, not_before, not_after, False)


def test_issuers_upsert_and_list(store: SqlStore) -> None:
    assert store.get_issuer("bank") is None
    store.upsert_issuer(Issuer("bank", "Bank"), 1)
    store.upsert_issuer(Issuer("bank", "Bank of Ningbo"), 2)
    store.upsert_issuer(Issuer("pay", "Pay"), 3)
    assert store.get_issuer("bank") == Issuer("bank", "Bank of Ningbo")
    assert sorted(store.list_issuer_ids()) == ["bank", "pay"]


def test_keys_register_revoke_and_kid_reuse(store: SqlStore) -> None:
    store.upsert_issuer(Issuer("bank", "Bank"), 1)
    assert store.register_key(key(), 10) == key()
    store.register_key(key("k2", PEM_B), 11)
    assert [k.kid for k in store.list_keys("bank")] == ["k1", "k2"]
    assert [k.kid for k in store.list_keys()] == ["k1", "k2"]
    assert store.list_keys("nobody") == []

    with pytest.raises(AlreadyExists) as taken:
        store.register_key(key("k1", PEM_B), 12)  # another key under a taken kid
    assert taken.value.reason == "KID_IN_USE"

    revoked = store.revoke_key("bank", "k1")
    assert revoked is not None and revoked.revoked
    # The same key again updates its window and stays revoked: revocation is never undone.
    again = store.register_key(key(not_before=100, not_after=200), 13)
    assert again.revoked and (again.not_before, again.not_after) == (100, 200)
    assert store.get_key("bank", "k1") == again
    assert store.get_key("bank", "k2") is not None and not store.get_key("bank", "k2").revoked  # type: ignore[union-attr]
    assert store.revoke_key("bank", "nope") is None
    assert store.get_key("bank", "nope") is None


# -- merchants ------------------------------------------------------------------------------------
def test_merchants_upsert_and_list(store: SqlStore) -> None:
    pharmacy = Merchant("m1", "Pharmacy", t.MERCHANT_KIND_PHARMACY, "330200", True)
    hospital = Merchant("m2", "Hospital", t.MERCHANT_KIND_HOSPITAL, "330201", True)
    store.upsert_merchant(pharmacy, 1)
    store.upsert_merchant(hospital, 1)
    withdrawn = Merchant("m1", "Pharmacy (closed)", t.MERCHANT_KIND_PHARMACY, "330200", False)
    store.upsert_merchant(withdrawn, 2)
    assert sorted(store.list_merchants(), key=lambda m: m.merchant_id) == [withdrawn, hospital]


# -- cards ----------------------------------------------------------------------------------------
def test_enroll_counts_and_never_touches_a_balance(store: SqlStore) -> None:
    assert store.enroll([], 1) == (0, 0)
    assert store.enroll([row("C1", balance=500), row("C2", balance=0)], 1) == (2, 0)
    # Known cards are updated (name, identity hash, region), never their balance; the last row wins.
    batch = [row("C1", "李一", balance=99_999, id_hash=b"new"), row("C3"), row("C3", "王三", balance=7)]
    assert store.enroll(batch, 2) == (1, 1)
    c1 = store.get_card(card_no="C1")
    assert c1 is not None
    assert (c1.holder_name, c1.id_hash, c1.balance_fen, c1.status) == ("李一", b"new", 500, ACTIVE)
    assert isinstance(c1.id_hash, bytes)
    c3 = store.get_card(card_no="C3")
    assert c3 is not None and (c3.holder_name, c3.balance_fen) == ("王三", 7)
    assert store.ledger.ledger_total("C1") == 500 and store.ledger.ledger_total("C2") == 0
    assert store.get_card(card_no="nope") is None


def test_enroll_many_in_one_batch(store: SqlStore) -> None:
    """More card numbers than one IN (...) chunk holds."""
    first = [row(f"C{n:05d}", balance=n) for n in range(1200)]
    assert store.enroll(first, 1) == (1200, 0)
    assert store.enroll([*first[::2], row("C99999")], 2) == (1, 600)
    assert store.get_card(card_no="C01199").balance_fen == 1199  # type: ignore[union-attr]


def test_bind_ecard_is_one_per_card_for_life(store: SqlStore) -> None:
    store.upsert_issuer(Issuer("bank", "Bank"), 1)
    store.upsert_issuer(Issuer("pay", "Pay"), 1)
    store.enroll([row("C1"), row("C2")], 1)
    first = store.bind_ecard("C1", "bank", "E1", 10)
    assert (first.ecard_id, first.issued_at, first.channels) == ("E1", 10, ("bank",))
    # A second channel binds to the same e-card; the offered new id is not used.
    second = store.bind_ecard("C1", "pay", "E-unused", 11)
    assert (second.ecard_id, second.issued_at, second.channels) == ("E1", 10, ("bank", "pay"))
    # The same channel again changes nothing.
    assert store.bind_ecard("C1", "bank", "E-other", 12).channels == ("bank", "pay")
    assert store.get_card(ecard_id="E1") == store.get_card(card_no="C1")
    assert store.get_card(ecard_id="E-unused") is None
    assert store.get_card(card_no="C2").ecard_id is None  # type: ignore[union-attr]
    with pytest.raises(LookupError):
        store.bind_ecard("nope", "bank", "E9", 13)
    assert [e[1] for e in store.audit_events("ECARD_ISSUED")] == ["ECARD_ISSUED"] * 3


def test_card_status(store: SqlStore) -> None:
    issued(store)
    lost = store.set_card_status("C1", LOST, "admin", 20)
    assert lost.status == LOST and store.get_card(ecard_id="E1").status == LOST  # type: ignore[union-attr]
    assert store.set_card_status("C1", ACTIVE, "channel:bank", 21).status == ACTIVE
    assert store.audit_events("CARD_STATUS") == [
        (20, "CARD_STATUS", "admin", "E1", str(LOST)),
        (21, "CARD_STATUS", "channel:bank", "E1", str(ACTIVE)),
    ]
    with pytest.raises(LookupError):
        store.set_card_status("nope", LOST, "admin", 22)


# -- personal accounts ----------------------------------------------------------------------------
def test_credit_is_idempotent_per_key(store: SqlStore) -> None:
    issued(store)  # opening balance 1000
    assert store.ledger.credit("C1", 250, "k1", b"hash-250", 30).balance_fen == 1250
    assert store.ledger.credit("C1", 250, "k1", b"hash-250", 31).balance_fen == 1250  # a repeat moves nothing
    with pytest.raises(AlreadyExists) as reused:
        store.ledger.credit("C1", 300, "k1", b"hash-300", 32)  # the key with another amount
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert store.ledger.credit("C1", 5, "k2", b"hash-5", 33).balance_fen == 1255
    with pytest.raises(LookupError):
        store.ledger.credit("nope", 5, "k3", b"hash-x", 34)
    assert store.ledger.ledger_total("C1") == store.get_card(card_no="C1").balance_fen == 1255  # type: ignore[union-attr]
    assert [e[4] for e in store.audit_events("ACCOUNT_CREDIT")] == ["250", "5"]


def test_concurrent_credits_under_one_key_move_money_once(store: SqlStore) -> None:
    issued(store)
    barrier = threading.Barrier(8)

    def credit(_: int) -> int:
        barrier.wait()
        return store.ledger.credit("C1", 100, "same-key", b"hash-100", 40).balance_fen

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(credit, range(8)))
    assert answers == [1100] * 8
    assert store.ledger.ledger_total("C1") == store.get_card(card_no="C1").balance_fen == 1100  # type: ignore[union-attr]


def test_concurrent_credits_add_up(store: SqlStore) -> None:
    issued(store)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: store.ledger.credit("C1", 10, f"key-{n}", b"h", 50), range(40)))
    assert store.ledger.ledger_total("C1") == store.get_card(card_no="C1").balance_fen == 1400  # type: ignore[union-attr]


def test_concurrent_enrollment_and_key_registration_of_the_same_new_row(store: SqlStore) -> None:
    """Eight writers race to create the same card and the same key: one creates it, the others see it."""
    store.upsert_issuer(Issuer("bank", "Bank"), 1)
    barrier = threading.Barrier(8)

    def race(_: int) -> tuple[tuple[int, int], IssuerKey]:
        barrier.wait()
        return store.enroll([row("RACE1")], 60), store.register_key(key("race-kid"), 60)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(race, range(8)))
    counts = [counts for counts, _ in answers]
    assert sorted(counts) == [(0, 1)] * 7 + [(1, 0)]
    assert {k.kid for _, k in answers} == {"race-kid"}
    assert store.get_card(card_no="RACE1").balance_fen == 1000  # type: ignore[union-attr]
    assert store.ledger.ledger_total("RACE1") == 1000


# -- audit ----------------------------------------------------------------------------------------
def test_audit_rows_are_insert_only(store: SqlStore) -> None:
    store.append_audit([(1, "VERIFY", "merchant:m1", "E1", "pos-1 1"), (2, "VERIFY", "merchant:m1", "E2", "pos-1 14")])
    store.append_audit([])
    assert store.audit_events("VERIFY") == [
        (1, "VERIFY", "merchant:m1", "E1", "pos-1 1"),
        (2, "VERIFY", "merchant:m1", "E2", "pos-1 14"),
    ]
    for statement in ("UPDATE audit SET detail = 'x'", "DELETE FROM audit"):
        with pytest.raises(Exception, match="insert-only"), store.transaction() as cur:
            cur.execute(statement)
    assert len(store.audit_events()) == 2


def test_an_audit_batch_keeps_every_row_as_written_and_in_order(store: SqlStore) -> None:
    """A batch past the multi-row INSERT's hundred rows, with text that COPY's format escapes (tab,
    newline, backslash, quotes, \\N, non-ASCII): each row reads back exactly, in the batch's order."""
    awkward = ["tab\there", "line\nbreak", "back\\slash \\N", "it's \"quoted\"", "药店 张*", "", "\\."]
    rows = [(1_700_000_000 + n, "VERIFY", f"merchant:{awkward[n % 7]}", f"E{n}", f"{awkward[(n + 3) % 7]} {n}")
            for n in range(250)]
    store.append_audit(rows)
    assert store.audit_events("VERIFY") == rows


# -- PostgreSQL: a database that goes away --------------------------------------------------------
@pytest.mark.postgres
def test_postgres_down_is_unavailable_and_heals(pg_url: str, tcp_proxy: Callable[..., object]) -> None:
    relay = tcp_proxy(pg_url)
    store = open_store(relay.url(pg_url))  # type: ignore[attr-defined]
    try:
        store.upsert_issuer(Issuer("bank", "Bank"), 1)
        relay.cut()  # type: ignore[attr-defined]
        with pytest.raises(Unavailable):
            store.get_issuer("bank")
        with pytest.raises(Unavailable):
            store.upsert_issuer(Issuer("pay", "Pay"), 2)
        relay.restore()  # type: ignore[attr-defined]
        # The pool replaces its dead connections by itself, within a few seconds of the comeback.
        back = time.monotonic()
        while True:
            try:
                assert store.get_issuer("bank") == Issuer("bank", "Bank")
                break
            except Unavailable:
                assert time.monotonic() - back < 5, "the store did not recover within 5 s"
                time.sleep(0.1)
        store.upsert_issuer(Issuer("pay", "Pay"), 3)
        assert sorted(store.list_issuer_ids()) == ["bank", "pay"]
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_url_errors_are_one_line(pg_url: str) -> None:
    from ecard.testing import free_port

    for url, words in (
        (f"postgresql://postgres@127.0.0.1:{free_port()}/x", "cannot connect to PostgreSQL"),
        (pg_url + "_missing", "does not exist"),
        ("postgresql://a b@/x", "bad PostgreSQL URL"),
    ):
        with pytest.raises(ValueError, match=words) as bad:
            open_store(url)
        assert "\n" not in str(bad.value)
