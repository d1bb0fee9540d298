"""A channel's own binding (suspend, resume, unbind) and card replacement (补换卡), through the SDK
against a real server: what Verify and Settle answer after each change, who may make it, what the
audit trail and the ledger keep."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ecard import (
    AlreadyExists,
    Assurance,
    CardStatus,
    DrugClass,
    EcardError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Purpose,
    Reason,
    TokenSigner,
    generate_private_key,
    line_item,
    physical_cards,
    public_key_pem,
)
from ecard.testing import World, fake_holder
from ecard.v1 import types_pb2
from ecard_server.storage import SqlStore, open_store
from tests.helpers.inprocess import InProcessServer

PILL = line_item("A001", "amoxicillin", DrugClass.A, 1000)  # class A at a pharmacy: the account pays it all


def reason(world: World, card: int = 0, signer: TokenSigner | None = None, **options: Any) -> int:
    token = (signer or world.signer).mint(world.ecard_ids[card], **options)
    with world.pharmacy() as pos:
        return pos.verify(token, purpose=Purpose.IDENTITY).reason


def second_channel(world: World, suffix: str = "b") -> TokenSigner:
    """Another channel with its own key, bound to e-card 0 of the world."""
    issuer_id = f"{world.issuer_id}-{suffix}"
    key = generate_private_key()
    with world.admin() as admin:
        admin.upsert_issuer(issuer_id, "Second bank")
        kid = admin.register_key(issuer_id, public_key_pem(key)).kid
    signer = TokenSigner(key, issuer_id=issuer_id, kid=kid)
    with world.channel(issuer_id, signer) as channel:
        channel.issue_ecard(*world.cards[0], assurance=types_pb2.ASSURANCE_FACE)
    return signer


def audit_kinds(world: World, ecard_id: str) -> list[str]:
    with world.admin() as admin:
        return [e.kind for e in admin.audit_events(subject=ecard_id) if e.kind.startswith(("BINDING", "CARD_REP"))]


# -- one channel's binding -------------------------------------------------------------------------
def test_suspend_resume_unbind_touch_only_the_channels_own_binding(world: World, store: SqlStore) -> None:
    other = second_channel(world)
    ecard_id = world.ecard_ids[0]
    with world.channel() as channel:
        card = channel.suspend_binding(ecard_id)
        assert list(card.suspended_channels) == [world.issuer_id]
        assert card.status == CardStatus.ACTIVE and set(card.channels) == {world.issuer_id, other.issuer_id}
        assert reason(world) == Reason.CHANNEL_SUSPENDED
        assert reason(world, signer=other) == Reason.OK  # the other channel's binding is untouched
        assert reason(world, card=1) == Reason.OK  # and so are the channel's other holders
        assert channel.suspend_binding(ecard_id).suspended_channels == [world.issuer_id]  # a repeat: no change
        assert channel.get_ecard(ecard_id).ecard_id == ecard_id  # a suspended channel still sees its card
        with pytest.raises(FailedPrecondition) as refused, world.pharmacy() as pos:
            pos.settle([PILL], idempotency_key=uuid.uuid4().hex, token=world.mint(0))
        assert refused.value.reason == "CHANNEL_SUSPENDED"

        assert list(channel.resume_binding(ecard_id).suspended_channels) == []
        assert reason(world) == Reason.OK

        card = channel.unbind(ecard_id)
        assert list(card.channels) == [other.issuer_id]
        assert reason(world) == Reason.CHANNEL_NOT_BOUND
        assert reason(world, signer=other) == Reason.OK
        with pytest.raises(PermissionDenied) as gone:
            channel.get_ecard(ecard_id)
        assert gone.value.reason == "CHANNEL_NOT_BOUND"
        # Issuing again (the holder proves herself anew) binds the channel again.
        assert world.issuer_id in channel.issue_ecard(*world.cards[0], assurance=types_pb2.ASSURANCE_FACE).channels
        assert reason(world) == Reason.OK
    assert audit_kinds(world, ecard_id) == ["BINDING_SUSPEND", "BINDING_RESUME", "BINDING_UNBIND"]
    ended = store.rows("SELECT issuer_id, assurance_statement FROM ecard_bindings_ended WHERE ecard_id = ?",
                       (ecard_id,))
    assert [(row[0], bool(row[1])) for row in ended] == [(world.issuer_id, True)]  # still attributable


def test_a_channel_acts_on_no_other_channels_binding(world: World) -> None:
    other = second_channel(world)
    ecard_id = world.ecard_ids[0]
    with world.channel() as channel:
        with pytest.raises(PermissionDenied) as named:
            channel._binding(channel._cards.SuspendBinding, ecard_id, other.issuer_id)
        assert named.value.reason == "PRINCIPAL_MISMATCH"
    stranger = World.seed(world.target, cards=1)  # a card bound to another channel only
    with world.channel() as channel:
        for change in (channel.suspend_binding, channel.resume_binding, channel.unbind):
            with pytest.raises(PermissionDenied) as refused:
                change(stranger.ecard_ids[0])
            assert refused.value.reason == "CHANNEL_NOT_BOUND"
            with pytest.raises(PermissionDenied) as unknown:  # the same answer for an e-card that does not exist
                change("EAAAAAAAAAAAAAAAA")
            assert unknown.value.reason == "CHANNEL_NOT_BOUND"
        with pytest.raises(InvalidArgument):
            channel.suspend_binding("")
        with pytest.raises(InvalidArgument):
            channel.suspend_binding("no spaces allowed")
    assert reason(stranger) == Reason.OK and reason(world, signer=other) == Reason.OK


def test_the_operator_changes_any_named_binding(world: World) -> None:
    other = second_channel(world)
    ecard_id = world.ecard_ids[0]
    with world.admin() as admin:
        with pytest.raises(InvalidArgument) as unnamed:
            admin.suspend_binding(ecard_id, "")
        assert unnamed.value.reason == "MISSING_ISSUER_ID"
        with pytest.raises(NotFound) as unbound:
            admin.suspend_binding(world.ecard_ids[1], other.issuer_id)
        assert unbound.value.reason == "CHANNEL_NOT_BOUND"
        with pytest.raises(NotFound):
            admin.suspend_binding("EAAAAAAAAAAAAAAAA", other.issuer_id)
        assert list(admin.suspend_binding(ecard_id, other.issuer_id).suspended_channels) == [other.issuer_id]
        assert reason(world, signer=other) == Reason.CHANNEL_SUSPENDED and reason(world) == Reason.OK
        admin.unbind(ecard_id, other.issuer_id)
        assert reason(world, signer=other) == Reason.CHANNEL_NOT_BOUND
        events = [e for e in admin.audit_events(subject=ecard_id) if e.kind.startswith("BINDING")]
    assert [(e.kind, e.actor, e.detail) for e in events] == [
        ("BINDING_SUSPEND", "admin", other.issuer_id), ("BINDING_UNBIND", "admin", other.issuer_id)]


# -- card replacement ------------------------------------------------------------------------------
def new_card_for(world: World, card: int = 0, *, balance_fen: int = 0, holder: tuple[str, str] | None = None) -> str:
    """A new physical card enrolled for the holder of the world's card (or for `holder`: name, id)."""
    _, name, idn = world.cards[card]
    name, idn = holder or (name, idn)
    card_no = f"N{uuid.uuid4().hex[:12]}"
    with world.admin() as admin:
        admin.enroll_cards(physical_cards([(card_no, name, idn, "330200", balance_fen)]))
    return card_no


@pytest.fixture
def store(server: InProcessServer) -> Iterator[SqlStore]:
    opened = open_store(server.db)
    try:
        yield opened
    finally:
        opened.close()


def test_replacement_moves_the_ecard_bindings_and_balance_and_refuses_older_tokens(
    world: World, store: SqlStore
) -> None:
    other = second_channel(world)
    old_no, ecard_id = world.cards[0][0], world.ecard_ids[0]
    new_no = new_card_for(world, balance_fen=500)
    with world.channel() as channel:
        channel.suspend_binding(ecard_id)  # a suspension moves with the binding
    before = world.mint(0, issued_at=int(time.time()) - 1)
    key = uuid.uuid4().hex
    with world.admin() as admin:
        moved = admin.replace_card(old_no, new_no, key)
        assert moved.ecard_id == ecard_id and moved.status == CardStatus.ACTIVE
        assert moved.personal_account_balance_fen == 100_000 + 500
        assert set(moved.channels) == {world.issuer_id, other.issuer_id}
        assert list(moved.suspended_channels) == [world.issuer_id]
        assert moved.card_no_masked.endswith(new_no[-4:]) and moved.HasField("replaced_at")
        assert admin.replace_card(old_no, new_no, key) == moved  # a retry: the same answer, nothing moves again
        with pytest.raises(AlreadyExists) as reused:
            admin.replace_card(old_no, new_card_for(world), key)
        assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
        old = admin.get_ecard(ecard_id)
        assert old.card_no_masked == moved.card_no_masked  # the e-card is found on its new card
        with pytest.raises(FailedPrecondition) as again:
            admin.replace_card(old_no, new_card_for(world), uuid.uuid4().hex)
        assert again.value.reason == "NO_ECARD"
        assert admin.cancel(card_no=old_no).status == CardStatus.CANCELLED  # the old card was cancelled already
    with world.pharmacy() as pos:
        assert pos.verify(before, purpose=Purpose.IDENTITY).reason == Reason.CARD_REPLACED
        fresh = other.mint(ecard_id, issued_at=moved.replaced_at.seconds)
        assert pos.verify(fresh, purpose=Purpose.IDENTITY).reason == Reason.OK
        late = world.signer.mint(ecard_id, issued_at=moved.replaced_at.seconds)
        assert pos.verify(late, purpose=Purpose.IDENTITY).reason == Reason.CHANNEL_SUSPENDED
        with pytest.raises(FailedPrecondition) as refused:
            pos.settle([PILL], idempotency_key=uuid.uuid4().hex,
                       token=other.mint(ecard_id, issued_at=moved.replaced_at.seconds - 1))
        assert refused.value.reason == "CARD_REPLACED"
    # The ledger: the old card's balance went out, the new card's came in, each account equals its rows.
    for card_no, expected in ((old_no, 0), (new_no, 100_500)):
        stored = store.get_card(card_no=card_no)
        assert stored is not None and stored.balance_fen == expected == store.ledger.ledger_total(card_no)
    kinds = [r[0] for r in store.rows("SELECT kind FROM ledger WHERE ref = ? ORDER BY entry_id", (key,))]
    assert kinds == ["REPLACE_OUT", "REPLACE_IN"]
    assert audit_kinds(world, ecard_id)[-1] == "CARD_REPLACED"


def test_replacement_refusals(world: World) -> None:
    old_no = world.cards[0][0]
    someone_else = fake_holder(99, uuid.uuid4().hex[:6])
    with world.admin() as admin:
        cases: list[tuple[str, str, type[EcardError], str]] = [
            ("", "C123456", InvalidArgument, "INVALID_CARD_NO"),
            (old_no, old_no, InvalidArgument, "SAME_CARD"),
            ("ZZ00000000", new_card_for(world), NotFound, "CARD_UNKNOWN"),
            (old_no, "ZZ00000001", FailedPrecondition, "CARD_NOT_ENROLLED"),
            (old_no, new_card_for(world, holder=someone_else[1:]), FailedPrecondition, "IDENTITY_MISMATCH"),
            (old_no, world.cards[1][0], FailedPrecondition, "IDENTITY_MISMATCH"),
        ]
        for old, new, error, why in cases:
            with pytest.raises(error) as refused:
                admin.replace_card(old, new, uuid.uuid4().hex)
            assert refused.value.reason == why, (old, new)
        with pytest.raises(InvalidArgument):
            admin.replace_card(old_no, new_card_for(world), "")
        lost_new = new_card_for(world)
        admin.report_lost(card_no=lost_new)
        with pytest.raises(FailedPrecondition) as lost:
            admin.replace_card(old_no, lost_new, uuid.uuid4().hex)
        assert lost.value.reason == "CARD_LOST"
        # The old card may be lost: that is what a replacement is for.
        admin.report_lost(ecard_id=world.ecard_ids[0])
        moved = admin.replace_card(old_no, new_card_for(world), uuid.uuid4().hex)
        assert moved.status == CardStatus.ACTIVE
    with world.channel() as channel, pytest.raises(PermissionDenied):
        channel._call(channel._admin.ReplaceCard, _replace_request(old_no, "C1234567"))
    # A token of the replacement's own second is refused, the next second's is not (by the clock, not by
    # how long this test took to get here: a loaded machine may take more than a second).
    assert reason(world, issued_at=moved.replaced_at.seconds - 1) == Reason.CARD_REPLACED
    assert reason(world, issued_at=moved.replaced_at.seconds) == Reason.OK


def _replace_request(old: str, new: str) -> Any:
    from ecard.v1 import admin_pb2

    return admin_pb2.ReplaceCardRequest(old_card_no=old, new_card_no=new, idempotency_key="k")


@pytest.fixture
def served(db_url: str) -> Iterator[InProcessServer]:
    with InProcessServer(db=db_url) as running:
        yield running


def test_replacement_under_concurrent_settles_loses_and_doubles_nothing(served: InProcessServer) -> None:
    world = World.seed(served.target, cards=1, balance_fen=100_000)
    old_no = world.cards[0][0]
    new_no = new_card_for(world)
    count = 24
    # Verified before the replacement: each settles once, before or after it; every other one at a hospital,
    # where the fund pays a share and the year's accumulators grow.
    counters = [world.pharmacy, world.hospital]
    handles = []
    for n in range(count):
        with counters[n % 2]() as pos:
            handles.append(pos.verify(world.mint(0), purpose=Purpose.MEDICAL_SETTLEMENT,
                                      min_assurance=Assurance.PIN).verification_id)
    gate = threading.Barrier(count + 1)
    done, some_done, lock = [0], threading.Event(), threading.Lock()

    def settle(n: int) -> Any:
        gate.wait()
        with counters[n % 2]() as pos:
            try:
                return pos.settle([PILL], idempotency_key=f"r-{n}", verification_id=handles[n])
            except EcardError as exc:
                return exc
            finally:
                with lock:
                    done[0] += 1
                    if done[0] == 3:
                        some_done.set()

    def replace() -> Any:
        gate.wait()
        some_done.wait(10)  # a few settled on the old card; the others race the replacement
        with world.admin() as admin:
            return admin.replace_card(old_no, new_no, uuid.uuid4().hex)

    with ThreadPoolExecutor(count + 1) as pool:
        moved = pool.submit(replace)
        records = list(pool.map(settle, range(count)))
        moved_card = moved.result()
    failures = [r for r in records if isinstance(r, EcardError)]
    assert not failures, failures
    paid = sum(r.personal_account_paid_fen for r in records)
    fund = sum(r.fund_paid_fen for r in records)
    assert fund > 0 and paid + fund == count * 1000
    with world.admin() as admin:
        final = admin.get_ecard(moved_card.ecard_id).personal_account_balance_fen
    assert final + paid == 100_000
    opened = open_store(served.db)
    try:
        for card_no in (old_no, new_no):
            stored = opened.get_card(card_no=card_no)
            assert stored is not None and stored.balance_fen == opened.ledger.ledger_total(card_no)
        assert opened.get_card(card_no=old_no).balance_fen == 0  # type: ignore[union-attr]
        assert opened.get_card(card_no=new_no).balance_fen == final  # type: ignore[union-attr]
        years = {no: opened.rows("SELECT SUM(fund_fen) FROM benefit_accumulators WHERE card_no = ?", (no,))[0][0]
                 for no in (old_no, new_no)}
        assert years == {old_no: None, new_no: fund}  # the year's fund share: all of it, once, on the new card
        by_card = dict(opened.rows("SELECT card_no, COUNT(*) FROM settlements WHERE ecard_id = ? GROUP BY card_no",
                                   (moved_card.ecard_id,)))
        assert by_card.get(old_no, 0) >= 3 and sum(by_card.values()) == count  # before and after the move
    finally:
        opened.close()


def test_a_refund_after_the_replacement_goes_to_the_new_card(world: World, store: SqlStore) -> None:
    """A settlement paid from the old card, refunded (and reversed) after the replacement: the money goes
    back to the account where the balance now is, never to the cancelled card."""
    old_no, ecard_id = world.cards[0][0], world.ecard_ids[0]
    new_no = new_card_for(world)
    with world.pharmacy() as pos:
        refunded = pos.settle([PILL], idempotency_key=uuid.uuid4().hex, token=world.mint(0))
        reversed_key = uuid.uuid4().hex
        pos.settle([PILL], idempotency_key=reversed_key, token=world.mint(0))
        with world.admin() as admin:
            moved = admin.replace_card(old_no, new_no, uuid.uuid4().hex)
        assert moved.personal_account_balance_fen == 100_000 - 2000
        back = pos.refund(refunded.settlement_id, idempotency_key=uuid.uuid4().hex, reason="returned", full=True)
        assert back.personal_account_balance_fen == 100_000 - 1000
        pos.reverse_settlement(reversed_key)
    for card_no, expected in ((old_no, 0), (new_no, 100_000)):
        stored = store.get_card(card_no=card_no)
        assert stored is not None and stored.balance_fen == expected == store.ledger.ledger_total(card_no)
    with world.admin() as admin:
        assert admin.get_ecard(ecard_id).personal_account_balance_fen == 100_000


def test_the_years_benefit_accumulators_move_with_the_balance(world: World, store: SqlStore) -> None:
    """What the fund paid this year (its yearly cap) and the deductible met are the holder's: they move to
    the new card in the replacement's transaction, and a later refund gives them back there."""
    old_no = world.cards[0][0]
    new_no = new_card_for(world)
    with world.hospital() as desk:  # at a hospital the fund pays a share: the year's accumulators grow
        record = desk.settle([line_item("A001", "amoxicillin", DrugClass.A, 10_000)],
                             idempotency_key=uuid.uuid4().hex, token=world.mint(0))
    assert record.fund_paid_fen > 0

    def accumulated(card_no: str) -> list[tuple[int, int]]:
        return [(int(r[0]), int(r[1])) for r in store.rows(
            "SELECT deductible_fen, fund_fen FROM benefit_accumulators WHERE card_no = ?", (card_no,))]

    before = accumulated(old_no)
    assert before and before[0][1] == record.fund_paid_fen
    with world.admin() as admin:
        admin.replace_card(old_no, new_no, uuid.uuid4().hex)
    assert accumulated(old_no) == [] and accumulated(new_no) == before
    with world.hospital() as desk:
        desk.refund(record.settlement_id, idempotency_key=uuid.uuid4().hex, reason="returned", full=True)
    assert accumulated(new_no) == [(0, 0)] and accumulated(old_no) == []
