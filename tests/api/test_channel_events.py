"""Events for channels (Cards.WatchEvents and the SDK's ChannelEvents): every kind, in order, without
gaps, resumable from a cursor, only a channel's own, nothing identifying in them; the outbox upkeep
(key expiry warnings, pruning). A replica killed mid-stream: tests/shared/test_channel_events_failover.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from ecard import (
    BindingState,
    CardStatus,
    ChannelEventKind,
    ChannelEvents,
    DrugClass,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    TokenSigner,
    generate_private_key,
    line_item,
    physical_cards,
    public_key_pem,
)
from ecard.testing import World, shared_secret_file
from ecard.v1 import cards_pb2
from ecard_server.app import Deployment
from ecard_server.config import Settings
from ecard_server.core.admin import EnrollInput
from ecard_server.core.assurance import Statement
from ecard_server.core.principals import CHANNEL, MERCHANT, Principal
from ecard_server.keyring import SecretSource
from ecard_server.storage import open_store
from tests.helpers.inprocess import InProcessServer

PILL = line_item("A001", "amoxicillin", DrugClass.A, 1000)
K = ChannelEventKind


def collect(target: str, issuer_id: str, *, after: int = 0, until: Callable[[list[Any]], bool],
            within: float = 10.0, targets: Any = None, only: tuple[int, ...] = ()
            ) -> tuple[list[cards_pb2.ChannelEvent], int]:
    """Events of a channel from `after` until `until(events)` holds; and how often the stream reconnected."""

    async def run() -> tuple[list[Any], int]:
        got: list[Any] = []
        async with ChannelEvents(targets or target, issuer_id=issuer_id, after=after, kinds=only) as stream:
            async def read() -> None:
                async for event in stream:
                    got.append(event)
                    if until(got):
                        return

            await asyncio.wait_for(read(), within)
            return got, stream.reconnects

    return asyncio.run(run())


def kinds(events: list[cards_pb2.ChannelEvent]) -> list[int]:
    return [e.kind for e in events]


def test_each_change_reaches_the_bound_channels_in_order_and_resumes_from_a_cursor(world: World) -> None:
    ecard_id = world.ecard_ids[0]
    seeded, _ = collect(world.target, world.issuer_id, until=lambda got: len(got) == 3)
    assert kinds(seeded) == [K.BINDING] * 3 and [e.cursor for e in seeded] == [1, 2, 3]
    assert {e.binding_state for e in seeded} == {BindingState.ACTIVE}
    with world.admin() as admin, world.pharmacy() as pos, world.channel() as channel:
        admin.report_lost(ecard_id=ecard_id)
        admin.reinstate(ecard_id=ecard_id)
        record = pos.settle([PILL], idempotency_key=uuid.uuid4().hex, token=world.mint(0))
        pos.refund(record.settlement_id, idempotency_key=uuid.uuid4().hex, reason="returned", full=True)
        channel.suspend_binding(ecard_id)
        channel.resume_binding(ecard_id)
        new_no = f"N{uuid.uuid4().hex[:12]}"
        _, name, idn = world.cards[0]
        admin.enroll_cards(physical_cards([(new_no, name, idn, "330200", 0)]))
        admin.replace_card(world.cards[0][0], new_no, uuid.uuid4().hex)
    events, _ = collect(world.target, world.issuer_id, after=3, until=lambda got: len(got) == 7)
    assert kinds(events) == [K.CARD_STATUS, K.CARD_STATUS, K.SETTLED, K.REFUNDED, K.BINDING, K.BINDING,
                             K.CARD_REPLACED]
    assert [e.cursor for e in events] == list(range(4, 11))
    assert all(e.ecard_id == ecard_id for e in events)
    lost, found, settled, refunded, suspended, resumed, replaced = events
    assert (lost.status, found.status) == (CardStatus.LOST, CardStatus.ACTIVE)
    assert (settled.settlement_id, settled.merchant_id, settled.merchant_name) == (
        record.settlement_id, world.pharmacy_id, "")  # the world's merchants have no display name
    assert (settled.total_fen, settled.personal_account_paid_fen, settled.fund_paid_fen, settled.self_pay_fen) == (
        1000, 1000, 0, 0)
    assert settled.personal_account_balance_fen == record.personal_account_balance_fen
    assert (refunded.total_fen, refunded.personal_account_paid_fen) == (1000, 1000)
    assert (suspended.binding_issuer_id, suspended.binding_state) == (world.issuer_id, BindingState.SUSPENDED)
    assert resumed.binding_state == BindingState.ACTIVE
    assert replaced.card_no_masked.endswith(new_no[-4:]) and replaced.personal_account_balance_fen == 100_000
    assert all(e.HasField("at") and e.at.seconds > 0 for e in events)


def test_a_stream_may_ask_for_some_kinds_only(world: World) -> None:
    with world.pharmacy() as pos, world.admin() as admin:
        admin.report_lost(ecard_id=world.ecard_ids[1])
        record = pos.settle([PILL], idempotency_key=uuid.uuid4().hex, token=world.mint(0))
    money, _ = collect(world.target, world.issuer_id, until=lambda got: len(got) == 1, only=(K.SETTLED, K.REFUNDED))
    assert [(e.kind, e.settlement_id, e.cursor) for e in money] == [(K.SETTLED, record.settlement_id, 5)]

    async def unknown_kind() -> None:
        async with ChannelEvents(world.target, issuer_id=world.issuer_id, kinds=[99]) as stream:
            async for _ in stream:
                return

    with pytest.raises(InvalidArgument) as refused:
        asyncio.run(asyncio.wait_for(unknown_kind(), 10))
    assert refused.value.reason == "INVALID_EVENT_KIND"


def test_a_channel_hears_only_of_its_own_holders_and_reads_only_its_own_events(world: World) -> None:
    stranger = World.seed(world.target, cards=1)
    with stranger.pharmacy() as pos:
        pos.settle([PILL], idempotency_key=uuid.uuid4().hex, token=stranger.mint(0))
    events, _ = collect(world.target, world.issuer_id, until=lambda got: len(got) == 3)
    assert all(e.ecard_id in world.ecard_ids for e in events)

    async def open_stream(issuer_id: str, after: int, as_channel: str) -> None:
        async with ChannelEvents(world.target, issuer_id=as_channel, after=after) as stream:
            stream.issuer_id = issuer_id  # ask for another channel's events in our own name
            async for _ in stream:
                return

    with pytest.raises(PermissionDenied) as mismatch:
        asyncio.run(asyncio.wait_for(open_stream(stranger.issuer_id, 0, world.issuer_id), 10))
    assert mismatch.value.reason == "PRINCIPAL_MISMATCH"
    with pytest.raises(InvalidArgument) as negative:
        asyncio.run(asyncio.wait_for(open_stream(world.issuer_id, -1, world.issuer_id), 10))
    assert negative.value.reason == "INVALID_CURSOR"
    with pytest.raises(FailedPrecondition) as ahead:
        asyncio.run(asyncio.wait_for(open_stream(world.issuer_id, 10_000, world.issuer_id), 10))
    assert ahead.value.reason == "CURSOR_AHEAD"
    deadline = time.monotonic() + 5  # the trail writes reads in the background, every half second
    with world.admin() as admin:
        while not (watched := list(admin.audit_events(kind="EVENTS_WATCHED", subject=world.issuer_id))):
            assert time.monotonic() < deadline, "no EVENTS_WATCHED in the audit trail"
            time.sleep(0.1)
    assert watched[0].actor == f"channel:{world.issuer_id}" and watched[0].detail == "after=0"


def test_the_outbox_holds_no_identity_numbers_or_full_names(world: World, server: InProcessServer) -> None:
    with world.pharmacy() as pos:
        pos.settle([PILL], idempotency_key=uuid.uuid4().hex, token=world.mint(1))
    store = open_store(server.db)
    try:
        details = " ".join(r[0] for r in store.rows("SELECT detail FROM channel_events"))
    finally:
        store.close()
    for card_no, name, idn in world.cards:
        assert idn not in details and name not in details and card_no not in details


# -- upkeep: key expiry warnings and pruning, on the core with a clock ------------------------------
def test_key_expiry_is_told_once_and_old_events_are_pruned(db_url: str) -> None:
    now = [1_800_000_000.0]
    settings = Settings(channel_event_upkeep_s=0, key_expiry_warning_s=86_400, channel_event_retention_s=3600)
    shared = not db_url.startswith("sqlite")  # PostgreSQL: this process alone, with the tests' secret file
    deployment = Deployment.open(settings, db_url, clock=lambda: now[0], single_instance=shared,
                                 secrets=SecretSource.for_database(db_url, shared_secret_file() if shared else None))
    try:
        admin, outbox = deployment.admin, deployment.store.outbox
        admin.upsert_issuer("bank", "Bank")
        key = generate_private_key()
        ending = admin.register_key("bank", "", 1, public_key_pem(key), None, int(now[0]) + 7200)
        admin.register_key("bank", "", 1, public_key_pem(generate_private_key()), None, int(now[0]) + 5 * 86_400)
        admin.enroll_cards([EnrollInput("C0000001", "朱小明", "330203199001011234", "330200", 100)])
        face = Statement.of(TokenSigner(key, issuer_id="bank", kid=ending.kid).attest("C0000001",
                                                                                    checked_at=int(now[0])))
        deployment.cards.issue_ecard(Principal(CHANNEL, "bank"), "C0000001", "朱小明", "330203199001011234", face)
        assert deployment.upkeep.run_once() == 1
        assert deployment.upkeep.run_once() == 0  # told once, whichever process gets there first
        events = outbox.page("bank", 0, 100)
        assert [e.kind for e in events] == ["BINDING", "KEY_EXPIRING"]
        assert events[1].detail == {"kid": ending.kid, "not_after": int(now[0]) + 7200}
        assert outbox.bounds("bank") == (1, 2)
        now[0] += 2 * 3600  # past the retention: both pruned; a cursor before them is refused
        deployment.upkeep.run_once()
        assert outbox.bounds("bank") == (3, 2)
        with pytest.raises(FailedPrecondition) as pruned:
            deployment.channel_events.open(Principal(CHANNEL, "bank"), "", 0)
        assert pruned.value.reason == "EVENTS_PRUNED"
        assert deployment.channel_events.open(Principal(CHANNEL, "bank"), "", 2) == "bank"
        # Counter bindings go a day after they expire.
        counter, shop = deployment.counter, Principal(MERCHANT, "shop")
        code = counter.start(shop, "", "").code
        deployment.upkeep.run_once()
        assert counter.get(shop, "", code).code == code
        now[0] += settings.counter_binding_ttl_s + 86_400 + 1
        deployment.upkeep.run_once()
        with pytest.raises(NotFound):
            counter.get(shop, "", code)
    finally:
        deployment.close()
