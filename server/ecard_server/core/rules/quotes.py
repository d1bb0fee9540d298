"""quote_id: what a Quote promised, sealed, so that a Settle on any replica moves exactly that or nothing.

A Quote (预结算) prices a basket for a verified holder and moves nothing. Its quote_id is
self-contained, like a verification_id (core.handles): a MAC (keyed BLAKE2b, with a key derived from
the server's handle secrets) over who may settle it (the merchant), whose credential it spent (e-card,
token nonce), which basket (a digest of the lines and skip_personal_account), the split it showed
(fund, account, self-pay), the balance and the catalogue and policy versions it was priced with, and
until when. No row is written: single use is the settlement's unique (e-card, nonce), as for a
verification_id.

    "q1." + base64url(json [merchant, ecard, nonce hex, used reason, basket hex, fund, account,
                            self-pay, balance, catalogue version, policy version, expires_at]) + "." + mac

A Settle with a quote_id re-prices the basket and re-reads the balance under the card's row lock, and
settles only if everything the quote depended on is unchanged; otherwise FAILED_PRECONDITION
QUOTE_STALE (quote again and show the holder the new split). A quote expires after the configured
window (`quote_window_s`, default 180 s) or when its verification does, whichever is first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import operator
from collections.abc import Sequence
from dataclasses import dataclass

from ecard.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from ecard_server.core.records import LineItem, Shares, quick_init
from ecard_server.core.rules.benefits import Accumulated
from ecard_server.core.rules.compact import compact_ascii_json, compact_json

PREFIX = "q1."
_MAC_BYTES = 16
MAX_QUOTE_ID = 2048


@quick_init
@dataclass(frozen=True, slots=True)
class Quote:
    merchant_id: str
    ecard_id: str
    nonce: bytes
    used_reason: str  # the ErrorInfo word when its credential already settled
    basket: bytes  # basket_digest of the quoted lines and skip_personal_account
    shares: Shares
    balance_fen: int  # the account balance the split was computed from
    catalogue_version: str
    policy_version: str
    expires_at: int
    accumulated: tuple[int, int] = (0, 0)  # the year's accumulators (deductible met, fund paid) it saw

    def stale_unless(self, shares: Shares, balance_fen: int, accumulated: Accumulated) -> None:
        """Under the card's row lock: raises QUOTE_STALE unless the split, the balance and the
        accumulators are the quoted ones."""
        if (balance_fen != self.balance_fen or shares != self.shares
                or (accumulated.deductible_fen, accumulated.fund_fen) != self.accumulated):
            raise FailedPrecondition("the account or the year's benefits changed since the quote: quote again",
                                     "QUOTE_STALE")


_DIGESTED_LINE = operator.attrgetter("code", "drug_class", "unit_price_fen", "quantity")


def basket_digest(items: Sequence[LineItem], skip_personal_account: bool) -> bytes:
    form = list(map(_DIGESTED_LINE, items)), skip_personal_account  # each line a tuple, written as a list
    return hashlib.sha256(compact_ascii_json(form).encode()).digest()[:16]


class QuoteSeal:
    """Seals and opens quote_ids with `keys` (the first one seals; any one opens): keys of their own,
    derived from the server's handle secrets (app: core.identity.derive_key(secret, "quote"))."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("no quote key")
        self._keys = list(keys)

    def _mac(self, key: bytes, payload: bytes) -> bytes:
        return hashlib.blake2b(payload, key=key, digest_size=_MAC_BYTES).digest()

    def seal(self, quote: Quote) -> str:
        payload = compact_json(
            [quote.merchant_id, quote.ecard_id, quote.nonce.hex(), quote.used_reason, quote.basket.hex(),
             quote.shares.fund_fen, quote.shares.account_fen, quote.shares.self_pay_fen, quote.balance_fen,
             quote.catalogue_version, quote.policy_version, quote.expires_at, *quote.accumulated],
        ).encode()
        body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
        mac = base64.urlsafe_b64encode(self._mac(self._keys[0], payload)).rstrip(b"=").decode()
        return f"{PREFIX}{body}.{mac}"

    def open(self, quote_id: str, *, merchant_id: str, now: int) -> Quote:
        """The quote, if this deployment sealed it for this merchant and it has not expired."""
        try:
            if len(quote_id) > MAX_QUOTE_ID or not quote_id.startswith(PREFIX):
                raise ValueError
            body, mac = quote_id[len(PREFIX):].split(".")
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            given = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
        except (ValueError, binascii.Error):
            raise InvalidArgument("quote_id is not one of ours", "QUOTE_INVALID") from None
        if not any(hmac.compare_digest(self._mac(key, payload), given) for key in self._keys):
            raise InvalidArgument("quote_id is not one of ours", "QUOTE_INVALID")
        (merchant, ecard_id, nonce, used, basket, fund, account, self_pay, balance, catalogue, policy,
         expires_at, deductible_met, fund_paid) = json.loads(payload)
        if merchant != merchant_id:
            raise PermissionDenied("the quote was made for another merchant", "QUOTE_NOT_YOURS")
        if now > expires_at:
            raise FailedPrecondition("the quote has expired: quote again", "QUOTE_STALE")
        return Quote(merchant, ecard_id, bytes.fromhex(nonce), used, bytes.fromhex(basket),
                     Shares(fund, account, self_pay), balance, catalogue, policy, expires_at,
                     (deductible_met, fund_paid))
