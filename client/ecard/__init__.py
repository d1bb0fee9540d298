"""ecard SDK: mint e-card tokens (channels), verify and settle them (merchants), administer (operators).

Typical use:

    from ecard import TokenSigner, PharmacyClient, Purpose, Assurance
    signer = TokenSigner.from_pem(pem, issuer_id="icbc-nb")
    text = signer.mint(ecard_id, purposes=[Purpose.MEDICAL_SETTLEMENT], assurance=Assurance.PIN)
    with PharmacyClient("127.0.0.1:50051", merchant_id="nb-ph-001") as pos:
        print(pos.verify(text, purpose=Purpose.MEDICAL_SETTLEMENT).verdict)
"""

from __future__ import annotations

from ecard._admin import AdminClient, ChannelClient, card_ref, catalogue_item, physical_cards
from ecard._base45 import b45decode, b45encode
from ecard._batcher import VerifyBatcher
from ecard._client import (
    AsyncPharmacyClient,
    PharmacyClient,
    line_item,
    quote_request,
    refund_line,
    refund_request,
    settle_request,
    verify_request,
)
from ecard._events import ChannelEvents
from ecard._keys import (
    ALGORITHM_NAMES as ALGORITHMS,
)
from ecard._keys import (
    ECDSA_P256,
    ED25519,
    KeyFormatError,
    certificate_fingerprint,
    generate_private_key,
    kid_for,
    load_private_key_pem,
    load_public_key_pem,
    private_key_pem,
    public_key_pem,
    signature_check,
    write_private_file,
    write_private_key,
)
from ecard._options import NO_RETRY, ClientOptions, RetryConfig, TLSConfig
from ecard._rpc_errors import from_grpc_error
from ecard._token import (
    ALL_PURPOSES,
    MAX_TOKEN_CHARS,
    SIGNING_CONTEXT,
    TEXT_PREFIX,
    ParsedToken,
    TokenFormatError,
    TokenSigner,
    TokenTooLargeError,
    encode_token,
    parse_token,
)
from ecard.errors import (
    TRANSIENT_STATUS_NAMES,
    AlreadyExists,
    DeadlineExceeded,
    EcardError,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    TokenNotConsumed,
    Unauthenticated,
    Unavailable,
    Unreachable,
    VerificationUnknown,
    VerifyInterrupted,
)
from ecard.v1 import (
    Assurance,
    BindingState,
    CardStatus,
    ChannelEventKind,
    CounterBindingStatus,
    DrugClass,
    KeyAlgorithm,
    MerchantKind,
    Purpose,
    Reason,
    SettlementStatus,
    UsageKind,
    Verdict,
)

__all__ = [
    "ALGORITHMS",
    "ALL_PURPOSES",
    "ECDSA_P256",
    "ED25519",
    "MAX_TOKEN_CHARS",
    "NO_RETRY",
    "SIGNING_CONTEXT",
    "TEXT_PREFIX",
    "TRANSIENT_STATUS_NAMES",
    "AdminClient",
    "AlreadyExists",
    "Assurance",
    "AsyncPharmacyClient",
    "BindingState",
    "CardStatus",
    "ChannelClient",
    "ChannelEventKind",
    "ChannelEvents",
    "ClientOptions",
    "CounterBindingStatus",
    "DeadlineExceeded",
    "DrugClass",
    "EcardError",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "KeyAlgorithm",
    "KeyFormatError",
    "MerchantKind",
    "NotFound",
    "ParsedToken",
    "PermissionDenied",
    "PharmacyClient",
    "Purpose",
    "Reason",
    "ResourceExhausted",
    "RetryConfig",
    "SettlementStatus",
    "TLSConfig",
    "TokenFormatError",
    "TokenNotConsumed",
    "TokenSigner",
    "TokenTooLargeError",
    "Unauthenticated",
    "Unavailable",
    "Unreachable",
    "UsageKind",
    "Verdict",
    "VerificationUnknown",
    "VerifyBatcher",
    "VerifyInterrupted",
    "b45decode",
    "b45encode",
    "card_ref",
    "catalogue_item",
    "certificate_fingerprint",
    "encode_token",
    "from_grpc_error",
    "generate_private_key",
    "kid_for",
    "line_item",
    "load_private_key_pem",
    "load_public_key_pem",
    "parse_token",
    "physical_cards",
    "private_key_pem",
    "public_key_pem",
    "quote_request",
    "refund_line",
    "refund_request",
    "settle_request",
    "signature_check",
    "verify_request",
    "write_private_file",
    "write_private_key",
]
