from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Purpose(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PURPOSE_UNSPECIFIED: _ClassVar[Purpose]
    PURPOSE_IDENTITY: _ClassVar[Purpose]
    PURPOSE_MEDICAL_SETTLEMENT: _ClassVar[Purpose]
    PURPOSE_PAYMENT: _ClassVar[Purpose]
    PURPOSE_REGISTRATION: _ClassVar[Purpose]

class Assurance(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ASSURANCE_UNSPECIFIED: _ClassVar[Assurance]
    ASSURANCE_NONE: _ClassVar[Assurance]
    ASSURANCE_PIN: _ClassVar[Assurance]
    ASSURANCE_FACE: _ClassVar[Assurance]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_ACCEPTED: _ClassVar[Verdict]
    VERDICT_REJECTED: _ClassVar[Verdict]

class Reason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REASON_UNSPECIFIED: _ClassVar[Reason]
    REASON_OK: _ClassVar[Reason]
    REASON_MALFORMED: _ClassVar[Reason]
    REASON_UNSUPPORTED_VERSION: _ClassVar[Reason]
    REASON_UNKNOWN_ISSUER: _ClassVar[Reason]
    REASON_UNKNOWN_KEY: _ClassVar[Reason]
    REASON_KEY_REVOKED: _ClassVar[Reason]
    REASON_KEY_INACTIVE: _ClassVar[Reason]
    REASON_NOT_YET_VALID: _ClassVar[Reason]
    REASON_EXPIRED: _ClassVar[Reason]
    REASON_LIFETIME_TOO_LONG: _ClassVar[Reason]
    REASON_BAD_SIGNATURE: _ClassVar[Reason]
    REASON_CARD_UNKNOWN: _ClassVar[Reason]
    REASON_CARD_LOST: _ClassVar[Reason]
    REASON_CARD_CANCELLED: _ClassVar[Reason]
    REASON_CHANNEL_NOT_BOUND: _ClassVar[Reason]
    REASON_PURPOSE_NOT_ALLOWED: _ClassVar[Reason]
    REASON_ASSURANCE_TOO_LOW: _ClassVar[Reason]
    REASON_REPLAYED: _ClassVar[Reason]
    REASON_CHANNEL_SUSPENDED: _ClassVar[Reason]
    REASON_CARD_REPLACED: _ClassVar[Reason]

class CardStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CARD_STATUS_UNSPECIFIED: _ClassVar[CardStatus]
    CARD_STATUS_ACTIVE: _ClassVar[CardStatus]
    CARD_STATUS_LOST: _ClassVar[CardStatus]
    CARD_STATUS_CANCELLED: _ClassVar[CardStatus]

class DrugClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DRUG_CLASS_UNSPECIFIED: _ClassVar[DrugClass]
    DRUG_CLASS_A: _ClassVar[DrugClass]
    DRUG_CLASS_B: _ClassVar[DrugClass]
    DRUG_CLASS_C: _ClassVar[DrugClass]

class MerchantKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MERCHANT_KIND_UNSPECIFIED: _ClassVar[MerchantKind]
    MERCHANT_KIND_PHARMACY: _ClassVar[MerchantKind]
    MERCHANT_KIND_HOSPITAL: _ClassVar[MerchantKind]

class KeyAlgorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_ALGORITHM_UNSPECIFIED: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_ED25519: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_ECDSA_P256: _ClassVar[KeyAlgorithm]

class SettlementStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SETTLEMENT_STATUS_UNSPECIFIED: _ClassVar[SettlementStatus]
    SETTLEMENT_STATUS_SETTLED: _ClassVar[SettlementStatus]
    SETTLEMENT_STATUS_REFUNDED: _ClassVar[SettlementStatus]
    SETTLEMENT_STATUS_PARTIALLY_REFUNDED: _ClassVar[SettlementStatus]
PURPOSE_UNSPECIFIED: Purpose
PURPOSE_IDENTITY: Purpose
PURPOSE_MEDICAL_SETTLEMENT: Purpose
PURPOSE_PAYMENT: Purpose
PURPOSE_REGISTRATION: Purpose
ASSURANCE_UNSPECIFIED: Assurance
ASSURANCE_NONE: Assurance
ASSURANCE_PIN: Assurance
ASSURANCE_FACE: Assurance
VERDICT_UNSPECIFIED: Verdict
VERDICT_ACCEPTED: Verdict
VERDICT_REJECTED: Verdict
REASON_UNSPECIFIED: Reason
REASON_OK: Reason
REASON_MALFORMED: Reason
REASON_UNSUPPORTED_VERSION: Reason
REASON_UNKNOWN_ISSUER: Reason
REASON_UNKNOWN_KEY: Reason
REASON_KEY_REVOKED: Reason
REASON_KEY_INACTIVE: Reason
REASON_NOT_YET_VALID: Reason
REASON_EXPIRED: Reason
REASON_LIFETIME_TOO_LONG: Reason
REASON_BAD_SIGNATURE: Reason
REASON_CARD_UNKNOWN: Reason
REASON_CARD_LOST: Reason
REASON_CARD_CANCELLED: Reason
REASON_CHANNEL_NOT_BOUND: Reason
REASON_PURPOSE_NOT_ALLOWED: Reason
REASON_ASSURANCE_TOO_LOW: Reason
REASON_REPLAYED: Reason
REASON_CHANNEL_SUSPENDED: Reason
REASON_CARD_REPLACED: Reason
CARD_STATUS_UNSPECIFIED: CardStatus
CARD_STATUS_ACTIVE: CardStatus
CARD_STATUS_LOST: CardStatus
CARD_STATUS_CANCELLED: CardStatus
DRUG_CLASS_UNSPECIFIED: DrugClass
DRUG_CLASS_A: DrugClass
DRUG_CLASS_B: DrugClass
DRUG_CLASS_C: DrugClass
MERCHANT_KIND_UNSPECIFIED: MerchantKind
MERCHANT_KIND_PHARMACY: MerchantKind
MERCHANT_KIND_HOSPITAL: MerchantKind
KEY_ALGORITHM_UNSPECIFIED: KeyAlgorithm
KEY_ALGORITHM_ED25519: KeyAlgorithm
KEY_ALGORITHM_ECDSA_P256: KeyAlgorithm
SETTLEMENT_STATUS_UNSPECIFIED: SettlementStatus
SETTLEMENT_STATUS_SETTLED: SettlementStatus
SETTLEMENT_STATUS_REFUNDED: SettlementStatus
SETTLEMENT_STATUS_PARTIALLY_REFUNDED: SettlementStatus

class CardView(_message.Message):
    __slots__ = ("ecard_id", "holder_name_masked", "region", "status")
    ECARD_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_NAME_MASKED_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ecard_id: str
    holder_name_masked: str
    region: str
    status: CardStatus
    def __init__(self, ecard_id: _Optional[str] = ..., holder_name_masked: _Optional[str] = ..., region: _Optional[str] = ..., status: _Optional[_Union[CardStatus, str]] = ...) -> None: ...
