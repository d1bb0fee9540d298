"""verification_id: an opaque, tamper-proof handle that lets one Settle follow an accepted Verify.

It is self-contained (no row is written on the Verify path): an HMAC over who verified what, for
which purpose and assurance, until when. Single use is enforced where the money moves: the
settlement table keeps each handle's token nonce unique.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass

from ecard.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from ecard_server.core.identity import derive_key

_HEADER = struct.Struct(">BqBB")  # layout version, expires_at, purpose, assurance
_LAYOUT = 1
_MAC_BYTES = 16
_SHA256_BLOCK = 64
PREFIX = "v1."


@dataclass(frozen=True, slots=True)
class Verification:
    ecard_id: str
    merchant_id: str
    purpose: int
    assurance: int
    expires_at: int
    nonce: bytes


class VerificationHandles:
    def __init__(self, secret: bytes) -> None:
        key = derive_key(secret, "verification").ljust(_SHA256_BLOCK, b"\x00")  # 32 bytes: no pre-hash
        # HMAC-SHA256 from the two keyed hash states, copied per call: OpenSSL 3 sets up a keyed
        # HMAC context at every hmac.new or hmac.digest, which costs more than the hashing itself.
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def _mac(self, payload: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:_MAC_BYTES]

    def issue(self, v: Verification) -> str:
        ecard, merchant = v.ecard_id.encode(), v.merchant_id.encode()
        payload = (
            _HEADER.pack(_LAYOUT, v.expires_at, v.purpose, v.assurance)
            + v.nonce
            + bytes((len(ecard),))
            + ecard
            + merchant
        )
        mac = self._mac(payload)
        return PREFIX + base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode("ascii")

    def open(self, handle: str, *, merchant_id: str, now: int) -> Verification:
        """The verification behind a handle, for this merchant, still inside its window."""
        try:
            if not handle.startswith(PREFIX) or len(handle) > 400:
                raise ValueError
            raw = base64.urlsafe_b64decode(handle[len(PREFIX) :] + "=" * (-len(handle) % 4))
            payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
            expected = self._mac(payload)
            if not hmac.compare_digest(mac, expected):
                raise ValueError
            layout, expires_at, purpose, assurance = _HEADER.unpack_from(payload)
            if layout != _LAYOUT:
                raise ValueError
            offset = _HEADER.size
            nonce = payload[offset : offset + 16]
            size = payload[offset + 16]
            ecard_id = payload[offset + 17 : offset + 17 + size].decode()
            owner = payload[offset + 17 + size :].decode()
        except (ValueError, IndexError, struct.error, binascii.Error, UnicodeDecodeError):
            raise InvalidArgument("verification_id is not one this server issued", "VERIFICATION_INVALID") from None
        if owner != merchant_id:
            raise PermissionDenied("verification belongs to another merchant", "VERIFICATION_NOT_YOURS")
        if now > expires_at:
            raise FailedPrecondition("verification has expired", "VERIFICATION_EXPIRED")
        return Verification(ecard_id, owner, purpose, assurance, expires_at, nonce)
