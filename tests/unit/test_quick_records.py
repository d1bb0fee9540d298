"""core.records.quick_init: the per-line records (LineItem, LinePricing, Shares) built through their slot
descriptors are the frozen dataclasses they were: same fields and signature, frozen, equal and hashed by
value."""

from __future__ import annotations

import dataclasses

import pytest

from ecard_server.core.records import LineItem, LinePricing, Shares, quick_init


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


def test_quick_init_takes_only_required_fields() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithDefault:
        a: int
        b: int = 0

    with pytest.raises(TypeError, match="required fields only"):
        quick_init(WithDefault)


def test_shares_total() -> None:
    assert Shares(5, 3, 2).total_fen == 10
    assert LineItem("X", "", 0, 120, 3).amount_fen == 360
