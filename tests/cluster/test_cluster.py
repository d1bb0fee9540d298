"""Three replicas on their own addresses (network namespaces, a bridge), on one PostgreSQL and Redis.

Each replica is a real `ecard serve` in its own namespace (loadtest.rig.cluster), speaking mTLS on
10.231.N.x; the SDK in this process balances over them. These tests need root to make namespaces:
without it they FAIL (loadtest.rig.netns.NetworkError), they do not skip.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest

from ecard import (
    AdminClient,
    ClientOptions,
    PharmacyClient,
    TokenSigner,
    Unavailable,
    VerifyInterrupted,
    generate_private_key,
    line_item,
    public_key_pem,
)
from ecard.v1 import types_pb2 as t
from loadtest.harness.seeding import Seed, seed_deployment
from loadtest.measure.propagation import PROMISE_S, delay_until, measure_card_changes
from loadtest.rig.cluster import VERIFY, Cluster, demo_cluster, socket_url

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.netns]
BASKET = [line_item("A0002", "ibuprofen", t.DRUG_CLASS_A, 800)]


@pytest.fixture(scope="module")
def seeded(redis_module_url: str) -> Iterator[tuple[Cluster, Seed]]:
    with demo_cluster(3, cards=80, ecards=60) as both:  # 50 usable: 0-19 kill, 30-35 frozen, 40 rotation
        yield both


def counter(cluster: Cluster, seed: Seed, targets: list[str] | str | None = None, **options: object) -> PharmacyClient:
    merchant = seed.pharmacies[0]
    return PharmacyClient(targets or cluster.targets, merchant_id=merchant,
                          options=cluster.options(f"merchant:{merchant}", **options))


def verify_counts(cluster: Cluster, replicas: int = 3) -> list[int]:
    return [replica.requests(VERIFY) for replica in cluster.replicas[:replicas]]


def fresh(seed: Seed, n: int) -> str:
    return seed.channels[0].signer().mint(seed.usable[n % len(seed.usable)][0])


def test_socket_url_reaches_the_same_database_through_the_unix_socket() -> None:
    assert socket_url("postgresql://postgres@127.0.0.1:5433/db1") == (
        "postgresql://postgres@/db1?host=%2Fvar%2Frun%2Fpostgresql&port=5433")
    assert socket_url("postgresql://u:pw@127.0.0.1/db2", "/tmp/pg") == "postgresql://u:pw@/db2?host=%2Ftmp%2Fpg&port=5432"


def test_postgresql_is_relayed_when_its_own_socket_is_unusable(pg_url: str, redis_url: str) -> None:
    """A cluster whose PostgreSQL socket refuses us (peer authentication, or none at that path) still
    reaches the database: through a Unix socket of ours relayed to PostgreSQL's TCP port."""
    with Cluster(1, db=pg_url, pg_socket_dir="/nonexistent-ecard-socket-dir") as cluster:
        assert cluster.replicas[0].db.endswith(f"host={quote(str(cluster.folder / 'pg'), safe='')}&port=5432")
        seed = seed_deployment(cluster.targets[0], cards=4, ecards=2, lost_ecards=0, pharmacies=1, hospitals=1,
                               options_for=cluster.options, log=lambda line: None)
        with counter(cluster, seed) as pos:
            assert pos.verify(fresh(seed, 0), purpose=t.PURPOSE_IDENTITY).verdict == t.VERDICT_ACCEPTED


def test_everything_is_torn_down_even_when_the_body_fails(pg_url: str, redis_url: str) -> None:
    cluster = Cluster(1, db=pg_url)
    with pytest.raises(RuntimeError, match="boom"), cluster:
        assert cluster.network.namespaces[0] in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                               text=True, check=True).stdout
        raise RuntimeError("boom")
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    spaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert cluster.network.bridge not in links and not any(ns in spaces for ns in cluster.network.namespaces)
    assert cluster.replicas[0].process is not None and cluster.replicas[0].process.poll() is not None
    assert not cluster.folder.exists()


def test_replicas_have_their_own_addresses_and_refuse_plaintext(seeded: tuple[Cluster, Seed]) -> None:
    cluster, seed = seeded
    hosts = {target.rsplit(":", 1)[0] for target in cluster.targets}
    assert len(hosts) == 3 and all(host.startswith("10.231.") for host in hosts)
    plaintext = ClientOptions(timeout=3)
    with PharmacyClient(cluster.targets[0], merchant_id=seed.pharmacies[0], options=plaintext) as plain, \
            pytest.raises(Unavailable):
        plain.verify(fresh(seed, 0), purpose=t.PURPOSE_IDENTITY)


def test_one_sdk_client_balances_round_robin_over_every_replica(seeded: tuple[Cluster, Seed]) -> None:
    cluster, seed = seeded
    before = verify_counts(cluster)
    with counter(cluster, seed) as pos:
        answers = [pos.verify(fresh(seed, n), purpose=t.PURPOSE_IDENTITY) for n in range(30)]
    spread = [after - b for after, b in zip(verify_counts(cluster), before, strict=True)]
    assert all(answer.verdict == t.VERDICT_ACCEPTED for answer in answers)
    assert sum(spread) == 30, spread  # one attempt per Verify, nowhere repeated
    assert min(spread) >= 5, f"round robin should reach every replica: {spread}"


def test_a_killed_replica_is_skipped_and_rejoins_after_restart(seeded: tuple[Cluster, Seed]) -> None:
    cluster, seed = seeded
    with counter(cluster, seed) as pos:
        for n in range(6):
            pos.verify(fresh(seed, n), purpose=t.PURPOSE_IDENTITY)
        cluster.kill(1)
        time.sleep(0.5)  # the kernel closes the dead replica's connections; the channel notices
        settled = []
        for n in range(20):
            answer = pos.verify(fresh(seed, n), purpose=t.PURPOSE_MEDICAL_SETTLEMENT)
            assert answer.verdict == t.VERDICT_ACCEPTED, answer
            record = pos.settle([line_item("A0001", "amoxicillin", t.DRUG_CLASS_A, 1250)],
                                idempotency_key=f"kill-{uuid.uuid4().hex}", verification_id=answer.verification_id)
            settled.append(record.settlement_id)
        cluster.start(1)
        before, deadline = cluster.replicas[1].requests(VERIFY), time.monotonic() + 30
        while cluster.replicas[1].requests(VERIFY) == before:
            assert time.monotonic() < deadline, "the restarted replica got no traffic within 30 s"
            pos.verify(fresh(seed, 0), purpose=t.PURPOSE_IDENTITY)
            time.sleep(0.05)
    for target in cluster.targets:  # every acknowledged settlement, on every replica
        with counter(cluster, seed, target) as one:
            assert [one.get_settlement(s).settlement_id for s in settled] == settled


def test_verify_is_never_retried_elsewhere_but_settle_is_and_moves_money_once(seeded: tuple[Cluster, Seed]) -> None:
    """A frozen replica (SIGSTOP: connected, healthy on record, silent) times calls out. A Verify is
    not sent again (the SDK asks GetVerification by request_id, and the caller learns the token was
    not consumed); Settle is retried on the next replica with the same idempotency key."""
    cluster, seed = seeded
    frozen = cluster.replicas[2]
    assert frozen.process is not None
    with counter(cluster, seed, timeout=1.0) as pos:
        for n in range(3):  # every subchannel connected and in the rotation
            pos.verify(fresh(seed, n), purpose=t.PURPOSE_IDENTITY)
        os.kill(frozen.process.pid, signal.SIGSTOP)
        try:
            before = verify_counts(cluster, 2)
            outcomes = []
            for n in range(6):
                try:
                    outcomes.append(pos.verify(fresh(seed, n), purpose=t.PURPOSE_IDENTITY).verdict)
                except VerifyInterrupted:  # the answer was lost: asked back by request_id, never sent again
                    outcomes.append("timeout")
            answered = sum(verify_counts(cluster, 2)) - sum(before)
            timeouts = outcomes.count("timeout")
            # Round robin sends some to the frozen one. Each lost answer is asked back twice
            # (GetVerification), which also moves the rotation: with three replicas the next Verify
            # can land on the frozen one again, so any number of the 6 from 1 up may be lost.
            assert timeouts >= 1, outcomes
            assert answered == 6 - timeouts, "a Verify whose answer was lost was sent again to another replica"
            keys = [f"frozen-{uuid.uuid4().hex}" for _ in range(6)]
            ecard_ids = [seed.usable[30 + n][0] for n in range(6)]
            tokens = [seed.channels[0].signer().mint(ecard_id) for ecard_id in ecard_ids]
            records = [pos.settle(BASKET, idempotency_key=key, token=token)
                       for key, token in zip(keys, tokens, strict=True)]
        finally:
            os.kill(frozen.process.pid, signal.SIGCONT)
    time.sleep(1.0)  # whatever the frozen replica had queued runs now (or is dropped past its deadline)
    with counter(cluster, seed, cluster.targets[2]) as thawed:
        for key, token, record in zip(keys, tokens, records, strict=True):
            again = thawed.settle(BASKET, idempotency_key=key, token=token)
            assert again.settlement_id == record.settlement_id  # one settlement per key, wherever it ran
    with AdminClient(cluster.targets[0], options=cluster.options("admin")) as admin:
        for ecard_id, record in zip(ecard_ids, records, strict=True):
            assert admin.get_ecard(ecard_id).personal_account_balance_fen == record.personal_account_balance_fen


def test_lost_and_reinstated_cards_are_enforced_by_the_other_replicas_within_a_second(
    seeded: tuple[Cluster, Seed],
) -> None:
    cluster, seed = seeded
    delays = measure_card_changes(cluster.targets, seed, cluster.options, changes=24, cards=3)
    figures = delays.summary()
    assert delays.late == 0 and len(delays.seconds) == 48, figures
    assert max(delays.lower) < PROMISE_S, f"a replica gave the old verdict a second after the change: {figures}"
    assert figures["p50_ms"] < 250, figures  # typically a few ms: one change notice and one Verify


def on_the_others(
    cluster: Cluster, seed: Seed, mint: Callable[[], str], reason: int
) -> list[tuple[float, float] | None]:
    """(upper, lower) seconds from now until replicas 1 and 2 answer `reason` to fresh tokens."""
    since, delays = time.monotonic(), []
    for target in cluster.targets[1:]:
        with counter(cluster, seed, target) as pos:
            delays.append(delay_until(pos, mint, reason, since=since, bound_s=3, poll_s=0.005))
    return delays


def test_a_rotated_key_works_and_a_revoked_key_is_refused_everywhere_within_a_second(
    seeded: tuple[Cluster, Seed],
) -> None:
    cluster, seed = seeded
    issuer = seed.channels[0].issuer_id
    key = generate_private_key()
    mint = functools.partial(TokenSigner(key, issuer_id=issuer).mint, seed.usable[40][0])
    with AdminClient(cluster.targets[0], options=cluster.options("admin")) as admin:
        kid = admin.register_key(issuer, public_key_pem(key)).kid
        accepted = on_the_others(cluster, seed, mint, t.REASON_OK)
        admin.revoke_key(issuer, kid)
        refused = on_the_others(cluster, seed, mint, t.REASON_KEY_REVOKED)
    for what, delays in (("new key accepted", accepted), ("revoked key refused", refused)):
        assert all(d is not None and d[1] < PROMISE_S for d in delays), f"{what} late: {delays}"
