"""The operator reads the insert-only audit trail (Admin.ListAuditEvents): who did what to which
e-card, when, with what outcome; filtered by kind, actor, subject and time, read page by page."""

from __future__ import annotations

import time

import pytest

from ecard import InvalidArgument, Purpose, generate_private_key, line_item, public_key_pem
from ecard.testing import World
from ecard.v1 import types_pb2 as t
from tests.helpers.inprocess import InProcessServer

KINDS = {"VERIFY", "SETTLE", "REFUND", "CARD_STATUS", "ECARD_ISSUED", "ACCOUNT_CREDIT", "KEY_REGISTERED",
         "KEY_REVOKED", "MERCHANT_CHANGED"}


@pytest.fixture(scope="module")
def day() -> tuple[InProcessServer, World, int, int]:
    with InProcessServer() as server:
        start = int(time.time())
        world = World.seed(server.target, cards=2)
        with world.pharmacy() as pos:
            assert pos.verify(world.mint(0), purpose=Purpose.IDENTITY).reason == t.REASON_OK
            record = pos.settle([line_item("XA01", "amoxicillin", t.DRUG_CLASS_A, unit_price_fen=1280)],
                                idempotency_key="r-1", token=world.mint(0))
            pos.refund(record.settlement_id, idempotency_key="f-1", full=True)
        with world.admin() as admin:
            admin.credit_account(world.cards[1][0], 500, "c-1")
            admin.report_lost(ecard_id=world.ecard_ids[1])
            kid = admin.register_key(world.issuer_id, public_key_pem(generate_private_key())).kid
            admin.revoke_key(world.issuer_id, kid)
            deadline = time.monotonic() + 10  # Verify records are written in batches, every 0.5 s
            while not list(admin.audit_events(kind="VERIFY")) and time.monotonic() < deadline:
                time.sleep(0.1)
        yield server, world, start, kid


def test_every_kind_of_event_is_there_with_who_and_what(day) -> None:  # type: ignore[no-untyped-def]
    _, world, start, kid = day
    with world.admin() as admin:
        events = list(admin.audit_events())
    assert {e.kind for e in events} == KINDS
    assert [e.event_id for e in events] == sorted(e.event_id for e in events)
    assert all(e.at.seconds >= start - 1 for e in events)
    by_kind = {e.kind: e for e in events}
    assert (by_kind["VERIFY"].actor, by_kind["VERIFY"].subject) == (world.pharmacy_id, world.ecard_ids[0])
    assert by_kind["VERIFY"].detail.endswith(f" {t.REASON_OK}")
    assert by_kind["SETTLE"].actor == f"merchant:{world.pharmacy_id}" and "total=1280" in by_kind["SETTLE"].detail
    assert by_kind["KEY_REVOKED"].subject == f"{world.issuer_id}/{kid}"


def test_filters_and_pages_give_the_same_events(day) -> None:  # type: ignore[no-untyped-def]
    _, world, start, _ = day
    with world.admin() as admin:
        everything = list(admin.audit_events())
        paged = list(admin.audit_events(page_size=2))
        card = list(admin.audit_events(subject=world.ecard_ids[0]))
        settles = list(admin.audit_events(kind="SETTLE", actor=f"merchant:{world.pharmacy_id}"))
        before = list(admin.audit_events(until=start - 10))
        later = list(admin.audit_events(since=start - 1))
    assert paged == everything
    assert sorted(e.kind for e in card) == ["ECARD_ISSUED", "REFUND", "SETTLE", "VERIFY"]
    assert len(settles) == 1 and before == [] and later == everything


def test_bad_pages_are_invalid_arguments(day) -> None:  # type: ignore[no-untyped-def]
    _, world, _, _ = day
    with world.admin() as admin:
        for options in ({"page_size": 5000}, {"kind": "X" * 300}):
            with pytest.raises(InvalidArgument):
                list(admin.audit_events(**options))
    import grpc

    from ecard.v1 import admin_pb2, admin_pb2_grpc

    with grpc.insecure_channel(world.target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            admin_pb2_grpc.AdminStub(channel).ListAuditEvents(
                admin_pb2.ListAuditEventsRequest(page_token="not-a-token"), metadata=(("x-ecard-principal", "admin"),))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
