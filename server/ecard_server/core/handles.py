"""verification_id: an opaque, tamper-proof handle that lets one Settle follow an accepted Verify.

It is self-contained (no row is written on the Verify path): a MAC over who verified what, for
which purpose and assurance, until when. Single use is enforced where the money moves: the
settlement table keeps each handle's token nonce unique.

    "v1." + base64url(layout, expires_at, purpose, assurance, nonce, len(ecard_id), ecard_id,
                      merchant_id, mac[16])

Layout 2 (issued now) MACs with keyed BLAKE2b, a third of what HMAC-SHA256 costs on Verify's hot
path; layout 1 (HMAC-SHA256, issued by earlier versions) is still accepted, so handles issued just
before an upgrade still settle.

Keys rotate (ecard_server.keyring): each HandleKey signs from its `valid_from`, the newest started one
signing, and opens handles until its `until`; a handle is opened by the key that signed it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from ecard.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from ecard_server.core.identity import derive_key

_HEADER = struct.Struct(">BqBB")  # layout version, expires_at, purpose, assurance
_LAYOUT = 2  # keyed BLAKE2b
_LAYOUT_HMAC = 1  # HMAC-SHA256, still opened
_MAC_BYTES = 16
_LENGTH_BYTE = [bytes((n,)) for n in range(256)]
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_b2a_base64 = binascii.b2a_base64
PREFIX = "v1."
_FOREVER = 2**62


@dataclass(frozen=True, slots=True)
class HandleKey:
    """A secret that signs handles from `valid_from` (unix s) and opens them until `until` (None: no end)."""

    secret: bytes
    valid_from: int = 0
    until: int | None = None


class _Mac:
    """One key's two MACs: keyed BLAKE2b (layout 2) and HMAC-SHA256 (layout 1)."""

    __slots__ = ("blake", "key", "until")

    def __init__(self, key: HandleKey) -> None:
        self.key = derive_key(key.secret, "verification")
        self.blake = hashlib.blake2b(key=self.key, digest_size=_MAC_BYTES)  # copied per handle
        self.until = _FOREVER if key.until is None else key.until

    def of(self, layout: int, payload: bytes) -> bytes:
        if layout == _LAYOUT:
            mac = self.blake.copy()
            mac.update(payload)
            return mac.digest()
        if layout == _LAYOUT_HMAC:
            return hmac.digest(self.key, payload, "sha256")[:_MAC_BYTES]
        raise ValueError


@dataclass(frozen=True, slots=True)
class Verification:
    ecard_id: str
    merchant_id: str
    purpose: int
    assurance: int
    expires_at: int
    nonce: bytes


class VerificationHandles:
    """Issues and opens handles. `keys`: one secret, or HandleKeys to rotate through; `window_s`: the
    verification window (a handle issued at t expires at t + window_s); `now`: when they are loaded."""

    def __init__(self, keys: bytes | Sequence[HandleKey], *, window_s: int = 300, now: int = 0) -> None:
        chosen = [HandleKey(keys)] if isinstance(keys, bytes) else list(keys)
        if not chosen:
            raise ValueError("no handle key")
        self._keys = [(key, _Mac(key)) for key in chosen]
        self._window = window_s
        self._choose(now)

    def _choose(self, at: int) -> None:
        """The key that signs at `at`, first of the openers, and the expiry from which another one signs."""
        started = [(key, mac) for key, mac in self._keys if key.valid_from <= at and mac.until >= at]
        if not started:
            raise ValueError("no verification handle key is valid now: check the secret file's times")
        signer = max(started, key=lambda pair: pair[0].valid_from)
        self._signer = signer[1]
        self._blake = signer[1].blake
        self._openers = [signer[1]] + [mac for _, mac in self._keys if mac is not signer[1]]
        later = [key.valid_from for key, _ in self._keys if key.valid_from > at]
        self._switch_expiry = min(later, default=_FOREVER) + self._window

    def issue(self, v: Verification) -> str:
        return self.issue_for(v.ecard_id, v.merchant_id, v.purpose, v.assurance, v.expires_at, v.nonce)

    def issue_for(
        self, ecard_id: str, merchant_id: str, purpose: int, assurance: int, expires_at: int, nonce: bytes
    ) -> str:
        """`issue` without building a Verification first (Verify's hot path)."""
        if expires_at >= self._switch_expiry:  # a newer key's time has come
            self._choose(expires_at - self._window)
        ecard = ecard_id.encode()
        payload = b"".join(
            (_HEADER.pack(_LAYOUT, expires_at, purpose, assurance), nonce, _LENGTH_BYTE[len(ecard)], ecard,
             merchant_id.encode())
        )
        mac = self._blake.copy()
        mac.update(payload)
        text = _b2a_base64(payload + mac.digest(), newline=False)
        return PREFIX + text.translate(_URLSAFE).rstrip(b"=").decode("ascii")

    def open(self, handle: str, *, merchant_id: str, now: int) -> Verification:
        """The verification behind a handle, for this merchant, still inside its window."""
        try:
            if not handle.startswith(PREFIX) or len(handle) > 400:
                raise ValueError
            raw = base64.urlsafe_b64decode(handle[len(PREFIX) :] + "=" * (-len(handle) % 4))
            payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
            layout, expires_at, purpose, assurance = _HEADER.unpack_from(payload)
            for key in self._openers:
                if key.until >= now and hmac.compare_digest(mac, key.of(layout, payload)):
                    break
            else:
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
