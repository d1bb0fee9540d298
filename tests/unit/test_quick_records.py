"""core.records.quick_init: the records built through their slot descriptors (LineItem, LinePricing,
Shares per basket line; Split, SettleInput, SettlementRecord, Draft, Quote per call) are the frozen
dataclasses they were: same fields, signature and defaults, frozen, equal and hashed by value."""

from __future__ import annotations

import dataclasses

import pytest

from ecard_server.core.records import LineItem, LinePricing, SettleInput, SettlementRecord, Shares, Split, quick_init


@pytest.mark.parametrize("record", [
    LineItem("XA01", "amoxicillin", 1, 1280, 2),
    LineItem(code="XA01", name="amoxicillin", drug_class=1, unit_price_fen=1280, quantity=2),
    LinePricing(2, 700, 300, 55, 0),
    Shares(fund_fen=5, account_fen=3, self_pay_fen=2),
])
def test_a_quick_record_is_the_frozen_dataclass_it_was(record: object) -> None:
    names = [f.name for f in dataclasses.fields(record)]  # type: ignore[arg-type]
    values = [getattr(record, name) for name in names]
    again = type(record)(*values)
    assert again == record and hash(again) == hash(record) and again is not record
    assert type(record)(**dict(zip(names, values, strict=True))) == record
    assert repr(record) == f"{type(record).__name__}(" + ", ".join(
        f"{n}={v!r}" for n, v in zip(names, values, strict=True)) + ")"
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, names[0], values[0])
    with pytest.raises(TypeError):
        type(record)(*values[:-1])  # every field is required


def test_quick_init_keeps_defaults_and_refuses_what_it_cannot_make() -> None:
    @quick_init
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithDefault:
        a: int
        b: tuple[int, ...] = ()
        c: str = "c"

    assert WithDefault(1) == WithDefault(1, (), "c") and WithDefault(1, c="x").c == "x"
    assert dataclasses.replace(WithDefault(1, (2,)), c="y") == WithDefault(1, (2,), "y")
    with pytest.raises(TypeError):
        WithDefault()  # type: ignore[call-arg]

    @dataclasses.dataclass(frozen=True, slots=True)
    class WithFactory:
        a: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True, slots=True)
    class WithPostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    for cls in (WithFactory, WithPostInit):
        with pytest.raises(TypeError, match="quick_init takes"):
            quick_init(cls)


def test_a_record_with_defaults_is_the_dataclass_it_was() -> None:
    record = SettlementRecord("S1", "E1", "M1", 1, 100, 60, 30, 10, 900, (), 1_700_000_000, None)
    assert record.refunded == Shares(0, 0, 0) and record.line_shares == () and record.reversed_at is None
    assert dataclasses.replace(record, terminal_id="T1") == SettlementRecord(
        "S1", "E1", "M1", 1, 100, 60, 30, 10, 900, (), 1_700_000_000, None, terminal_id="T1")
    assert SettleInput("k", ()).quote_id == "" and Split(10, 5, 3).lines == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.total_fen = 1  # type: ignore[misc]


def test_shares_total() -> None:
    assert Shares(5, 3, 2).total_fen == 10
    assert LineItem("X", "", 0, 120, 3).amount_fen == 360
