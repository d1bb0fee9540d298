"""Masking and keyed hashing of what identifies a person. Nothing here is ever stored or logged in clear."""

from __future__ import annotations

import hashlib
import hmac


def mask_name(name: str) -> str:
    """First character only: 朱小明 -> 朱**."""
    return name[:1] + "*" * max(len(name) - 1, 1) if name else ""


def mask_card_no(card_no: str) -> str:
    """Last four characters only: A12345678 -> *****5678."""
    return "*" * max(len(card_no) - 4, 0) + card_no[-4:]


def derive_key(secret: bytes, purpose: str) -> bytes:
    """One independent key per purpose from the server secret."""
    return hmac.new(secret, b"ecard/v1/" + purpose.encode(), hashlib.sha256).digest()


class IdentityHasher:
    """HMAC-SHA256 of a normalised identity number with a server secret: comparable, not reversible."""

    def __init__(self, secret: bytes) -> None:
        self._key = derive_key(secret, "identity")

    def hash(self, id_number: str) -> bytes:
        normalised = id_number.strip().upper().encode("utf-8")
        return hmac.new(self._key, normalised, hashlib.sha256).digest()

    def matches(self, id_number: str, stored: bytes) -> bool:
        return hmac.compare_digest(self.hash(id_number), stored)
