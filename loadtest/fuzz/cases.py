"""Hostile tokens for `make fuzz`, generated from a seeded RNG (the same seed gives the same cases).

Each case is a token text and what the server must answer. Mutants of a valid token are made only
from tokens the fuzzer has already had accepted (`Corpus.consumed`): a mutant that happens to keep the
same claims and signature (an unknown field added to the envelope) is then REPLAYED, so for every
mutant the oracle is simply "never accepted". Cases signed on purpose (expired, from the future,
another issuer's key, altered claims re-signed by the wrong key) carry the one reason they must get.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ecard import TokenSigner
from ecard._base45 import ALPHABET, b45encode
from ecard._base45 import _decode as b45decode
from ecard._keys import PrivateKey, sign
from ecard._token import SIGNING_CONTEXT, TEXT_PREFIX
from ecard.v1 import token_pb2
from ecard.v1 import types_pb2 as t

ANY_REJECTION = 0  # the expected reason of a case that may be rejected for any reason
HUGE_VARINTS = (b"\xff" * 9 + b"\x01", b"\x80" * 9 + b"\x01", b"\xff" * 10 + b"\x7f", b"\xff\xff\xff\xff\x0f")


@dataclass(frozen=True)
class Case:
    kind: str
    text: str
    reason: int = ANY_REJECTION  # the reason it must get, or ANY_REJECTION


@dataclass
class Corpus:
    """What the cases are made from: the server's real issuers and e-cards, and keys it does not know."""

    signer: TokenSigner  # a registered Ed25519 issuer
    signer_key: PrivateKey
    other: TokenSigner  # another registered issuer (ECDSA P-256)
    other_key: PrivateKey
    stranger: PrivateKey  # a key no issuer registered
    ecard_ids: list[str]
    other_ecard_ids: list[str]
    now: Callable[[], int]
    consumed: list[str] = field(default_factory=list)  # valid tokens the server has accepted


def _envelope(text: str) -> bytes:
    return b45decode(text[len(TEXT_PREFIX):])


def _text(data: bytes) -> str:
    return TEXT_PREFIX + b45encode(data)


def _claims(text: str) -> token_pb2.TokenClaims:
    signed = token_pb2.SignedToken.FromString(_envelope(text))
    return token_pb2.TokenClaims.FromString(signed.claims)


def _bytes(claims: token_pb2.TokenClaims) -> bytes:
    return claims.SerializeToString(deterministic=True)


def _signed(claims_bytes: bytes, key: PrivateKey) -> str:
    signature = sign(key, SIGNING_CONTEXT + claims_bytes)
    return _text(token_pb2.SignedToken(claims=claims_bytes, signature=signature).SerializeToString())


def _bit_flips(rng: random.Random, corpus: Corpus) -> Case:
    data = bytearray(_envelope(rng.choice(corpus.consumed)))
    for _ in range(rng.randint(1, 3)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return Case("bit_flip", _text(bytes(data)))


def _truncation(rng: random.Random, corpus: Corpus) -> Case:
    good = rng.choice(corpus.consumed)
    if rng.random() < 0.5:
        return Case("truncation", good[: rng.randrange(len(good))])
    data = _envelope(good)
    return Case("truncation", _text(data[: rng.randrange(len(data))]))


def _insertion(rng: random.Random, corpus: Corpus) -> Case:
    good = rng.choice(corpus.consumed)
    if rng.random() < 0.3:
        at = rng.randrange(len(good) + 1)
        extra = "".join(rng.choice(ALPHABET + "\x00é\n") for _ in range(rng.randint(1, 8)))
        return Case("insertion", good[:at] + extra + good[at:])
    data = _envelope(good)
    at = rng.randrange(len(data) + 1)
    return Case("insertion", _text(data[:at] + rng.randbytes(rng.randint(1, 12)) + data[at:]))


def _huge_varint(rng: random.Random, corpus: Corpus) -> Case:
    """Varints of 5-10 bytes where a tag, a length or a time goes, in the envelope or in signed claims."""
    varint = rng.choice(HUGE_VARINTS)
    claims = _claims(rng.choice(corpus.consumed)).SerializeToString(deterministic=True)
    choice = rng.randrange(4)
    if choice == 0:  # a length-delimited claims field of absurd length
        return Case("huge_varint", _text(b"\x0a" + varint + claims))
    if choice == 1:  # a huge field number
        return Case("huge_varint", _text(varint + b"\x00" + _envelope(rng.choice(corpus.consumed))))
    # a validly signed token whose issued_at (field 6) or expires_at (field 7) is a 10-byte varint
    tag = b"\x30" if choice == 2 else b"\x38"
    return Case("huge_varint", _signed(claims + tag + varint, corpus.signer_key))


def _wrong_algorithm(rng: random.Random, corpus: Corpus) -> Case:
    """Signed by the other issuer's ECDSA key under the Ed25519 issuer's name and kid (and the reverse),
    or with a version or text prefix no server knows."""
    choice = rng.randrange(4)
    if choice == 0:
        claims = corpus.signer.claims(rng.choice(corpus.ecard_ids))
        return Case("wrong_algorithm", _signed(_bytes(claims), corpus.other_key), t.REASON_BAD_SIGNATURE)
    if choice == 1:
        claims = corpus.other.claims(rng.choice(corpus.other_ecard_ids))
        return Case("wrong_algorithm", _signed(_bytes(claims), corpus.signer_key), t.REASON_BAD_SIGNATURE)
    if choice == 2:
        claims = corpus.signer.claims(rng.choice(corpus.ecard_ids))
        claims.version = rng.choice((2, 3, 255, 2**32 - 1))
        return Case("wrong_algorithm", corpus.signer.sign_claims(claims), t.REASON_UNSUPPORTED_VERSION)
    good = corpus.signer.mint(rng.choice(corpus.ecard_ids))
    return Case("wrong_algorithm", f"EC{rng.randint(2, 99)}:" + good[len(TEXT_PREFIX):], t.REASON_UNSUPPORTED_VERSION)


_ALTERATIONS: tuple[Callable[[token_pb2.TokenClaims, random.Random, Corpus], None], ...] = (
    lambda c, rng, corpus: setattr(c, "ecard_id", rng.choice([*corpus.ecard_ids, "E" + rng.randbytes(6).hex()])),
    lambda c, rng, corpus: setattr(c, "expires_at", c.expires_at + rng.randint(1, 200)),
    lambda c, rng, corpus: setattr(c, "assurance", t.ASSURANCE_FACE),
    lambda c, rng, corpus: setattr(c, "nonce", rng.randbytes(16)),
    lambda c, rng, corpus: c.purposes.append(t.PURPOSE_PAYMENT),
    lambda c, rng, corpus: setattr(c, "issued_at", c.issued_at - rng.randint(1, 30)),
)


def _altered_claims(rng: random.Random, corpus: Corpus) -> Case:
    """A fresh valid token whose claims are changed after signing, the signature kept."""
    good = corpus.signer.mint(rng.choice(corpus.ecard_ids), purposes=[t.PURPOSE_IDENTITY], assurance=t.ASSURANCE_PIN)
    signed = token_pb2.SignedToken.FromString(_envelope(good))
    claims = token_pb2.TokenClaims.FromString(signed.claims)
    rng.choice(_ALTERATIONS)(claims, rng, corpus)
    altered = _bytes(claims)
    if altered == signed.claims:
        claims.nonce = rng.randbytes(16)
        altered = _bytes(claims)
    return Case("altered_claims", _text(token_pb2.SignedToken(claims=altered, signature=signed.signature)
                                        .SerializeToString()), t.REASON_BAD_SIGNATURE)


def _other_issuer_key(rng: random.Random, corpus: Corpus) -> Case:
    claims = corpus.signer.claims(rng.choice(corpus.ecard_ids))
    if rng.random() < 0.5:  # claims our issuer and kid, signed by a key nobody registered
        return Case("other_issuer_key", _signed(_bytes(claims), corpus.stranger),
                    t.REASON_BAD_SIGNATURE)
    claims.kid = "k" + rng.randbytes(6).hex()  # a kid nobody registered
    return Case("other_issuer_key", _signed(_bytes(claims), corpus.stranger),
                t.REASON_UNKNOWN_KEY)


def _bad_time(rng: random.Random, corpus: Corpus) -> Case:
    now, ecard_id = corpus.now(), rng.choice(corpus.ecard_ids)
    choice = rng.randrange(3)
    if choice == 0:
        ttl = rng.randint(1, 60)
        issued = now - ttl - rng.randint(120, 10**6)
        return Case("expired", corpus.signer.mint(ecard_id, issued_at=issued, ttl_seconds=ttl), t.REASON_EXPIRED)
    if choice == 1:
        issued = now + rng.randint(120, 10**6)
        return Case("future", corpus.signer.mint(ecard_id, issued_at=issued), t.REASON_NOT_YET_VALID)
    ttl = rng.randint(400, 10**7)
    return Case("lifetime", corpus.signer.mint(ecard_id, issued_at=now - 5, ttl_seconds=ttl),
                t.REASON_LIFETIME_TOO_LONG)


def _garbage(rng: random.Random, corpus: Corpus) -> Case:
    choice = rng.randrange(4)
    if choice == 0:
        return Case("garbage", TEXT_PREFIX + "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 296))))
    if choice == 1:
        return Case("garbage", "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(1, 300))))
    if choice == 2:
        return Case("garbage", TEXT_PREFIX + b45encode(rng.randbytes(rng.randint(0, 197))))
    return Case("garbage", TEXT_PREFIX + b45encode(token_pb2.SignedToken(
        claims=rng.randbytes(rng.randint(0, 120)), signature=rng.randbytes(64)).SerializeToString()))


GENERATORS: dict[str, Callable[[random.Random, Corpus], Case]] = {
    "bit_flip": _bit_flips,
    "truncation": _truncation,
    "insertion": _insertion,
    "huge_varint": _huge_varint,
    "wrong_algorithm": _wrong_algorithm,
    "altered_claims": _altered_claims,
    "other_issuer_key": _other_issuer_key,
    "bad_time": _bad_time,
    "garbage": _garbage,
}


def cases(rng: random.Random, corpus: Corpus, count: int) -> Iterator[Case]:
    """`count` cases, the generators taking turns at random."""
    generators = list(GENERATORS.values())
    for _ in range(count):
        yield rng.choice(generators)(rng, corpus)

