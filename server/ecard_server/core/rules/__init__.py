"""The core's rules: pure functions and the drafts that carry them to the ledger. No I/O.

    settlement.py    the coverage split, a settlement's shares under the card's lock, request hashes
    refunds.py       what a refund gives back to each share
    validation.py    every input check
    idempotency.py   the same key with another request is refused
"""
