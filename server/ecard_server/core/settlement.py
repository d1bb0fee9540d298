"""The settlement service: Settle, Refund, GetSettlement and reversal for a merchant. No gRPC here.

SettlementService checks every input (core.rules.validation) before anything is consumed or written,
prices the basket (core.rules.settlement.SettlementPolicy), answers a repeated (merchant,
idempotency_key) from the first record, verifies the credential, then hands one Draft to the ledger
(core.ports.Ledger), which settles it in one transaction, calling `Draft.shares_under_lock` with what
it read under the card's row lock.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, NamedTuple

from ecard.errors import EcardError, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unavailable
from ecard.v1 import types_pb2 as t
from ecard_server.config import Settings
from ecard_server.core.nonces import spender
from ecard_server.core.records import (
    NO_CATALOGUE,
    Catalogue,
    LineItem,
    RefundAsk,
    Reversal,
    SettleInput,
    SettlementRecord,
    Shares,
    Split,
    Visit,
)
from ecard_server.core.rules import validation
from ecard_server.core.rules.benefits import NO_POLICY, Benefit, BenefitPolicy
from ecard_server.core.rules.catalogue import day_of
from ecard_server.core.rules.idempotency import same_request
from ecard_server.core.rules.quotes import Quote, QuoteSeal, basket_digest
from ecard_server.core.rules.settlement import (
    REVERSAL_KEY_PREFIX,
    Draft,
    RefundDraft,
    ReversalDraft,
    SettlementPolicy,
    StalePricing,
    new_settlement_id,
    refund_hash,
    refuse_reversed,
    settle_hash,
)
from ecard_server.core.rules.visits import check_holder

if TYPE_CHECKING:
    from ecard_server.core.books import CurrentBook
    from ecard_server.core.caches import MerchantDirectory
    from ecard_server.core.handles import VerificationHandles
    from ecard_server.core.ports import Ledger
    from ecard_server.core.verification import TokenVerifier


class Pricing(NamedTuple):
    split: Split
    benefits: Mapping[str, Benefit] | None  # by person category, for the merchant's kind; None: no policy
    benefit_version: str


@dataclass(frozen=True, slots=True)
class Quoted:
    """A Quote's answer: the quote_id, what it promises, and how each line was priced and paid."""

    quote_id: str
    quote: Quote
    items: tuple[LineItem, ...]
    split: Split
    line_shares: tuple[Shares, ...]


def _reason_word(reason: int) -> str:
    return t.Reason.Name(reason).removeprefix("REASON_")


# -- service ----------------------------------------------------------------------------------------
class SettlementService:
    def __init__(
        self,
        *,
        ledger: Ledger,
        policy: SettlementPolicy,
        verifier: TokenVerifier,
        handles: VerificationHandles,
        merchants: MerchantDirectory,
        settings: Settings,
        catalogue: CurrentBook[Catalogue] | None = None,
        benefits: CurrentBook[BenefitPolicy] | None = None,
        quotes: QuoteSeal | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ledger = ledger
        self._catalogue = catalogue
        self._benefits = benefits
        self._quotes = quotes or QuoteSeal([os.urandom(32)])  # a secret of its own: quotes of this process
        self._quote_window = settings.quote_window_s
        self._policy = policy
        self._verifier = verifier
        self._handles = handles
        self._merchants = merchants
        self._max_items = settings.max_basket_items
        self._clock = clock

    def _replay(self, merchant_id: str, key: str, request_hash: bytes) -> SettlementRecord | None:
        """The first record of an earlier Settle with this key; AlreadyExists if that was another request."""
        found, reversed_ = self._ledger.settle_key(merchant_id, key)
        if found is None:
            if reversed_:
                refuse_reversed()  # before the credential is spent (the ledger checks again, locked)
            return None
        record, first_hash = found
        same_request(first_hash, request_hash, "settlement")
        return record

    def settle(self, merchant_id: str, request: SettleInput, *, visit: Visit | None = None) -> SettlementRecord:
        """A Settle; with `visit` (SettleVisit), the visit's basket, closed in the same transaction, and
        only by a credential of the visit's holder."""
        validation.settle_request(request, self._max_items)
        validation.till(request.terminal_id, request.operator_id)
        merchant = self._merchants.get(merchant_id)
        if merchant is None:
            raise PermissionDenied("merchant is unknown", "MERCHANT_NOT_DESIGNATED")
        pricing = self._price(request.items, merchant.kind)
        split = pricing.split
        request_hash = settle_hash(request)
        key = request.idempotency_key
        quote = None
        if request.quote_id or request.verification_id:
            # Opening a quote or a verification spends nothing, and the ledger answers a retry from its
            # first record under the key's lock: the key is looked up first only when the credential
            # cannot be used (expired since, the catalogue changed since the quote...), so that a retry
            # is still answered with what it settled (one read less for every first Settle).
            try:
                if request.quote_id:  # the quote spent the credential; the basket must be the quoted one
                    quote = self._open_quote(merchant_id, request, split)
                    ecard_id, nonce, used_reason = quote.ecard_id, quote.nonce, quote.used_reason
                else:
                    ecard_id, nonce, _ = self._open_verification(merchant_id, request.verification_id)
                    used_reason = "VERIFICATION_USED"
            except EcardError:
                earlier = self._replay(merchant_id, key, request_hash)
                if earlier is not None:
                    return earlier
                raise
        else:
            # A retry is answered before its token is looked at: the token is spent by then.
            earlier = self._replay(merchant_id, key, request_hash)
            if earlier is not None:
                return earlier
            outcome = self._verifier.spend_token(
                request.token, merchant_id=merchant_id, purpose=t.PURPOSE_MEDICAL_SETTLEMENT,
                min_assurance=t.ASSURANCE_PIN, spender=spender(merchant_id, key),
            )
            if not outcome.accepted:
                # REPLAYED: spent by a Verify, another merchant or another key (this Settle's own
                # earlier attempt would have been accepted again: NonceStore.consume_as).
                word = _reason_word(outcome.reason)
                raise FailedPrecondition(f"token rejected: {word}", word)
            assert outcome.card is not None and outcome.claims is not None
            ecard_id, nonce = outcome.card.ecard_id, outcome.claims.nonce
            used_reason = "REPLAYED"
        if visit is not None:
            check_holder(visit, ecard_id)
        draft = Draft(
            settlement_id=new_settlement_id(),
            merchant_id=merchant_id,
            idempotency_key=key,
            request_hash=request_hash,
            ecard_id=ecard_id,
            verification_nonce=nonce,
            items=request.items,
            split=split,
            skip_personal_account=request.skip_personal_account,
            used_reason=used_reason,
            quote=quote,
            terminal_id=request.terminal_id,
            operator_id=request.operator_id,
            benefits=pricing.benefits,
            benefit_version=pricing.benefit_version,
            visit_id="" if visit is None else visit.visit_id,
            visit_revision=0 if visit is None else visit.revision,
        )
        try:
            try:
                return self._ledger.settle(draft, int(self._clock()))
            except StalePricing:  # an import committed before this process heard of it: price again
                again = self._price(request.items, merchant.kind, reload=True)
                draft = replace(draft, split=again.split, benefits=again.benefits,
                                benefit_version=again.benefit_version)
                return self._ledger.settle(draft, int(self._clock()))
        except (Unavailable, StalePricing, InvalidArgument):
            if request.token:
                # The token was spent on a settlement that never ran: give it back, so the SDK's retry
                # (same key) settles instead of finding REPLAYED. Should the commit have landed after
                # all, its unique (e-card, nonce) still refuses a second settlement.
                self._verifier.release(outcome)
            raise
        except FailedPrecondition as refused:
            if request.token and visit is not None and refused.reason.startswith("VISIT_"):
                # The visit refused it under the lock (items added meanwhile, closed meanwhile): nothing
                # was settled, so the holder's code is given back for the window's retry.
                self._verifier.release(outcome)
            raise

    def _open_quote(self, merchant_id: str, request: SettleInput, split: Split) -> Quote:
        quote = self._quotes.open(request.quote_id, merchant_id=merchant_id, now=int(self._clock()))
        if quote.basket != basket_digest(request.items, request.skip_personal_account):
            raise InvalidArgument("the basket is not the one quoted", "QUOTE_MISMATCH")
        if (split.catalogue_version, split.policy_version) != (quote.catalogue_version, quote.policy_version):
            raise FailedPrecondition("the catalogue or the policy changed since the quote: quote again",
                                     "QUOTE_STALE")
        return quote

    def price(self, merchant_id: str, items: Sequence[LineItem]) -> Split:
        """A basket priced as Settle prices it at this merchant (InvalidArgument for an unknown item)."""
        merchant = self._merchants.get(merchant_id)
        if merchant is None:
            raise PermissionDenied("merchant is unknown", "MERCHANT_NOT_DESIGNATED")
        return self._price(items, merchant.kind).split

    def _price(self, items: Sequence[LineItem], merchant_kind: int, *, reload: bool = False) -> Pricing:
        """The basket priced with this process's current catalogue and benefit policy (read again with
        `reload`). With a policy, the fund's share is decided under the card's lock (its benefits for
        the holder's category and the year's accumulators) and the split names the policy's version."""
        catalogue, policy = NO_CATALOGUE, NO_POLICY
        if self._catalogue is not None:
            catalogue = self._catalogue.reload() if reload else self._catalogue.current()
        if self._benefits is not None:
            policy = self._benefits.reload() if reload else self._benefits.current()
        split = self._policy.split(items, merchant_kind, catalogue, day_of(self._clock()))
        if not policy.version:
            return Pricing(split, None, "")
        benefits = {category: b for (category, kind), b in policy.benefits.items() if kind == merchant_kind}
        return Pricing(replace(split, policy_version=policy.version), benefits, policy.version)

    def quote(self, merchant_id: str, request: SettleInput) -> Quoted:
        """Prices a basket for a verified holder and moves nothing (预结算): the split the holder is shown,
        sealed in a quote_id that a Settle moves exactly, or refuses QUOTE_STALE. A token is verified
        (and so spent) here: the quote_id then stands for it."""
        validation.settle_request(request, self._max_items, quote=True)
        merchant = self._merchants.get(merchant_id)
        if merchant is None:
            raise PermissionDenied("merchant is unknown", "MERCHANT_NOT_DESIGNATED")
        pricing = self._price(request.items, merchant.kind)
        split = pricing.split
        now = int(self._clock())
        expires_at = now + self._quote_window
        if request.verification_id:
            ecard_id, nonce, until = self._open_verification(merchant_id, request.verification_id)
            expires_at, used_reason = min(expires_at, until), "VERIFICATION_USED"
        else:
            outcome = self._verifier.verify_token(
                request.token, merchant_id=merchant_id, purpose=t.PURPOSE_MEDICAL_SETTLEMENT,
                min_assurance=t.ASSURANCE_PIN,
            )
            if not outcome.accepted:
                word = _reason_word(outcome.reason)
                raise FailedPrecondition(f"token rejected: {word}", word)
            assert outcome.card is not None and outcome.claims is not None
            ecard_id, nonce, used_reason = outcome.card.ecard_id, outcome.claims.nonce, "REPLAYED"
        draft = Draft("", merchant_id, "", b"", ecard_id, nonce, request.items, split,
                      request.skip_personal_account, used_reason, benefits=pricing.benefits,
                      benefit_version=pricing.benefit_version)
        state = self._ledger.account_state(ecard_id, nonce, now)
        paid = draft.shares_under_lock(state.status, state.settled_before, state.balance_fen, state.category,
                                       state.accumulated)  # the Settle's own rule, unlocked
        quote = Quote(merchant_id, ecard_id, nonce, used_reason,
                      basket_digest(request.items, request.skip_personal_account), paid, state.balance_fen,
                      split.catalogue_version, split.policy_version, expires_at,
                      (state.accumulated.deductible_fen, state.accumulated.fund_fen))
        return Quoted(self._quotes.seal(quote), quote, request.items, split, draft.line_shares(paid))

    def _open_verification(self, merchant_id: str, handle: str) -> tuple[str, bytes, int]:
        verification = self._handles.open(handle, merchant_id=merchant_id, now=int(self._clock()))
        if verification.purpose != t.PURPOSE_MEDICAL_SETTLEMENT or verification.assurance < t.ASSURANCE_PIN:
            raise FailedPrecondition(
                "the verification was not for medical settlement with at least a PIN",
                "VERIFICATION_NOT_FOR_SETTLEMENT",
            )
        return verification.ecard_id, verification.nonce, verification.expires_at

    def refund(
        self, merchant_id: str, settlement_id: str, idempotency_key: str, reason: str, ask: RefundAsk,
        *, terminal_id: str = "", operator_id: str = "",
    ) -> SettlementRecord:
        validation.refund_request(settlement_id, idempotency_key, reason)
        validation.refund_ask(ask.lines, ask.amount_fen, ask.full)
        validation.till(terminal_id, operator_id)
        if idempotency_key.startswith(REVERSAL_KEY_PREFIX):
            raise InvalidArgument(f"refund keys starting with {REVERSAL_KEY_PREFIX!r} are the reversals' own",
                                  "RESERVED_IDEMPOTENCY_KEY")
        draft = RefundDraft(settlement_id, merchant_id, idempotency_key, refund_hash(settlement_id, reason, ask),
                            reason, ask, terminal_id, operator_id)
        return self._ledger.refund(draft, int(self._clock()))

    def reverse(self, draft: ReversalDraft) -> Reversal:
        """Reversal (冲正) by the Settle's key: the settlement under it refunded in full, or, when there
        is none, the key marked so that no Settle with it ever moves money. Idempotent."""
        validation.idempotency_key(draft.idempotency_key)
        validation.till(draft.terminal_id, draft.operator_id)
        return self._ledger.reverse(draft, int(self._clock()))

    def get(self, merchant_id: str, settlement_id: str) -> SettlementRecord:
        validation.settlement_id_given(settlement_id)
        known = len(settlement_id) <= validation.MAX_SETTLEMENT_ID  # a longer one names nothing
        record = self._ledger.get_settlement(settlement_id) if known else None
        if record is None or record.merchant_id != merchant_id:  # another's answers as an unknown one
            raise NotFound("no such settlement", "SETTLEMENT_UNKNOWN")
        return record
