"""ecard.v1: the generated protobuf and gRPC code (made by `make proto`, never edited by hand),
re-exported with friendlier enums: `Purpose.MEDICAL_SETTLEMENT` is `PURPOSE_MEDICAL_SETTLEMENT`."""

from __future__ import annotations

from enum import IntEnum

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
)
from ecard.v1.cards_pb2 import CardRef, ECard, GetECardRequest, IssueECardRequest
from ecard.v1.settlement_pb2 import (
    GetSettlementRequest,
    LineItem,
    RefundRequest,
    SettlementRecord,
    SettleRequest,
)
from ecard.v1.token_pb2 import SignedToken, TokenClaims
from ecard.v1.types_pb2 import CardView
from ecard.v1.verifier_pb2 import VerifyBatchRequest, VerifyBatchResponse, VerifyRequest, VerifyResponse


def _short(enum_name: str, prefix: str) -> IntEnum:
    values = types_pb2.DESCRIPTOR.enum_types_by_name[enum_name].values
    return IntEnum(enum_name, {v.name.removeprefix(prefix): v.number for v in values})  # type: ignore[return-value]


Purpose = _short("Purpose", "PURPOSE_")
Assurance = _short("Assurance", "ASSURANCE_")
Verdict = _short("Verdict", "VERDICT_")
Reason = _short("Reason", "REASON_")
CardStatus = _short("CardStatus", "CARD_STATUS_")
DrugClass = _short("DrugClass", "DRUG_CLASS_")
MerchantKind = _short("MerchantKind", "MERCHANT_KIND_")
KeyAlgorithm = _short("KeyAlgorithm", "KEY_ALGORITHM_")
SettlementStatus = _short("SettlementStatus", "SETTLEMENT_STATUS_")

__all__ = [
    "Assurance",
    "CardRef",
    "CardStatus",
    "CardView",
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
    "Reason",
    "RefundRequest",
    "SettleRequest",
    "SettlementRecord",
    "SettlementStatus",
    "SignedToken",
    "TokenClaims",
    "Verdict",
    "VerifyBatchRequest",
    "VerifyBatchResponse",
    "VerifyRequest",
    "VerifyResponse",
    "admin_pb2",
    "cards_pb2",
    "settlement_pb2",
    "token_pb2",
    "types_pb2",
    "verifier_pb2",
]
