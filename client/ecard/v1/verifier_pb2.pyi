import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ecard.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VerifyRequest(_message.Message):
    __slots__ = ("token", "merchant_id", "terminal_id", "purpose", "min_assurance", "request_id")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    MIN_ASSURANCE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    token: str
    merchant_id: str
    terminal_id: str
    purpose: _types_pb2.Purpose
    min_assurance: _types_pb2.Assurance
    request_id: str
    def __init__(self, token: _Optional[str] = ..., merchant_id: _Optional[str] = ..., terminal_id: _Optional[str] = ..., purpose: _Optional[_Union[_types_pb2.Purpose, str]] = ..., min_assurance: _Optional[_Union[_types_pb2.Assurance, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("request_id", "verdict", "reason", "verification_id", "card", "verification_expires_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    CARD_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    verdict: _types_pb2.Verdict
    reason: _types_pb2.Reason
    verification_id: str
    card: _types_pb2.CardView
    verification_expires_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., verdict: _Optional[_Union[_types_pb2.Verdict, str]] = ..., reason: _Optional[_Union[_types_pb2.Reason, str]] = ..., verification_id: _Optional[str] = ..., card: _Optional[_Union[_types_pb2.CardView, _Mapping]] = ..., verification_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetVerificationRequest(_message.Message):
    __slots__ = ("merchant_id", "request_id")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    request_id: str
    def __init__(self, merchant_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class VerifyBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[VerifyRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[VerifyRequest, _Mapping]]] = ...) -> None: ...

class VerifyBatchResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[VerifyResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[VerifyResponse, _Mapping]]] = ...) -> None: ...
