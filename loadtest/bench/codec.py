"""In-process, one-core figures of the benchmark: raw signature checks, the token codec, PyJWT.

Each figure is a rate per CPU-second of this thread (`time.thread_time`), so time the scheduler gives
to other processes on a shared machine does not count against it. The kinds that are compared run in
interleaved rounds and each keeps its best round: a disturbance hits all of them alike, and the best
round is the one nearest to what the code costs.

    python -m loadtest.bench.codec          # prints the figures
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ecard import ECDSA_P256, ED25519, TokenSigner, generate_private_key, parse_token, signature_check
from ecard.keys import PrivateKey, sign
from ecard.token import SIGNING_CONTEXT, parse_token_fields

Op = Callable[[int], object]
"""One operation on item i of a pre-built list."""


def interleaved_rates(ops: dict[str, Op], *, seconds: float, batch: int = 200, items: int = 1000) -> dict[str, float]:
    """Operations per CPU-second of each op: rounds of `batch` calls of every op in turn, best round wins."""
    best = dict.fromkeys(ops, float("inf"))
    deadline = time.monotonic() + seconds
    start = 0
    while time.monotonic() < deadline:
        for name, op in ops.items():
            t0 = time.thread_time()
            for i in range(start, start + batch):
                op(i % items)
            best[name] = min(best[name], (time.thread_time() - t0) / batch)
        start += batch
    return {name: 1.0 / per_op if per_op > 0 else float("inf") for name, per_op in best.items()}


def raw_ed25519_sodium(key: ed25519.Ed25519PrivateKey, messages: list[bytes]) -> Op:
    """libsodium's own verification, as the server calls it, on ready-made signature || message."""
    from nacl._sodium import ffi, lib  # type: ignore[import-not-found]

    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    signed = [sign(key, m) + m for m in messages]
    sign_open, null = lib.crypto_sign_open, ffi.NULL

    def op(i: int) -> object:
        sm = signed[i]
        assert sign_open(null, null, sm, len(sm), raw) == 0
        return None

    return op


def raw_openssl(key: PrivateKey, messages: list[bytes]) -> Op:
    """cryptography's (OpenSSL's) verification on ready-made inputs: Ed25519, or ECDSA P-256 on DER."""
    public = key.public_key()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        pairs = [(key.sign(m), m) for m in messages]

        def op(i: int) -> object:
            public.verify(*pairs[i])  # type: ignore[call-arg]
            return None

        return op
    algorithm = ec.ECDSA(hashes.SHA256())
    ders = [(key.sign(m, algorithm), m) for m in messages]  # type: ignore[call-arg]

    def op_p256(i: int) -> object:
        der, m = ders[i]
        public.verify(der, m, algorithm)  # type: ignore[call-arg]
        return None

    return op_p256


def codec_op(signer: TokenSigner, tokens: list[str], backend: str = "fastest") -> Op:
    """What the server does with a token text before any lookup: parse it (`parse_token_fields`, the
    server's form of `parse_token`), check its signature."""
    check = signature_check(signer._key.public_key(), backend=backend)  # type: ignore[arg-type]

    def op(i: int) -> object:
        fields = parse_token_fields(tokens[i])
        assert check(fields.signature, fields.signed_bytes)
        return fields

    return op


def pyjwt_op(key: ed25519.Ed25519PrivateKey, count: int) -> Op:
    """PyJWT's EdDSA decode of a JWT carrying the same claims as our token."""
    import jwt

    now = int(time.time())
    tokens = [
        jwt.encode(
            {"ver": 1, "iss": "bank-0000001", "kid": "abcdefghijklmnop", "sub": "E" + "0" * 20,
             "nonce": os.urandom(16).hex(), "iat": now, "exp": now + 3600, "pur": [1, 2, 3, 4], "aal": 1},
            key, algorithm="EdDSA",
        )
        for _ in range(count)
    ]
    public = key.public_key()

    def op(i: int) -> object:
        return jwt.decode(tokens[i], public, algorithms=["EdDSA"], options={"verify_aud": False})

    return op


@dataclass(frozen=True)
class CodecFigures:
    sig_backend: str
    sig_rate: float  # libsodium Ed25519, the server's library and algorithm
    sig_openssl_ed25519_rate: float
    sig_openssl_p256_rate: float
    codec_rate: float
    pyjwt_rate: float


class CodecPair:
    """The raw signature check and the codec's parse + check, ready to be timed again and again.

    Tokens look like the server's: an issuer id, a 16-character kid, an e-card id of "E" and 16
    base32 characters, all four purposes, fresh nonces."""

    def __init__(self, items: int = 500) -> None:
        import base64

        self.key = generate_private_key(ED25519)
        self.signer = TokenSigner(self.key, issuer_id="bank-bench")
        self.tokens = [
            self.signer.mint("E" + base64.b32encode(os.urandom(10)).decode(), ttl_seconds=3600) for _ in range(items)
        ]
        self.messages = [parse_token(text).signed_bytes for text in self.tokens]
        self.items = items
        self.ops = {
            "sig": raw_ed25519_sodium(self.key, self.messages),  # type: ignore[arg-type]
            "codec": codec_op(self.signer, self.tokens),
        }

    def sample(self, seconds: float) -> dict[str, float]:
        """Rates of both, alternating in short rounds (a disturbance hits both alike)."""
        return interleaved_rates(self.ops, seconds=seconds, batch=50, items=self.items)


def measure(seconds: float = 6.0, items: int = 500, pair: CodecPair | None = None) -> CodecFigures:
    pair = pair or CodecPair(items)
    p256_key = generate_private_key(ECDSA_P256)
    backend = signature_check(pair.key.public_key()).backend  # type: ignore[attr-defined]
    p256_messages = [SIGNING_CONTEXT + os.urandom(100) for _ in range(items)]
    # The two figures whose ratio is a goal alternate on their own; the reference libraries, whose
    # rates only inform, take the rest of the time.
    rates = pair.sample(seconds * 0.6)
    rates.update(
        interleaved_rates(
            {
                "openssl_ed25519": raw_openssl(pair.key, pair.messages),
                "openssl_p256": raw_openssl(p256_key, p256_messages),
                "pyjwt": pyjwt_op(pair.key, items),  # type: ignore[arg-type]
            },
            seconds=seconds * 0.4,
            batch=50,
            items=items,
        )
    )
    return CodecFigures(
        sig_backend=backend,
        sig_rate=rates["sig"],
        sig_openssl_ed25519_rate=rates["openssl_ed25519"],
        sig_openssl_p256_rate=rates["openssl_p256"],
        codec_rate=rates["codec"],
        pyjwt_rate=rates["pyjwt"],
    )


def main() -> None:
    figures = measure()
    for name, value in vars(figures).items():
        print(f"{name:28s} {value if isinstance(value, str) else f'{value:,.0f}'}")
    print(f"{'codec / sig':28s} {figures.codec_rate / figures.sig_rate:.3f}")
    print(f"{'codec / pyjwt':28s} {figures.codec_rate / figures.pyjwt_rate:.2f}")


if __name__ == "__main__":
    main()
