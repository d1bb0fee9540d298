"""Usage history (用卡记录, Cards.ListUsage): an e-card's verifications, settlements and refunds, newest first,
paged, for the channels bound to it and the operator; NOT_FOUND for anyone else."""

from __future__ import annotations

import time
import uuid

import pytest

from ecard import (
    DrugClass,
    InvalidArgument,
    MerchantKind,
    NotFound,
    Purpose,
    Reason,
    line_item,
)
from ecard.testing import World
from ecard.v1 import cards_pb2
from tests.helpers.inprocess import InProcessServer

PILL = line_item("A001", "amoxicillin", DrugClass.A, 1000)


def uses(world: World, card: int = 0, **options: int) -> list[cards_pb2.UsageRecord]:
    with world.channel() as channel:
        return list(channel.list_usage(world.ecard_ids[card], **options))


def test_the_holders_channel_lists_verifications_settlements_and_refunds_newest_first(world: World) -> None:
    with world.admin() as admin:
        admin.upsert_merchant(world.pharmacy_id, kind=MerchantKind.PHARMACY, display_name="仁心大药房", region="330200")
    with world.pharmacy() as pos:
        assert pos.verify(world.mint(0), purpose=Purpose.IDENTITY, terminal_id="till-3").reason == Reason.OK
        refused = pos.verify(world.mint(0, purposes=[Purpose.PAYMENT]), purpose=Purpose.IDENTITY)
        assert refused.reason == Reason.PURPOSE_NOT_ALLOWED
        record = pos.settle([PILL], idempotency_key=uuid.uuid4().hex, token=world.mint(0))
        pos.refund(record.settlement_id, idempotency_key=uuid.uuid4().hex, reason="returned", full=True)
        pos.verify(world.mint(1), purpose=Purpose.IDENTITY)  # another holder's: not in this history
    deadline = time.monotonic() + 5  # verifications reach the audit trail in the background
    while len(listed := uses(world)) < 4:
        assert time.monotonic() < deadline, listed
        time.sleep(0.1)
    by_kind = {kind: [u for u in listed if u.kind == kind] for kind in (1, 2, 3)}
    verifications, settlements, refunds = by_kind[1], by_kind[2], by_kind[3]
    assert len(listed) == 4 and len(settlements) == len(refunds) == 1 and len(verifications) == 2
    assert [u.at.seconds for u in listed] == sorted((u.at.seconds for u in listed), reverse=True)
    assert {(v.reason, v.terminal_id) for v in verifications} == {(Reason.OK, "till-3"),
                                                                  (Reason.PURPOSE_NOT_ALLOWED, "")}
    settled = settlements[0]
    assert (settled.settlement_id, settled.merchant_id, settled.merchant_name) == (
        record.settlement_id, world.pharmacy_id, "仁心大药房")
    assert (settled.total_fen, settled.personal_account_paid_fen, settled.fund_paid_fen) == (1000, 1000, 0)
    assert (refunds[0].settlement_id, refunds[0].total_fen) == (record.settlement_id, 1000)
    assert all(u.merchant_name == "仁心大药房" for u in listed)
    # Paged one at a time: the same uses in the same order, none twice.
    assert [u.SerializeToString() for u in uses(world, page_size=1)] == [u.SerializeToString() for u in listed]
    with world.admin() as admin:
        assert len(list(admin.list_usage(world.ecard_ids[0], page_size=3))) == 4
        listed_rows = []
        deadline = time.monotonic() + 5
        while not listed_rows:
            listed_rows = list(admin.audit_events(kind="USAGE_LISTED", subject=world.ecard_ids[0]))
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert listed_rows[0].actor == f"channel:{world.issuer_id}"


def test_another_channel_is_told_not_found_and_bad_pages_are_refused(world: World) -> None:
    stranger = World.seed(world.target, cards=1)
    with stranger.channel() as channel:
        for ecard_id in (world.ecard_ids[0], "EAAAAAAAAAAAAAAAA"):
            with pytest.raises(NotFound) as hidden:
                list(channel.list_usage(ecard_id))
            assert hidden.value.reason == "CARD_UNKNOWN"
    with world.channel() as channel:
        for options, why in (({"page_size": 501}, "INVALID_PAGE_SIZE"), ({"page_size": -1}, "INVALID_PAGE_SIZE")):
            with pytest.raises(InvalidArgument) as refused:
                list(channel.list_usage(world.ecard_ids[0], **options))
            assert refused.value.reason == why
        request = cards_pb2.ListUsageRequest(ecard_id=world.ecard_ids[0], page_token="not-a-token")
        with pytest.raises(InvalidArgument) as forged:
            channel._call(channel._cards.ListUsage, request)
        assert forged.value.reason == "INVALID_PAGE_TOKEN"
        with pytest.raises(InvalidArgument):
            list(channel.list_usage(""))
        # A suspended binding still sees its holder's history; an unbound channel no longer does.
        channel.suspend_binding(world.ecard_ids[0])
        assert list(channel.list_usage(world.ecard_ids[0])) == []
        channel.unbind(world.ecard_ids[0])
        with pytest.raises(NotFound):
            list(channel.list_usage(world.ecard_ids[0]))


def test_pages_hold_together_on_each_backend(db_url: str) -> None:
    with InProcessServer(db=db_url) as server:
        world = World.seed(server.target, cards=1)
        with world.pharmacy() as pos:
            for _ in range(3):
                record = pos.settle([PILL], idempotency_key=uuid.uuid4().hex, token=world.mint(0))
                pos.refund(record.settlement_id, idempotency_key=uuid.uuid4().hex, reason="returned", full=True)
        whole = uses(world)
        assert [u.kind for u in whole].count(2) == 3 and [u.kind for u in whole].count(3) == 3
        for size in (1, 2, 4):
            assert [u.SerializeToString() for u in uses(world, page_size=size)] == [
                u.SerializeToString() for u in whole]
