"""The token codec, public: what the server (and any other verifier) reads a token with. The SDK's
channel side mints with the same code (`TokenSigner`); docs/token.md describes the format.

    parse_token_fields(text) -> TokenFields      the format checked, each claim read once (no signature check)
    TokenFormatError                             .reason: REASON_MALFORMED or REASON_UNSUPPORTED_VERSION
"""

from __future__ import annotations

from ecard._token import (
    ASSURANCE_CONTEXT,
    ASSURANCE_VERSION,
    COUNTER_QR_PREFIX,
    MAX_TOKEN_CHARS,
    NONCE_BYTES,
    SIGNING_CONTEXT,
    TEXT_PREFIX,
    TokenFields,
    TokenFormatError,
    parse_token,
    parse_token_fields,
)

__all__ = [
    "ASSURANCE_CONTEXT",
    "ASSURANCE_VERSION",
    "COUNTER_QR_PREFIX",
    "MAX_TOKEN_CHARS",
    "NONCE_BYTES",
    "SIGNING_CONTEXT",
    "TEXT_PREFIX",
    "TokenFields",
    "TokenFormatError",
    "parse_token",
    "parse_token_fields",
]
