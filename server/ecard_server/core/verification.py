"""verify_token: the hot path. Checks run cheapest first; the first failure is the reason.

    format and version -> issuer and key -> time window -> signature -> card (known, not lost,
    not cancelled) -> channel bound -> purpose -> assurance -> single-use consumption

Per call: one base45 + protobuf parse, dictionary lookups of an already-parsed key and a cached
card, one signature check, one nonce insert, one HMAC for the verification handle. No PEM, no SQL
on a cache hit, no logging.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ecard._token import TokenFormatError, parse_token
from ecard.v1 import token_pb2
from ecard.v1 import types_pb2 as t
from ecard_server.config import Settings
from ecard_server.core.caches import CardCache, CardSnapshot, KeyRegistry
from ecard_server.core.handles import Verification, VerificationHandles
from ecard_server.core.model import ACTIVE, CANCELLED, LOST
from ecard_server.core.nonces import NonceStore

_CARD_REASONS = {LOST: t.REASON_CARD_LOST, CANCELLED: t.REASON_CARD_CANCELLED}


@dataclass(frozen=True, slots=True)
class VerifyOutcome:
    reason: int
    card: CardSnapshot | None = None
    verification_id: str = ""
    verification_expires_at: int = 0
    claims: token_pb2.TokenClaims | None = None

    @property
    def accepted(self) -> bool:
        return self.reason == t.REASON_OK


class TokenVerifier:
    def __init__(
        self,
        *,
        keys: KeyRegistry,
        cards: CardCache,
        nonces: NonceStore,
        handles: VerificationHandles,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._cards = cards
        self._nonces = nonces
        self._handles = handles
        self._skew = settings.clock_skew_s
        self._max_lifetime = settings.max_token_lifetime_s
        self._window = settings.verification_window_s
        self._clock = clock

    def verify_token(self, token: str, *, merchant_id: str, purpose: int, min_assurance: int) -> VerifyOutcome:
        """The verdict on one token for one merchant. Raises ecard.errors.Unavailable (fail closed)
        when the card store or nonce store cannot answer."""
        try:
            parsed = parse_token(token)
        except TokenFormatError as exc:
            return VerifyOutcome(exc.reason)
        claims = parsed.claims
        issuer_id = claims.issuer_id
        entry = self._keys.get(issuer_id, claims.kid)
        if entry is None:
            return VerifyOutcome(t.REASON_UNKNOWN_KEY if self._keys.has_issuer(issuer_id) else t.REASON_UNKNOWN_ISSUER)
        key = entry.key
        if key.revoked:
            return VerifyOutcome(t.REASON_KEY_REVOKED)
        now = self._clock()
        if (key.not_before is not None and now < key.not_before) or (
            key.not_after is not None and now > key.not_after
        ):
            return VerifyOutcome(t.REASON_KEY_INACTIVE)
        if claims.issued_at > now + self._skew:
            return VerifyOutcome(t.REASON_NOT_YET_VALID)
        if now > claims.expires_at + self._skew:
            return VerifyOutcome(t.REASON_EXPIRED)
        if claims.expires_at - claims.issued_at > self._max_lifetime:
            return VerifyOutcome(t.REASON_LIFETIME_TOO_LONG)
        if not entry.check(parsed.signature, parsed.signed_bytes):
            return VerifyOutcome(t.REASON_BAD_SIGNATURE)
        card = self._cards.get(claims.ecard_id)
        if card is None:
            return VerifyOutcome(t.REASON_CARD_UNKNOWN)
        if card.status != ACTIVE:
            return VerifyOutcome(_CARD_REASONS.get(card.status, t.REASON_CARD_CANCELLED), card)
        if issuer_id not in card.channels:
            return VerifyOutcome(t.REASON_CHANNEL_NOT_BOUND, card)
        if purpose not in claims.purposes:
            return VerifyOutcome(t.REASON_PURPOSE_NOT_ALLOWED, card)
        if claims.assurance < min_assurance:
            return VerifyOutcome(t.REASON_ASSURANCE_TOO_LOW, card)
        nonce_key = issuer_id.encode() + b"\x00" + claims.nonce
        if not self._nonces.consume(nonce_key, claims.expires_at + self._skew):
            return VerifyOutcome(t.REASON_REPLAYED, card)
        expires_at = int(now) + self._window
        handle = self._handles.issue(
            Verification(card.ecard_id, merchant_id, purpose, claims.assurance, expires_at, claims.nonce)
        )
        return VerifyOutcome(t.REASON_OK, card, handle, expires_at, claims)
