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


class _KeyedHash:
    """HMAC-SHA256 with one key, its two keyed SHA-256 states made once and copied per hash (a bulk
    enrollment hashes millions of rows; `hmac.new` sets the key up again each time)."""

    def __init__(self, key: bytes) -> None:
        block = key.ljust(64, b"\x00")  # a 32-byte key is used as is, padded to SHA-256's block
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def __call__(self, data: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class IdentityHasher:
    """Keyed hashes of who a holder is, with the server secret: comparable, not reversible.

    `hash`: of a normalised identity number. `seal`: binds the holder's name to that hash; a card
    stores the sealed hash and the masked name only, so neither the number nor the full name is
    kept, and issuing checks both at once (a mismatch never says which)."""

    def __init__(self, secret: bytes, *older: bytes) -> None:
        """`secret` hashes; `older` secrets (a rotation in progress: cards not yet enrolled again) still match."""
        self._identity = _KeyedHash(derive_key(secret, "identity"))
        self._holder = _KeyedHash(derive_key(secret, "holder"))
        self._older = [IdentityHasher(s) for s in older]
        self._card = _KeyedHash(derive_key(secret, "card"))

    def card_tag(self, card_no: str) -> str:
        """A keyed name of a card number (32 hex digits) for the issuance throttle: never the number."""
        return self._card(card_no.strip().upper().encode("utf-8")).hex()[:32]

    def hash(self, id_number: str) -> bytes:
        return self._identity(id_number.strip().upper().encode("utf-8"))

    def seal(self, id_hash: bytes, holder_name: str) -> bytes:
        return self._holder(id_hash + holder_name.strip().encode("utf-8"))

    def holder_hash(self, id_number: str, holder_name: str) -> bytes:
        return self.seal(self.hash(id_number), holder_name)

    def matches(self, id_number: str, stored: bytes) -> bool:
        return hmac.compare_digest(self.hash(id_number), stored) or any(
            o.matches(id_number, stored) for o in self._older
        )

    def matches_holder(self, id_number: str, holder_name: str, stored: bytes) -> bool:
        return hmac.compare_digest(self.holder_hash(id_number, holder_name), stored) or any(
            o.matches_holder(id_number, holder_name, stored) for o in self._older
        )
