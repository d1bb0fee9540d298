"""Issuer keys, public: parsing, key ids, signature checks and the refusal of weak keys, as the server
registers and checks them (the SDK's channel side makes and signs with the same code)."""

from __future__ import annotations

from ecard._keys import (
    KeyFormatError,
    PrivateKey,
    SignatureCheck,
    certificate_fingerprint,
    key_material,
    kid_for,
    load_public_key_pem,
    sign,
    signature_check,
    weak_public_key,
)

__all__ = [
    "KeyFormatError",
    "PrivateKey",
    "SignatureCheck",
    "certificate_fingerprint",
    "key_material",
    "kid_for",
    "load_public_key_pem",
    "sign",
    "signature_check",
    "weak_public_key",
]
