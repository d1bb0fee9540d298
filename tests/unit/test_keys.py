"""The signature backends agree: libsodium (the fast Ed25519 path) and OpenSSL give the same answer on
valid signatures and on every kind of invalid one. Which backend is fastest is measured by `make bench`
(it reports the raw rate of each and fails when the server does not use the fastest)."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from ecard import ECDSA_P256, ED25519, generate_private_key, signature_check
from ecard._keys import sign

ED25519_ORDER = 2**252 + 27742317777372353535851937790883648493  # L, the order of the base point

# RFC 8032, section 7.1, tests 1 to 3: (secret key, public key, message, signature), hex.
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


def _both(public_key: ed25519.Ed25519PublicKey) -> list:
    return [signature_check(public_key, backend="libsodium"), signature_check(public_key, backend="openssl")]


def test_backends_are_the_ones_named() -> None:
    ed = generate_private_key(ED25519).public_key()
    p256 = generate_private_key(ECDSA_P256).public_key()
    assert signature_check(ed).backend == "libsodium"  # type: ignore[attr-defined]
    assert signature_check(ed, backend="openssl").backend == "openssl"  # type: ignore[attr-defined]
    assert signature_check(p256).backend == "openssl"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032, ids=["test1", "test2", "test3"])
def test_rfc8032_vectors_pass_on_both_backends(secret: str, public: str, message: str, signature: str) -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
    assert key.public_key().public_bytes_raw().hex() == public
    assert sign(key, bytes.fromhex(message)).hex() == signature
    for check in _both(key.public_key()):
        assert check(bytes.fromhex(signature), bytes.fromhex(message))
        assert not check(bytes.fromhex(signature), bytes.fromhex(message) + b"\x00")


def _invalid_cases(key: ed25519.Ed25519PrivateKey) -> dict[str, tuple[bytes, bytes]]:
    message = b"ecard/v1/token\x00" + os.urandom(90)
    good = sign(key, message)
    r, s = good[:32], int.from_bytes(good[32:], "little")
    cases = {
        "other message": (good, message[:-1] + bytes([message[-1] ^ 1])),
        "empty message": (good, b""),
        "other key": (sign(generate_private_key(ED25519), message), message),  # type: ignore[arg-type]
        "short signature": (good[:63], message),
        "long signature": (good + b"\x00", message),
        "empty signature": (b"", message),
        "zero signature": (bytes(64), message),
        "ones signature": (b"\xff" * 64, message),
        "S plus L (malleated)": (r + (s + ED25519_ORDER).to_bytes(32, "little"), message),
        "S swapped for R": (good[32:] + good[:32], message),
    }
    for i in range(0, 64, 5):
        flipped = bytearray(good)
        flipped[i] ^= 0x80
        cases[f"signature byte {i} flipped"] = (bytes(flipped), message)
    return cases


def test_backends_agree_on_valid_signatures() -> None:
    for _ in range(50):
        key = generate_private_key(ED25519)
        message = os.urandom(os.urandom(1)[0])
        signature = sign(key, message)  # type: ignore[arg-type]
        assert [check(signature, message) for check in _both(key.public_key())] == [True, True]  # type: ignore[arg-type]


def test_backends_agree_on_invalid_signatures() -> None:
    key = generate_private_key(ED25519)
    checks = _both(key.public_key())  # type: ignore[arg-type]
    for name, (signature, message) in _invalid_cases(key).items():  # type: ignore[arg-type]
        assert [check(signature, message) for check in checks] == [False, False], name


def test_checks_take_bytes_like_inputs_without_keeping_them() -> None:
    key = generate_private_key(ED25519)
    message = bytearray(b"ecard/v1/token\x00claims")
    signature = sign(key, bytes(message))  # type: ignore[arg-type]
    for check in _both(key.public_key()):  # type: ignore[arg-type]
        assert check(signature, bytes(message))
        assert message == bytearray(b"ecard/v1/token\x00claims")


def test_p256_checks_valid_and_invalid_signatures() -> None:
    key = generate_private_key(ECDSA_P256)
    check = signature_check(key.public_key())
    message = b"ecard/v1/token\x00" + os.urandom(90)
    good = sign(key, message)
    assert len(good) == 64 and check(good, message)
    assert not check(good, message + b"x")
    assert not check(good[:63], message)
    assert not check(bytes(64), message)
    assert not check(sign(generate_private_key(ECDSA_P256), message), message)  # type: ignore[arg-type]
