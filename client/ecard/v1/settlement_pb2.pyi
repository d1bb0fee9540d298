import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ecard.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QuoteRequest(_message.Message):
    __slots__ = ("merchant_id", "verification_id", "token", "items", "skip_personal_account", "terminal_id")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SKIP_PERSONAL_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    verification_id: str
    token: str
    items: _containers.RepeatedCompositeFieldContainer[LineItem]
    skip_personal_account: bool
    terminal_id: str
    def __init__(self, merchant_id: _Optional[str] = ..., verification_id: _Optional[str] = ..., token: _Optional[str] = ..., items: _Optional[_Iterable[_Union[LineItem, _Mapping]]] = ..., skip_personal_account: _Optional[bool] = ..., terminal_id: _Optional[str] = ...) -> None: ...

class SettlementQuote(_message.Message):
    __slots__ = ("quote_id", "expires_at", "total_fen", "fund_paid_fen", "personal_account_paid_fen", "self_pay_fen", "catalogue_version", "policy_version", "lines", "personal_account_balance_fen")
    QUOTE_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FEN_FIELD_NUMBER: _ClassVar[int]
    FUND_PAID_FEN_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_ACCOUNT_PAID_FEN_FIELD_NUMBER: _ClassVar[int]
    SELF_PAY_FEN_FIELD_NUMBER: _ClassVar[int]
    CATALOGUE_VERSION_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_ACCOUNT_BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    quote_id: str
    expires_at: _timestamp_pb2.Timestamp
    total_fen: int
    fund_paid_fen: int
    personal_account_paid_fen: int
    self_pay_fen: int
    catalogue_version: str
    policy_version: str
    lines: _containers.RepeatedCompositeFieldContainer[SettlementLine]
    personal_account_balance_fen: int
    def __init__(self, quote_id: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., total_fen: _Optional[int] = ..., fund_paid_fen: _Optional[int] = ..., personal_account_paid_fen: _Optional[int] = ..., self_pay_fen: _Optional[int] = ..., catalogue_version: _Optional[str] = ..., policy_version: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[SettlementLine, _Mapping]]] = ..., personal_account_balance_fen: _Optional[int] = ...) -> None: ...

class LineItem(_message.Message):
    __slots__ = ("code", "name", "drug_class", "unit_price_fen", "quantity")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DRUG_CLASS_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FEN_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    drug_class: _types_pb2.DrugClass
    unit_price_fen: int
    quantity: int
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ..., drug_class: _Optional[_Union[_types_pb2.DrugClass, str]] = ..., unit_price_fen: _Optional[int] = ..., quantity: _Optional[int] = ...) -> None: ...

class SettleRequest(_message.Message):
    __slots__ = ("merchant_id", "idempotency_key", "verification_id", "token", "quote_id", "items", "skip_personal_account")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    QUOTE_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SKIP_PERSONAL_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    idempotency_key: str
    verification_id: str
    token: str
    quote_id: str
    items: _containers.RepeatedCompositeFieldContainer[LineItem]
    skip_personal_account: bool
    def __init__(self, merchant_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., verification_id: _Optional[str] = ..., token: _Optional[str] = ..., quote_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[LineItem, _Mapping]]] = ..., skip_personal_account: _Optional[bool] = ...) -> None: ...

class RefundRequest(_message.Message):
    __slots__ = ("merchant_id", "settlement_id", "idempotency_key", "reason", "lines", "amount_fen", "full")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    settlement_id: str
    idempotency_key: str
    reason: str
    lines: _containers.RepeatedCompositeFieldContainer[RefundLine]
    amount_fen: int
    full: bool
    def __init__(self, merchant_id: _Optional[str] = ..., settlement_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., reason: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[RefundLine, _Mapping]]] = ..., amount_fen: _Optional[int] = ..., full: _Optional[bool] = ...) -> None: ...

class RefundLine(_message.Message):
    __slots__ = ("code", "quantity")
    CODE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    code: str
    quantity: int
    def __init__(self, code: _Optional[str] = ..., quantity: _Optional[int] = ...) -> None: ...

class SettlementLine(_message.Message):
    __slots__ = ("code", "quantity", "amount_fen", "fund_fen", "personal_account_fen", "self_pay_fen", "refunded_quantity", "fund_refunded_fen", "personal_account_refunded_fen", "self_pay_refunded_fen", "drug_class", "covered_fen", "self_pay_first_fen", "over_limit_fen", "not_covered_fen")
    CODE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    FUND_FEN_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_ACCOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    SELF_PAY_FEN_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    FUND_REFUNDED_FEN_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_ACCOUNT_REFUNDED_FEN_FIELD_NUMBER: _ClassVar[int]
    SELF_PAY_REFUNDED_FEN_FIELD_NUMBER: _ClassVar[int]
    DRUG_CLASS_FIELD_NUMBER: _ClassVar[int]
    COVERED_FEN_FIELD_NUMBER: _ClassVar[int]
    SELF_PAY_FIRST_FEN_FIELD_NUMBER: _ClassVar[int]
    OVER_LIMIT_FEN_FIELD_NUMBER: _ClassVar[int]
    NOT_COVERED_FEN_FIELD_NUMBER: _ClassVar[int]
    code: str
    quantity: int
    amount_fen: int
    fund_fen: int
    personal_account_fen: int
    self_pay_fen: int
    refunded_quantity: int
    fund_refunded_fen: int
    personal_account_refunded_fen: int
    self_pay_refunded_fen: int
    drug_class: _types_pb2.DrugClass
    covered_fen: int
    self_pay_first_fen: int
    over_limit_fen: int
    not_covered_fen: int
    def __init__(self, code: _Optional[str] = ..., quantity: _Optional[int] = ..., amount_fen: _Optional[int] = ..., fund_fen: _Optional[int] = ..., personal_account_fen: _Optional[int] = ..., self_pay_fen: _Optional[int] = ..., refunded_quantity: _Optional[int] = ..., fund_refunded_fen: _Optional[int] = ..., personal_account_refunded_fen: _Optional[int] = ..., self_pay_refunded_fen: _Optional[int] = ..., drug_class: _Optional[_Union[_types_pb2.DrugClass, str]] = ..., covered_fen: _Optional[int] = ..., self_pay_first_fen: _Optional[int] = ..., over_limit_fen: _Optional[int] = ..., not_covered_fen: _Optional[int] = ...) -> None: ...

class RefundEntry(_message.Message):
    __slots__ = ("idempotency_key", "reason", "amount_fen", "fund_fen", "personal_account_fen", "self_pay_fen", "personal_account_balance_fen", "lines", "refunded_at")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    FUND_FEN_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_ACCOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    SELF_PAY_FEN_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_ACCOUNT_BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_AT_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    reason: str
    amount_fen: int
    fund_fen: int
    personal_account_fen: int
    self_pay_fen: int
    personal_account_balance_fen: int
    lines: _containers.RepeatedCompositeFieldContainer[RefundLine]
    refunded_at: _timestamp_pb2.Timestamp
    def __init__(self, idempotency_key: _Optional[str] = ..., reason: _Optional[str] = ..., amount_fen: _Optional[int] = ..., fund_fen: _Optional[int] = ..., personal_account_fen: _Optional[int] = ..., self_pay_fen: _Optional[int] = ..., personal_account_balance_fen: _Optional[int] = ..., lines: _Optional[_Iterable[_Union[RefundLine, _Mapping]]] = ..., refunded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetSettlementRequest(_message.Message):
    __slots__ = ("merchant_id", "settlement_id")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    settlement_id: str
    def __init__(self, merchant_id: _Optional[str] = ..., settlement_id: _Optional[str] = ...) -> None: ...

class SettlementRecord(_message.Message):
    __slots__ = ("settlement_id", "ecard_id", "merchant_id", "status", "total_fen", "fund_paid_fen", "personal_account_paid_fen", "self_pay_fen", "personal_account_balance_fen", "items", "settled_at", "refunded_at", "refunded_fen", "fund_refunded_fen", "personal_account_refunded_fen", "self_pay_refunded_fen", "refunds", "lines", "catalogue_version", "policy_version")
    SETTLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ECARD_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FEN_FIELD_NUMBER: _ClassVar[int]
    FUND_PAID_FEN_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_ACCOUNT_PAID_FEN_FIELD_NUMBER: _ClassVar[int]
    SELF_PAY_FEN_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_ACCOUNT_BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SETTLED_AT_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_AT_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_FEN_FIELD_NUMBER: _ClassVar[int]
    FUND_REFUNDED_FEN_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_ACCOUNT_REFUNDED_FEN_FIELD_NUMBER: _ClassVar[int]
    SELF_PAY_REFUNDED_FEN_FIELD_NUMBER: _ClassVar[int]
    REFUNDS_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    CATALOGUE_VERSION_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    settlement_id: str
    ecard_id: str
    merchant_id: str
    status: _types_pb2.SettlementStatus
    total_fen: int
    fund_paid_fen: int
    personal_account_paid_fen: int
    self_pay_fen: int
    personal_account_balance_fen: int
    items: _containers.RepeatedCompositeFieldContainer[LineItem]
    settled_at: _timestamp_pb2.Timestamp
    refunded_at: _timestamp_pb2.Timestamp
    refunded_fen: int
    fund_refunded_fen: int
    personal_account_refunded_fen: int
    self_pay_refunded_fen: int
    refunds: _containers.RepeatedCompositeFieldContainer[RefundEntry]
    lines: _containers.RepeatedCompositeFieldContainer[SettlementLine]
    catalogue_version: str
    policy_version: str
    def __init__(self, settlement_id: _Optional[str] = ..., ecard_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., status: _Optional[_Union[_types_pb2.SettlementStatus, str]] = ..., total_fen: _Optional[int] = ..., fund_paid_fen: _Optional[int] = ..., personal_account_paid_fen: _Optional[int] = ..., self_pay_fen: _Optional[int] = ..., personal_account_balance_fen: _Optional[int] = ..., items: _Optional[_Iterable[_Union[LineItem, _Mapping]]] = ..., settled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., refunded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., refunded_fen: _Optional[int] = ..., fund_refunded_fen: _Optional[int] = ..., personal_account_refunded_fen: _Optional[int] = ..., self_pay_refunded_fen: _Optional[int] = ..., refunds: _Optional[_Iterable[_Union[RefundEntry, _Mapping]]] = ..., lines: _Optional[_Iterable[_Union[SettlementLine, _Mapping]]] = ..., catalogue_version: _Optional[str] = ..., policy_version: _Optional[str] = ...) -> None: ...
