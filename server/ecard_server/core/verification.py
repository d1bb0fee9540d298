"""verify_token: the hot path. Checks run cheapest first; the first failure is the reason.

    format and version -> issuer and key -> time window -> signature -> card (known, not lost,
    not cancelled, not minted before a card replacement) -> channel bound (and its binding not
    suspended) -> purpose -> assurance -> single use (not issued before a lost nonce memory, then
    the consumption)

Per call: one base45 + protobuf parse, dictionary lookups of an already-parsed key and a cached
card, one signature check, one nonce insert, one HMAC for the verification handle. No PEM, no SQL
on a cache hit, no logging. `verify_tokens` does the same for a batch, with every nonce of the
batch consumed in one call to the nonce store (one lock, or one Redis round trip).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ecard.token import TokenFormatError, parse_token_fields
from ecard.v1 import token_pb2
from ecard.v1 import types_pb2 as t
from ecard_server.config import Settings
from ecard_server.core.caches import CardCache, CardSnapshot, KeyRegistry
from ecard_server.core.handles import VerificationHandles
from ecard_server.core.nonces import consume_many, nonce_key
from ecard_server.core.ports import KeptAnswer, NonceStore
from ecard_server.core.records import ACTIVE, CANCELLED, LOST

_CARD_REASONS: dict[int, int] = {LOST: t.REASON_CARD_LOST, CANCELLED: t.REASON_CARD_CANCELLED}


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


# Rejections before the card is known carry nothing but their reason: one shared outcome each.
_BARE = {reason: VerifyOutcome(reason) for reason in t.Reason.values()}


VerifyItem = tuple[str, str, int, int]
"""One token of a batch with what its merchant asks of it: (token, merchant_id, purpose, min_assurance)."""


class Passed(NamedTuple):
    """A token that passed every check but single use: what consuming its nonce and accepting it need.
    A tuple (made with tuple.__new__): it is made on every accepted Verify."""

    claims: token_pb2.TokenClaims
    card: CardSnapshot
    merchant_id: str
    purpose: int
    nonce_key: bytes  # the nonce store's key (nonces.nonce_key)
    nonce_expires_at: float  # until when the nonce store remembers it
    nonce: bytes


_passed = tuple.__new__


def _outcome(
    reason: int, card: CardSnapshot, handle: str, expires_at: int, claims: token_pb2.TokenClaims
) -> VerifyOutcome:
    """VerifyOutcome(reason, card, handle, expires_at, claims), without the frozen dataclass's
    __init__ (object.__setattr__ per field costs more than the rest of the accept path)."""
    outcome = _new(VerifyOutcome)
    _set_reason(outcome, reason)
    _set_card(outcome, card)
    _set_verification_id(outcome, handle)
    _set_expires(outcome, expires_at)
    _set_claims(outcome, claims)
    return outcome


_new = object.__new__
_slots = vars(VerifyOutcome)  # the slot descriptors
_set_reason = _slots["reason"].__set__
_set_card = _slots["card"].__set__
_set_verification_id = _slots["verification_id"].__set__
_set_expires = _slots["verification_expires_at"].__set__
_set_claims = _slots["claims"].__set__


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
        # Tokens issued at or before it may have been consumed by a process whose memory is gone
        # (core.nonces.remember_across_restarts): they are refused as REPLAYED. 0 for a shared store.
        self._forgotten_until: float = getattr(nonces, "forgotten_until", 0.0)

    def verify_token(
        self, token: str, *, merchant_id: str, purpose: int, min_assurance: int,
        keep: Callable[[VerifyOutcome], KeptAnswer] | None = None,
    ) -> VerifyOutcome:
        """The verdict on one token for one merchant. Raises ecard.errors.Unavailable (fail closed)
        when the card store or nonce store cannot answer. `keep`: given the accepted outcome before the
        nonce is consumed, what the verification records keep of it; the nonce store keeps it with the
        consumption, only if the nonce is fresh (else the answer is REPLAYED and nothing is kept)."""
        now = self._clock()
        passed = self._check(token, merchant_id, purpose, min_assurance, now)
        if isinstance(passed, VerifyOutcome):
            return passed
        if keep is None:
            return self._used(passed, self._nonces.consume(passed.nonce_key, passed.nonce_expires_at), now)
        accepted = self._accept(passed, now)
        if self._nonces.consume(passed.nonce_key, passed.nonce_expires_at, keep(accepted)):
            return accepted
        return VerifyOutcome(t.REASON_REPLAYED, passed.card)

    def spend_token(
        self, token: str, *, merchant_id: str, purpose: int, min_assurance: int, spender: bytes
    ) -> VerifyOutcome:
        """`verify_token` for a Settle by token: the nonce is consumed as `spender` (nonces.spender), so
        the same Settle retried after a crash is accepted again (its settlement is then written once:
        the ledger keeps one per idempotency key and one per e-card and nonce); anyone else: REPLAYED."""
        now = self._clock()
        passed = self._check(token, merchant_id, purpose, min_assurance, now)
        if isinstance(passed, VerifyOutcome):
            return passed
        return self._used(passed, self._nonces.consume_as(passed.nonce_key, passed.nonce_expires_at, spender), now)

    def verify_tokens(self, items: Sequence[VerifyItem]) -> list[VerifyOutcome]:
        """Verdicts on a batch, in order, each exactly as `verify_token` would give it in that order
        (a nonce seen twice in one batch is accepted the first time, REPLAYED the second)."""
        now = self._clock()
        check = self._check
        results: list[VerifyOutcome | Passed] = [
            check(token, merchant_id, purpose, min_assurance, now)
            for token, merchant_id, purpose, min_assurance in items
        ]
        passed = [(i, r) for i, r in enumerate(results) if isinstance(r, Passed)]
        if passed:
            fresh = consume_many(self._nonces, [(r.nonce_key, r.nonce_expires_at) for _, r in passed])
            for (i, r), is_fresh in zip(passed, fresh, strict=True):
                results[i] = self._used(r, is_fresh, now)
        return results  # type: ignore[return-value]

    def release(self, outcome: VerifyOutcome) -> bool:
        """Gives an accepted token back its single use (see NonceStore.release)."""
        claims = outcome.claims
        return claims is not None and self._nonces.release(nonce_key(claims.issuer_id, claims.nonce))

    def _check(
        self, token: str, merchant_id: str, purpose: int, min_assurance: int, now: float
    ) -> VerifyOutcome | Passed:
        """Every check but single use, in the contract's order: a rejection, or what consumption needs."""
        try:
            fields = parse_token_fields(token)
        except TokenFormatError as exc:
            return _BARE[exc.reason]
        issuer_id = fields.issuer_id
        entry = self._keys.get(issuer_id, fields.kid)
        if entry is None:
            known = self._keys.has_issuer(issuer_id)
            return _BARE[t.REASON_UNKNOWN_KEY if known else t.REASON_UNKNOWN_ISSUER]
        key = entry.key
        if key.revoked:
            return _BARE[t.REASON_KEY_REVOKED]
        if (key.not_before is not None and now < key.not_before) or (
            key.not_after is not None and now > key.not_after
        ):
            return _BARE[t.REASON_KEY_INACTIVE]
        issued_at, expires_at = fields.issued_at, fields.expires_at
        if issued_at > now + self._skew:
            return _BARE[t.REASON_NOT_YET_VALID]
        if now > expires_at + self._skew:
            return _BARE[t.REASON_EXPIRED]
        if expires_at - issued_at > self._max_lifetime:
            return _BARE[t.REASON_LIFETIME_TOO_LONG]
        if not entry.check(fields.signature, fields.signed_bytes):
            return _BARE[t.REASON_BAD_SIGNATURE]
        card = self._cards.get(fields.ecard_id)
        if card is None:
            return _BARE[t.REASON_CARD_UNKNOWN]
        if card.status != ACTIVE:
            return VerifyOutcome(_CARD_REASONS.get(card.status, t.REASON_CARD_CANCELLED), card)
        if issued_at < card.replaced_at:
            return VerifyOutcome(t.REASON_CARD_REPLACED, card)
        if issuer_id not in card.channels:
            suspended = issuer_id in card.suspended
            return VerifyOutcome(t.REASON_CHANNEL_SUSPENDED if suspended else t.REASON_CHANNEL_NOT_BOUND, card)
        claims = fields.claims
        if purpose not in claims.purposes:
            return VerifyOutcome(t.REASON_PURPOSE_NOT_ALLOWED, card)
        if claims.assurance < min_assurance:
            return VerifyOutcome(t.REASON_ASSURANCE_TOO_LOW, card)
        if issued_at <= self._forgotten_until:
            return VerifyOutcome(t.REASON_REPLAYED, card)
        nonce = fields.nonce
        return _passed(  # type: ignore[no-any-return]
            Passed, (claims, card, merchant_id, purpose, nonce_key(issuer_id, nonce), expires_at + self._skew, nonce)
        )

    def _used(self, passed: Passed, fresh: bool, now: float) -> VerifyOutcome:
        """The verdict once single use has answered: accepted if the nonce was fresh, else REPLAYED."""
        return self._accept(passed, now) if fresh else VerifyOutcome(t.REASON_REPLAYED, passed.card)

    def _accept(self, passed: Passed, now: float) -> VerifyOutcome:
        claims, card = passed.claims, passed.card
        expires_at = int(now) + self._window
        handle = self._handles.issue_for(
            card.ecard_id, passed.merchant_id, passed.purpose, claims.assurance, expires_at, passed.nonce
        )
        return _outcome(t.REASON_OK, card, handle, expires_at, claims)
