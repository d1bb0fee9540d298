"""Verifier servicer: unary, stream and batch share one path, `_verify_one`."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ecard.errors import InvalidArgument
from ecard.v1 import types_pb2 as t
from ecard.v1 import verifier_pb2, verifier_pb2_grpc
from ecard_server.config import Settings
from ecard_server.core.audit import AuditTrail
from ecard_server.core.verification import TokenVerifier
from ecard_server.rpc import metrics
from ecard_server.rpc.auth import own_id
from ecard_server.rpc.convert import card_view

MAX_TOKEN_TEXT = 1024  # far above the 300-character budget: longer is a broken client, not a token
_PURPOSES = frozenset(v for v in t.Purpose.values() if v != t.PURPOSE_UNSPECIFIED)
_ASSURANCES = frozenset(t.Assurance.values())
_ACCEPTED, _REJECTED = t.VERDICT_ACCEPTED, t.VERDICT_REJECTED


def check_request(request: verifier_pb2.VerifyRequest) -> None:
    if not request.token:
        raise InvalidArgument("token is required", "MISSING_TOKEN")
    if len(request.token) > MAX_TOKEN_TEXT:
        raise InvalidArgument(f"token is longer than {MAX_TOKEN_TEXT} characters", "TOKEN_TOO_LONG")
    if request.purpose not in _PURPOSES:
        raise InvalidArgument("purpose is required", "MISSING_PURPOSE")
    if request.min_assurance not in _ASSURANCES:
        raise InvalidArgument("min_assurance has an unknown value", "INVALID_MIN_ASSURANCE")
    if len(request.request_id) > 128 or len(request.terminal_id) > 64:
        raise InvalidArgument("request_id or terminal_id is too long", "FIELD_TOO_LONG")


class VerifierServicer(verifier_pb2_grpc.VerifierServicer):
    def __init__(self, verifier: TokenVerifier, audit: AuditTrail, settings: Settings) -> None:
        self._verifier = verifier
        self._audit = audit
        self._max_batch = settings.max_batch

    def _verify_one(self, request: verifier_pb2.VerifyRequest, merchant_id: str) -> verifier_pb2.VerifyResponse:
        outcome = self._verifier.verify_token(
            request.token, merchant_id=merchant_id, purpose=request.purpose, min_assurance=request.min_assurance
        )
        reason = outcome.reason
        metrics.VERDICT_BY_REASON[reason].inc()
        response = verifier_pb2.VerifyResponse(
            request_id=request.request_id, verdict=_ACCEPTED if reason == t.REASON_OK else _REJECTED, reason=reason
        )
        card = outcome.card
        if card is not None:
            response.card.CopyFrom(card_view(card))
        if outcome.verification_id:
            response.verification_id = outcome.verification_id
            response.verification_expires_at.CopyFrom(Timestamp(seconds=outcome.verification_expires_at))
        self._audit.record("VERIFY", merchant_id, card.ecard_id if card else "", f"{request.terminal_id} {reason}")
        return response

    def _item(self, request: verifier_pb2.VerifyRequest, merchant_id: str) -> verifier_pb2.VerifyResponse:
        """One verification of a stream or batch: a malformed item is rejected alone."""
        try:
            check_request(request)
        except InvalidArgument:
            metrics.VERDICT_BY_REASON[t.REASON_MALFORMED].inc()
            return verifier_pb2.VerifyResponse(
                request_id=request.request_id, verdict=_REJECTED, reason=t.REASON_MALFORMED
            )
        return self._verify_one(request, merchant_id)

    def Verify(self, request: verifier_pb2.VerifyRequest, context: grpc.ServicerContext) -> verifier_pb2.VerifyResponse:
        merchant_id = own_id(request.merchant_id)
        check_request(request)
        return self._verify_one(request, merchant_id)

    def VerifyStream(
        self, request_iterator: Iterator[verifier_pb2.VerifyRequest], context: grpc.ServicerContext
    ) -> Iterator[verifier_pb2.VerifyResponse]:
        for request in request_iterator:
            yield self._item(request, own_id(request.merchant_id))

    def VerifyBatch(
        self, request: verifier_pb2.VerifyBatchRequest, context: grpc.ServicerContext
    ) -> verifier_pb2.VerifyBatchResponse:
        items = request.requests
        if len(items) > self._max_batch:
            raise InvalidArgument(f"a batch holds at most {self._max_batch} requests", "BATCH_TOO_LARGE")
        merchant_ids = [own_id(item.merchant_id) for item in items]
        return verifier_pb2.VerifyBatchResponse(
            responses=[self._item(item, merchant_id) for item, merchant_id in zip(items, merchant_ids, strict=True)]
        )
