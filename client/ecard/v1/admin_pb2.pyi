import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ecard.v1 import types_pb2 as _types_pb2
from ecard.v1 import cards_pb2 as _cards_pb2
from ecard.v1 import settlement_pb2 as _settlement_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BenefitPolicyFile(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: str
    def __init__(self, json: _Optional[str] = ...) -> None: ...

class BenefitPolicySummary(_message.Message):
    __slots__ = ("policy_version", "name")
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    policy_version: str
    name: str
    def __init__(self, policy_version: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class CatalogueItem(_message.Message):
    __slots__ = ("code", "name", "drug_class", "price_limit_fen", "valid_from", "valid_to", "more_items")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DRUG_CLASS_FIELD_NUMBER: _ClassVar[int]
    PRICE_LIMIT_FEN_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_TO_FIELD_NUMBER: _ClassVar[int]
    MORE_ITEMS_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    drug_class: _types_pb2.DrugClass
    price_limit_fen: int
    valid_from: str
    valid_to: str
    more_items: _containers.RepeatedCompositeFieldContainer[CatalogueItem]
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ..., drug_class: _Optional[_Union[_types_pb2.DrugClass, str]] = ..., price_limit_fen: _Optional[int] = ..., valid_from: _Optional[str] = ..., valid_to: _Optional[str] = ..., more_items: _Optional[_Iterable[_Union[CatalogueItem, _Mapping]]] = ...) -> None: ...

class CatalogueImportSummary(_message.Message):
    __slots__ = ("catalogue_version", "items")
    CATALOGUE_VERSION_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    catalogue_version: str
    items: int
    def __init__(self, catalogue_version: _Optional[str] = ..., items: _Optional[int] = ...) -> None: ...

class IssuerRef(_message.Message):
    __slots__ = ("issuer_id",)
    ISSUER_ID_FIELD_NUMBER: _ClassVar[int]
    issuer_id: str
    def __init__(self, issuer_id: _Optional[str] = ...) -> None: ...

class CertificateRef(_message.Message):
    __slots__ = ("fingerprint_sha256",)
    FINGERPRINT_SHA256_FIELD_NUMBER: _ClassVar[int]
    fingerprint_sha256: str
    def __init__(self, fingerprint_sha256: _Optional[str] = ...) -> None: ...

class DenyCertificateRequest(_message.Message):
    __slots__ = ("fingerprint_sha256", "reason")
    FINGERPRINT_SHA256_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    fingerprint_sha256: str
    reason: str
    def __init__(self, fingerprint_sha256: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DeniedCertificate(_message.Message):
    __slots__ = ("fingerprint_sha256", "reason", "denied_at", "denied_by")
    FINGERPRINT_SHA256_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DENIED_AT_FIELD_NUMBER: _ClassVar[int]
    DENIED_BY_FIELD_NUMBER: _ClassVar[int]
    fingerprint_sha256: str
    reason: str
    denied_at: _timestamp_pb2.Timestamp
    denied_by: str
    def __init__(self, fingerprint_sha256: _Optional[str] = ..., reason: _Optional[str] = ..., denied_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., denied_by: _Optional[str] = ...) -> None: ...

class ListDeniedCertificatesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDeniedCertificatesResponse(_message.Message):
    __slots__ = ("certificates",)
    CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    certificates: _containers.RepeatedCompositeFieldContainer[DeniedCertificate]
    def __init__(self, certificates: _Optional[_Iterable[_Union[DeniedCertificate, _Mapping]]] = ...) -> None: ...

class Issuer(_message.Message):
    __slots__ = ("issuer_id", "display_name", "disabled", "disabled_at")
    ISSUER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    DISABLED_AT_FIELD_NUMBER: _ClassVar[int]
    issuer_id: str
    display_name: str
    disabled: bool
    disabled_at: _timestamp_pb2.Timestamp
    def __init__(self, issuer_id: _Optional[str] = ..., display_name: _Optional[str] = ..., disabled: _Optional[bool] = ..., disabled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class IssuerKey(_message.Message):
    __slots__ = ("issuer_id", "kid", "algorithm", "public_key_pem", "not_before", "not_after", "revoked")
    ISSUER_ID_FIELD_NUMBER: _ClassVar[int]
    KID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    issuer_id: str
    kid: str
    algorithm: _types_pb2.KeyAlgorithm
    public_key_pem: str
    not_before: _timestamp_pb2.Timestamp
    not_after: _timestamp_pb2.Timestamp
    revoked: bool
    def __init__(self, issuer_id: _Optional[str] = ..., kid: _Optional[str] = ..., algorithm: _Optional[_Union[_types_pb2.KeyAlgorithm, str]] = ..., public_key_pem: _Optional[str] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked: _Optional[bool] = ...) -> None: ...

class KeyRef(_message.Message):
    __slots__ = ("issuer_id", "kid")
    ISSUER_ID_FIELD_NUMBER: _ClassVar[int]
    KID_FIELD_NUMBER: _ClassVar[int]
    issuer_id: str
    kid: str
    def __init__(self, issuer_id: _Optional[str] = ..., kid: _Optional[str] = ...) -> None: ...

class ListIssuerKeysRequest(_message.Message):
    __slots__ = ("issuer_id",)
    ISSUER_ID_FIELD_NUMBER: _ClassVar[int]
    issuer_id: str
    def __init__(self, issuer_id: _Optional[str] = ...) -> None: ...

class RotateIssuerKeyRequest(_message.Message):
    __slots__ = ("issuer_id", "retiring_kid", "new_key", "overlap_seconds")
    ISSUER_ID_FIELD_NUMBER: _ClassVar[int]
    RETIRING_KID_FIELD_NUMBER: _ClassVar[int]
    NEW_KEY_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    issuer_id: str
    retiring_kid: str
    new_key: IssuerKey
    overlap_seconds: int
    def __init__(self, issuer_id: _Optional[str] = ..., retiring_kid: _Optional[str] = ..., new_key: _Optional[_Union[IssuerKey, _Mapping]] = ..., overlap_seconds: _Optional[int] = ...) -> None: ...

class RotateIssuerKeyResponse(_message.Message):
    __slots__ = ("new_key", "retiring_key")
    NEW_KEY_FIELD_NUMBER: _ClassVar[int]
    RETIRING_KEY_FIELD_NUMBER: _ClassVar[int]
    new_key: IssuerKey
    retiring_key: IssuerKey
    def __init__(self, new_key: _Optional[_Union[IssuerKey, _Mapping]] = ..., retiring_key: _Optional[_Union[IssuerKey, _Mapping]] = ...) -> None: ...

class ListIssuerKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[IssuerKey]
    def __init__(self, keys: _Optional[_Iterable[_Union[IssuerKey, _Mapping]]] = ...) -> None: ...

class Merchant(_message.Message):
    __slots__ = ("merchant_id", "display_name", "kind", "region", "designated")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    DESIGNATED_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    display_name: str
    kind: _types_pb2.MerchantKind
    region: str
    designated: bool
    def __init__(self, merchant_id: _Optional[str] = ..., display_name: _Optional[str] = ..., kind: _Optional[_Union[_types_pb2.MerchantKind, str]] = ..., region: _Optional[str] = ..., designated: _Optional[bool] = ...) -> None: ...

class PhysicalCard(_message.Message):
    __slots__ = ("card_no", "holder_name", "id_number", "region", "personal_account_balance_fen", "person_category", "more_cards")
    CARD_NO_FIELD_NUMBER: _ClassVar[int]
    HOLDER_NAME_FIELD_NUMBER: _ClassVar[int]
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_ACCOUNT_BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    PERSON_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    MORE_CARDS_FIELD_NUMBER: _ClassVar[int]
    card_no: str
    holder_name: str
    id_number: str
    region: str
    personal_account_balance_fen: int
    person_category: str
    more_cards: _containers.RepeatedCompositeFieldContainer[PhysicalCard]
    def __init__(self, card_no: _Optional[str] = ..., holder_name: _Optional[str] = ..., id_number: _Optional[str] = ..., region: _Optional[str] = ..., personal_account_balance_fen: _Optional[int] = ..., person_category: _Optional[str] = ..., more_cards: _Optional[_Iterable[_Union[PhysicalCard, _Mapping]]] = ...) -> None: ...

class EnrollSummary(_message.Message):
    __slots__ = ("enrolled", "updated", "rejected", "errors")
    ENROLLED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    enrolled: int
    updated: int
    rejected: int
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, enrolled: _Optional[int] = ..., updated: _Optional[int] = ..., rejected: _Optional[int] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class CreditRequest(_message.Message):
    __slots__ = ("card_no", "amount_fen", "idempotency_key")
    CARD_NO_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    card_no: str
    amount_fen: int
    idempotency_key: str
    def __init__(self, card_no: _Optional[str] = ..., amount_fen: _Optional[int] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ReplaceCardRequest(_message.Message):
    __slots__ = ("old_card_no", "new_card_no", "idempotency_key")
    OLD_CARD_NO_FIELD_NUMBER: _ClassVar[int]
    NEW_CARD_NO_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    old_card_no: str
    new_card_no: str
    idempotency_key: str
    def __init__(self, old_card_no: _Optional[str] = ..., new_card_no: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ListAuditEventsRequest(_message.Message):
    __slots__ = ("kind", "actor", "subject", "since", "until", "page_size", "page_token")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    kind: str
    actor: str
    subject: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, kind: _Optional[str] = ..., actor: _Optional[str] = ..., subject: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("event_id", "at", "kind", "actor", "subject", "detail")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    at: _timestamp_pb2.Timestamp
    kind: str
    actor: str
    subject: str
    detail: str
    def __init__(self, event_id: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[str] = ..., actor: _Optional[str] = ..., subject: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class ListAuditEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SettlementDayTotalsRequest(_message.Message):
    __slots__ = ("day",)
    DAY_FIELD_NUMBER: _ClassVar[int]
    day: str
    def __init__(self, day: _Optional[str] = ...) -> None: ...

class MerchantDayTotals(_message.Message):
    __slots__ = ("merchant_id", "region", "totals")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    region: str
    totals: _settlement_pb2.SettlementTotals
    def __init__(self, merchant_id: _Optional[str] = ..., region: _Optional[str] = ..., totals: _Optional[_Union[_settlement_pb2.SettlementTotals, _Mapping]] = ...) -> None: ...

class FundDayTotals(_message.Message):
    __slots__ = ("region", "totals")
    REGION_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    region: str
    totals: _settlement_pb2.SettlementTotals
    def __init__(self, region: _Optional[str] = ..., totals: _Optional[_Union[_settlement_pb2.SettlementTotals, _Mapping]] = ...) -> None: ...

class SettlementDayTotalsResponse(_message.Message):
    __slots__ = ("day", "since", "until", "merchants", "funds", "total")
    DAY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    MERCHANTS_FIELD_NUMBER: _ClassVar[int]
    FUNDS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    day: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    merchants: _containers.RepeatedCompositeFieldContainer[MerchantDayTotals]
    funds: _containers.RepeatedCompositeFieldContainer[FundDayTotals]
    total: _settlement_pb2.SettlementTotals
    def __init__(self, day: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., merchants: _Optional[_Iterable[_Union[MerchantDayTotals, _Mapping]]] = ..., funds: _Optional[_Iterable[_Union[FundDayTotals, _Mapping]]] = ..., total: _Optional[_Union[_settlement_pb2.SettlementTotals, _Mapping]] = ...) -> None: ...
