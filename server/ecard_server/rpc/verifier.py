"""Verifier servicer: unary, stream and batch share one path, the core's TokenVerifier.

Verify and each VerifyStream item run on the call's handler thread (rpc.threaded), in every
deployment; when nonces are in Redis (SharedVerifierServicer) the thread consumes the nonce itself,
group-committed with other threads' consumptions (storage.group_commit). A batch runs on its handler
thread.
Answers are filled in place (a batch's inside its response message), so no message is built twice.
An accepted unary Verify that carries a request_id leaves its answer in the verification records, for
GetVerification (a POS whose Verify timed out asks it back there instead of verifying again). A
rejected one leaves nothing: it consumed nothing, which is what NOT_FOUND tells (the SDK's
TokenNotConsumed), and junk calls cannot fill the records.
A batch runs every check of every item, then consumes all the batch's nonces in one call to the
nonce store, exactly as the items would be one after another.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import grpc.aio

from ecard.errors import NotFound
from ecard.v1 import types_pb2 as t
from ecard.v1 import verifier_pb2, verifier_pb2_grpc
from ecard_server.config import Settings
from ecard_server.core.audit import AuditTrail
from ecard_server.core.ports import KeptAnswer, VerificationRecords
from ecard_server.core.rules import validation
from ecard_server.core.rules.validation import verify_request_error
from ecard_server.core.verification import TokenVerifier, VerifyItem, VerifyOutcome
from ecard_server.rpc import metrics
from ecard_server.rpc.auth import own_id
from ecard_server.rpc.placement import hot_path

_ACCEPTED, _REJECTED, _OK = t.VERDICT_ACCEPTED, t.VERDICT_REJECTED, t.REASON_OK
_MALFORMED = VerifyOutcome(t.REASON_MALFORMED)  # a batch item that fails read_request (not audited)


class RequestFields(NamedTuple):
    """The fields of a well-formed VerifyRequest, each read once from the message."""

    token: str
    purpose: int
    min_assurance: int
    request_id: str
    terminal_id: str


_request_fields = tuple.__new__  # a third of what RequestFields(...) costs


def read_request(request: verifier_pb2.VerifyRequest, *, unary: bool) -> RequestFields | None:
    """The fields a verification uses, each read once (a read makes a new Python object), checked by
    the core (core.rules.validation). A bad request raises InvalidArgument when it is a whole call
    (`unary`), or gives None when it is an item of a stream or batch, which is rejected alone as
    MALFORMED."""
    token, purpose, min_assurance = request.token, request.purpose, request.min_assurance
    request_id, terminal_id = request.request_id, request.terminal_id
    error = verify_request_error(token, purpose, min_assurance, request_id, terminal_id)
    if error is None:
        return _request_fields(RequestFields, (token, purpose, min_assurance, request_id, terminal_id))  # type: ignore[no-any-return]
    if unary:
        raise error
    return None


def fill_response(
    response: verifier_pb2.VerifyResponse, request_id: str, outcome: VerifyOutcome
) -> verifier_pb2.VerifyResponse:
    """Writes one verdict into `response` (a fresh message, or an element of a batch's answer)."""
    reason = outcome.reason
    response.request_id = request_id
    response.verdict = _ACCEPTED if reason == _OK else _REJECTED
    response.reason = reason  # type: ignore[assignment]  # the stubs type enum fields as enums
    card = outcome.card
    if card is not None:
        view = response.card
        view.ecard_id = card.ecard_id
        view.holder_name_masked = card.holder_name_masked
        view.region = card.region
        view.status = card.status  # type: ignore[assignment]
        if outcome.verification_id:
            response.verification_id = outcome.verification_id
            response.verification_expires_at.seconds = outcome.verification_expires_at
    return response


def _malformed(request: verifier_pb2.VerifyRequest) -> verifier_pb2.VerifyResponse:
    metrics.verdict(t.REASON_MALFORMED)
    return verifier_pb2.VerifyResponse(request_id=request.request_id, verdict=_REJECTED, reason=t.REASON_MALFORMED)


class VerifierServicer(verifier_pb2_grpc.VerifierServicer):
    def __init__(
        self, verifier: TokenVerifier, audit: AuditTrail, records: VerificationRecords, settings: Settings,
    ) -> None:
        self._verifier = verifier
        self._audit = audit
        self._records = records
        self._max_batch = settings.max_batch

    def _verify(
        self, request: verifier_pb2.VerifyRequest, merchant_id: str, unary: bool
    ) -> verifier_pb2.VerifyResponse:
        """One Verify, or one item of a stream (`unary` False: a bad item is rejected alone)."""
        fields = read_request(request, unary=unary)
        if fields is None:
            return _malformed(request)
        outcome = self._outcome(fields, merchant_id)
        response = self._answer(fields, merchant_id, outcome)
        if unary and fields.request_id and outcome.reason == _OK:  # in memory here: nothing that can fail or wait
            self._records.record(merchant_id, fields.request_id, response.SerializeToString())
        return response

    def _outcome(self, fields: RequestFields, merchant_id: str) -> VerifyOutcome:
        return self._verifier.verify_token(
            fields.token, merchant_id=merchant_id, purpose=fields.purpose, min_assurance=fields.min_assurance
        )

    def _answer(self, fields: RequestFields, merchant_id: str, outcome: VerifyOutcome) -> verifier_pb2.VerifyResponse:
        metrics.verdict(outcome.reason)
        self._record(merchant_id, fields.terminal_id, outcome)
        return fill_response(verifier_pb2.VerifyResponse(), fields.request_id, outcome)

    def _record(self, merchant_id: str, terminal_id: str, outcome: VerifyOutcome) -> None:
        card = outcome.card
        self._audit.verified(merchant_id, card.ecard_id if card else "", terminal_id, outcome.reason)

    @hot_path
    def Verify(
        self, request: verifier_pb2.VerifyRequest, context: grpc.aio.ServicerContext
    ) -> verifier_pb2.VerifyResponse:
        return self._verify(request, own_id(request.merchant_id), True)

    @hot_path
    def GetVerification(
        self, request: verifier_pb2.GetVerificationRequest, context: grpc.aio.ServicerContext
    ) -> verifier_pb2.VerifyResponse:
        merchant_id, request_id = own_id(request.merchant_id), request.request_id
        validation.text(request_id, "request_id", max_len=128)  # checked; the key is the id as sent
        found = self._records.find(merchant_id, request_id)
        if found is None:  # another merchant's request_id lands here too: its existence is not ours to tell
            raise NotFound("no Verify of this merchant finished under this request_id", "VERIFICATION_NOT_FOUND")
        return verifier_pb2.VerifyResponse.FromString(found)

    def VerifyStream(  # type: ignore[override]
        self, request_iterator: Iterator[verifier_pb2.VerifyRequest], context: grpc.ServicerContext
    ) -> Iterator[verifier_pb2.VerifyResponse]:
        """On the stream's handler thread, each item as it is read (rpc.guard's threaded stream)."""
        verify = self._verify
        for request in request_iterator:
            yield verify(request, own_id(request.merchant_id), False)

    def VerifyBatch(
        self, request: verifier_pb2.VerifyBatchRequest, context: grpc.aio.ServicerContext
    ) -> verifier_pb2.VerifyBatchResponse:
        items = request.requests
        validation.verify_batch_size(len(items), self._max_batch)
        caller = own_id("")
        fields = []  # (request_id, terminal_id) of each item, read once
        work: list[VerifyItem] = []
        at: list[int] = []  # index in the batch of each item of `work`
        for index, item in enumerate(items):
            merchant_id = item.merchant_id
            if merchant_id and merchant_id != caller:
                own_id(merchant_id)  # raises: any mismatch refuses the whole batch
            read = read_request(item, unary=False)
            if read is None:
                fields.append((item.request_id, item.terminal_id))
                continue
            fields.append((read.request_id, read.terminal_id))
            work.append((read.token, caller, read.purpose, read.min_assurance))
            at.append(index)
        malformed = _MALFORMED
        outcomes: list[VerifyOutcome] = [malformed] * len(items)
        for index, outcome in zip(at, self._verifier.verify_tokens(work), strict=True):
            outcomes[index] = outcome
        metrics.verdicts([outcome.reason for outcome in outcomes])
        answer = verifier_pb2.VerifyBatchResponse()
        add = answer.responses.add
        record = self._record
        for (request_id, terminal_id), outcome in zip(fields, outcomes, strict=True):
            if outcome is not malformed:
                record(caller, terminal_id, outcome)
            fill_response(add(), request_id, outcome)
        return answer


class SharedVerifierServicer(VerifierServicer):
    """For a deployment whose nonces are in Redis (or whose store is not in this process): Verify and
    VerifyStream run on their handler threads as the embedded servicer's do; an accepted unary Verify
    that carries a request_id hands its answer to the nonce store with its consumption, which keeps it
    in the same Redis script call (group-committed with other threads' calls), only if the nonce is
    fresh."""

    def _verify(
        self, request: verifier_pb2.VerifyRequest, merchant_id: str, unary: bool
    ) -> verifier_pb2.VerifyResponse:
        fields = read_request(request, unary=unary)
        if fields is None:
            return _malformed(request)
        request_id = fields.request_id
        if not (unary and request_id):
            return self._answer(fields, merchant_id, self._outcome(fields, merchant_id))
        kept: list[verifier_pb2.VerifyResponse] = []

        def keep(accepted: VerifyOutcome) -> KeptAnswer:  # the answer if the nonce is fresh, made before
            response = fill_response(verifier_pb2.VerifyResponse(), request_id, accepted)
            kept.append(response)
            return merchant_id, request_id, response.SerializeToString()

        outcome = self._verifier.verify_token(
            fields.token, merchant_id=merchant_id, purpose=fields.purpose, min_assurance=fields.min_assurance,
            keep=keep,
        )
        if kept and outcome.reason == _OK:  # accepted: the answer kept with the consumption
            metrics.verdict(_OK)
            self._record(merchant_id, fields.terminal_id, outcome)
            return kept[0]
        return self._answer(fields, merchant_id, outcome)
