import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ecard.v1 import types_pb2 as _types_pb2
from ecard.v1 import token_pb2 as _token_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IssueECardRequest(_message.Message):
    __slots__ = ("card_no", "holder_name", "id_number", "assurance", "assurance_statement")
    CARD_NO_FIELD_NUMBER: _ClassVar[int]
    HOLDER_NAME_FIELD_NUMBER: _ClassVar[int]
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ASSURANCE_FIELD_NUMBER: _ClassVar[int]
    ASSURANCE_STATEMENT_FIELD_NUMBER: _ClassVar[int]
    card_no: str
    holder_name: str
    id_number: str
    assurance: _types_pb2.Assurance
    assurance_statement: _token_pb2.SignedAssurance
    def __init__(self, card_no: _Optional[str] = ..., holder_name: _Optional[str] = ..., id_number: _Optional[str] = ..., assurance: _Optional[_Union[_types_pb2.Assurance, str]] = ..., assurance_statement: _Optional[_Union[_token_pb2.SignedAssurance, _Mapping]] = ...) -> None: ...

class GetECardRequest(_message.Message):
    __slots__ = ("ecard_id",)
    ECARD_ID_FIELD_NUMBER: _ClassVar[int]
    ecard_id: str
    def __init__(self, ecard_id: _Optional[str] = ...) -> None: ...

class CardRef(_message.Message):
    __slots__ = ("card_no", "ecard_id")
    CARD_NO_FIELD_NUMBER: _ClassVar[int]
    ECARD_ID_FIELD_NUMBER: _ClassVar[int]
    card_no: str
    ecard_id: str
    def __init__(self, card_no: _Optional[str] = ..., ecard_id: _Optional[str] = ...) -> None: ...

class ECard(_message.Message):
    __slots__ = ("ecard_id", "card_no_masked", "holder_name_masked", "region", "status", "channels", "personal_account_balance_fen", "issued_at", "suspended_channels", "replaced_at")
    ECARD_ID_FIELD_NUMBER: _ClassVar[int]
    CARD_NO_MASKED_FIELD_NUMBER: _ClassVar[int]
    HOLDER_NAME_MASKED_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_ACCOUNT_BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    SUSPENDED_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    REPLACED_AT_FIELD_NUMBER: _ClassVar[int]
    ecard_id: str
    card_no_masked: str
    holder_name_masked: str
    region: str
    status: _types_pb2.CardStatus
    channels: _containers.RepeatedScalarFieldContainer[str]
    personal_account_balance_fen: int
    issued_at: _timestamp_pb2.Timestamp
    suspended_channels: _containers.RepeatedScalarFieldContainer[str]
    replaced_at: _timestamp_pb2.Timestamp
    def __init__(self, ecard_id: _Optional[str] = ..., card_no_masked: _Optional[str] = ..., holder_name_masked: _Optional[str] = ..., region: _Optional[str] = ..., status: _Optional[_Union[_types_pb2.CardStatus, str]] = ..., channels: _Optional[_Iterable[str]] = ..., personal_account_balance_fen: _Optional[int] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., suspended_channels: _Optional[_Iterable[str]] = ..., replaced_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BindingRef(_message.Message):
    __slots__ = ("ecard_id", "issuer_id")
    ECARD_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUER_ID_FIELD_NUMBER: _ClassVar[int]
    ecard_id: str
    issuer_id: str
    def __init__(self, ecard_id: _Optional[str] = ..., issuer_id: _Optional[str] = ...) -> None: ...
