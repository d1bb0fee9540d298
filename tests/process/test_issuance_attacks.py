"""Issuance is no oracle and cannot be brute-forced (issue 17).

The attack as reproduced on the old server: a channel that knows a holder's name, card number, region
and birth date enumerates the last four characters of the identity number (a 3-digit sequence of the
holder's sex and its check character: 500 candidates) and binds itself to the card. Unknown card
numbers answered CARD_NOT_ENROLLED, so the same channel could also list which numbers exist.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from ecard import (
    ChannelClient,
    EcardError,
    FailedPrecondition,
    PermissionDenied,
    ResourceExhausted,
    TokenSigner,
    from_grpc_error,
    generate_private_key,
    physical_cards,
    public_key_pem,
)
from ecard.testing import EcardServer, World
from ecard.v1 import cards_pb2, cards_pb2_grpc
from ecard.v1 import types_pb2 as t
from tests.helpers.deployment import config_file

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(region: str, birth: str, sequence: int) -> str:
    """A resident identity number (GB 11643): 17 digits and its ISO 7064 MOD 11-2 check character."""
    body = f"{region}{birth}{sequence:03d}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, _WEIGHTS, strict=True)) % 11]


def candidates(region: str, birth: str, female: bool) -> list[str]:
    """What the attacker enumerates: every sequence of the holder's sex (even for women)."""
    return [id_number(region, birth, seq) for seq in range(0 if female else 1, 1000, 2)]


@pytest.fixture(scope="module")
def server() -> Iterator[EcardServer]:
    with EcardServer() as running:
        yield running


def attacker(world: World, name: str) -> ChannelClient:
    """A registered channel with a key of its own: everything a real channel has."""
    key = generate_private_key()
    with world.admin() as admin:
        admin.upsert_issuer(name, "attacker")
        kid = admin.register_key(name, public_key_pem(key)).kid
    return world.channel(name, TokenSigner(key, issuer_id=name, kid=kid))


def test_the_422_guess_brute_force_of_an_identity_number_is_throttled(server: EcardServer) -> None:
    """Sends 422 IssueECard calls, the true number last (as found in the reproduction); before: the
    422nd bound the attacker; now: 5 IDENTITY_MISMATCH, then ISSUANCE_THROTTLED, never a binding."""
    world = World.seed(server.target, cards=1)
    region, birth, name, card_no = "330203", "19900101", "钱小红", f"V{world.issuer_id[-8:]}"
    guesses = candidates(region, birth, female=True)[:422]
    victim_id = guesses[-1]
    with world.admin() as admin:
        admin.enroll_cards(physical_cards([(card_no, name, victim_id, region, 50_000)]))
    answers: list[str] = []
    started = time.perf_counter()
    with attacker(world, f"evil-{world.issuer_id[-8:]}") as evil:
        for guess in guesses:
            try:
                evil.issue_ecard(card_no, name, guess, assurance=t.ASSURANCE_FACE)
                answers.append("BOUND")
            except (FailedPrecondition, ResourceExhausted) as exc:
                answers.append(exc.reason)
        seconds = time.perf_counter() - started
        assert "BOUND" not in answers
        assert answers[:5] == ["IDENTITY_MISMATCH"] * 5
        assert set(answers[5:]) == {"ISSUANCE_THROTTLED"}, answers[5:8]
        with pytest.raises(ResourceExhausted) as throttled:  # even the right number, now
            evil.issue_ecard(card_no, name, victim_id, assurance=t.ASSURANCE_FACE)
        assert throttled.value.grpc_code == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        assert int(throttled.value.metadata["retry_after_ms"]) > 3_600_000
    with world.admin() as admin:
        refused = [e for e in admin.audit_events(kind="ISSUE_REFUSED") if e.actor == f"channel:{evil.issuer_id}"]
        assert len(refused) == 5 and all(card_no not in e.detail for e in refused)
    print(f"422 guesses in {seconds:.2f} s: {answers.count('IDENTITY_MISMATCH')} IDENTITY_MISMATCH, "
          f"{answers.count('ISSUANCE_THROTTLED')} ISSUANCE_THROTTLED, no binding")


def test_unknown_and_mismatched_card_numbers_answer_the_same(server: EcardServer) -> None:
    """Before: CARD_NOT_ENROLLED for an unknown number, IDENTITY_MISMATCH for a known one."""
    world = World.seed(server.target, cards=2)
    with world.channel() as channel:
        answers = []
        for card_no in (world.cards[0][0], "Z" + world.cards[1][0][1:]):  # enrolled, never enrolled
            with pytest.raises(FailedPrecondition) as caught:
                channel.issue_ecard(card_no, world.cards[0][1], "330203199001019999", assurance=t.ASSURANCE_FACE)
            answers.append((caught.value.grpc_code, caught.value.reason, caught.value.message))  # type: ignore[attr-defined]
    assert answers[0] == answers[1] and answers[0][1] == "IDENTITY_MISMATCH"


@pytest.mark.postgres
@pytest.mark.redis
def test_the_card_throttle_holds_across_channels_and_processes(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    """Two server processes on one database (replicas: PostgreSQL and Redis), three attacking channels
    taking turns: still 5 failures for the card in all, then ISSUANCE_THROTTLED from either process."""
    args = ["--config", config_file(tmp_path, f"ecard-test-{uuid.uuid4().hex[:12]}")]
    with EcardServer(db=pg_url, redis=redis_url, extra_args=args) as one, \
            EcardServer(db=pg_url, redis=redis_url, extra_args=args) as two:
        world = World.seed(one.target, cards=1)
        card_no, name, idn = world.cards[0]
        evil = [attacker(world, f"evil{n}-{world.issuer_id[-8:]}") for n in range(3)]
        reasons = []
        for n in range(12):
            channel = evil[n % 3]
            with ChannelClient((one, two)[n % 2].target, issuer_id=channel.issuer_id, signer=channel.signer) as c:
                try:
                    c.issue_ecard(card_no, name, f"{idn[:-3]}{n + 500:03d}", assurance=t.ASSURANCE_FACE)
                    reasons.append("BOUND")
                except EcardError as exc:
                    reasons.append(exc.reason)
        for channel in evil:
            channel.close()
    assert reasons == ["IDENTITY_MISMATCH"] * 5 + ["ISSUANCE_THROTTLED"] * 7


def raw_issue(target: str, issuer_id: str, holder: tuple[str, str, str], statement: object = None) -> EcardError:
    """IssueECard as any client may send it (no SDK checks); the error it answers."""
    card_no, name, idn = holder
    request = cards_pb2.IssueECardRequest(card_no=card_no, holder_name=name, id_number=idn, assurance=t.ASSURANCE_FACE)
    if statement is not None:
        request.assurance_statement.CopyFrom(statement)  # type: ignore[arg-type]
    with grpc.insecure_channel(target) as raw, pytest.raises(grpc.RpcError) as caught:
        cards_pb2_grpc.CardsStub(raw).IssueECard(request, metadata=[("x-ecard-principal", f"channel:{issuer_id}")])
    return from_grpc_error(caught.value)


def test_a_face_check_is_a_statement_signed_by_the_calling_channel(server: EcardServer) -> None:
    """Before: `assurance = ASSURANCE_FACE` alone issued. Now only the caller's own signed, fresh statement
    about this very card does; each other statement is refused before the card is looked at."""
    world = World.seed(server.target, cards=2)
    holder, other = world.cards
    signer = world.signer
    outsider = TokenSigner(generate_private_key(), issuer_id=world.issuer_id, kid=signer.kid)  # an unregistered key
    with attacker(world, f"other-{world.issuer_id[-8:]}") as someone:
        foreign = someone.signer.attest(holder[0])  # type: ignore[union-attr]
    cases = {
        "no statement (the bare enum)": (None, "ASSURANCE_TOO_LOW"),
        "PIN, not FACE": (signer.attest(holder[0], assurance=t.ASSURANCE_PIN), "ASSURANCE_TOO_LOW"),
        "about another card": (signer.attest(other[0]), "ASSURANCE_STATEMENT_INVALID"),
        "another channel's": (foreign, "ASSURANCE_STATEMENT_INVALID"),
        "an hour old": (signer.attest(holder[0], checked_at=int(time.time()) - 3600), "ASSURANCE_STATEMENT_INVALID"),
        "signed by a key it does not hold": (outsider.attest(holder[0]), "ASSURANCE_STATEMENT_INVALID"),
    }
    answers = {case: raw_issue(server.target, world.issuer_id, holder, statement).reason
               for case, (statement, _) in cases.items()}
    assert answers == {case: reason for case, (_, reason) in cases.items()}
    good = signer.attest(holder[0])
    with world.admin() as admin:
        admin.revoke_key(world.issuer_id, signer.kid)
    assert raw_issue(server.target, world.issuer_id, holder, good).reason == "ASSURANCE_STATEMENT_INVALID"


def test_a_new_channel_on_a_card_is_seen_by_its_other_channels(server: EcardServer) -> None:
    """The card's first channel reads its e-card's events: a second channel's binding (with the key
    its statement was signed with) and a stranger's refused attempt. A stranger may not read them."""
    world = World.seed(server.target, cards=1)
    card_no, name, idn = world.cards[0]
    ecard_id = world.ecard_ids[0]
    with attacker(world, f"second-{world.issuer_id[-8:]}") as second:
        second.issue_ecard(card_no, name, idn, assurance=t.ASSURANCE_FACE)
        second_kid = second.signer.kid  # type: ignore[union-attr]
    with attacker(world, f"stranger-{world.issuer_id[-8:]}") as stranger:
        with pytest.raises(FailedPrecondition):
            stranger.issue_ecard(card_no, name, idn[:-1] + ("0" if idn[-1] != "0" else "1"), assurance=t.ASSURANCE_FACE)
        with pytest.raises(PermissionDenied):
            list(stranger.audit_events(subject=ecard_id))
    with world.channel() as first:
        events = [(e.kind, e.actor, e.detail) for e in first.audit_events(subject=ecard_id)]
    kinds = [(kind, actor) for kind, actor, _ in events]
    assert kinds == [("ECARD_ISSUED", f"channel:{world.issuer_id}"), ("ECARD_ISSUED", f"channel:{second.issuer_id}"),
                     ("ISSUE_REFUSED", f"channel:{stranger.issuer_id}")]
    assert events[1][2].startswith(f"new channel bound_before={world.issuer_id} kid={second_kid}")
