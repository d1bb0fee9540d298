"""Idempotency keys: the same key with the same request is the same operation, answered once."""

from __future__ import annotations

from ecard.errors import AlreadyExists


def same_request(first_hash: bytes, request_hash: bytes, what: str) -> None:
    """Raises AlreadyExists when a key that served one request (`first_hash`) comes with another."""
    if first_hash != request_hash:
        raise AlreadyExists(f"idempotency_key was used for another {what}", "IDEMPOTENCY_KEY_REUSED")
