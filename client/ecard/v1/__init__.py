"""ecard.v1: the generated protobuf and gRPC code (made by `make proto`, never edited by hand),
re-exported with friendlier enums: `Purpose.MEDICAL_SETTLEMENT` is `PURPOSE_MEDICAL_SETTLEMENT`."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from ecard.v1 import admin_pb2, cards_pb2, settlement_pb2, token_pb2, types_pb2, verifier_pb2
from ecard.v1.admin_pb2 import (
    CreditRequest,
    EnrollSummary,
    Issuer,
    IssuerKey,
    KeyRef,
    ListIssuerKeysRequest,
    ListIssuerKeysResponse,
    Merchant,
    PhysicalCard,
    ReplaceCardRequest,
    RotateIssuerKeyRequest,
    RotateIssuerKeyResponse,
)
from ecard.v1.cards_pb2 import (
    BindingRef,
    CardRef,
    ChannelEvent,
    ECard,
    GetECardRequest,
    IssueECardRequest,
    WatchEventsRequest,
)
from ecard.v1.settlement_pb2 import (
    GetSettlementRequest,
    LineItem,
    QuoteRequest,
    RefundEntry,
    RefundLine,
    RefundRequest,
    SettlementLine,
    SettlementQuote,
    SettlementRecord,
    SettleRequest,
)
from ecard.v1.token_pb2 import SignedToken, TokenClaims
from ecard.v1.types_pb2 import CardView
from ecard.v1.verifier_pb2 import VerifyBatchRequest, VerifyBatchResponse, VerifyRequest, VerifyResponse


# Friendlier names for the proto enums; tests/process/test_contract.py holds them equal to types_pb2.
class Purpose(IntEnum):
    """ecard.v1.Purpose: `Purpose.IDENTITY` is `PURPOSE_IDENTITY`."""

    UNSPECIFIED = 0
    IDENTITY = 1
    MEDICAL_SETTLEMENT = 2
    PAYMENT = 3
    REGISTRATION = 4


class Assurance(IntEnum):
    """ecard.v1.Assurance: `Assurance.NONE` is `ASSURANCE_NONE`."""

    UNSPECIFIED = 0
    NONE = 1
    PIN = 2
    FACE = 3


class Verdict(IntEnum):
    """ecard.v1.Verdict: `Verdict.ACCEPTED` is `VERDICT_ACCEPTED`."""

    UNSPECIFIED = 0
    ACCEPTED = 1
    REJECTED = 2


class Reason(IntEnum):
    """ecard.v1.Reason: `Reason.OK` is `REASON_OK`."""

    UNSPECIFIED = 0
    OK = 1
    MALFORMED = 2
    UNSUPPORTED_VERSION = 3
    UNKNOWN_ISSUER = 4
    UNKNOWN_KEY = 5
    KEY_REVOKED = 6
    KEY_INACTIVE = 7
    NOT_YET_VALID = 8
    EXPIRED = 9
    LIFETIME_TOO_LONG = 10
    BAD_SIGNATURE = 11
    CARD_UNKNOWN = 12
    CARD_LOST = 13
    CARD_CANCELLED = 14
    CHANNEL_NOT_BOUND = 15
    PURPOSE_NOT_ALLOWED = 16
    ASSURANCE_TOO_LOW = 17
    REPLAYED = 18
    CHANNEL_SUSPENDED = 19
    CARD_REPLACED = 20


class CardStatus(IntEnum):
    """ecard.v1.CardStatus: `CardStatus.ACTIVE` is `CARD_STATUS_ACTIVE`."""

    UNSPECIFIED = 0
    ACTIVE = 1
    LOST = 2
    CANCELLED = 3


class DrugClass(IntEnum):
    """ecard.v1.DrugClass: `DrugClass.A` is `DRUG_CLASS_A`."""

    UNSPECIFIED = 0
    A = 1
    B = 2
    C = 3


class MerchantKind(IntEnum):
    """ecard.v1.MerchantKind: `MerchantKind.PHARMACY` is `MERCHANT_KIND_PHARMACY`."""

    UNSPECIFIED = 0
    PHARMACY = 1
    HOSPITAL = 2


class KeyAlgorithm(IntEnum):
    """ecard.v1.KeyAlgorithm: `KeyAlgorithm.ED25519` is `KEY_ALGORITHM_ED25519`."""

    UNSPECIFIED = 0
    ED25519 = 1
    ECDSA_P256 = 2


class ChannelEventKind(IntEnum):
    """ecard.v1.ChannelEventKind: `ChannelEventKind.SETTLED` is `CHANNEL_EVENT_KIND_SETTLED`."""

    UNSPECIFIED = 0
    CARD_STATUS = 1
    BINDING = 2
    SETTLED = 3
    REFUNDED = 4
    CARD_REPLACED = 5
    KEY_EXPIRING = 6


class BindingState(IntEnum):
    """ecard.v1.BindingState: `BindingState.SUSPENDED` is `BINDING_STATE_SUSPENDED`."""

    UNSPECIFIED = 0
    ACTIVE = 1
    SUSPENDED = 2
    UNBOUND = 3


class CounterBindingStatus(IntEnum):
    """ecard.v1.CounterBindingStatus: `CounterBindingStatus.COMPLETED` is `COUNTER_BINDING_STATUS_COMPLETED`."""

    UNSPECIFIED = 0
    PENDING = 1
    COMPLETED = 2
    EXPIRED = 3


class UsageKind(IntEnum):
    """ecard.v1.UsageKind: `UsageKind.SETTLEMENT` is `USAGE_KIND_SETTLEMENT`."""

    UNSPECIFIED = 0
    VERIFICATION = 1
    SETTLEMENT = 2
    REFUND = 3


class SettlementStatus(IntEnum):
    """ecard.v1.SettlementStatus: `SettlementStatus.SETTLED` is `SETTLEMENT_STATUS_SETTLED`."""

    UNSPECIFIED = 0
    SETTLED = 1
    REFUNDED = 2
    PARTIALLY_REFUNDED = 3


__all__ = [
    "Assurance",
    "BindingRef",
    "BindingState",
    "CardRef",
    "CardStatus",
    "CardView",
    "ChannelEvent",
    "ChannelEventKind",
    "CounterBindingStatus",
    "CreditRequest",
    "DrugClass",
    "ECard",
    "EnrollSummary",
    "GetECardRequest",
    "GetSettlementRequest",
    "IssueECardRequest",
    "Issuer",
    "IssuerKey",
    "KeyAlgorithm",
    "KeyRef",
    "LineItem",
    "ListIssuerKeysRequest",
    "ListIssuerKeysResponse",
    "Merchant",
    "MerchantKind",
    "PhysicalCard",
    "Purpose",
    "QuoteRequest",
    "Reason",
    "RefundEntry",
    "RefundLine",
    "RefundRequest",
    "ReplaceCardRequest",
    "RotateIssuerKeyRequest",
    "RotateIssuerKeyResponse",
    "SettleRequest",
    "SettlementLine",
    "SettlementQuote",
    "SettlementRecord",
    "SettlementStatus",
    "SignedToken",
    "TokenClaims",
    "UsageKind",
    "Verdict",
    "VerifyBatchRequest",
    "VerifyBatchResponse",
    "VerifyRequest",
    "VerifyResponse",
    "WatchEventsRequest",
    "admin_pb2",
    "cards_pb2",
    "settlement_pb2",
    "token_pb2",
    "types_pb2",
    "verifier_pb2",
]


def wire(value: int | list[int]) -> Any:
    """An enum value as protobuf's constructors take it. The generated stubs type an enum field as its
    enum class; at run time the field holds, and is given, a plain int (or a list of them)."""
    return value
