"""The SDK's public names (`ecard.__all__`): every name a release exported stays exported and importable
(a name is added freely, never removed or renamed: the contract's rule for the wire holds for the SDK),
and every exported name exists. Adding a name needs no change here; removing one fails."""

from __future__ import annotations

import ecard

PUBLISHED = frozenset({
    "ALGORITHMS", "ALL_PURPOSES", "AdminClient", "AlreadyExists", "Assurance", "AsyncPharmacyClient",
    "BindingState", "CardStatus", "ChannelClient", "ChannelEventKind", "ChannelEvents", "ClientOptions",
    "CounterBindingStatus", "DeadlineExceeded", "DrugClass", "ECDSA_P256", "ED25519", "EcardError",
    "FailedPrecondition", "Internal", "InvalidArgument", "KeyAlgorithm", "KeyFormatError", "MAX_TOKEN_CHARS",
    "MerchantKind", "NO_RETRY", "NotFound", "ParsedToken", "PermissionDenied", "PharmacyClient", "Purpose",
    "Reason", "ResourceExhausted", "RetryConfig", "SIGNING_CONTEXT", "SettlementStatus", "TEXT_PREFIX",
    "TRANSIENT_STATUS_NAMES",
    "TLSConfig", "TokenFormatError", "TokenNotConsumed", "TokenSigner", "TokenTooLargeError", "Unauthenticated",
    "Unavailable", "Unreachable", "UsageKind", "Verdict", "VerificationUnknown", "VerifyBatcher",
    "VerifyInterrupted", "b45decode", "b45encode", "card_ref", "catalogue_item", "certificate_fingerprint",
    "encode_token", "from_grpc_error", "generate_private_key", "kid_for", "line_item", "load_private_key_pem",
    "load_public_key_pem", "parse_token", "physical_cards", "private_key_pem", "public_key_pem",
    "quote_request", "refund_line", "refund_request", "settle_request", "signature_check", "verify_request",
    "write_private_file", "write_private_key",
})


def test_no_published_name_is_gone() -> None:
    assert sorted(PUBLISHED - set(ecard.__all__)) == []


def test_every_exported_name_is_there() -> None:
    assert [name for name in ecard.__all__ if not hasattr(ecard, name)] == []
    assert len(set(ecard.__all__)) == len(ecard.__all__)  # listed once
