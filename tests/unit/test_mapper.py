"""storage.mapper: the columns it declares are the columns the database answers with, by name, so a
record is never built from the wrong column."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ecard_server.storage import SqlStore, mapper, open_store

TABLES = {
    mapper.ISSUER: "issuers", mapper.CATALOGUE_ITEM: "catalogue_items",
    mapper.CARD: "cards", mapper.BINDING: "ecard_channels", mapper.KEY: "issuer_keys",
    mapper.MERCHANT: "merchants", mapper.DENIED: "denied_certificates", mapper.AUDIT: "audit",
    mapper.CHANNEL_EVENT: "channel_events", mapper.COUNTER: "counter_bindings", mapper.ACCOUNT: "cards",
    mapper.PAID: "settlements",
    mapper.SETTLEMENT: "settlements", mapper.REFUND: "refunds",
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = open_store(f"sqlite:///{tmp_path}/ecard.db")
    try:
        yield opened
    finally:
        opened.close()


def answered(store: SqlStore, sql: str) -> list[str]:
    with store.transaction() as cur:
        cur.execute(sql + " LIMIT 0")
        return [column[0] for column in cur.description]  # type: ignore[attr-defined]


def test_every_declared_select_answers_with_its_names_in_order(store: SqlStore) -> None:
    for columns, table in TABLES.items():
        assert answered(store, f"SELECT {columns.select} FROM {table}") == list(columns.names), table
    joined = answered(store, mapper.SETTLEMENT_SELECT)
    assert joined == list(mapper.SETTLEMENT_WITH_REFUNDS.names)
    assert len(set(joined)) == len(joined)  # the join's columns are told apart by name


def test_a_row_of_another_shape_is_refused() -> None:
    with pytest.raises(ValueError):
        mapper.KEY.named(("bank", "kid"))
    assert mapper.MERCHANT.named(("m", "M", 1, "330200", 1))["designated"] == 1
