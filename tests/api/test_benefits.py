"""Yearly benefits (issue 19): deductible, fund ratio and yearly cap per person category and merchant kind.

On SQLite and PostgreSQL: a policy imported as a new version takes effect at once; a holder's
settlements meet the deductible first, then the fund pays its ratio up to the yearly cap; refunds
give the accumulators back exactly; 50 concurrent settles of one holder never pass the cap nor
overdraw the account; a new calendar year (Asia/Shanghai) starts from zero.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest

from ecard import DrugClass, EcardError, InvalidArgument, line_item, physical_cards
from ecard.testing import World
from ecard_server.core.rules.benefits import CHINA, Accumulated
from ecard_server.storage import open_store
from ecard_server.storage.ledger import accumulators
from tests.helpers.inprocess import InProcessServer

A = DrugClass.A
START = 1_000_000


def policy(deductible: int = 1_000, ratio: str = "0.8", cap: int = 5_000) -> str:
    benefits = [{"person_category": c, "merchant_kind": k, "deductible_fen": deductible if c == "retiree" else 0,
                 "fund_ratio": (ratio if k == "hospital" else "0.7") if c == "retiree" else "0.5",
                 "yearly_cap_fen": cap}
                for c in ("employee", "retiree", "resident") for k in ("pharmacy", "hospital")]
    return json.dumps({"name": "test policy", "benefits": benefits})


@pytest.fixture
def served(db_url: str) -> Iterator[InProcessServer]:
    with InProcessServer(db=db_url) as running:
        yield running


@pytest.fixture
def world(served: InProcessServer) -> World:
    """One e-card whose holder is a retiree (deductible 10 yuan, fund 80 %, cap 50 yuan a year)."""
    world = World.seed(served.target, cards=1, balance_fen=START)
    with world.admin() as admin:
        card_no, name, id_number = world.cards[0]
        admin.enroll_cards(physical_cards([(card_no, name, id_number, "330200", 0, "retiree")]))
        summary = admin.import_benefit_policy(policy())
    assert summary.policy_version and summary.name == "test policy"
    return world


def basket(fen: int) -> list[Any]:
    return [line_item("XA01", "amoxicillin", A, fen)]


def shares(record: Any) -> tuple[int, int, int]:
    return (record.fund_paid_fen, record.personal_account_paid_fen, record.self_pay_fen)


def test_deductible_then_ratio_then_cap_and_refunds_give_back(world: World) -> None:
    with world.hospital() as pos:
        first = pos.settle(basket(3_000), idempotency_key="b-1", token=world.mint(0))
        # 1000 meets the deductible (the account pays it), the fund 80 % of the other 2000.
        assert shares(first) == (1_600, 1_400, 0) and first.policy_version.startswith("b")
        second = pos.settle(basket(3_000), idempotency_key="b-2", token=world.mint(0))
        assert shares(second) == (2_400, 600, 0)  # no deductible left: 80 % of 3000
        third = pos.settle(basket(3_000), idempotency_key="b-3", token=world.mint(0))
        assert shares(third) == (1_000, 2_000, 0)  # the cap: 5000 - 4000 left for the fund
        capped = pos.settle(basket(1_000), idempotency_key="b-4", token=world.mint(0))
        assert capped.fund_paid_fen == 0
        # Refunding the second settlement gives its 2400 back to the year's cap; half of the first gives
        # back half its deductible (500) and its fund part.
        pos.refund(second.settlement_id, idempotency_key="r-2", full=True)
        pos.refund(first.settlement_id, idempotency_key="r-1", amount_fen=1_500)
        again = pos.settle(basket(3_000), idempotency_key="b-5", token=world.mint(0))
        # 500 of the deductible is open again; the fund pays 80 % of 2500 = 2000, within 5000 - 2600 - 800.
        assert shares(again) == (2_000, 1_000, 0)
    with world.pharmacy() as pos:  # a pharmacy follows its own entry (70 %); the yearly cap is the card's
        assert pos.settle(basket(1_000), idempotency_key="p-1", token=world.mint(0)).fund_paid_fen == 700
        # 5000 - (1600 + 2400 + 1000 - 2400 - 800 + 2000 + 700) = 500 left of the cap
        assert pos.settle(basket(1_000), idempotency_key="p-2", token=world.mint(0)).fund_paid_fen == 500


def test_a_bad_policy_is_refused_whole(world: World, served: InProcessServer) -> None:
    before = served.deployment.store.current_policy().version  # type: ignore[union-attr]
    body = json.loads(policy())
    bad = [
        "not json",
        json.dumps({**body, "benefits": body["benefits"][:-1]}),  # resident/hospital missing
        json.dumps({**body, "benefits": [*body["benefits"][:-1], {**body["benefits"][-1], "fund_ratio": "1.5"}]}),
        json.dumps({**body, "benefits": [*body["benefits"][:-1], {**body["benefits"][-1], "yearly_cap_fen": -1}]}),
        json.dumps({**body, "benefits": [*body["benefits"], body["benefits"][0]]}),  # named twice
    ]
    with world.admin() as admin:
        for text in bad:
            with pytest.raises(InvalidArgument) as refused:
                admin.import_benefit_policy(text)
            assert refused.value.reason == "INVALID_POLICY"
    assert served.deployment.store.current_policy().version == before  # type: ignore[union-attr]


def wait_all(count: int, work: Callable[[int], Any]) -> list[Any]:
    gate = threading.Barrier(count)

    def run(n: int) -> Any:
        gate.wait()
        try:
            return work(n)
        except EcardError as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_fifty_concurrent_settles_never_pass_the_cap_or_overdraw(served: InProcessServer) -> None:
    world = World.seed(served.target, cards=1, balance_fen=2_000)
    with world.admin() as admin:
        card_no, name, id_number = world.cards[0]
        admin.enroll_cards(physical_cards([(card_no, name, id_number, "330200", 0, "retiree")]))
        admin.import_benefit_policy(policy(deductible=300, ratio="0.9", cap=4_000))
    tokens = [world.mint(0) for _ in range(50)]
    with world.hospital() as pos:
        records = wait_all(50, lambda n: pos.settle(basket(1_000), idempotency_key=f"c-{n}", token=tokens[n]))
    failures = [r for r in records if isinstance(r, Exception)]
    assert not failures, failures
    assert all(sum(shares(r)) == 1_000 for r in records)
    assert sum(r.fund_paid_fen for r in records) == 4_000  # exactly the cap, never more
    assert sum(r.personal_account_paid_fen for r in records) == 2_000  # exactly the balance, never more
    with world.admin() as admin:
        assert admin.get_ecard(world.ecard_ids[0]).personal_account_balance_fen == 0
    store = open_store(served.db)
    try:
        with store.transaction() as cur:
            year = datetime.now(CHINA).year
            assert accumulators(cur, card_no, year) == Accumulated(300, 4_000)
    finally:
        store.close()


def test_a_new_year_starts_from_zero(served: InProcessServer, db_url: str) -> None:
    """The accumulators are per calendar year in Asia/Shanghai: a settlement at 00:00 on 1 January
    (16:00 UTC the day before) meets the deductible again."""
    world = World.seed(served.target, cards=1, balance_fen=START)
    with world.admin() as admin:
        card_no, name, id_number = world.cards[0]
        admin.enroll_cards(physical_cards([(card_no, name, id_number, "330200", 0, "retiree")]))
        admin.import_benefit_policy(policy())
    deployment = served.deployment
    assert deployment is not None
    last_second = int(datetime(2026, 12, 31, 23, 59, 59, tzinfo=CHINA).timestamp())
    clock = [float(last_second)]
    service = deployment.settlements
    service._clock = lambda: clock[0]  # type: ignore[attr-defined]  # the service's own clock, moved
    verify = deployment.verifier
    verify._clock = lambda: clock[0]  # type: ignore[attr-defined]
    token_at = {"issued_at": last_second - 10}
    with world.hospital() as pos:
        december = pos.settle(basket(3_000), idempotency_key="y-1", token=world.mint(0, **token_at))
        clock[0] = last_second + 1  # 2027-01-01 00:00:00 in Shanghai
        january = pos.settle(basket(3_000), idempotency_key="y-2", token=world.mint(0, **token_at))
    assert shares(december) == shares(january) == (1_600, 1_400, 0)


def test_a_reversal_gives_the_accumulators_back_as_a_refund_does(world: World) -> None:
    """ReverseSettlement (issue 20) refunds through the same give-back as Refund, which restores the
    year's accumulators: the next settlement meets the deductible and the ratio as the first did."""
    with world.hospital() as pos:
        first = pos.settle(basket(3_000), idempotency_key="rv-1", token=world.mint(0))
        assert shares(first) == (1_600, 1_400, 0)
        reversed_ = pos.reverse_settlement("rv-1")
        assert reversed_.settled
        again = pos.settle(basket(3_000), idempotency_key="rv-2", token=world.mint(0))
    assert shares(again) == shares(first)
