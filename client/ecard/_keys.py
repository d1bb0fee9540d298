"""Issuer keys: generation, PEM loading, kids, signing, and the fast signature check.

cryptography owns keys and PEM. The check itself uses the fastest correct backend measured on our
hardware: libsodium (PyNaCl) for Ed25519 when it is installed, cryptography's OpenSSL otherwise and
for ECDSA P-256. `tests/unit/test_keys.py` holds both Ed25519 paths to the same answers.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from ecard.v1 import types_pb2

ED25519 = types_pb2.KEY_ALGORITHM_ED25519
ECDSA_P256 = types_pb2.KEY_ALGORITHM_ECDSA_P256
ALGORITHM_NAMES = {"ed25519": ED25519, "p256": ECDSA_P256}

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
SignatureCheck = Callable[[bytes, bytes], bool]
"""check(signature, message) -> True when the signature is valid."""


class KeyFormatError(ValueError):
    """A key is unreadable, of an unsupported type, or does not match its algorithm."""


def generate_private_key(algorithm: int = ED25519) -> PrivateKey:
    if algorithm == ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    raise KeyFormatError(f"unsupported key algorithm {algorithm}")


def algorithm_of(key: PrivateKey | PublicKey) -> int:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return ED25519
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and isinstance(
        key.curve, ec.SECP256R1
    ):
        return ECDSA_P256
    raise KeyFormatError("key is neither Ed25519 nor ECDSA P-256")


def load_private_key_pem(pem: bytes) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFormatError(f"not a PEM private key without password: {exc}") from None
    algorithm_of(key)  # type: ignore[arg-type]
    return key  # type: ignore[return-value]


def load_public_key_pem(pem: bytes | str, algorithm: int | None = None) -> PublicKey:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyFormatError(f"not a PEM public key: {exc}") from None
    actual = algorithm_of(key)  # type: ignore[arg-type]
    if algorithm is not None and algorithm != actual:
        raise KeyFormatError("public key does not match the declared algorithm")
    return key  # type: ignore[return-value]


def private_key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_private_file(path: str | os.PathLike[str], data: bytes) -> None:
    """Writes `data` to a file only its owner may read or write (mode 0600), from its first byte: the
    file is created with that mode (never at 0666 and chmod-ed after), an existing one is narrowed before
    it is written, and a symbolic link in its place is refused."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def write_private_key(path: str | os.PathLike[str], key: PrivateKey) -> None:
    """The key as PKCS#8 PEM in a file of mode 0600 (write_private_file)."""
    write_private_file(path, private_key_pem(key))


def _public(key: PrivateKey | PublicKey) -> PublicKey:
    if isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        return key.public_key()
    return key


def public_key_pem(key: PrivateKey | PublicKey) -> str:
    return _public(key).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def kid_for(key: PrivateKey | PublicKey) -> str:
    """A short, stable key id: 16 base32 characters of SHA-256 over the SubjectPublicKeyInfo."""
    der = _public(key).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b32encode(hashlib.sha256(der).digest()[:10]).decode("ascii").lower()


def certificate_fingerprint(pem: bytes) -> str:
    """SHA-256 of a PEM certificate's DER, 64 lower-case hex digits: what the server's deny list of
    client certificates holds (`openssl x509 -noout -fingerprint -sha256` prints it with colons)."""
    from cryptography import x509

    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise KeyFormatError(f"not a PEM certificate: {exc}") from None
    return certificate.fingerprint(hashes.SHA256()).hex()


def key_material(key: PrivateKey | PublicKey) -> bytes:
    """What a public key is, whatever its PEM or kid: SHA-256 of its SubjectPublicKeyInfo DER as
    cryptography writes it (an EC point always uncompressed), so the same key in another encoding or
    under another kid has the same material."""
    der = _public(key).public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).digest()


def weak_public_key(key: PublicKey) -> str:
    """Why a public key must not be trusted ("" when it may): an Ed25519 key that is not a canonical
    point of the prime-order subgroup (small order: the identity, points of order 2, 4 or 8, or mixed
    with one), against which a forged signature can verify for many messages. P-256 points are checked
    on the curve by cryptography when loaded."""
    if not isinstance(key, ed25519.Ed25519PublicKey):
        return ""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    from nacl.bindings import crypto_core_ed25519_is_valid_point

    if not crypto_core_ed25519_is_valid_point(raw):  # libsodium: canonical, on the curve, main subgroup
        return "an Ed25519 public key of small or mixed order (or not canonical)"
    return ""


def sign(key: PrivateKey, message: bytes) -> bytes:
    """Ed25519: the 64-byte signature. ECDSA P-256 with SHA-256: fixed-size r || s (64 bytes)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


@dataclass(frozen=True)
class _OpenSSLEd25519:
    key: ed25519.Ed25519PublicKey
    backend = "openssl"

    def __call__(self, signature: bytes, message: bytes) -> bool:
        try:
            self.key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class _OpenSSLP256:
    key: ec.EllipticCurvePublicKey
    backend = "openssl"

    def __call__(self, signature: bytes, message: bytes) -> bool:
        if len(signature) != 64:
            return False
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        try:
            self.key.verify(der, message, _ECDSA_SHA256)
        except InvalidSignature:
            return False
        return True


def _sodium_ed25519(key: ed25519.Ed25519PublicKey) -> SignatureCheck | None:
    """libsodium's Ed25519 verification through PyNaCl's cffi binding, or None without PyNaCl.

    PyNaCl declares no detached verify, only `crypto_sign_open(m, mlen_p, sm, smlen, pk)` over
    signature || message. libsodium takes NULL for both opened-message outputs, so a check costs one
    concatenation and the C call (cffi releases the GIL during it), nothing else.
    """
    try:
        from nacl._sodium import ffi, lib
    except ImportError:
        return None
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    sign_open, null = lib.crypto_sign_open, ffi.NULL

    def check(signature: bytes, message: bytes) -> bool:
        if len(signature) != 64:
            return False
        signed = signature + message
        opened: int = sign_open(null, null, signed, len(signed), raw)  # cffi: 0 when the signature holds
        return opened == 0

    check.backend = "libsodium"  # type: ignore[attr-defined]
    return check


def signature_check(public_key: PublicKey, *, backend: str = "fastest") -> SignatureCheck:
    """A callable that checks signatures made by `sign` with the private half of `public_key`.

    backend: "fastest" (libsodium for Ed25519 where installed), "openssl" (cryptography only) or
    "libsodium" (Ed25519 only; ImportError without PyNaCl). The callable's `backend` attribute names
    the library that runs it.
    """
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        if backend in ("fastest", "libsodium") and (fast := _sodium_ed25519(public_key)) is not None:
            return fast
        if backend == "libsodium":
            raise ImportError("the libsodium backend needs PyNaCl")
        return _OpenSSLEd25519(public_key)
    return _OpenSSLP256(public_key)
