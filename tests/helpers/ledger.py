"""Reading what a server wrote: its database opened from the test, an account against its ledger."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ecard.testing import World
from ecard_server.storage import SqlStore, open_store


def balance(world: World, card: int = 0) -> int:
    with world.admin() as admin:
        return admin.get_ecard(world.ecard_ids[card]).personal_account_balance_fen


def ledger_rows(store: SqlStore, world: World, card: int = 0) -> list[tuple[str, int, int]]:
    return [tuple(r) for r in store.rows(  # type: ignore[misc]
        "SELECT kind, delta_fen, balance_after_fen FROM ledger WHERE card_no = ? ORDER BY entry_id",
        (world.cards[card][0],),
    )]


def assert_account_equals_ledger(store: SqlStore, world: World, card: int = 0) -> int:
    card_no = world.cards[card][0]
    stored = store.get_card(card_no=card_no)
    assert stored is not None
    assert stored.balance_fen >= 0
    assert store.ledger.ledger_total(card_no) == stored.balance_fen
    assert balance(world, card) == stored.balance_fen
    return stored.balance_fen


def settlement_count(store: SqlStore, merchant_id: str) -> int:
    return int(store.rows("SELECT COUNT(*) FROM settlements WHERE merchant_id = ?", (merchant_id,))[0][0])


@contextmanager
def database(url: str) -> Iterator[SqlStore]:
    """A server's database, opened from the test to read what was written."""
    opened = open_store(url)
    try:
        yield opened
    finally:
        opened.close()
