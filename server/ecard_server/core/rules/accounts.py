"""The personal account's bound: what a credit may make of a balance. No I/O."""

from __future__ import annotations

from ecard.errors import FailedPrecondition
from ecard_server.core.rules.validation import MAX_BALANCE_FEN


def credited_balance(balance_fen: int, amount_fen: int) -> int:
    """The balance after a credit, from the balance read under the card's row lock. A credit may not
    take a balance above MAX_BALANCE_FEN; a refund may (it gives back what a settlement took, so a
    balance stays below MAX_BALANCE_FEN plus what its open settlements took: far inside int64)."""
    after = balance_fen + amount_fen
    if after > MAX_BALANCE_FEN:
        raise FailedPrecondition(f"the credit would take the balance above the ceiling of {MAX_BALANCE_FEN} fen",
                                 "BALANCE_LIMIT_EXCEEDED")
    return after
