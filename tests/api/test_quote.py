"""Quote (预结算) then Settle by quote_id: the holder is never charged a split other than the one shown.

On SQLite and PostgreSQL, through the SDK: a Quote moves nothing; Settle with its quote_id moves
exactly the quoted split; when the balance, the catalogue or the policy changed in between, or the
quote expired, it refuses FAILED_PRECONDITION QUOTE_STALE and moves nothing; a quote is for one
basket, one merchant, one settlement; any replica settles it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from ecard import (
    Assurance,
    DrugClass,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    PharmacyClient,
    Purpose,
    catalogue_item,
    line_item,
)
from ecard.testing import World
from tests.helpers.inprocess import InProcessServer

A, B, C = DrugClass.A, DrugClass.B, DrugClass.C
BASKET = [line_item("XA01", "amoxicillin", A, 1280, 2), line_item("XB07", "ibuprofen", B, 1550),
          line_item("XC11", "vitamin C", C, 900)]
START = 100_000


@pytest.fixture
def served(replicable: Callable[..., InProcessServer]) -> Iterator[InProcessServer]:
    with replicable(quote_window_s=60) as running:
        yield running


@pytest.fixture
def world(served: InProcessServer) -> World:
    return World.seed(served.target, cards=1, balance_fen=START)


def balance(world: World) -> int:
    with world.admin() as admin:
        return admin.get_ecard(world.ecard_ids[0]).personal_account_balance_fen


def verified(pos: PharmacyClient, world: World) -> str:
    answer = pos.verify(world.mint(0), purpose=Purpose.MEDICAL_SETTLEMENT, min_assurance=Assurance.PIN)
    return answer.verification_id


def test_settle_moves_exactly_the_quoted_split(world: World) -> None:
    with world.hospital() as pos:
        quote = pos.quote(BASKET, verification_id=verified(pos, world))
        assert balance(world) == START  # a quote moves nothing
        shown = (quote.fund_paid_fen, quote.personal_account_paid_fen, quote.self_pay_fen)
        assert shown == (1978, 1977, 1055) and quote.total_fen == 5010
        assert quote.personal_account_balance_fen == START and quote.policy_version.startswith("p-")
        assert [ln.personal_account_fen for ln in quote.lines] == [1280, 697, 0]
        record = pos.settle(BASKET, idempotency_key="rx-q", quote_id=quote.quote_id)
        assert (record.fund_paid_fen, record.personal_account_paid_fen, record.self_pay_fen) == shown
        assert list(record.lines) == list(quote.lines)
        assert (record.catalogue_version, record.policy_version) == (quote.catalogue_version, quote.policy_version)
        assert pos.settle(BASKET, idempotency_key="rx-q", quote_id=quote.quote_id) == record  # a retry
        with pytest.raises(FailedPrecondition) as twice:
            pos.settle(BASKET, idempotency_key="rx-q2", quote_id=quote.quote_id)
        assert twice.value.reason == "VERIFICATION_USED"
    assert balance(world) == START - 1977


def test_a_changed_balance_makes_the_quote_stale(world: World) -> None:
    with world.pharmacy() as pos:
        quote = pos.quote(BASKET, token=world.mint(0))
        with world.admin() as admin:
            admin.credit_account(world.cards[0][0], 500, "top-up")  # the account changed meanwhile
        with pytest.raises(FailedPrecondition) as stale:
            pos.settle(BASKET, idempotency_key="rx-stale", quote_id=quote.quote_id)
        assert stale.value.reason == "QUOTE_STALE"
        assert balance(world) == START + 500
        # Nothing settled under that key; a fresh quote shows the new split and settles it.
        again = pos.quote(BASKET, token=world.mint(0))
        record = pos.settle(BASKET, idempotency_key="rx-fresh", quote_id=again.quote_id)
        assert record.personal_account_paid_fen == again.personal_account_paid_fen


def test_a_small_balance_spent_elsewhere_is_stale_not_an_other_split(world: World) -> None:
    with world.admin() as admin:
        admin.credit_account(world.cards[0][0], 1, "one-fen")
    with world.pharmacy() as pos:
        quote = pos.quote(BASKET, verification_id=verified(pos, world))
        pos.settle([line_item("XA01", "a", A, 100)], idempotency_key="elsewhere", token=world.mint(0))
        with pytest.raises(FailedPrecondition) as stale:
            pos.settle(BASKET, idempotency_key="rx-late", quote_id=quote.quote_id)
        assert stale.value.reason == "QUOTE_STALE"


def test_a_new_catalogue_makes_the_quote_stale(world: World) -> None:
    items = [catalogue_item("XA01", "amoxicillin", A, 2000), catalogue_item("XB07", "ibuprofen", B, 2000),
             catalogue_item("XC11", "vitamin C", C, 2000)]
    with world.admin() as admin:
        admin.import_catalogue(items)
    with world.hospital() as pos:
        quote = pos.quote(BASKET, verification_id=verified(pos, world))
        with world.admin() as admin:
            admin.import_catalogue([catalogue_item("XA01", "amoxicillin", A, 1000), *items[1:]])  # a lower limit
        with pytest.raises(FailedPrecondition) as stale:
            pos.settle(BASKET, idempotency_key="rx-cat", quote_id=quote.quote_id)
        assert stale.value.reason == "QUOTE_STALE"
    assert balance(world) == START


def test_a_quote_is_for_its_basket_its_merchant_and_its_time(world: World, served: InProcessServer) -> None:
    with world.pharmacy() as pos, world.hospital() as other:
        quote = pos.quote(BASKET, verification_id=verified(pos, world))
        with pytest.raises(InvalidArgument) as changed:
            pos.settle(BASKET[:2], idempotency_key="rx-less", quote_id=quote.quote_id)
        assert changed.value.reason == "QUOTE_MISMATCH"
        with pytest.raises(PermissionDenied) as theirs:
            other.settle(BASKET, idempotency_key="rx-theirs", quote_id=quote.quote_id)
        assert theirs.value.reason == "QUOTE_NOT_YOURS"
        forged = quote.quote_id[:-3] + ("AAA" if not quote.quote_id.endswith("AAA") else "BBB")
        with pytest.raises(InvalidArgument) as bad:
            pos.settle(BASKET, idempotency_key="rx-forged", quote_id=forged)
        assert bad.value.reason == "QUOTE_INVALID"
    assert balance(world) == START
    with served.replica(quote_window_s=1) as short, \
            PharmacyClient(short.target, merchant_id=world.pharmacy_id) as pos:
        quote = pos.quote(BASKET, token=world.mint(0))
        time.sleep(2.2)
        with pytest.raises(FailedPrecondition) as late:
            pos.settle(BASKET, idempotency_key="rx-late", quote_id=quote.quote_id)
        assert late.value.reason == "QUOTE_STALE" and "expired" in late.value.message


def test_any_replica_settles_a_quote(world: World, served: InProcessServer) -> None:
    with served.replica() as replica, world.hospital() as here, \
            PharmacyClient(replica.target, merchant_id=world.hospital_id) as there:
        quote = here.quote(BASKET, token=world.mint(0))
        record = there.settle(BASKET, idempotency_key="rx-replica", quote_id=quote.quote_id)
    assert record.personal_account_paid_fen == quote.personal_account_paid_fen
