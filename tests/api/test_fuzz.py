"""Random and mutated token texts: never an accept, never a crash; over the API always OK with a
rejection or INVALID_ARGUMENT."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecard import EcardError, InvalidArgument, TokenSigner, generate_private_key, public_key_pem
from ecard._base45 import ALPHABET
from ecard.testing import World
from ecard.v1 import types_pb2 as t
from ecard_server.app import Deployment
from ecard_server.config import Settings
from ecard_server.core.admin import EnrollInput
from ecard_server.core.assurance import Statement
from ecard_server.core.principals import CHANNEL, Principal

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)
base45_texts = st.text(alphabet=ALPHABET, max_size=320).map(lambda s: "EC1:" + s)


@st.composite
def mutations(draw: st.DrawFn, good: str) -> str:
    """A good token with a few characters replaced, inserted, deleted, or the text cut short."""
    text = list(good)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(text) - 1, 0)))
        char = draw(st.sampled_from(ALPHABET))
        if op == "replace" and text:
            text[at] = char
        elif op == "insert":
            text.insert(at, char)
        elif op == "delete" and text:
            del text[at]
        else:
            text = text[:at]
    return "".join(text)


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, TokenSigner, str]]:
    deployment = Deployment.open(Settings(), f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/e.db")
    key = generate_private_key()
    deployment.admin.upsert_issuer("bank", "Bank")
    kid = deployment.admin.register_key("bank", "", t.KEY_ALGORITHM_ED25519, public_key_pem(key), None, None).kid
    deployment.admin.enroll_cards([EnrollInput("C0000001", "朱小明", "330203199001011234", "330200", 0)])
    signer = TokenSigner(key, issuer_id="bank", kid=kid)
    face = Statement.of(signer.attest("C0000001"))
    card = deployment.cards.issue_ecard(Principal(CHANNEL, "bank"), "C0000001", "朱小明", "330203199001011234", face)
    yield deployment, signer, card.ecard_id or ""
    deployment.close()


def _verdict(deployment: Deployment, text: str) -> int:
    return deployment.verifier.verify_token(
        text, merchant_id="m", purpose=t.PURPOSE_IDENTITY, min_assurance=t.ASSURANCE_NONE
    ).reason


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_core_never_accepts_random_or_mutated_tokens(core, data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    deployment, signer, ecard_id = core
    good = signer.mint(ecard_id, purposes=[t.PURPOSE_IDENTITY])
    assert _verdict(deployment, good) == t.REASON_OK  # consumed: an equivalent mutant can only be REPLAYED
    text = data.draw(st.one_of(texts, base45_texts, mutations(good)))
    assert _verdict(deployment, text) != t.REASON_OK


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_api_answers_ok_with_a_rejection_or_invalid_argument(world: World, data: st.DataObject) -> None:
    good = world.mint(0)
    with world.pharmacy() as pos:
        assert pos.verify(good, purpose=t.PURPOSE_IDENTITY).reason == t.REASON_OK
        text = data.draw(st.one_of(texts, base45_texts, mutations(good)))
        try:
            answer = pos.verify(text, purpose=t.PURPOSE_IDENTITY)
        except InvalidArgument:
            return
        except EcardError as exc:  # anything else is a server fault
            pytest.fail(f"{exc.status_name} for {text!r}: {exc}")
        assert answer.verdict == t.VERDICT_REJECTED
        assert answer.reason not in (t.REASON_OK, t.REASON_UNSPECIFIED)


def test_api_survives_garbage_bytes_on_the_wire(world: World) -> None:
    """A request that is not even a valid VerifyRequest message: INVALID_ARGUMENT (the parser's own words
    stay on the server), and the server lives on."""
    with grpc.insecure_channel(world.target) as channel:
        call = channel.unary_unary("/ecard.v1.Verifier/Verify")
        for garbage in (b"\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", bytes(range(256))):
            with pytest.raises(grpc.RpcError) as caught:
                call(garbage, metadata=(("x-ecard-principal", f"merchant:{world.pharmacy_id}"),), timeout=5)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert caught.value.details() == "Verify: the request is not a valid message"
    with world.pharmacy() as pos:
        assert pos.verify(world.mint(0), purpose=t.PURPOSE_IDENTITY).reason == t.REASON_OK
