"""MerchantCounter: a pharmacy or hospital counter, and what its visits need.

The holder's phone is simulated with the channel's own `TokenSigner` (as the channel app mints the
QR code); the counter verifies and settles through the SDK's `PharmacyClient`. Every Verify answer
goes through `verify_expecting`, which counts it by reason and reports a wrong verdict as a failed
request of type `verdict`, apart from transport errors (type `grpc`).
"""

from __future__ import annotations

import random
import time
import uuid
from typing import ClassVar

import gevent

from ecard import (
    Assurance,
    FailedPrecondition,
    PharmacyClient,
    Purpose,
    Reason,
    TokenSigner,
    Verdict,
    generate_private_key,
)
from ecard.v1 import settlement_pb2, verifier_pb2
from loadtest.harness.baskets import check_settlement
from loadtest.harness.slo import WrongAnswer
from loadtest.pacing import ScheduledUser

VERDICT_REQUEST_TYPE = "verdict"
# The holders in a visit at this process's counters (MerchantCounter.holder): e-card -> visits, visit -> e-cards.
_IN_A_VISIT: dict[str, int] = {}
_TAKEN: dict[object, list[str]] = {}

class MerchantCounter(ScheduledUser):
    """Abstract: one counter at a seeded merchant (`merchant_kind`), with one PharmacyClient (one channel)."""

    abstract = True
    merchant_kind: ClassVar[str] = "pharmacy"
    client: PharmacyClient

    def prepare(self) -> None:
        self.rng = random.Random()
        merchants = self.seed.hospitals if self.merchant_kind == "hospital" else self.seed.pharmacies
        self.merchant_id = self.rng.choice(merchants)
        self.signers = [channel.signer() for channel in self.seed.channels]

    def connect(self, target: str) -> PharmacyClient:
        options = self.client_options(f"merchant:{self.merchant_id}")
        return PharmacyClient(target, merchant_id=self.merchant_id, options=options)

    # -- the holder's side ------------------------------------------------------------------------
    def holder(self) -> tuple[str, TokenSigner]:
        """A holder who can pay (e-card not lost), and one of the channel apps their e-card is bound to.

        A person stands at one counter at a time: the holder is none whose visit at a counter of this
        process is under way (taken here for the calling visit, given back when it ends: `visit_ended`).
        Two visits of one holder at once would make the second's quote stale (QUOTE_STALE: the account or
        the year's benefits changed since the quote), a refusal right for the platform and a failed RPC
        for the SLO that real counters do not meet at that rate. Eight draws that all meet a holder in a
        visit (about as many visits under way as holders) take the eighth anyway."""
        usable, busy = self.seed.usable, _IN_A_VISIT
        for _ in range(8):
            ecard_id, bound = self.rng.choice(usable)
            if ecard_id not in busy:
                break
        busy[ecard_id] = busy.get(ecard_id, 0) + 1
        _TAKEN.setdefault(gevent.getcurrent(), []).append(ecard_id)
        return ecard_id, self.signers[self.rng.choice(bound)]

    def visit_ended(self) -> None:
        """The holders the visit that ends took are free for the next ones."""
        busy = _IN_A_VISIT
        for ecard_id in _TAKEN.pop(gevent.getcurrent(), ()):
            left = busy.pop(ecard_id) - 1
            if left:
                busy[ecard_id] = left

    def forger(self) -> TokenSigner:
        """A signer that claims the bank's key id but holds a key nobody registered."""
        bank = self.signers[0]
        return TokenSigner(generate_private_key(bank.algorithm), issuer_id=bank.issuer_id, kid=bank.kid)

    # -- the counter's side -----------------------------------------------------------------------
    def receipt_no(self) -> str:
        """The idempotency key of a settlement: the counter's receipt number."""
        return f"{self.merchant_id}-{uuid.uuid4().hex}"

    def verify_expecting(
        self,
        case: str,
        token: str,
        expected: Reason,
        *,
        purpose: Purpose = Purpose.IDENTITY,
        min_assurance: Assurance = Assurance.NONE,
    ) -> verifier_pb2.VerifyResponse:
        """Verifies and checks the verdict: REASON_OK means ACCEPTED, any other reason that rejection.

        Fires one `verdict` request named `<case> expects <ACCEPTED|REASON>`, failed when the answer differs, and
        raises WrongAnswer then. A transport error raises the SDK's error (the interceptor reported it).
        """
        started = time.perf_counter()
        answer = self.client.verify(token, purpose=purpose, min_assurance=min_assurance, terminal_id=self.merchant_id)
        elapsed_ms = (time.perf_counter() - started) * 1000
        verdict, reason = Verdict(answer.verdict).name, Reason(answer.reason).name
        tally = self.harness.tally
        tally.record_verdict(verdict, reason)
        expected_verdict = Verdict.ACCEPTED if expected == Reason.OK else Verdict.REJECTED
        wrong = None
        if answer.verdict != expected_verdict or answer.reason != expected:
            description = f"{case}: expected {expected_verdict.name}/{expected.name}, got {verdict}/{reason}"
            tally.record_wrong(description)
            wrong = WrongAnswer(description)
        expectation = "ACCEPTED" if expected == Reason.OK else expected.name
        self.environment.events.request.fire(
            request_type=VERDICT_REQUEST_TYPE, name=f"{case} expects {expectation}", response_time=elapsed_ms,
            response_length=0, response=answer, context={}, exception=wrong,
        )
        if wrong is not None:
            raise wrong
        return answer

    def quote_and_settle(self, items: list[settlement_pb2.LineItem], verification_id: str
                         ) -> settlement_pb2.SettlementRecord:
        """Quotes the basket (the split the holder is shown), then settles that quote and checks that the
        record is exactly the quoted split. A quote gone stale (another settlement of the same holder in
        between: the harness shares holders between users) is quoted again, as a counter does."""
        for attempt in (1, 2):
            quote = self.client.quote(items, verification_id=verification_id, terminal_id=self.merchant_id)
            try:
                record = self.settle_checked(items, quote_id=quote.quote_id)
            except FailedPrecondition as stale:
                if stale.reason != "QUOTE_STALE" or attempt == 2:
                    raise
                continue
            shown = (quote.fund_paid_fen, quote.personal_account_paid_fen, quote.self_pay_fen)
            if (record.fund_paid_fen, record.personal_account_paid_fen, record.self_pay_fen) != shown:
                description = f"{self.scenario}: settled {record.settlement_id} differs from its quote {shown}"
                self.harness.tally.record_wrong(description)
                raise WrongAnswer(description)
            return record
        raise AssertionError("unreachable")

    def settle_checked(
        self, items: list[settlement_pb2.LineItem], **credential: str
    ) -> settlement_pb2.SettlementRecord:
        """Settles with a fresh receipt number and checks the record; wrong arithmetic counts as a wrong answer."""
        return self.checked(self.client.settle(items, idempotency_key=self.receipt_no(), **credential), items)

    def checked(
        self, record: settlement_pb2.SettlementRecord, items: list[settlement_pb2.LineItem]
    ) -> settlement_pb2.SettlementRecord:
        """The record, once its arithmetic is checked; wrong arithmetic counts as a wrong answer."""
        try:
            check_settlement(record, items)
        except WrongAnswer as wrong:
            self.harness.tally.record_wrong(f"{self.scenario}: {wrong}")
            raise
        return record

    def hospital_visit(self, items: list[settlement_pb2.LineItem], registration_id: str,
                       pay: str) -> settlement_pb2.SettlementRecord:
        """A visit: opened on the registration's verification, the fee items added one order at a time,
        settled with the holder's fresh code `pay`, its record checked."""
        opened = self.client.open_visit(idempotency_key=self.receipt_no(), verification_id=registration_id,
                                        terminal_id=self.merchant_id)
        for order, item in enumerate(items):
            self.client.add_visit_items(opened.visit_id, [item], idempotency_key=f"order-{order}")
        record = self.client.settle_visit(opened.visit_id, idempotency_key=self.receipt_no(), token=pay,
                                          terminal_id=self.merchant_id)
        return self.checked(record, items)
