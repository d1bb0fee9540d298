"""A compromised channel or terminal is shut off on every replica within a second (issue 17).

Two `ecard serve` replicas over mTLS share one PostgreSQL and one Redis (its own namespace). The
operator acts through replica A; the test watches replica B, on connections opened before the act.
"""

from __future__ import annotations

import contextlib
import queue
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ecard import (
    AdminClient,
    ChannelClient,
    ClientOptions,
    EcardError,
    FailedPrecondition,
    PermissionDenied,
    PharmacyClient,
    TLSConfig,
    TokenSigner,
    Unauthenticated,
    certificate_fingerprint,
    generate_private_key,
    physical_cards,
    public_key_pem,
    verify_request,
)
from ecard.testing import EcardServer, fake_holder
from ecard.v1 import types_pb2 as t
from ecard.v1 import verifier_pb2
from loadtest.rig.pki import CertificateAuthority
from tests.helpers.deployment import config_file
from tests.helpers.polling import until

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
WITHIN_S = 1.0  # the promise: every replica within one second
PHARMACY = "so-pharmacy"
PRINCIPALS = {
    "admin": "ecard://admin",
    "bank": "ecard://channel/so-bank",  # a channel that stays trusted
    "evil": "ecard://channel/so-evil",  # the compromised channel
    "terminal-1": f"ecard://merchant/{PHARMACY}",  # the stolen terminal
    "terminal-2": f"ecard://merchant/{PHARMACY}",  # the pharmacy's other counter
}


@dataclass
class Replicas:
    a: EcardServer
    b: EcardServer
    tls: dict[str, TLSConfig]
    signers: dict[str, TokenSigner]
    ecard_id: str

    def options(self, who: str) -> ClientOptions:
        return ClientOptions(tls=self.tls[who])

    def admin(self, server: EcardServer) -> AdminClient:
        return AdminClient(server.target, options=self.options("admin"))

    def counter(self, server: EcardServer, who: str) -> PharmacyClient:
        return PharmacyClient(server.target, merchant_id=PHARMACY, options=self.options(who))


def verdict(counter: PharmacyClient, signer: TokenSigner, ecard_id: str) -> int | str:
    """The reason of a fresh token's Verify, or the ErrorInfo reason of a refused call."""
    try:
        return counter.verify(signer.mint(ecard_id), purpose=t.PURPOSE_IDENTITY).reason
    except EcardError as exc:
        return exc.reason or exc.status_name


@pytest.fixture(scope="module")
def replicas(pg_module_url: str, redis_module_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    folder = tmp_path_factory.mktemp("shut-off")
    authority = CertificateAuthority(folder)
    tls = {who: authority.certificate(who, uri) for who, uri in PRINCIPALS.items()}
    args = ["--config", config_file(folder, f"ecard-test-{uuid.uuid4().hex[:12]}"), *authority.server_args()]
    health = ClientOptions(tls=tls["admin"])
    with EcardServer(db=pg_module_url, redis=redis_module_url, extra_args=args, client_options=health) as a, \
            EcardServer(db=pg_module_url, redis=redis_module_url, extra_args=args, client_options=health) as b:
        card_no, name, idn = fake_holder(1, "so")
        signers = {}
        with AdminClient(a.target, options=ClientOptions(tls=tls["admin"])) as admin:
            admin.upsert_merchant(PHARMACY, kind=t.MERCHANT_KIND_PHARMACY, region="330200")
            admin.enroll_cards(physical_cards([(card_no, name, idn, "330200", 0)]))
            for issuer_id in ("so-bank", "so-evil"):
                key = generate_private_key()
                admin.upsert_issuer(issuer_id)
                kid = admin.register_key(issuer_id, public_key_pem(key)).kid
                signers[issuer_id] = TokenSigner(key, issuer_id=issuer_id, kid=kid)
        ecard_id = ""
        for who, issuer_id in (("bank", "so-bank"), ("evil", "so-evil")):
            with ChannelClient(a.target, issuer_id=issuer_id, signer=signers[issuer_id],
                               options=ClientOptions(tls=tls[who])) as channel:
                ecard_id = channel.issue_ecard(card_no, name, idn, assurance=t.ASSURANCE_FACE).ecard_id
        replicas = Replicas(a, b, tls, signers, ecard_id)
        with replicas.counter(b, "terminal-2") as counter:  # B learned of it all through change notices
            until(lambda: verdict(counter, signers["so-evil"], ecard_id) == t.REASON_OK or None, within=WITHIN_S,
                  what="the seeded world on B")
        yield replicas


def test_disable_issuer_shuts_every_key_and_the_channel_off_on_every_replica(replicas: Replicas) -> None:
    """Sends DisableIssuer(so-evil) to A while B verifies tokens of both of its keys. Before: no such
    RPC (UNIMPLEMENTED); revoking kid by kid left the others, and the channel itself, working."""
    evil = replicas.signers["so-evil"]
    second_key = generate_private_key()
    with ChannelClient(replicas.a.target, issuer_id="so-evil", options=replicas.options("evil")) as channel:
        second = TokenSigner(second_key, issuer_id="so-evil",
                             kid=channel.register_key(public_key_pem(second_key)).kid)
    with replicas.counter(replicas.b, "terminal-2") as on_b, \
            ChannelClient(replicas.b.target, issuer_id="so-evil", options=replicas.options("evil")) as evil_on_b:
        until(lambda: verdict(on_b, second, replicas.ecard_id) == t.REASON_OK or None, within=WITHIN_S,
              what="the second key on B")
        assert evil_on_b.list_keys()
        with replicas.admin(replicas.a) as admin:
            disabled = admin.disable_issuer("so-evil")
        assert disabled.disabled and disabled.disabled_at.seconds > 0

        def shut_on_b() -> bool | None:
            reasons = [verdict(on_b, signer, replicas.ecard_id) for signer in (evil, second)]
            return True if reasons == [t.REASON_KEY_REVOKED] * 2 else None

        _, took = until(shut_on_b, within=WITHIN_S, what="both keys of a disabled issuer refused on B")
        with pytest.raises(PermissionDenied) as refused:
            evil_on_b.register_key(public_key_pem(evil._key), kid="fresh-kid")
        assert refused.value.reason == "CHANNEL_DISABLED"
    with replicas.admin(replicas.b) as admin:
        with pytest.raises(FailedPrecondition) as again:  # the operator cannot bring a key back either
            admin.register_key("so-evil", public_key_pem(second_key), kid="fresh-kid")
        assert again.value.reason in ("KEY_REVOKED", "ISSUER_DISABLED")
        with pytest.raises(FailedPrecondition) as new_key:
            admin.register_key("so-evil", public_key_pem(generate_private_key()))
        assert new_key.value.reason == "ISSUER_DISABLED"
        assert all(key.revoked for key in admin.list_keys("so-evil"))
        events = [(e.actor, e.subject, e.detail) for e in admin.audit_events(kind="ISSUER_DISABLED")]
    assert events == [("admin", "so-evil", "keys_revoked=2")]
    with replicas.counter(replicas.b, "terminal-2") as on_b:  # the trusted channel is untouched
        assert verdict(on_b, replicas.signers["so-bank"], replicas.ecard_id) == t.REASON_OK
    print(f"disabled issuer refused on the other replica after {took * 1000:.0f} ms")


def test_a_denied_certificate_is_refused_on_every_replica(replicas: Replicas) -> None:
    """Sends DenyCertificate(terminal-1's fingerprint) to A while terminal-1 keeps calling B on an open
    connection. Before: no deny list; a stolen terminal certificate worked until it expired."""
    bank = replicas.signers["so-bank"]
    fingerprint = certificate_fingerprint(replicas.tls["terminal-1"].client_cert)
    with replicas.counter(replicas.b, "terminal-1") as stolen, replicas.counter(replicas.b, "terminal-2") as honest, \
            replicas.counter(replicas.a, "terminal-1") as stolen_on_a:
        assert verdict(stolen, bank, replicas.ecard_id) == t.REASON_OK
        with replicas.admin(replicas.a) as admin:
            denied = admin.deny_certificate(":".join(fingerprint[i:i + 2] for i in range(0, 64, 2)).upper(),
                                            reason="terminal stolen")
        assert denied.fingerprint_sha256 == fingerprint and denied.denied_by == "admin"
        _, took = until(lambda: verdict(stolen, bank, replicas.ecard_id) == "CERTIFICATE_DENIED" or None,
                        within=WITHIN_S, what="the denied certificate refused on B")
        with pytest.raises(Unauthenticated):
            stolen_on_a.verify(bank.mint(replicas.ecard_id))
        assert verdict(honest, bank, replicas.ecard_id) == t.REASON_OK  # the pharmacy's other counter works
        with replicas.admin(replicas.b) as admin:
            assert [d.fingerprint_sha256 for d in admin.denied_certificates()] == [fingerprint]
            admin.allow_certificate(fingerprint)
            kinds = [(e.kind, e.subject, e.detail) for e in admin.audit_events(subject=fingerprint)]
        assert kinds == [("CERTIFICATE_DENIED", fingerprint, "terminal stolen"),
                         ("CERTIFICATE_ALLOWED", fingerprint, "")]
        until(lambda: verdict(stolen, bank, replicas.ecard_id) == t.REASON_OK or None, within=WITHIN_S,
              what="the certificate allowed again on B")
    with contextlib.suppress(Exception), replicas.admin(replicas.a) as admin:
        admin.allow_certificate(fingerprint)
    print(f"denied certificate refused on the other replica after {took * 1000:.0f} ms")


def test_a_stream_opened_before_the_deny_ends_at_its_next_item(replicas: Replicas) -> None:
    """A stolen terminal with a VerifyStream open on B when it is denied through A: its next item ends
    the stream UNAUTHENTICATED CERTIFICATE_DENIED (a stream is authorized item by item, not only at its
    start). Before: no deny list; the stream would have verified on for as long as it stayed open."""
    bank = replicas.signers["so-bank"]
    fingerprint = certificate_fingerprint(replicas.tls["terminal-1"].client_cert)
    feed: queue.Queue[verifier_pb2.VerifyRequest | None] = queue.Queue()

    def requests() -> Iterator[verifier_pb2.VerifyRequest]:
        while (item := feed.get(timeout=20)) is not None:
            yield item

    def item(n: int) -> verifier_pb2.VerifyRequest:
        return verify_request(bank.mint(replicas.ecard_id), purpose=t.PURPOSE_IDENTITY, request_id=f"i{n}")

    with replicas.counter(replicas.b, "terminal-1") as stolen:
        answers = stolen.verify_stream(requests(), timeout=30)
        feed.put(item(1))
        assert next(answers).reason == t.REASON_OK
        try:
            with replicas.admin(replicas.a) as admin:
                admin.deny_certificate(fingerprint, reason="stolen, stream open")
            time.sleep(WITHIN_S)  # the promise: every replica within a second
            feed.put(item(2))
            with pytest.raises(Unauthenticated) as ended:
                next(answers)
            assert ended.value.reason == "CERTIFICATE_DENIED"
        finally:
            feed.put(None)
            with replicas.admin(replicas.a) as admin:
                admin.allow_certificate(fingerprint)
