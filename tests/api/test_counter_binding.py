"""Binding at the counter, end to end with the SDK on both sides: the pharmacy's POS starts a binding and
shows its QR; the holder scans it in her bank's app; the bank completes IssueECard with the code (its
signed face statement names it); the POS, long-polling, learns her e-card and verifies her first token."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from ecard import (
    AsyncPharmacyClient,
    DrugClass,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Purpose,
    Reason,
    line_item,
    physical_cards,
)
from ecard.testing import World, fake_holder
from ecard.v1 import cards_pb2, types_pb2
from ecard_server.config import Settings
from tests.helpers.inprocess import InProcessServer

COMPLETED, PENDING, EXPIRED = (cards_pb2.COUNTER_BINDING_STATUS_COMPLETED, cards_pb2.COUNTER_BINDING_STATUS_PENDING,
                               cards_pb2.COUNTER_BINDING_STATUS_EXPIRED)


def enrolled(world: World) -> tuple[str, str, str]:
    """A holder with a physical card and no e-card yet (she came to the counter with her card)."""
    holder = fake_holder(0, uuid.uuid4().hex[:8])
    with world.admin() as admin:
        admin.enroll_cards(physical_cards([(*holder, "330200", 20_000)]))
    return holder


@pytest.fixture
def notices_only() -> Iterator[InProcessServer]:
    """A server whose waits read again only every 20 s: what ends them sooner is the change notice."""
    with InProcessServer(settings=Settings(channel_event_poll_ms=20_000)) as server:
        yield server


def test_the_counter_learns_her_new_ecard_and_scans_her_first_token(notices_only: InProcessServer) -> None:
    world = World.seed(notices_only.target, cards=0)
    card_no, name, idn = enrolled(world)
    with world.pharmacy() as pos:
        shown = pos.start_counter_binding(terminal_id="till-1")
        assert shown.status == PENDING and shown.qr_text == "ECB1:" + shown.binding_code
        assert shown.expires_at.seconds > time.time() and shown.terminal_id == "till-1"
        heard: list[cards_pb2.CounterBinding] = []
        waiting = threading.Thread(target=lambda: heard.append(pos.wait_counter_binding(shown.binding_code,
                                                                                         timeout_s=20)))
        waiting.start()
        time.sleep(0.3)  # the POS is long-polling now
        with world.channel() as bank:  # the holder scanned the QR text in her bank's app
            issued = bank.issue_ecard(card_no, name, idn, binding_code=shown.qr_text,
                                      assurance=types_pb2.ASSURANCE_FACE)
        completed_at = time.monotonic()
        waiting.join(timeout=20)
        assert heard, "the long poll never answered"
        learnt = heard[0]
        assert time.monotonic() - completed_at < 1.0, "the POS learns at once, not at its next poll"
        assert learnt.status == COMPLETED and learnt.issuer_id == world.issuer_id
        assert learnt.card.ecard_id == issued.ecard_id and learnt.card.holder_name_masked == issued.holder_name_masked
        assert learnt.HasField("completed_at")
        # Her app shows her first code; the counter scans it and settles.
        token = world.signer.mint(issued.ecard_id, purposes=[Purpose.MEDICAL_SETTLEMENT])
        answer = pos.verify(token, purpose=Purpose.MEDICAL_SETTLEMENT)
        assert answer.reason == Reason.OK and answer.card.ecard_id == issued.ecard_id
        record = pos.settle([line_item("A001", "amoxicillin", DrugClass.A, 1000)],
                            idempotency_key=uuid.uuid4().hex, verification_id=answer.verification_id)
        assert record.ecard_id == issued.ecard_id
        assert pos.get_counter_binding(shown.binding_code).status == COMPLETED
    with world.admin() as admin:
        kinds = [e.kind for e in admin.audit_events(subject=shown.binding_code)]
        completed = [e for e in admin.audit_events(kind="COUNTER_BINDING_COMPLETED", subject=issued.ecard_id)]
    assert kinds[0] == "COUNTER_BINDING_STARTED"
    assert completed and completed[0].actor == f"channel:{world.issuer_id}"
    assert f"merchant={world.pharmacy_id}" in completed[0].detail


def test_a_code_completes_one_binding_once_and_only_as_its_statement_says(world: World) -> None:
    card_no, name, idn = enrolled(world)
    other_card = enrolled(world)
    with world.pharmacy() as pos, world.channel() as bank:
        code = pos.start_counter_binding().binding_code
        # The statement must name the code: a face check made for something else does not complete it.
        statement = world.signer.attest(card_no)
        request = cards_pb2.IssueECardRequest(card_no=card_no, holder_name=name, id_number=idn,
                                              assurance=3, assurance_statement=statement, binding_code=code)
        with pytest.raises(FailedPrecondition) as unnamed:
            bank._call(bank._cards.IssueECard, request)
        assert unnamed.value.reason == "ASSURANCE_STATEMENT_INVALID"
        for bad, error, why in (("ECB1:short", InvalidArgument, "INVALID_BINDING_CODE"),
                                ("A" * 16, FailedPrecondition, "BINDING_CODE_UNKNOWN")):
            with pytest.raises(error) as refused:
                bank.issue_ecard(card_no, name, idn, binding_code=bad, assurance=types_pb2.ASSURANCE_FACE)
            assert refused.value.reason == why
        first = bank.issue_ecard(card_no, name, idn, binding_code=code, assurance=types_pb2.ASSURANCE_FACE)
        # a retry of the same issuance
        again = bank.issue_ecard(card_no, name, idn, binding_code=code, assurance=types_pb2.ASSURANCE_FACE)
        assert again.ecard_id == first.ecard_id
        with pytest.raises(FailedPrecondition) as used:
            bank.issue_ecard(*other_card, binding_code=code, assurance=types_pb2.ASSURANCE_FACE)
        assert used.value.reason == "BINDING_CODE_USED"
        assert pos.get_counter_binding(code).card.ecard_id == first.ecard_id


def test_only_the_merchant_that_started_it_reads_it(world: World) -> None:
    with world.pharmacy() as pos:
        code = pos.start_counter_binding().binding_code
        with pytest.raises(InvalidArgument):
            pos.get_counter_binding(code, wait_s=31)
        with pytest.raises(InvalidArgument):
            pos.get_counter_binding("not a code")
        started = time.monotonic()
        assert pos.get_counter_binding(code, wait_s=1).status == PENDING  # the long poll ends at its wait
        assert 0.9 < time.monotonic() - started < 3
    with world.hospital() as other:
        with pytest.raises(NotFound) as hidden:
            other.get_counter_binding(code)
        assert hidden.value.reason == "COUNTER_BINDING_UNKNOWN"


@pytest.fixture
def short_lived() -> Iterator[InProcessServer]:
    with InProcessServer(settings=Settings(counter_binding_ttl_s=1)) as server:
        yield server


def test_an_expired_code_is_refused_and_the_async_pos_hears_so(short_lived: InProcessServer) -> None:
    world = World.seed(short_lived.target, cards=0)
    card_no, name, idn = enrolled(world)

    async def counter() -> cards_pb2.CounterBinding:
        async with AsyncPharmacyClient(world.target, merchant_id=world.pharmacy_id) as pos:
            code = (await pos.start_counter_binding()).binding_code
            return await pos.wait_counter_binding(code, timeout_s=10)

    expired = asyncio.run(counter())
    assert expired.status == EXPIRED and not expired.HasField("card")
    with world.channel() as bank, pytest.raises(FailedPrecondition) as late:
        bank.issue_ecard(card_no, name, idn, binding_code=expired.binding_code, assurance=types_pb2.ASSURANCE_FACE)
    assert late.value.reason == "BINDING_CODE_EXPIRED"
