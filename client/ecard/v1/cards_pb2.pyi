import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ecard.v1 import types_pb2 as _types_pb2
from ecard.v1 import token_pb2 as _token_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChannelEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_EVENT_KIND_UNSPECIFIED: _ClassVar[ChannelEventKind]
    CHANNEL_EVENT_KIND_CARD_STATUS: _ClassVar[ChannelEventKind]
    CHANNEL_EVENT_KIND_BINDING: _ClassVar[ChannelEventKind]
    CHANNEL_EVENT_KIND_SETTLED: _ClassVar[ChannelEventKind]
    CHANNEL_EVENT_KIND_REFUNDED: _ClassVar[ChannelEventKind]
    CHANNEL_EVENT_KIND_CARD_REPLACED: _ClassVar[ChannelEventKind]
    CHANNEL_EVENT_KIND_KEY_EXPIRING: _ClassVar[ChannelEventKind]

class BindingState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BINDING_STATE_UNSPECIFIED: _ClassVar[BindingState]
    BINDING_STATE_ACTIVE: _ClassVar[BindingState]
    BINDING_STATE_SUSPENDED: _ClassVar[BindingState]
    BINDING_STATE_UNBOUND: _ClassVar[BindingState]

class UsageKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    USAGE_KIND_UNSPECIFIED: _ClassVar[UsageKind]
    USAGE_KIND_VERIFICATION: _ClassVar[UsageKind]
    USAGE_KIND_SETTLEMENT: _ClassVar[UsageKind]
    USAGE_KIND_REFUND: _ClassVar[UsageKind]

class CounterBindingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COUNTER_BINDING_STATUS_UNSPECIFIED: _ClassVar[CounterBindingStatus]
    COUNTER_BINDING_STATUS_PENDING: _ClassVar[CounterBindingStatus]
    COUNTER_BINDING_STATUS_COMPLETED: _ClassVar[CounterBindingStatus]
    COUNTER_BINDING_STATUS_EXPIRED: _ClassVar[CounterBindingStatus]
CHANNEL_EVENT_KIND_UNSPECIFIED: ChannelEventKind
CHANNEL_EVENT_KIND_CARD_STATUS: ChannelEventKind
CHANNEL_EVENT_KIND_BINDING: ChannelEventKind
CHANNEL_EVENT_KIND_SETTLED: ChannelEventKind
CHANNEL_EVENT_KIND_REFUNDED: ChannelEventKind
CHANNEL_EVENT_KIND_CARD_REPLACED: ChannelEventKind
CHANNEL_EVENT_KIND_KEY_EXPIRING: ChannelEventKind
BINDING_STATE_UNSPECIFIED: BindingState
BINDING_STATE_ACTIVE: BindingState
BINDING_STATE_SUSPENDED: BindingState
BINDING_STATE_UNBOUND: BindingState
USAGE_KIND_UNSPECIFIED: UsageKind
USAGE_KIND_VERIFICATION: UsageKind
USAGE_KIND_SETTLEMENT: UsageKind
USAGE_KIND_REFUND: UsageKind
COUNTER_BINDING_STATUS_UNSPECIFIED: CounterBindingStatus
COUNTER_BINDING_STATUS_PENDING: CounterBindingStatus
COUNTER_BINDING_STATUS_COMPLETED: CounterBindingStatus
COUNTER_BINDING_STATUS_EXPIRED: CounterBindingStatus

class IssueECardRequest(_message.Message):
    __slots__ = ("card_no", "holder_name", "id_number", "assurance", "assurance_statement", "binding_code")
    CARD_NO_FIELD_NUMBER: _ClassVar[int]
    HOLDER_NAME_FIELD_NUMBER: _ClassVar[int]
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ASSURANCE_FIELD_NUMBER: _ClassVar[int]
    ASSURANCE_STATEMENT_FIELD_NUMBER: _ClassVar[int]
    BINDING_CODE_FIELD_NUMBER: _ClassVar[int]
    card_no: str
    holder_name: str
    id_number: str
    assurance: _types_pb2.Assurance
    assurance_statement: _token_pb2.SignedAssurance
    binding_code: str
    def __init__(self, card_no: _Optional[str] = ..., holder_name: _Optional[str] = ..., id_number: _Optional[str] = ..., assurance: _Optional[_Union[_types_pb2.Assurance, str]] = ..., assurance_statement: _Optional[_Union[_token_pb2.SignedAssurance, _Mapping]] = ..., binding_code: _Optional[str] = ...) -> None: ...

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

class WatchEventsRequest(_message.Message):
    __slots__ = ("issuer_id", "after", "kinds")
    ISSUER_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    issuer_id: str
    after: int
    kinds: _containers.RepeatedScalarFieldContainer[ChannelEventKind]
    def __init__(self, issuer_id: _Optional[str] = ..., after: _Optional[int] = ..., kinds: _Optional[_Iterable[_Union[ChannelEventKind, str]]] = ...) -> None: ...

class ChannelEvent(_message.Message):
    __slots__ = ("cursor", "kind", "ecard_id", "at", "status", "binding_issuer_id", "binding_state", "settlement_id", "merchant_id", "merchant_name", "total_fen", "fund_paid_fen", "personal_account_paid_fen", "self_pay_fen", "personal_account_balance_fen", "kid", "key_not_after", "card_no_masked")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ECARD_ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BINDING_ISSUER_ID_FIELD_NUMBER: _ClassVar[int]
    BINDING_STATE_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_NAME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FEN_FIELD_NUMBER: _ClassVar[int]
    FUND_PAID_FEN_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_ACCOUNT_PAID_FEN_FIELD_NUMBER: _ClassVar[int]
    SELF_PAY_FEN_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_ACCOUNT_BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    KID_FIELD_NUMBER: _ClassVar[int]
    KEY_NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    CARD_NO_MASKED_FIELD_NUMBER: _ClassVar[int]
    cursor: int
    kind: ChannelEventKind
    ecard_id: str
    at: _timestamp_pb2.Timestamp
    status: _types_pb2.CardStatus
    binding_issuer_id: str
    binding_state: BindingState
    settlement_id: str
    merchant_id: str
    merchant_name: str
    total_fen: int
    fund_paid_fen: int
    personal_account_paid_fen: int
    self_pay_fen: int
    personal_account_balance_fen: int
    kid: str
    key_not_after: _timestamp_pb2.Timestamp
    card_no_masked: str
    def __init__(self, cursor: _Optional[int] = ..., kind: _Optional[_Union[ChannelEventKind, str]] = ..., ecard_id: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[_types_pb2.CardStatus, str]] = ..., binding_issuer_id: _Optional[str] = ..., binding_state: _Optional[_Union[BindingState, str]] = ..., settlement_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., merchant_name: _Optional[str] = ..., total_fen: _Optional[int] = ..., fund_paid_fen: _Optional[int] = ..., personal_account_paid_fen: _Optional[int] = ..., self_pay_fen: _Optional[int] = ..., personal_account_balance_fen: _Optional[int] = ..., kid: _Optional[str] = ..., key_not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., card_no_masked: _Optional[str] = ...) -> None: ...

class ListUsageRequest(_message.Message):
    __slots__ = ("ecard_id", "page_size", "page_token")
    ECARD_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ecard_id: str
    page_size: int
    page_token: str
    def __init__(self, ecard_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class UsageRecord(_message.Message):
    __slots__ = ("kind", "at", "merchant_id", "merchant_name", "terminal_id", "reason", "settlement_id", "total_fen", "fund_paid_fen", "personal_account_paid_fen", "self_pay_fen")
    KIND_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_NAME_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FEN_FIELD_NUMBER: _ClassVar[int]
    FUND_PAID_FEN_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_ACCOUNT_PAID_FEN_FIELD_NUMBER: _ClassVar[int]
    SELF_PAY_FEN_FIELD_NUMBER: _ClassVar[int]
    kind: UsageKind
    at: _timestamp_pb2.Timestamp
    merchant_id: str
    merchant_name: str
    terminal_id: str
    reason: _types_pb2.Reason
    settlement_id: str
    total_fen: int
    fund_paid_fen: int
    personal_account_paid_fen: int
    self_pay_fen: int
    def __init__(self, kind: _Optional[_Union[UsageKind, str]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., merchant_id: _Optional[str] = ..., merchant_name: _Optional[str] = ..., terminal_id: _Optional[str] = ..., reason: _Optional[_Union[_types_pb2.Reason, str]] = ..., settlement_id: _Optional[str] = ..., total_fen: _Optional[int] = ..., fund_paid_fen: _Optional[int] = ..., personal_account_paid_fen: _Optional[int] = ..., self_pay_fen: _Optional[int] = ...) -> None: ...

class ListUsageResponse(_message.Message):
    __slots__ = ("records", "next_page_token")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[UsageRecord]
    next_page_token: str
    def __init__(self, records: _Optional[_Iterable[_Union[UsageRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class StartCounterBindingRequest(_message.Message):
    __slots__ = ("merchant_id", "terminal_id")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    terminal_id: str
    def __init__(self, merchant_id: _Optional[str] = ..., terminal_id: _Optional[str] = ...) -> None: ...

class CounterBindingRef(_message.Message):
    __slots__ = ("merchant_id", "binding_code", "wait_seconds")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    BINDING_CODE_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    binding_code: str
    wait_seconds: int
    def __init__(self, merchant_id: _Optional[str] = ..., binding_code: _Optional[str] = ..., wait_seconds: _Optional[int] = ...) -> None: ...

class CounterBinding(_message.Message):
    __slots__ = ("binding_code", "merchant_id", "terminal_id", "expires_at", "status", "card", "issuer_id", "qr_text", "completed_at")
    BINDING_CODE_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CARD_FIELD_NUMBER: _ClassVar[int]
    ISSUER_ID_FIELD_NUMBER: _ClassVar[int]
    QR_TEXT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    binding_code: str
    merchant_id: str
    terminal_id: str
    expires_at: _timestamp_pb2.Timestamp
    status: CounterBindingStatus
    card: _types_pb2.CardView
    issuer_id: str
    qr_text: str
    completed_at: _timestamp_pb2.Timestamp
    def __init__(self, binding_code: _Optional[str] = ..., merchant_id: _Optional[str] = ..., terminal_id: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[CounterBindingStatus, str]] = ..., card: _Optional[_Union[_types_pb2.CardView, _Mapping]] = ..., issuer_id: _Optional[str] = ..., qr_text: _Optional[str] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
