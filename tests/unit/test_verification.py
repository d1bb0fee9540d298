"""The verification order, on the core without a network: each reason is reached by the smallest
change of a good token, and the first failing check is the one reported."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ecard import ED25519, TokenSigner, Unavailable, generate_private_key, public_key_pem
from ecard.v1 import types_pb2 as t
from ecard_server.app import Deployment
from ecard_server.config import Settings
from ecard_server.core.admin import EnrollInput
from ecard_server.core.assurance import Statement
from ecard_server.core.nonces import spender
from ecard_server.core.principals import ADMIN, CHANNEL, Principal
from ecard_server.storage.memory import MemoryNonceStore
from tests.helpers.clock import Clock

NOW = 1_800_000_000
HOLDER = ("C0000001", "朱小明", "330203199001011234")



@dataclass
class Env:
    deployment: Deployment
    clock: Clock
    signer: TokenSigner
    ecard_id: str

    def mint(self, **options: object) -> str:
        options.setdefault("issued_at", int(self.clock.now))
        options.setdefault("purposes", [t.PURPOSE_IDENTITY, t.PURPOSE_MEDICAL_SETTLEMENT])
        return self.signer.mint(self.ecard_id, **options)  # type: ignore[arg-type]

    def verify(self, token: str, purpose: int = t.PURPOSE_IDENTITY, min_assurance: int = t.ASSURANCE_NONE) -> int:
        return self.deployment.verifier.verify_token(
            token, merchant_id="pharmacy-1", purpose=purpose, min_assurance=min_assurance
        ).reason

    def add_issuer(self, issuer_id: str, **window: int | None) -> TokenSigner:
        admin = self.deployment.admin
        admin.upsert_issuer(issuer_id, issuer_id)
        key = generate_private_key()
        registered = admin.register_key(
            issuer_id, "", ED25519, public_key_pem(key), window.get("not_before"), window.get("not_after")
        )
        return TokenSigner(key, issuer_id=issuer_id, kid=registered.kid)


@pytest.fixture
def env(tmp_path) -> Iterator[Env]:  # type: ignore[no-untyped-def]
    clock = Clock(NOW)
    deployment = Deployment.open(Settings(), f"sqlite:///{tmp_path}/ecard.db", clock=clock)
    holder = Env(deployment, clock, None, "")  # type: ignore[arg-type]
    holder.signer = holder.add_issuer("bank")
    deployment.admin.enroll_cards([EnrollInput(*HOLDER, "330200", 10_000)])
    face = Statement.of(holder.signer.attest(HOLDER[0], checked_at=int(clock.now)))
    card = deployment.cards.issue_ecard(Principal(CHANNEL, "bank"), *HOLDER, face)
    holder.ecard_id = card.ecard_id or ""
    yield holder
    deployment.close()


def test_good_token_is_accepted_with_a_settlement_handle(env: Env) -> None:
    outcome = env.deployment.verifier.verify_token(
        env.mint(), merchant_id="pharmacy-1", purpose=t.PURPOSE_MEDICAL_SETTLEMENT, min_assurance=t.ASSURANCE_PIN
    )
    assert outcome.reason == t.REASON_OK and outcome.accepted
    assert outcome.card is not None and outcome.card.holder_name_masked == "朱**"
    assert outcome.verification_expires_at == NOW + 300
    opened = env.deployment.handles.open(outcome.verification_id, merchant_id="pharmacy-1", now=NOW + 10)
    assert (opened.ecard_id, opened.purpose, opened.assurance) == (
        env.ecard_id, t.PURPOSE_MEDICAL_SETTLEMENT, t.ASSURANCE_PIN,
    )


def test_malformed_and_unsupported_version(env: Env) -> None:
    good = env.mint()
    assert env.verify(good[:-3]) == t.REASON_MALFORMED
    assert env.verify("EC2:" + good[4:]) == t.REASON_UNSUPPORTED_VERSION


def test_unknown_issuer_and_unknown_key(env: Env) -> None:
    stranger = TokenSigner(env.signer._key, issuer_id="nobody", kid=env.signer.kid)
    assert env.verify(stranger.mint(env.ecard_id, issued_at=NOW)) == t.REASON_UNKNOWN_ISSUER
    other_kid = TokenSigner(env.signer._key, issuer_id="bank", kid="nokid")
    assert env.verify(other_kid.mint(env.ecard_id, issued_at=NOW)) == t.REASON_UNKNOWN_KEY


def test_revoked_key_takes_effect_at_once(env: Env) -> None:
    token = env.mint()
    env.deployment.admin.revoke_key("bank", env.signer.kid)
    assert env.verify(token) == t.REASON_KEY_REVOKED


def test_key_outside_its_window_is_inactive(env: Env) -> None:
    future = env.add_issuer("bank-f", not_before=NOW + 100)
    past = env.add_issuer("bank-p", not_after=NOW - 1)
    for signer in (future, past):
        assert env.verify(signer.mint(env.ecard_id, issued_at=NOW)) == t.REASON_KEY_INACTIVE
    env.clock.now = NOW + 100  # the window opens
    face = Statement.of(future.attest(HOLDER[0], checked_at=NOW + 100))
    env.deployment.cards.issue_ecard(Principal(CHANNEL, "bank-f"), *HOLDER, face)
    assert env.verify(future.mint(env.ecard_id, issued_at=NOW + 100)) == t.REASON_OK


@pytest.mark.parametrize(
    ("issued_at", "ttl", "reason"),
    [
        (NOW + 31, 60, t.REASON_NOT_YET_VALID),
        (NOW + 30, 60, t.REASON_OK),  # inside the 30 s skew
        (NOW - 91, 60, t.REASON_EXPIRED),  # expired 31 s ago
        (NOW - 90, 60, t.REASON_OK),  # expired 30 s ago: skew
        (NOW, 301, t.REASON_LIFETIME_TOO_LONG),
        (NOW, 300, t.REASON_OK),
    ],
)
def test_time_window_edges(env: Env, issued_at: int, ttl: int, reason: int) -> None:
    assert env.verify(env.mint(issued_at=issued_at, ttl_seconds=ttl)) == reason


def test_bad_signature(env: Env) -> None:
    forger = TokenSigner(generate_private_key(), issuer_id="bank", kid=env.signer.kid)
    assert env.verify(forger.mint(env.ecard_id, issued_at=NOW)) == t.REASON_BAD_SIGNATURE


def test_card_checks(env: Env) -> None:
    assert env.verify(env.signer.mint("ENOSUCHCARD00000", issued_at=NOW)) == t.REASON_CARD_UNKNOWN
    cards, admin = env.deployment.cards, Principal(ADMIN)
    cards.report_lost(admin, ecard_id=env.ecard_id)
    assert env.verify(env.mint()) == t.REASON_CARD_LOST
    cards.reinstate(admin, ecard_id=env.ecard_id)
    assert env.verify(env.mint()) == t.REASON_OK
    cards.cancel(admin, ecard_id=env.ecard_id)
    assert env.verify(env.mint()) == t.REASON_CARD_CANCELLED


def test_channel_not_bound(env: Env) -> None:
    unbound = env.add_issuer("bank-2")
    assert env.verify(unbound.mint(env.ecard_id, issued_at=NOW)) == t.REASON_CHANNEL_NOT_BOUND


def test_binding_status_comes_from_the_card_cache(env: Env) -> None:
    """A suspended binding is refused from memory: after the change notice, one reload of the card, then
    every Verify a cache hit."""
    cache, cards, bank = env.deployment.card_cache, env.deployment.cards, Principal(CHANNEL, "bank")
    assert env.verify(env.mint()) == t.REASON_OK
    cards.suspend_binding(bank, env.ecard_id, "")
    misses = cache.misses
    assert env.verify(env.mint()) == t.REASON_CHANNEL_SUSPENDED  # the notice dropped the entry: one reload
    assert cache.misses == misses + 1
    hits = cache.hits
    for _ in range(6):
        assert env.verify(env.mint()) == t.REASON_CHANNEL_SUSPENDED
    assert (cache.misses, cache.hits) == (misses + 1, hits + 6)
    cards.resume_binding(bank, env.ecard_id, "")
    assert env.verify(env.mint()) == t.REASON_OK
    cards.unbind(bank, env.ecard_id, "")
    assert env.verify(env.mint()) == t.REASON_CHANNEL_NOT_BOUND


def test_verify_keeps_the_accepted_answer_only_when_the_nonce_was_fresh(env: Env) -> None:
    """verify_token(keep=...) gets the accepted outcome before the nonce is consumed; the store
    keeps what `keep` made of it in the verification records if the nonce was fresh, nothing when the
    token was used before (the answer is then REPLAYED)."""
    verifier, records = env.deployment.verifier, env.deployment.records
    ask = dict(merchant_id="pharmacy-1", purpose=t.PURPOSE_IDENTITY, min_assurance=t.ASSURANCE_NONE)
    token = env.mint()
    assert env.verify(env.mint()) == t.REASON_OK  # the card is cached now
    offered: list[str] = []

    def keep(request_id: str):  # type: ignore[no-untyped-def]
        def made(accepted):  # type: ignore[no-untyped-def]
            assert accepted.reason == t.REASON_OK
            offered.append(request_id)
            return "pharmacy-1", request_id, accepted.verification_id.encode()
        return made

    first = verifier.verify_token(token, **ask, keep=keep("first"))  # type: ignore[arg-type]
    assert first.reason == t.REASON_OK
    assert records.find("pharmacy-1", "first") == first.verification_id.encode()
    again = verifier.verify_token(token, **ask, keep=keep("again"))  # type: ignore[arg-type]
    assert again.reason == t.REASON_REPLAYED
    assert offered == ["first", "again"] and records.find("pharmacy-1", "again") is None


def test_purpose_and_assurance(env: Env) -> None:
    assert env.verify(env.mint(purposes=[t.PURPOSE_IDENTITY]), t.PURPOSE_PAYMENT) == t.REASON_PURPOSE_NOT_ALLOWED
    pin = env.mint(assurance=t.ASSURANCE_PIN)
    assert env.verify(pin, min_assurance=t.ASSURANCE_FACE) == t.REASON_ASSURANCE_TOO_LOW
    assert env.verify(env.mint(assurance=t.ASSURANCE_FACE), min_assurance=t.ASSURANCE_FACE) == t.REASON_OK


def test_replayed_and_rejected_tokens_are_not_consumed(env: Env) -> None:
    token = env.mint(purposes=[t.PURPOSE_IDENTITY])
    assert env.verify(token, t.PURPOSE_PAYMENT) == t.REASON_PURPOSE_NOT_ALLOWED  # not consumed
    assert env.verify(token) == t.REASON_OK
    assert env.verify(token) == t.REASON_REPLAYED


def test_first_failing_check_wins(env: Env) -> None:
    forger = TokenSigner(generate_private_key(), issuer_id="bank", kid=env.signer.kid)
    # expired and forged: time comes before signature
    assert env.verify(forger.mint(env.ecard_id, issued_at=NOW - 500)) == t.REASON_EXPIRED
    # forged for an unknown card: signature comes before card
    assert env.verify(forger.mint("ENOSUCHCARD00000", issued_at=NOW)) == t.REASON_BAD_SIGNATURE
    env.deployment.cards.report_lost(Principal(ADMIN), ecard_id=env.ecard_id)
    # lost card, wrong purpose, low assurance: the card comes first
    token = env.mint(purposes=[t.PURPOSE_IDENTITY], assurance=t.ASSURANCE_NONE)
    assert env.verify(token, t.PURPOSE_PAYMENT, t.ASSURANCE_FACE) == t.REASON_CARD_LOST


def test_nonce_store_forgets_only_after_expiry_and_fails_closed_when_full() -> None:
    clock = Clock(NOW)
    store = MemoryNonceStore(capacity=2, clock=clock)
    assert store.consume(b"a", NOW + 10)
    assert not store.consume(b"a", NOW + 10)
    assert store.consume(b"b", NOW + 10)
    with pytest.raises(Unavailable):
        store.consume(b"c", NOW + 10)  # full of live nonces: refuse rather than forget one
    clock.now = NOW + 11
    assert store.consume(b"c", NOW + 20)  # a and b expired and were dropped
    assert len(store) == 1


def test_a_released_nonce_can_be_consumed_again() -> None:
    clock = Clock(NOW)
    store = MemoryNonceStore(capacity=10, clock=clock)
    assert store.consume(b"a", NOW + 10)
    assert store.release(b"a") and not store.release(b"a") and not store.release(b"never")
    assert store.consume(b"a", NOW + 30)  # consumed again, with a later expiry
    clock.now = NOW + 11  # the first consumption's expiry passes: the second one still holds
    assert not store.consume(b"a", NOW + 30)
    assert len(store) == 1


def test_a_settles_own_consumption_is_its_own_again_and_nobody_elses() -> None:
    """consume_as (a Settle by token): the same spender (merchant and idempotency key) finds its own
    consumption fresh again, e.g. retrying after a crash; another spender, or a Verify, does not."""
    clock = Clock(NOW)
    store = MemoryNonceStore(capacity=10, clock=clock)
    mine, other = spender("ph-1", "receipt-7"), spender("ph-1", "receipt-8")
    assert mine != other != spender("ph-2", "receipt-7") and not mine.startswith(b"1")
    assert store.consume_as(b"a", NOW + 10, mine)
    assert store.consume_as(b"a", NOW + 10, mine)  # the same Settle, retried
    assert not store.consume_as(b"a", NOW + 10, other)
    assert not store.consume(b"a", NOW + 10)  # a Verify of a token a Settle spent: REPLAYED
    assert store.consume(b"b", NOW + 10)
    assert not store.consume_as(b"b", NOW + 10, mine)  # a Verify spent it: never a Settle's own
    clock.now = NOW + 11
    assert store.consume_as(b"c", NOW + 20, other)  # a and b expired: their spenders are forgotten too
    assert store.consume_as(b"a", NOW + 20, other) and not store.consume_as(b"a", NOW + 20, mine)
    assert store.release(b"a") and store.consume_as(b"a", NOW + 20, mine)


def test_a_snapshot_carries_live_nonces_and_their_spenders_to_a_new_set() -> None:
    clock = Clock(NOW)
    old = MemoryNonceStore(capacity=10, clock=clock)
    mine = spender("ph-1", "receipt-7")
    assert old.consume(b"live", NOW + 30) and old.consume_as(b"spent", NOW + 30, mine) and old.consume(b"old", NOW + 5)
    clock.now = NOW + 6  # b"old" has expired: it is not carried
    blob = old.snapshot()
    new = MemoryNonceStore(capacity=10, clock=clock)
    assert new.restore(blob) == 2 and len(new) == 2
    assert not new.consume(b"live", NOW + 30) and new.consume(b"old", NOW + 30)
    assert new.consume_as(b"spent", NOW + 30, mine) and not new.consume_as(b"spent", NOW + 30, spender("x", "y"))
    for broken in (b"", b"\x02" + blob[1:], blob[:-1]):
        with pytest.raises(ValueError):
            MemoryNonceStore(capacity=10, clock=clock).restore(broken)


def test_tokens_issued_before_a_crash_of_an_in_memory_nonce_set_are_replayed(env: Env) -> None:
    """A process keeping its nonces in memory dies without saving them: the next one on the database
    refuses every token issued up to its start plus the clock skew (any may have been used); a clean
    close saves them instead, and the next one knows exactly which were used."""
    url, skew = env.deployment.store.url, env.deployment.settings.clock_skew_s  # type: ignore[attr-defined]
    used, unused = env.mint(), env.mint()
    assert env.verify(used) == t.REASON_OK
    env.deployment.saves_nonces = False
    env.deployment.store.close()  # the crash: nothing saved, the database's lock let go
    env.deployment = again = Deployment.open(Settings(), url, clock=env.clock)
    assert [env.verify(used), env.verify(unused)] == [t.REASON_REPLAYED] * 2
    assert env.verify(env.mint(issued_at=NOW + skew)) == t.REASON_REPLAYED
    env.clock.now = NOW + skew + 1
    fresh = env.mint()
    assert env.verify(fresh) == t.REASON_OK
    again.close()  # clean: saved
    env.deployment = Deployment.open(Settings(), url, clock=env.clock)
    assert [env.verify(fresh), env.verify(env.mint())] == [t.REASON_REPLAYED, t.REASON_OK]
    with pytest.raises(ValueError, match="another ecard serve uses"):
        Deployment.open(Settings(), url, clock=env.clock)  # one process (here: one open deployment) a file


def test_a_token_spent_by_a_settle_passes_again_for_that_settle_only(env: Env) -> None:
    """spend_token: a Settle cut after its consumption (a crash before the settlement committed) is
    accepted again when retried with its merchant and key (the ledger then writes one settlement);
    another key, another merchant or a Verify gets REPLAYED."""
    token = env.mint(purposes=[t.PURPOSE_MEDICAL_SETTLEMENT], assurance=t.ASSURANCE_PIN)
    verifier = env.deployment.verifier
    spend = dict(merchant_id="ph", purpose=t.PURPOSE_MEDICAL_SETTLEMENT, min_assurance=t.ASSURANCE_PIN)
    assert verifier.spend_token(token, spender=spender("ph", "k1"), **spend).accepted
    assert verifier.spend_token(token, spender=spender("ph", "k1"), **spend).accepted
    assert verifier.spend_token(token, spender=spender("ph", "k2"), **spend).reason == t.REASON_REPLAYED
    assert verifier.spend_token(token, spender=spender("ph2", "k1"), **spend).reason == t.REASON_REPLAYED
    assert env.verify(token, t.PURPOSE_MEDICAL_SETTLEMENT, t.ASSURANCE_PIN) == t.REASON_REPLAYED

