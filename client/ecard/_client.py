"""The pharmacy and hospital client: verify a scanned token, then settle the basket.

    with PharmacyClient("127.0.0.1:50051", merchant_id="nb-pharmacy-001") as pos:
        answer = pos.verify(qr_text, purpose=PURPOSE_MEDICAL_SETTLEMENT, min_assurance=ASSURANCE_PIN)
        if answer.verdict == VERDICT_ACCEPTED:
            record = pos.settle(basket, idempotency_key=receipt_no, verification_id=answer.verification_id)
        pos.refund(record.settlement_id, idempotency_key="R-" + receipt_no, lines=[("XA01", 1)])  # one box back
        pos.refund(record.settlement_id, idempotency_key="R2-" + receipt_no, full=True)  # all the rest

Verify is never retried: it consumes the token, and the holder's phone shows a fresh one anyway.
Each Verify carries a request_id (a fresh one when the caller gives none); when its answer is lost
(deadline, broken connection) the client asks it back with GetVerification instead (ecard._recovery):
the recorded answer, or TokenNotConsumed / VerificationUnknown.
Settle, Refund and GetSettlement are retried on transient errors: the idempotency key makes a
repeated Settle or Refund return the first record without moving money again.

Several replicas: PharmacyClient(["10.0.0.2:50051", "10.0.0.3:50051"], ...) or "dns:///ecard.internal:50051"
balances round robin and skips a replica that is down or not SERVING (see `_transport.channel_target`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import datetime
from typing import TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from ecard._options import ClientOptions
from ecard._recovery import answer_lost, arecover, fresh_request_id, recover
from ecard._rpc_errors import from_grpc_error
from ecard._transport import (
    REQUEST_ID,
    Req,
    Resp,
    Targets,
    acall,
    aio_channel,
    call,
    principal_metadata,
    sync_channel,
)
from ecard.errors import EcardError, InvalidArgument, TokenNotConsumed, Unreachable
from ecard.v1 import (
    cards_pb2,
    cards_pb2_grpc,
    settlement_pb2,
    settlement_pb2_grpc,
    types_pb2,
    verifier_pb2,
    verifier_pb2_grpc,
    wire,
)


def verify_request(
    token: str,
    *,
    purpose: int = types_pb2.PURPOSE_IDENTITY,
    min_assurance: int = types_pb2.ASSURANCE_UNSPECIFIED,
    terminal_id: str = "",
    request_id: str = "",
) -> verifier_pb2.VerifyRequest:
    return verifier_pb2.VerifyRequest(
        token=token, purpose=wire(purpose), min_assurance=wire(min_assurance), terminal_id=terminal_id,
        request_id=request_id,
    )


def lookup_request(request_id: str) -> verifier_pb2.GetVerificationRequest:
    if not request_id:
        raise ValueError("request_id is required")
    return verifier_pb2.GetVerificationRequest(request_id=request_id)


def line_item(
    code: str, name: str, drug_class: int, unit_price_fen: int, quantity: int = 1
) -> settlement_pb2.LineItem:
    return settlement_pb2.LineItem(
        code=code, name=name, drug_class=wire(drug_class), unit_price_fen=unit_price_fen, quantity=quantity
    )


def settle_request(
    items: Iterable[settlement_pb2.LineItem],
    *,
    idempotency_key: str,
    verification_id: str = "",
    token: str = "",
    quote_id: str = "",
    skip_personal_account: bool = False,
    terminal_id: str = "",
    operator_id: str = "",
) -> settlement_pb2.SettleRequest:
    """A Settle with exactly one credential: a verification_id, a token, or a quote_id (from `quote` of
    the same basket: the quoted split exactly, or QUOTE_STALE)."""
    if [bool(verification_id), bool(token), bool(quote_id)].count(True) != 1:
        raise ValueError("settle with exactly one of verification_id, token or quote_id")
    request = settlement_pb2.SettleRequest(
        idempotency_key=idempotency_key, items=list(items), skip_personal_account=skip_personal_account,
        terminal_id=terminal_id, operator_id=operator_id,
    )
    if verification_id:
        request.verification_id = verification_id
    elif quote_id:
        request.quote_id = quote_id
    else:
        request.token = token
    return request


def quote_request(
    items: Iterable[settlement_pb2.LineItem],
    *,
    verification_id: str = "",
    token: str = "",
    skip_personal_account: bool = False,
    terminal_id: str = "",
) -> settlement_pb2.QuoteRequest:
    if bool(verification_id) == bool(token):
        raise ValueError("quote with exactly one of verification_id or token")
    request = settlement_pb2.QuoteRequest(items=list(items), skip_personal_account=skip_personal_account,
                                          terminal_id=terminal_id)
    if verification_id:
        request.verification_id = verification_id
    else:
        request.token = token
    return request


def refund_line(code: str, quantity: int = 1) -> settlement_pb2.RefundLine:
    """`quantity` of the basket line(s) with this code, for `refund(..., lines=[...])`."""
    return settlement_pb2.RefundLine(code=code, quantity=quantity)


def refund_request(
    settlement_id: str,
    *,
    idempotency_key: str,
    reason: str = "",
    full: bool = False,
    lines: Iterable[settlement_pb2.RefundLine | tuple[str, int]] | None = None,
    amount_fen: int | None = None,
    terminal_id: str = "",
    operator_id: str = "",
) -> settlement_pb2.RefundRequest:
    """A Refund of exactly one of: `full=True` (all that is not refunded yet), chosen `lines`
    ((code, quantity) pairs or RefundLine), or `amount_fen` (> 0). An empty selection (`lines=[]`,
    `amount_fen=0`, or nothing at all) raises InvalidArgument: it never means "everything"."""
    chosen = None if lines is None else [
        line if isinstance(line, settlement_pb2.RefundLine) else refund_line(*line) for line in lines
    ]
    if (full, chosen is not None, amount_fen is not None).count(True) != 1:
        raise InvalidArgument("refund exactly one of full=True, lines=[...] or amount_fen=...",
                              "REFUND_SELECTION_MISSING" if not full and chosen is None and amount_fen is None
                              else "REFUND_SELECTION_AMBIGUOUS")
    if chosen == []:
        raise InvalidArgument("lines is empty: name at least one line to refund (full=True refunds all)",
                              "REFUND_SELECTION_MISSING")
    if amount_fen == 0:
        raise InvalidArgument("amount_fen is 0: refund a positive amount (full=True refunds all)",
                              "REFUND_SELECTION_MISSING")
    return settlement_pb2.RefundRequest(
        settlement_id=settlement_id, idempotency_key=idempotency_key, reason=reason, lines=chosen or [],
        amount_fen=amount_fen or 0, full=full, terminal_id=terminal_id, operator_id=operator_id,
    )


def reverse_request(idempotency_key: str, *, terminal_id: str = "", operator_id: str = "") -> (
        settlement_pb2.ReverseSettlementRequest):
    if not idempotency_key:
        raise ValueError("idempotency_key is required: the uncertain Settle's")
    return settlement_pb2.ReverseSettlementRequest(idempotency_key=idempotency_key, terminal_id=terminal_id,
                                                   operator_id=operator_id)


def open_visit_request(
    *, idempotency_key: str, verification_id: str = "", token: str = "", terminal_id: str = "", operator_id: str = "",
    department: str = "",
) -> settlement_pb2.OpenVisitRequest:
    if bool(verification_id) == bool(token):
        raise ValueError("open a visit with exactly one of verification_id or token")
    request = settlement_pb2.OpenVisitRequest(idempotency_key=idempotency_key, terminal_id=terminal_id,
                                              operator_id=operator_id, department=department)
    if verification_id:
        request.verification_id = verification_id
    else:
        request.token = token
    return request


def settle_visit_request(
    visit_id: str, *, idempotency_key: str, verification_id: str = "", token: str = "",
    skip_personal_account: bool = False, terminal_id: str = "", operator_id: str = "",
) -> settlement_pb2.SettleVisitRequest:
    if bool(verification_id) == bool(token):
        raise ValueError("settle a visit with exactly one of verification_id or token")
    request = settlement_pb2.SettleVisitRequest(
        visit_id=visit_id, idempotency_key=idempotency_key, skip_personal_account=skip_personal_account,
        terminal_id=terminal_id, operator_id=operator_id)
    if verification_id:
        request.verification_id = verification_id
    else:
        request.token = token
    return request


def list_request(
    *, since: datetime | None = None, until: datetime | None = None, terminal_id: str = "", page_size: int = 0,
) -> settlement_pb2.ListSettlementsRequest:
    request = settlement_pb2.ListSettlementsRequest(terminal_id=terminal_id, page_size=page_size)
    if since is not None:
        request.since.FromDatetime(since)
    if until is not None:
        request.until.FromDatetime(until)
    return request


_M = TypeVar("_M", bound=Message)
_MERCHANT_ID = "merchant_id"  # the field of a merchant's request that names it (most of them have one)


class _MerchantBase:
    def __init__(self, target: Targets, *, merchant_id: str, options: ClientOptions | None = None) -> None:
        self.target = target
        self.merchant_id = merchant_id
        self.options = options or ClientOptions()
        self._metadata = principal_metadata(f"merchant:{merchant_id}", self.options)

    def _mine(self, request: _M) -> _M:
        """The request naming this client's merchant (where it has a merchant_id and names none): under
        mTLS a certificate of another merchant is then PERMISSION_DENIED, not silently that merchant."""
        if isinstance(request, verifier_pb2.VerifyBatchRequest):
            for item in request.requests:
                self._mine(item)
        elif _MERCHANT_ID in request.DESCRIPTOR.fields_by_name and not getattr(request, _MERCHANT_ID):
            setattr(request, _MERCHANT_ID, self.merchant_id)
        return request


class PharmacyClient(_MerchantBase):
    """Synchronous client for a merchant's counter. Thread-safe; reuse one per process."""

    def __init__(self, target: Targets, *, merchant_id: str, options: ClientOptions | None = None) -> None:
        super().__init__(target, merchant_id=merchant_id, options=options)
        self.channel = sync_channel(target, self.options)
        self._verifier = verifier_pb2_grpc.VerifierStub(self.channel)
        self._settlement = settlement_pb2_grpc.SettlementStub(self.channel)
        self._cards = cards_pb2_grpc.CardsStub(self.channel)

    def _call(
        self, method: grpc.UnaryUnaryMultiCallable[Req, Resp], request: Req, *, retry: bool = False,
        timeout: float | None = None, wait_for_ready: bool | None = None, request_id: str = "",
    ) -> Resp:
        return call(
            method,
            self._mine(request),
            metadata=(*self._metadata, (REQUEST_ID, request_id)) if request_id else self._metadata,
            timeout=timeout or self.options.timeout,
            retry=self.options.retry if retry else None,
            wait_for_ready=wait_for_ready,
        )

    def verify(
        self, token: str, *, purpose: int = types_pb2.PURPOSE_IDENTITY,
        min_assurance: int = types_pb2.ASSURANCE_UNSPECIFIED, terminal_id: str = "", request_id: str = "",
    ) -> verifier_pb2.VerifyResponse:
        """Verifies one scanned token. Fields: purpose, min_assurance, terminal_id, request_id.
        A lost answer is asked back by request_id, never re-sent: raises TokenNotConsumed or
        VerificationUnknown (both VerifyInterrupted) when it cannot be had."""
        request = verify_request(
            token, purpose=purpose, min_assurance=min_assurance, terminal_id=terminal_id,
            request_id=request_id or fresh_request_id(),
        )
        try:
            return self._call(self._verifier.Verify, request, request_id=request.request_id)
        except EcardError as exc:
            if isinstance(exc, Unreachable):  # never sent: nothing consumed, and no need to ask
                raise TokenNotConsumed(exc, request.request_id) from exc
            if not answer_lost(exc):
                raise
            lookup = lookup_request(request.request_id)
            timeout = self.options.lookup_timeout
            return recover(lambda: self._call(self._verifier.GetVerification, lookup, retry=True, timeout=timeout,
                                              wait_for_ready=True), exc, request.request_id)

    def get_verification(self, request_id: str) -> verifier_pb2.VerifyResponse:
        """The answer this merchant's Verify under `request_id` gave (kept about verification_window_s);
        NotFound when none finished. Consumes nothing."""
        return self._call(self._verifier.GetVerification, lookup_request(request_id), retry=True)

    def verify_batch(
        self, requests: Iterable[verifier_pb2.VerifyRequest], *, timeout: float | None = None
    ) -> list[verifier_pb2.VerifyResponse]:
        """Up to 1,000 verifications in one call; answers in request order."""
        batch = verifier_pb2.VerifyBatchRequest(requests=list(requests))
        return list(self._call(self._verifier.VerifyBatch, batch, timeout=timeout).responses)

    def verify_stream(
        self, requests: Iterable[verifier_pb2.VerifyRequest], *, timeout: float | None = None
    ) -> Iterator[verifier_pb2.VerifyResponse]:
        """Many verifications on one stream; match answers to requests by request_id."""
        try:
            yield from self._verifier.VerifyStream(map(self._mine, requests), metadata=self._metadata, timeout=timeout)
        except grpc.RpcError as exc:
            raise from_grpc_error(exc) from exc

    def settle(
        self, items: Iterable[settlement_pb2.LineItem], *, idempotency_key: str, verification_id: str = "",
        token: str = "", quote_id: str = "", skip_personal_account: bool = False, terminal_id: str = "",
        operator_id: str = "",
    ) -> settlement_pb2.SettlementRecord:
        """Settles a basket, by `verification_id` (from an accepted Verify), by `quote_id` (from `quote`
        of the same basket: exactly the split the holder was shown, or FailedPrecondition QUOTE_STALE)
        or directly by `token`. Fields: idempotency_key (required: the receipt number), verification_id
        | quote_id | token, skip_personal_account, terminal_id and operator_id (the till and the cashier,
        for the statements). Retried on transient errors; the key makes that safe. Still failing
        (Unavailable, DeadlineExceeded): the outcome is unknown; `reverse_settlement(idempotency_key)`
        settles it."""
        return self._call(self._settlement.Settle, settle_request(
            items, idempotency_key=idempotency_key, verification_id=verification_id, token=token,
            quote_id=quote_id, skip_personal_account=skip_personal_account, terminal_id=terminal_id,
            operator_id=operator_id,
        ), retry=True)

    def quote(
        self, items: Iterable[settlement_pb2.LineItem], *, verification_id: str = "", token: str = "",
        skip_personal_account: bool = False, terminal_id: str = "",
    ) -> settlement_pb2.SettlementQuote:
        """Prices a basket for the verified holder and moves nothing (预结算): show the split, then
        `settle(items, quote_id=answer.quote_id, ...)` within `answer.expires_at`. Retried on transient
        errors by verification_id only (a token is spent by the first try)."""
        request = quote_request(items, verification_id=verification_id, token=token,
                                skip_personal_account=skip_personal_account, terminal_id=terminal_id)
        return self._call(self._settlement.Quote, request, retry=bool(verification_id))

    def refund(
        self, settlement_id: str, *, idempotency_key: str, reason: str = "", full: bool = False,
        lines: Iterable[settlement_pb2.RefundLine | tuple[str, int]] | None = None, amount_fen: int | None = None,
        terminal_id: str = "", operator_id: str = "",
    ) -> settlement_pb2.SettlementRecord:
        """Gives a settlement back, whole or in part: exactly one of `full=True` (all that is left),
        `lines` ((code, quantity) pairs: each line's own shares come back) or `amount_fen`. An empty
        selection raises InvalidArgument before anything is sent. The answer is the whole settlement;
        this refund is its `refunds` entry with this idempotency_key. Retried on transient errors."""
        request = refund_request(settlement_id, idempotency_key=idempotency_key, reason=reason, full=full,
                                 lines=lines, amount_fen=amount_fen, terminal_id=terminal_id, operator_id=operator_id)
        return self._call(self._settlement.Refund, request, retry=True)

    def get_settlement(self, settlement_id: str) -> settlement_pb2.SettlementRecord:
        request = settlement_pb2.GetSettlementRequest(settlement_id=settlement_id)
        return self._call(self._settlement.GetSettlement, request, retry=True)

    # -- binding at the counter -------------------------------------------------------------------
    def start_counter_binding(self, *, terminal_id: str = "") -> cards_pb2.CounterBinding:
        """A fresh binding code for the holder to scan: show `qr_text` as a QR code (ecard.qr)."""
        request = cards_pb2.StartCounterBindingRequest(terminal_id=terminal_id)
        return self._call(self._cards.StartCounterBinding, request)

    def get_counter_binding(self, binding_code: str, *, wait_s: int = 0) -> cards_pb2.CounterBinding:
        """The binding's state; with `wait_s` (at most 30), answered once it is completed or expired."""
        request = cards_pb2.CounterBindingRef(binding_code=binding_code, wait_seconds=wait_s)
        return self._call(self._cards.GetCounterBinding, request, retry=True, timeout=wait_s + self.options.timeout)

    def wait_counter_binding(self, binding_code: str, *, timeout_s: float = 300) -> cards_pb2.CounterBinding:
        """Long-polls until the holder's channel completes the binding (status COMPLETED, with `card`), it
        expires (EXPIRED), or `timeout_s` passes (PENDING)."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            binding = self.get_counter_binding(binding_code, wait_s=int(max(0, min(30, left))))
            if binding.status != cards_pb2.COUNTER_BINDING_STATUS_PENDING or left <= 0:
                return binding

    def reverse_settlement(
        self, idempotency_key: str, *, terminal_id: str = "", operator_id: str = ""
    ) -> settlement_pb2.ReverseSettlementResponse:
        """Reversal (冲正): what to do when a Settle's outcome is unknown (it raised Unavailable or
        DeadlineExceeded after its retries, the POS crashed, the holder left). By the Settle's own
        idempotency key: its settlement, if it went through, is refunded in full (`settled`, and
        `settlement` as it now stands); if not, the key is barred, so the lost Settle can never move
        money later (a Settle with the key then raises FailedPrecondition `REVERSED`). Idempotent, and
        retried on transient errors."""
        request = reverse_request(idempotency_key, terminal_id=terminal_id, operator_id=operator_id)
        return self._call(self._settlement.ReverseSettlement, request, retry=True)

    def list_settlements(
        self, *, since: datetime | None = None, until: datetime | None = None, terminal_id: str = "",
        page_size: int = 0,
    ) -> Iterator[settlement_pb2.SettlementRecord]:
        """This merchant's settlements settled in [since, until), oldest first, one page (up to
        `page_size`, 0: 100) per call as the iteration goes; of one terminal if given."""
        request = list_request(since=since, until=until, terminal_id=terminal_id, page_size=page_size)
        while True:
            page = self._call(self._settlement.ListSettlements, request, retry=True)
            yield from page.settlements
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    def daily_totals(self, day: str) -> settlement_pb2.DailyTotalsResponse:
        """The statement of a day ("YYYY-MM-DD", Asia/Shanghai): per terminal and in all."""
        return self._call(self._settlement.DailyTotals, settlement_pb2.DailyTotalsRequest(day=day), retry=True)

    # -- hospital visits (挂号, 就诊, 结算, 取药) ---------------------------------------------------------
    def open_visit(
        self, *, idempotency_key: str, verification_id: str = "", token: str = "", terminal_id: str = "",
        operator_id: str = "", department: str = "",
    ) -> settlement_pb2.Visit:
        """挂号: opens a visit on the registration scan (a Verify for PURPOSE_REGISTRATION, or its token),
        bound to the holder and this hospital. `idempotency_key` is the registration number: a retry
        answers with the same visit. Retried on transient errors."""
        request = open_visit_request(idempotency_key=idempotency_key, verification_id=verification_id, token=token,
                                     terminal_id=terminal_id, operator_id=operator_id, department=department)
        return self._call(self._settlement.OpenVisit, request, retry=True)

    def add_visit_items(
        self, visit_id: str, items: Iterable[settlement_pb2.LineItem], *, idempotency_key: str
    ) -> settlement_pb2.Visit:
        """Adds fee items (an examination, a prescription) to an open visit, once per key."""
        request = settlement_pb2.AddVisitItemsRequest(visit_id=visit_id, items=list(items),
                                                      idempotency_key=idempotency_key)
        return self._call(self._settlement.AddVisitItems, request, retry=True)

    def settle_visit(
        self, visit_id: str, *, idempotency_key: str, verification_id: str = "", token: str = "",
        skip_personal_account: bool = False, terminal_id: str = "", operator_id: str = "",
    ) -> settlement_pb2.SettlementRecord:
        """结算: settles the visit's items with a fresh credential of the same holder (PIN at least),
        priced as Settle prices; the visit is then SETTLED. Retried on transient errors (the key)."""
        request = settle_visit_request(visit_id, idempotency_key=idempotency_key, verification_id=verification_id,
                                       token=token, skip_personal_account=skip_personal_account,
                                       terminal_id=terminal_id, operator_id=operator_id)
        return self._call(self._settlement.SettleVisit, request, retry=True)

    def cancel_visit(self, visit_id: str) -> settlement_pb2.Visit:
        """退号: closes an open visit with nothing moved (again: the same answer)."""
        return self._call(self._settlement.CancelVisit, settlement_pb2.VisitRef(visit_id=visit_id), retry=True)

    def get_visit(self, visit_id: str) -> settlement_pb2.Visit:
        return self._call(self._settlement.GetVisit, settlement_pb2.VisitRef(visit_id=visit_id), retry=True)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> PharmacyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncPharmacyClient(_MerchantBase):
    """asyncio client with the same calls as PharmacyClient, on the same stubs."""

    def __init__(self, target: Targets, *, merchant_id: str, options: ClientOptions | None = None) -> None:
        super().__init__(target, merchant_id=merchant_id, options=options)
        self.channel = aio_channel(target, self.options)
        self._verifier = verifier_pb2_grpc.VerifierStub(self.channel)
        self._settlement = settlement_pb2_grpc.SettlementStub(self.channel)
        self._cards = cards_pb2_grpc.CardsStub(self.channel)

    async def _call(
        self, method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp], request: Req, *, retry: bool = False,
        timeout: float | None = None, wait_for_ready: bool | None = None, request_id: str = "",
    ) -> Resp:
        return await acall(
            method,
            self._mine(request),
            metadata=(*self._metadata, (REQUEST_ID, request_id)) if request_id else self._metadata,
            timeout=timeout or self.options.timeout,
            retry=self.options.retry if retry else None,
            wait_for_ready=wait_for_ready,
        )

    async def verify(
        self, token: str, *, purpose: int = types_pb2.PURPOSE_IDENTITY,
        min_assurance: int = types_pb2.ASSURANCE_UNSPECIFIED, terminal_id: str = "", request_id: str = "",
    ) -> verifier_pb2.VerifyResponse:
        request = verify_request(
            token, purpose=purpose, min_assurance=min_assurance, terminal_id=terminal_id,
            request_id=request_id or fresh_request_id(),
        )
        try:
            return await self._call(self._verifier.Verify, request, request_id=request.request_id)
        except EcardError as exc:
            if isinstance(exc, Unreachable):  # never sent: nothing consumed, and no need to ask
                raise TokenNotConsumed(exc, request.request_id) from exc
            if not answer_lost(exc):
                raise
            lookup = lookup_request(request.request_id)
            timeout = self.options.lookup_timeout
            return await arecover(lambda: self._call(self._verifier.GetVerification, lookup, retry=True,
                                                     timeout=timeout, wait_for_ready=True), exc, request.request_id)

    async def get_verification(self, request_id: str) -> verifier_pb2.VerifyResponse:
        return await self._call(self._verifier.GetVerification, lookup_request(request_id), retry=True)

    async def verify_batch(
        self, requests: Iterable[verifier_pb2.VerifyRequest], *, timeout: float | None = None
    ) -> list[verifier_pb2.VerifyResponse]:
        batch = verifier_pb2.VerifyBatchRequest(requests=list(requests))
        return list((await self._call(self._verifier.VerifyBatch, batch, timeout=timeout)).responses)

    async def verify_stream(
        self, requests: Iterable[verifier_pb2.VerifyRequest], *, timeout: float | None = None
    ) -> AsyncIterator[verifier_pb2.VerifyResponse]:
        try:
            stream = self._verifier.VerifyStream(map(self._mine, requests), metadata=self._metadata, timeout=timeout)
            async for response in stream:
                yield response
        except grpc.RpcError as exc:
            raise from_grpc_error(exc) from exc

    async def settle(
        self, items: Iterable[settlement_pb2.LineItem], *, idempotency_key: str, verification_id: str = "",
        token: str = "", quote_id: str = "", skip_personal_account: bool = False, terminal_id: str = "",
        operator_id: str = "",
    ) -> settlement_pb2.SettlementRecord:
        return await self._call(self._settlement.Settle, settle_request(
            items, idempotency_key=idempotency_key, verification_id=verification_id, token=token,
            quote_id=quote_id, skip_personal_account=skip_personal_account, terminal_id=terminal_id,
            operator_id=operator_id,
        ), retry=True)

    async def quote(
        self, items: Iterable[settlement_pb2.LineItem], *, verification_id: str = "", token: str = "",
        skip_personal_account: bool = False, terminal_id: str = "",
    ) -> settlement_pb2.SettlementQuote:
        request = quote_request(items, verification_id=verification_id, token=token,
                                skip_personal_account=skip_personal_account, terminal_id=terminal_id)
        return await self._call(self._settlement.Quote, request, retry=bool(verification_id))

    async def refund(
        self, settlement_id: str, *, idempotency_key: str, reason: str = "", full: bool = False,
        lines: Iterable[settlement_pb2.RefundLine | tuple[str, int]] | None = None, amount_fen: int | None = None,
        terminal_id: str = "", operator_id: str = "",
    ) -> settlement_pb2.SettlementRecord:
        request = refund_request(settlement_id, idempotency_key=idempotency_key, reason=reason, full=full,
                                 lines=lines, amount_fen=amount_fen, terminal_id=terminal_id, operator_id=operator_id)
        return await self._call(self._settlement.Refund, request, retry=True)

    async def get_settlement(self, settlement_id: str) -> settlement_pb2.SettlementRecord:
        request = settlement_pb2.GetSettlementRequest(settlement_id=settlement_id)
        return await self._call(self._settlement.GetSettlement, request, retry=True)

    async def start_counter_binding(self, *, terminal_id: str = "") -> cards_pb2.CounterBinding:
        request = cards_pb2.StartCounterBindingRequest(terminal_id=terminal_id)
        return await self._call(self._cards.StartCounterBinding, request)

    async def get_counter_binding(self, binding_code: str, *, wait_s: int = 0) -> cards_pb2.CounterBinding:
        request = cards_pb2.CounterBindingRef(binding_code=binding_code, wait_seconds=wait_s)
        return await self._call(self._cards.GetCounterBinding, request, retry=True,
                                timeout=wait_s + self.options.timeout)

    async def wait_counter_binding(self, binding_code: str, *, timeout_s: float = 300) -> cards_pb2.CounterBinding:
        """PharmacyClient.wait_counter_binding, for an event loop."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            binding = await self.get_counter_binding(binding_code, wait_s=int(max(0, min(30, left))))
            if binding.status != cards_pb2.COUNTER_BINDING_STATUS_PENDING or left <= 0:
                return binding

    async def reverse_settlement(
        self, idempotency_key: str, *, terminal_id: str = "", operator_id: str = ""
    ) -> settlement_pb2.ReverseSettlementResponse:
        request = reverse_request(idempotency_key, terminal_id=terminal_id, operator_id=operator_id)
        return await self._call(self._settlement.ReverseSettlement, request, retry=True)

    async def list_settlements(
        self, *, since: datetime | None = None, until: datetime | None = None, terminal_id: str = "",
        page_size: int = 0,
    ) -> AsyncIterator[settlement_pb2.SettlementRecord]:
        request = list_request(since=since, until=until, terminal_id=terminal_id, page_size=page_size)
        while True:
            page = await self._call(self._settlement.ListSettlements, request, retry=True)
            for record in page.settlements:
                yield record
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    async def daily_totals(self, day: str) -> settlement_pb2.DailyTotalsResponse:
        return await self._call(self._settlement.DailyTotals, settlement_pb2.DailyTotalsRequest(day=day), retry=True)

    async def open_visit(
        self, *, idempotency_key: str, verification_id: str = "", token: str = "", terminal_id: str = "",
        operator_id: str = "", department: str = "",
    ) -> settlement_pb2.Visit:
        request = open_visit_request(idempotency_key=idempotency_key, verification_id=verification_id, token=token,
                                     terminal_id=terminal_id, operator_id=operator_id, department=department)
        return await self._call(self._settlement.OpenVisit, request, retry=True)

    async def add_visit_items(
        self, visit_id: str, items: Iterable[settlement_pb2.LineItem], *, idempotency_key: str
    ) -> settlement_pb2.Visit:
        request = settlement_pb2.AddVisitItemsRequest(visit_id=visit_id, items=list(items),
                                                      idempotency_key=idempotency_key)
        return await self._call(self._settlement.AddVisitItems, request, retry=True)

    async def settle_visit(
        self, visit_id: str, *, idempotency_key: str, verification_id: str = "", token: str = "",
        skip_personal_account: bool = False, terminal_id: str = "", operator_id: str = "",
    ) -> settlement_pb2.SettlementRecord:
        request = settle_visit_request(visit_id, idempotency_key=idempotency_key, verification_id=verification_id,
                                       token=token, skip_personal_account=skip_personal_account,
                                       terminal_id=terminal_id, operator_id=operator_id)
        return await self._call(self._settlement.SettleVisit, request, retry=True)

    async def cancel_visit(self, visit_id: str) -> settlement_pb2.Visit:
        return await self._call(self._settlement.CancelVisit, settlement_pb2.VisitRef(visit_id=visit_id), retry=True)

    async def get_visit(self, visit_id: str) -> settlement_pb2.Visit:
        return await self._call(self._settlement.GetVisit, settlement_pb2.VisitRef(visit_id=visit_id), retry=True)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncPharmacyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
