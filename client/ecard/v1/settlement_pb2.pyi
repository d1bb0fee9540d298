import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ecard.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VisitStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VISIT_STATUS_UNSPECIFIED: _ClassVar[VisitStatus]
    VISIT_STATUS_OPEN: _ClassVar[VisitStatus]
    VISIT_STATUS_SETTLED: _ClassVar[VisitStatus]
    VISIT_STATUS_CANCELLED: _ClassVar[VisitStatus]
    VISIT_STATUS_EXPIRED: _ClassVar[VisitStatus]
VISIT_STATUS_UNSPECIFIED: VisitStatus
VISIT_STATUS_OPEN: VisitStatus
VISIT_STATUS_SETTLED: VisitStatus
VISIT_STATUS_CANCELLED: VisitStatus
VISIT_STATUS_EXPIRED: VisitStatus

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
    __slots__ = ("merchant_id", "idempotency_key", "verification_id", "token", "quote_id", "items", "skip_personal_account", "terminal_id", "operator_id")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    QUOTE_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SKIP_PERSONAL_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    idempotency_key: str
    verification_id: str
    token: str
    quote_id: str
    items: _containers.RepeatedCompositeFieldContainer[LineItem]
    skip_personal_account: bool
    terminal_id: str
    operator_id: str
    def __init__(self, merchant_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., verification_id: _Optional[str] = ..., token: _Optional[str] = ..., quote_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[LineItem, _Mapping]]] = ..., skip_personal_account: _Optional[bool] = ..., terminal_id: _Optional[str] = ..., operator_id: _Optional[str] = ...) -> None: ...

class RefundRequest(_message.Message):
    __slots__ = ("merchant_id", "settlement_id", "idempotency_key", "reason", "lines", "amount_fen", "full", "terminal_id", "operator_id")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    settlement_id: str
    idempotency_key: str
    reason: str
    lines: _containers.RepeatedCompositeFieldContainer[RefundLine]
    amount_fen: int
    full: bool
    terminal_id: str
    operator_id: str
    def __init__(self, merchant_id: _Optional[str] = ..., settlement_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., reason: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[RefundLine, _Mapping]]] = ..., amount_fen: _Optional[int] = ..., full: _Optional[bool] = ..., terminal_id: _Optional[str] = ..., operator_id: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("idempotency_key", "reason", "amount_fen", "fund_fen", "personal_account_fen", "self_pay_fen", "personal_account_balance_fen", "lines", "refunded_at", "terminal_id", "operator_id", "reversal")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    FUND_FEN_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_ACCOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    SELF_PAY_FEN_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_ACCOUNT_BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_AT_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    REVERSAL_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    reason: str
    amount_fen: int
    fund_fen: int
    personal_account_fen: int
    self_pay_fen: int
    personal_account_balance_fen: int
    lines: _containers.RepeatedCompositeFieldContainer[RefundLine]
    refunded_at: _timestamp_pb2.Timestamp
    terminal_id: str
    operator_id: str
    reversal: bool
    def __init__(self, idempotency_key: _Optional[str] = ..., reason: _Optional[str] = ..., amount_fen: _Optional[int] = ..., fund_fen: _Optional[int] = ..., personal_account_fen: _Optional[int] = ..., self_pay_fen: _Optional[int] = ..., personal_account_balance_fen: _Optional[int] = ..., lines: _Optional[_Iterable[_Union[RefundLine, _Mapping]]] = ..., refunded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., terminal_id: _Optional[str] = ..., operator_id: _Optional[str] = ..., reversal: _Optional[bool] = ...) -> None: ...

class GetSettlementRequest(_message.Message):
    __slots__ = ("merchant_id", "settlement_id")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    settlement_id: str
    def __init__(self, merchant_id: _Optional[str] = ..., settlement_id: _Optional[str] = ...) -> None: ...

class SettlementRecord(_message.Message):
    __slots__ = ("settlement_id", "ecard_id", "merchant_id", "status", "total_fen", "fund_paid_fen", "personal_account_paid_fen", "self_pay_fen", "personal_account_balance_fen", "items", "settled_at", "refunded_at", "refunded_fen", "fund_refunded_fen", "personal_account_refunded_fen", "self_pay_refunded_fen", "refunds", "lines", "catalogue_version", "policy_version", "terminal_id", "operator_id", "idempotency_key", "reversed_at")
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
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    REVERSED_AT_FIELD_NUMBER: _ClassVar[int]
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
    terminal_id: str
    operator_id: str
    idempotency_key: str
    reversed_at: _timestamp_pb2.Timestamp
    def __init__(self, settlement_id: _Optional[str] = ..., ecard_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., status: _Optional[_Union[_types_pb2.SettlementStatus, str]] = ..., total_fen: _Optional[int] = ..., fund_paid_fen: _Optional[int] = ..., personal_account_paid_fen: _Optional[int] = ..., self_pay_fen: _Optional[int] = ..., personal_account_balance_fen: _Optional[int] = ..., items: _Optional[_Iterable[_Union[LineItem, _Mapping]]] = ..., settled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., refunded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., refunded_fen: _Optional[int] = ..., fund_refunded_fen: _Optional[int] = ..., personal_account_refunded_fen: _Optional[int] = ..., self_pay_refunded_fen: _Optional[int] = ..., refunds: _Optional[_Iterable[_Union[RefundEntry, _Mapping]]] = ..., lines: _Optional[_Iterable[_Union[SettlementLine, _Mapping]]] = ..., catalogue_version: _Optional[str] = ..., policy_version: _Optional[str] = ..., terminal_id: _Optional[str] = ..., operator_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., reversed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReverseSettlementRequest(_message.Message):
    __slots__ = ("merchant_id", "idempotency_key", "terminal_id", "operator_id")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    idempotency_key: str
    terminal_id: str
    operator_id: str
    def __init__(self, merchant_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., terminal_id: _Optional[str] = ..., operator_id: _Optional[str] = ...) -> None: ...

class ReverseSettlementResponse(_message.Message):
    __slots__ = ("settlement", "settled", "reversed_at")
    SETTLEMENT_FIELD_NUMBER: _ClassVar[int]
    SETTLED_FIELD_NUMBER: _ClassVar[int]
    REVERSED_AT_FIELD_NUMBER: _ClassVar[int]
    settlement: SettlementRecord
    settled: bool
    reversed_at: _timestamp_pb2.Timestamp
    def __init__(self, settlement: _Optional[_Union[SettlementRecord, _Mapping]] = ..., settled: _Optional[bool] = ..., reversed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListSettlementsRequest(_message.Message):
    __slots__ = ("merchant_id", "since", "until", "terminal_id", "page_size", "page_token")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    terminal_id: str
    page_size: int
    page_token: str
    def __init__(self, merchant_id: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., terminal_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSettlementsResponse(_message.Message):
    __slots__ = ("settlements", "next_page_token")
    SETTLEMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    settlements: _containers.RepeatedCompositeFieldContainer[SettlementRecord]
    next_page_token: str
    def __init__(self, settlements: _Optional[_Iterable[_Union[SettlementRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DailyTotalsRequest(_message.Message):
    __slots__ = ("merchant_id", "day")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    day: str
    def __init__(self, merchant_id: _Optional[str] = ..., day: _Optional[str] = ...) -> None: ...

class SettlementTotals(_message.Message):
    __slots__ = ("terminal_id", "settlements", "total_fen", "fund_fen", "personal_account_fen", "self_pay_fen", "refunds", "refunded_fen", "fund_refunded_fen", "personal_account_refunded_fen", "self_pay_refunded_fen", "reversals", "reversed_fen", "net_fen", "net_fund_fen", "net_personal_account_fen", "net_self_pay_fen")
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FEN_FIELD_NUMBER: _ClassVar[int]
    FUND_FEN_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_ACCOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    SELF_PAY_FEN_FIELD_NUMBER: _ClassVar[int]
    REFUNDS_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_FEN_FIELD_NUMBER: _ClassVar[int]
    FUND_REFUNDED_FEN_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_ACCOUNT_REFUNDED_FEN_FIELD_NUMBER: _ClassVar[int]
    SELF_PAY_REFUNDED_FEN_FIELD_NUMBER: _ClassVar[int]
    REVERSALS_FIELD_NUMBER: _ClassVar[int]
    REVERSED_FEN_FIELD_NUMBER: _ClassVar[int]
    NET_FEN_FIELD_NUMBER: _ClassVar[int]
    NET_FUND_FEN_FIELD_NUMBER: _ClassVar[int]
    NET_PERSONAL_ACCOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    NET_SELF_PAY_FEN_FIELD_NUMBER: _ClassVar[int]
    terminal_id: str
    settlements: int
    total_fen: int
    fund_fen: int
    personal_account_fen: int
    self_pay_fen: int
    refunds: int
    refunded_fen: int
    fund_refunded_fen: int
    personal_account_refunded_fen: int
    self_pay_refunded_fen: int
    reversals: int
    reversed_fen: int
    net_fen: int
    net_fund_fen: int
    net_personal_account_fen: int
    net_self_pay_fen: int
    def __init__(self, terminal_id: _Optional[str] = ..., settlements: _Optional[int] = ..., total_fen: _Optional[int] = ..., fund_fen: _Optional[int] = ..., personal_account_fen: _Optional[int] = ..., self_pay_fen: _Optional[int] = ..., refunds: _Optional[int] = ..., refunded_fen: _Optional[int] = ..., fund_refunded_fen: _Optional[int] = ..., personal_account_refunded_fen: _Optional[int] = ..., self_pay_refunded_fen: _Optional[int] = ..., reversals: _Optional[int] = ..., reversed_fen: _Optional[int] = ..., net_fen: _Optional[int] = ..., net_fund_fen: _Optional[int] = ..., net_personal_account_fen: _Optional[int] = ..., net_self_pay_fen: _Optional[int] = ...) -> None: ...

class DailyTotalsResponse(_message.Message):
    __slots__ = ("merchant_id", "day", "since", "until", "terminals", "total")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    TERMINALS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    day: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    terminals: _containers.RepeatedCompositeFieldContainer[SettlementTotals]
    total: SettlementTotals
    def __init__(self, merchant_id: _Optional[str] = ..., day: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., terminals: _Optional[_Iterable[_Union[SettlementTotals, _Mapping]]] = ..., total: _Optional[_Union[SettlementTotals, _Mapping]] = ...) -> None: ...

class OpenVisitRequest(_message.Message):
    __slots__ = ("merchant_id", "verification_id", "token", "idempotency_key", "terminal_id", "operator_id", "department")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    verification_id: str
    token: str
    idempotency_key: str
    terminal_id: str
    operator_id: str
    department: str
    def __init__(self, merchant_id: _Optional[str] = ..., verification_id: _Optional[str] = ..., token: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., terminal_id: _Optional[str] = ..., operator_id: _Optional[str] = ..., department: _Optional[str] = ...) -> None: ...

class Visit(_message.Message):
    __slots__ = ("visit_id", "merchant_id", "ecard_id", "status", "items", "total_fen", "opened_at", "expires_at", "closed_at", "settlement_id", "terminal_id", "department", "idempotency_key")
    VISIT_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    ECARD_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FEN_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    visit_id: str
    merchant_id: str
    ecard_id: str
    status: VisitStatus
    items: _containers.RepeatedCompositeFieldContainer[LineItem]
    total_fen: int
    opened_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    closed_at: _timestamp_pb2.Timestamp
    settlement_id: str
    terminal_id: str
    department: str
    idempotency_key: str
    def __init__(self, visit_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., ecard_id: _Optional[str] = ..., status: _Optional[_Union[VisitStatus, str]] = ..., items: _Optional[_Iterable[_Union[LineItem, _Mapping]]] = ..., total_fen: _Optional[int] = ..., opened_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., closed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., settlement_id: _Optional[str] = ..., terminal_id: _Optional[str] = ..., department: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class AddVisitItemsRequest(_message.Message):
    __slots__ = ("merchant_id", "visit_id", "idempotency_key", "items")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    VISIT_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    visit_id: str
    idempotency_key: str
    items: _containers.RepeatedCompositeFieldContainer[LineItem]
    def __init__(self, merchant_id: _Optional[str] = ..., visit_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., items: _Optional[_Iterable[_Union[LineItem, _Mapping]]] = ...) -> None: ...

class SettleVisitRequest(_message.Message):
    __slots__ = ("merchant_id", "visit_id", "idempotency_key", "verification_id", "token", "skip_personal_account", "terminal_id", "operator_id")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    VISIT_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SKIP_PERSONAL_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    visit_id: str
    idempotency_key: str
    verification_id: str
    token: str
    skip_personal_account: bool
    terminal_id: str
    operator_id: str
    def __init__(self, merchant_id: _Optional[str] = ..., visit_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., verification_id: _Optional[str] = ..., token: _Optional[str] = ..., skip_personal_account: _Optional[bool] = ..., terminal_id: _Optional[str] = ..., operator_id: _Optional[str] = ...) -> None: ...

class VisitRef(_message.Message):
    __slots__ = ("merchant_id", "visit_id")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    VISIT_ID_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    visit_id: str
    def __init__(self, merchant_id: _Optional[str] = ..., visit_id: _Optional[str] = ...) -> None: ...
