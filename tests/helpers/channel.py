"""A channel's keys as a test handles them: a new signer, and the verdict a token of it gets."""

from __future__ import annotations

from ecard import Purpose, TokenSigner, generate_private_key, public_key_pem
from ecard.testing import World


def verdict(world: World, signer: TokenSigner) -> tuple[int, int]:
    with world.pharmacy() as pos:
        answer = pos.verify(signer.mint(world.ecard_ids[0]), purpose=Purpose.IDENTITY)
    return answer.verdict, answer.reason


def new_signer(world: World) -> tuple[TokenSigner, str]:
    key = generate_private_key()
    signer = TokenSigner(key, issuer_id=world.issuer_id)
    return signer, public_key_pem(key)
