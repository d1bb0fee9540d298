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
    """HMAC-SHA256 of a normalised identity number with a server secret: comparable, not reversible.

    The two keyed SHA-256 states are made once and copied per hash (a bulk enrollment hashes millions
    of numbers; `hmac.new` sets the key up again each time, which costs more than the hashing)."""

    def __init__(self, secret: bytes) -> None:
        self._key = derive_key(secret, "identity")
        block = self._key.ljust(64, b"\x00")  # a 32-byte key is used as is, padded to SHA-256's block
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def hash(self, id_number: str) -> bytes:
        inner = self._inner.copy()
        inner.update(id_number.strip().upper().encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def matches(self, id_number: str, stored: bytes) -> bool:
        return hmac.compare_digest(self.hash(id_number), stored)
