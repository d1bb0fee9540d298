"""The shared deployment: `ecard serve` processes on one PostgreSQL and one Redis.

Server A talks to PostgreSQL and Redis directly; server B through loopback relays in this process
(tests.helpers.proxy.TcpProxy), so a test can cut B off from either service and restore it, without touching
the machine's shared PostgreSQL and Redis. Every server of this module uses its own Redis namespace.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ecard import AdminClient, ChannelClient, ClientOptions, PermissionDenied, PharmacyClient, Unavailable
from ecard.testing import EcardServer, World, free_port
from ecard.v1 import types_pb2 as t
from ecard_server.core import events
from ecard_server.storage.redis_bus import RedisChangeBus
from ecard_server.storage.redis_nonces import RedisNonceStore
from ecard_server.storage.sqlite import SqliteStore
from tests.helpers.deployment import children_of, config_file, scrape
from tests.helpers.polling import until

T = TypeVar("T")
shared = [pytest.mark.postgres, pytest.mark.redis]
PROPAGATION_S = 1.0  # the promise: a change reaches every process within one second


def reason_on(target: str, world: World, card: int = 0) -> int:
    """The reason Verify gives for a fresh token of `card` on the server at `target`."""
    with PharmacyClient(target, merchant_id=world.pharmacy_id) as pos:
        return pos.verify(world.mint(card), purpose=t.PURPOSE_IDENTITY).reason


@dataclass
class Pair:
    a: EcardServer
    b: EcardServer
    pg_relay: Any  # conftest.TcpProxy between B and PostgreSQL
    redis_relay: Any  # conftest.TcpProxy between B and Redis
    namespace: str
    config: str

    def seed(self, cards: int = 3) -> World:
        """A fresh world seeded through A, once B accepts its first card (B learns of the new issuer,
        key and merchant through change notices, which may take up to a second)."""
        world = World.seed(self.a.target, cards=cards)

        def accepted_by_b() -> bool | None:
            with contextlib.suppress(PermissionDenied):
                if reason_on(self.b.target, world, 0) == t.REASON_OK:
                    return True
            return None

        until(accepted_by_b, within=PROPAGATION_S, what="a world seeded through A, on B")
        return world


@pytest.fixture(scope="module")
def pair(
    pg_module_url: str, redis_module_url: str, module_tcp_proxy: Callable[[str], Any], tmp_path_factory: Any
) -> Iterator[Pair]:
    namespace = f"ecard-test-{uuid.uuid4().hex[:12]}"
    config = config_file(tmp_path_factory.mktemp("shared"), namespace)
    pg_relay, redis_relay = module_tcp_proxy(pg_module_url), module_tcp_proxy(redis_module_url)
    a = EcardServer(db=pg_module_url, redis=redis_module_url, extra_args=["--config", config])
    b = EcardServer(db=pg_relay.url(pg_module_url), redis=redis_relay.url(redis_module_url),
                    extra_args=["--config", config])
    with a, b:
        yield Pair(a, b, pg_relay, redis_relay, namespace, config)


@pytest.fixture
def relays_restored(pair: Pair) -> Iterator[Pair]:
    """The pair, with B's relays restored after the test whatever happens in it."""
    try:
        yield pair
    finally:
        pair.pg_relay.restore()
        pair.redis_relay.restore()


# -- two processes, one deployment ----------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.redis
def test_token_verified_on_one_is_replayed_on_the_other(pair: Pair) -> None:
    world = pair.seed()
    with PharmacyClient(pair.a.target, merchant_id=world.pharmacy_id) as on_a, \
            PharmacyClient(pair.b.target, merchant_id=world.pharmacy_id) as on_b:
        token = world.mint(0)
        assert on_a.verify(token, purpose=t.PURPOSE_IDENTITY).verdict == t.VERDICT_ACCEPTED
        replay = on_b.verify(token, purpose=t.PURPOSE_IDENTITY)
        assert (replay.verdict, replay.reason) == (t.VERDICT_REJECTED, t.REASON_REPLAYED)
        other = world.mint(1)
        assert on_b.verify(other, purpose=t.PURPOSE_IDENTITY).verdict == t.VERDICT_ACCEPTED
        assert on_a.verify(other, purpose=t.PURPOSE_IDENTITY).reason == t.REASON_REPLAYED
        # A rejected token is not consumed, on either process.
        wrong = world.mint(2, purposes=[t.PURPOSE_PAYMENT])
        assert on_a.verify(wrong, purpose=t.PURPOSE_IDENTITY).reason == t.REASON_PURPOSE_NOT_ALLOWED
        assert on_b.verify(wrong, purpose=t.PURPOSE_PAYMENT).verdict == t.VERDICT_ACCEPTED


@pytest.mark.postgres
@pytest.mark.redis
def test_card_reported_lost_through_one_is_rejected_by_the_other_within_a_second(pair: Pair) -> None:
    world = pair.seed()  # B now holds card 0 in its cache
    with AdminClient(pair.a.target) as admin:
        admin.report_lost(ecard_id=world.ecard_ids[0])
    _, took = until(lambda: reason_on(pair.b.target, world) == t.REASON_CARD_LOST or None,
                    within=PROPAGATION_S, what="ReportLost through A seen by B")
    print(f"lost card rejected by B after {took * 1000:.0f} ms")
    # And back: reinstated through B, accepted again by A.
    assert reason_on(pair.a.target, world) == t.REASON_CARD_LOST
    with AdminClient(pair.b.target) as admin:
        admin.reinstate(ecard_id=world.ecard_ids[0])
    until(lambda: reason_on(pair.a.target, world) == t.REASON_OK or None,
          within=PROPAGATION_S, what="Reinstate through B seen by A")


@pytest.mark.postgres
@pytest.mark.redis
def test_binding_suspended_through_one_is_refused_by_the_other_within_a_second(pair: Pair) -> None:
    world = pair.seed()  # B now holds card 0 in its cache
    with world.channel() as channel:
        channel.suspend_binding(world.ecard_ids[0])
    _, took = until(lambda: reason_on(pair.b.target, world) == t.REASON_CHANNEL_SUSPENDED or None,
                    within=PROPAGATION_S, what="SuspendBinding through A seen by B")
    print(f"suspended binding refused by B after {took * 1000:.0f} ms")
    with ChannelClient(pair.b.target, issuer_id=world.issuer_id) as channel:
        channel.resume_binding(world.ecard_ids[0])
    until(lambda: reason_on(pair.a.target, world) == t.REASON_OK or None,
          within=PROPAGATION_S, what="ResumeBinding through B seen by A")
    assert reason_on(pair.b.target, world) == t.REASON_OK
    with world.channel() as channel:
        channel.unbind(world.ecard_ids[0])
    until(lambda: reason_on(pair.b.target, world) == t.REASON_CHANNEL_NOT_BOUND or None,
          within=PROPAGATION_S, what="Unbind through A seen by B")


@pytest.mark.postgres
@pytest.mark.redis
def test_key_revoked_through_one_is_rejected_by_the_other_within_a_second(pair: Pair) -> None:
    world = pair.seed()
    with AdminClient(pair.a.target) as admin:
        admin.revoke_key(world.issuer_id, world.signer.kid)
    until(lambda: reason_on(pair.b.target, world) == t.REASON_KEY_REVOKED or None,
          within=PROPAGATION_S, what="key revocation through A seen by B")


@pytest.mark.postgres
@pytest.mark.redis
def test_merchant_withdrawn_through_one_is_refused_by_the_other_within_a_second(pair: Pair) -> None:
    world = pair.seed()
    with AdminClient(pair.a.target) as admin:
        admin.upsert_merchant(world.pharmacy_id, kind=t.MERCHANT_KIND_PHARMACY, region="330200", designated=False)

    def refused() -> bool | None:
        try:
            reason_on(pair.b.target, world)
        except PermissionDenied:
            return True
        return None

    until(refused, within=PROPAGATION_S, what="merchant withdrawal through A seen by B")


# -- outages: fail closed, heal by itself ---------------------------------------------------------
def verdict_or_error(target: str, world: World, card: int = 0) -> str:
    try:
        return t.Reason.Name(reason_on(target, world, card))
    except Unavailable:
        return "UNAVAILABLE"


@pytest.mark.postgres
@pytest.mark.redis
def test_redis_cut_off_fails_closed_and_heals(relays_restored: Pair) -> None:
    pair = relays_restored
    world = pair.seed()
    assert reason_on(pair.b.target, world, 1) == t.REASON_OK  # both cards cached on B as active
    pair.redis_relay.cut()
    # B cannot consume a nonce: UNAVAILABLE, never an accept. A, still connected, goes on.
    answers = [verdict_or_error(pair.b.target, world) for _ in range(5)]
    assert answers == ["UNAVAILABLE"] * 5
    spent_on_a = world.mint(0)
    with PharmacyClient(pair.a.target, merchant_id=world.pharmacy_id) as on_a:
        assert on_a.verify(spent_on_a, purpose=t.PURPOSE_IDENTITY).verdict == t.VERDICT_ACCEPTED
    # B misses the notice of a card lost through A, yet stops trusting its cache within a second.
    with AdminClient(pair.a.target) as admin:
        admin.report_lost(ecard_id=world.ecard_ids[1])
    until(lambda: verdict_or_error(pair.b.target, world, 1) == "REASON_CARD_LOST" or None,
          within=PROPAGATION_S, what="card lost while B was cut off from Redis")

    pair.redis_relay.restore()
    _, took = until(lambda: verdict_or_error(pair.b.target, world, 0) == "REASON_OK" or None,
                    within=5, what="B accepting again once Redis is back", interval=0.1)
    print(f"B recovered {took * 1000:.0f} ms after Redis came back")
    with PharmacyClient(pair.b.target, merchant_id=world.pharmacy_id) as on_b:
        assert on_b.verify(spent_on_a, purpose=t.PURPOSE_IDENTITY).reason == t.REASON_REPLAYED
    assert verdict_or_error(pair.b.target, world, 1) == "REASON_CARD_LOST"


@pytest.mark.postgres
@pytest.mark.redis
def test_postgres_cut_off_fails_closed_and_heals(relays_restored: Pair) -> None:
    pair = relays_restored
    world = pair.seed()
    time.sleep(0.3)  # let the seed's last change notices land on B, then cache card 0 there for good
    assert reason_on(pair.b.target, world, 0) == t.REASON_OK  # card 1 was never seen on B
    pair.pg_relay.cut()
    # A cached card needs no SQL (the hot path); a card B has not seen cannot be checked: UNAVAILABLE.
    assert verdict_or_error(pair.b.target, world, 0) == "REASON_OK"
    started = time.monotonic()
    assert verdict_or_error(pair.b.target, world, 1) == "UNAVAILABLE"
    assert time.monotonic() - started < 4.5, "UNAVAILABLE must come before the client's deadline"
    assert verdict_or_error(pair.b.target, world, 1) == "UNAVAILABLE"
    with AdminClient(pair.b.target) as admin:
        with pytest.raises(Unavailable):
            admin.report_lost(ecard_id=world.ecard_ids[2])
        with pytest.raises(Unavailable):
            admin.upsert_issuer(world.issuer_id, "renamed during the outage")

    pair.pg_relay.restore()
    _, took = until(lambda: verdict_or_error(pair.b.target, world, 1) == "REASON_OK" or None,
                    within=6, what="B verifying uncached cards once PostgreSQL is back", interval=0.1)
    print(f"B recovered {took * 1000:.0f} ms after PostgreSQL came back")
    with AdminClient(pair.b.target) as admin:
        assert admin.report_lost(ecard_id=world.ecard_ids[2]).status == t.CARD_STATUS_LOST
    assert verdict_or_error(pair.a.target, world, 2) == "REASON_CARD_LOST"


# -- several workers on one port ------------------------------------------------------------------
def verifies_served(metrics_port: int) -> float:
    samples = scrape(metrics_port, "ecard_rpc_requests_total")
    return sum(value for labels, value in samples.items() if 'method="Verify"' in labels)


def calls_per_worker(metrics_port: int) -> dict[str, float]:
    return scrape(metrics_port, "ecard_worker_rpc_requests_total")


@pytest.mark.postgres
@pytest.mark.redis
def test_workers_share_one_port_and_a_token_is_single_use_across_them(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    metrics = free_port()
    config = config_file(tmp_path, f"ecard-test-{uuid.uuid4().hex[:12]}")
    server = EcardServer(db=pg_url, redis=redis_url,
                         extra_args=["--workers", "2", "--config", config, "--metrics-listen", f"127.0.0.1:{metrics}"])
    with server:
        assert server.process is not None
        workers = until(lambda: children_of(server.process.pid) if len(children_of(server.process.pid)) == 2
                        else None, within=10, what="two worker processes")[0]
        world = World.seed(server.target, cards=1)
        token = world.mint(0)
        # Sixteen clients, each on its own TCP connection: the kernel spreads them over both workers.
        separate = ClientOptions(channel_options=(("grpc.use_local_subchannel_pool", 1),))
        clients = [PharmacyClient(server.target, merchant_id=world.pharmacy_id, options=separate) for _ in range(16)]
        try:
            start = threading.Barrier(len(clients))

            def verify(pos: PharmacyClient) -> int:
                start.wait()
                return pos.verify(token, purpose=t.PURPOSE_IDENTITY).reason

            with ThreadPoolExecutor(len(clients)) as pool:
                reasons = list(pool.map(verify, clients))
        finally:
            for pos in clients:
                pos.close()
        assert sorted(reasons) == sorted([t.REASON_OK] + [t.REASON_REPLAYED] * 15)
        served = calls_per_worker(metrics)
        assert len(served) == 2 and all(count > 0 for count in served.values()), f"calls per worker: {served}"
        assert verifies_served(metrics) == 16  # one /metrics: both workers' counts summed
        assert server.stop() == 0
    for pid in workers:  # SIGTERM to the parent stopped every worker
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.postgres
@pytest.mark.redis
def test_a_worker_that_dies_stops_the_group(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    """No half-capacity server hiding behind a port: the supervisor (systemd, Kubernetes) restarts it."""
    config = config_file(tmp_path, f"ecard-test-{uuid.uuid4().hex[:12]}")
    with EcardServer(db=pg_url, redis=redis_url, extra_args=["--workers", "2", "--config", config]) as server:
        assert server.process is not None
        workers = until(lambda: children_of(server.process.pid) if len(children_of(server.process.pid)) == 2
                        else None, within=10, what="two worker processes")[0]
        os.kill(workers[0], signal.SIGKILL)
        assert server.process.wait(timeout=20) == 1
        for pid in workers:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        assert '"worker_exited"' in server.logs()


def serve_error(*args: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "ecard_server.cli", "serve", *args],
                          capture_output=True, text=True, timeout=60)
    return done.returncode, done.stderr.strip()


def test_workers_need_a_shared_store(tmp_path: Path) -> None:
    code, err = serve_error("--db", f"sqlite:///{tmp_path}/e.db", "--workers", "2", "--listen", "127.0.0.1:50999")
    assert code == 2 and "needs a shared store" in err and "\n" not in err
    code, err = serve_error("--db", "postgresql://nobody@127.0.0.1:1/x", "--workers", "2",
                            "--listen", "127.0.0.1:50999")
    assert code == 2 and "--redis" in err and "\n" not in err
    code, err = serve_error("--db", "postgresql://nobody@127.0.0.1:1/x", "--listen", "127.0.0.1:50999")
    assert code == 2 and "--secret-file" in err and "\n" not in err  # no secret, and none in the database


@pytest.mark.postgres
@pytest.mark.redis
def test_unreachable_services_are_refused_at_start_in_one_line(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    secret = ("--secret-file", str(tmp_path / "secret"))
    code, err = serve_error("--db", f"postgresql://postgres@127.0.0.1:{port}/x", "--listen", "127.0.0.1:0",
                            "--single-instance", *secret)
    assert code == 2 and "cannot connect to PostgreSQL" in err and "\n" not in err
    code, err = serve_error("--db", pg_url, "--redis", f"redis://127.0.0.1:{port}/0", "--listen", "127.0.0.1:0",
                            *secret)
    assert code == 2 and "cannot reach Redis" in err and "\n" not in err


# -- the Redis pieces on their own ----------------------------------------------------------------
@pytest.fixture
def namespace() -> str:
    return f"ecard-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[SqliteStore]:
    """The durable store a RedisNonceStore records its first use in (a deployment's SQL store)."""
    store = SqliteStore(str(tmp_path / "witness.db"))
    yield store
    store.close()


@pytest.mark.redis
def test_nonce_consumed_once_across_stores_and_namespaces(
    redis_url: str, namespace: str, witness: SqliteStore
) -> None:
    first, second = RedisNonceStore.from_url(redis_url, witness=witness, namespace=namespace), RedisNonceStore.from_url(
        redis_url, witness=witness, namespace=namespace)
    elsewhere = RedisNonceStore.from_url(redis_url, witness=witness, namespace=namespace + "-other")
    try:
        expires = time.time() + 2
        assert first.consume(b"bank\x00nonce-1", expires)
        assert not second.consume(b"bank\x00nonce-1", expires)
        assert not first.consume(b"bank\x00nonce-1", expires)
        assert elsewhere.consume(b"bank\x00nonce-1", expires)  # another deployment sharing the Redis
        assert second.consume(b"bank\x00nonce-2", expires)
        time.sleep(3.1)  # forgotten once its token has expired
        assert first.consume(b"bank\x00nonce-1", time.time() + 60)
    finally:
        for store in (first, second, elsewhere):
            store.close()


@pytest.mark.redis
def test_nonce_batch_is_one_round_trip_with_the_same_answers(
    redis_url: str, namespace: str, witness: SqliteStore
) -> None:
    store = RedisNonceStore.from_url(redis_url, witness=witness, namespace=namespace)
    try:
        expires = time.time() + 60
        assert store.consume(b"b", expires)
        assert store.consume_many([(b"a", expires), (b"b", expires), (b"a", expires), (b"c", expires)]) == [
            True, False, False, True
        ]
        assert store.consume_many([]) == []
        assert not store.consume(b"c", expires)
    finally:
        store.close()


@pytest.mark.redis
def test_nonce_store_fails_closed_and_heals(
    redis_url: str, namespace: str, witness: SqliteStore, tcp_proxy: Callable[[str], Any]
) -> None:
    relay = tcp_proxy(redis_url)
    store = RedisNonceStore.from_url(relay.url(redis_url), witness=witness, namespace=namespace)
    try:
        assert store.consume(b"n1", time.time() + 60)
        relay.cut()
        for key in (b"n1", b"n2"):
            with pytest.raises(Unavailable):
                store.consume(key, time.time() + 60)
        with pytest.raises(Unavailable):
            store.consume_many([(b"n2", time.time() + 60)])
        relay.restore()
        assert until(lambda: _consumes(store, b"n2"), within=3, what="nonce store back")[0] is True
        assert store.consume(b"n1", time.time() + 60) is False
    finally:
        store.close()


@pytest.mark.redis
def test_released_nonce_is_fresh_again_and_release_never_raises(
    redis_url: str, namespace: str, witness: SqliteStore, tcp_proxy: Callable[[str], Any]
) -> None:
    relay = tcp_proxy(redis_url)
    store = RedisNonceStore.from_url(relay.url(redis_url), witness=witness, namespace=namespace)
    try:
        assert store.consume(b"n1", time.time() + 60)
        assert store.release(b"n1") and not store.release(b"n1")
        assert store.consume(b"n1", time.time() + 60)
        relay.cut()
        assert store.release(b"n1") is False  # best effort: the holder shows a new code, nothing breaks
    finally:
        store.close()


@pytest.mark.redis
def test_group_committed_and_batch_consumption_share_one_answer_and_fail_closed(
    redis_url: str, namespace: str, witness: SqliteStore, tcp_proxy: Callable[[str], Any]
) -> None:
    """consume (the group commit's own connection) and consume_many (the blocking client's pool) see
    each other's nonces; a cut Redis is Unavailable for both, and both heal."""
    relay = tcp_proxy(redis_url)
    store = RedisNonceStore.from_url(relay.url(redis_url), witness=witness, namespace=namespace)
    try:
        expires = time.time() + 60
        assert store.consume(b"n1", expires)
        assert not store.consume(b"n1", expires)
        assert store.consume_many([(b"n1", expires), (b"n2", expires)]) == [False, True]
        assert not store.consume(b"n2", expires)
        relay.cut()
        with pytest.raises(Unavailable):
            store.consume(b"n3", expires)
        with pytest.raises(Unavailable):
            store.consume_many([(b"n3", expires)])
        relay.restore()
        assert until(lambda: _consumes(store, b"n3"), within=5, what="the group commit's connection healed")[0]
        assert store.consume_many([(b"n3", expires), (b"n4", expires)]) == [False, True]
    finally:
        store.close()


def _consumes(store: RedisNonceStore, key: bytes) -> bool | None:
    try:
        return store.consume(key, time.time() + 60)
    except Unavailable:
        return None


class Heard:
    """A change listener that remembers what it heard."""

    def __init__(self) -> None:
        self.notices: list[tuple[str, str]] = []
        self.changed = threading.Condition()

    def __call__(self, kind: str, key: str) -> None:
        with self.changed:
            self.notices.append((kind, key))
            self.changed.notify_all()

    def wait_for(self, notice: tuple[str, str], within: float) -> float:
        start = time.monotonic()
        with self.changed:
            assert self.changed.wait_for(lambda: notice in self.notices, timeout=within), (
                f"{notice} not heard within {within} s; heard {self.notices[-5:]}"
            )
        return time.monotonic() - start

    def forget(self) -> None:
        with self.changed:
            self.notices.clear()


@contextlib.contextmanager
def bus(url: str, namespace: str) -> Iterator[tuple[RedisChangeBus, Heard]]:
    opened = RedisChangeBus.from_url(url, namespace=namespace)
    heard = Heard()
    opened.subscribe(heard)
    try:
        assert opened.connected.wait(5)
        yield opened, heard
    finally:
        opened.close()


@pytest.mark.redis
def test_change_notices_reach_every_process_at_once(redis_url: str, namespace: str) -> None:
    with bus(redis_url, namespace) as (one, heard_one), bus(redis_url, namespace) as (two, heard_two), \
            bus(redis_url, namespace + "-other") as (_, heard_elsewhere):
        heard_one.forget()
        heard_elsewhere.forget()
        one.publish(events.CARD, "E1")
        assert heard_one.notices == [(events.CARD, "E1")]  # delivered here synchronously, and only once
        heard_two.wait_for((events.CARD, "E1"), within=PROPAGATION_S)
        two.publish(events.KEY, "bank")
        heard_one.wait_for((events.KEY, "bank"), within=PROPAGATION_S)
        time.sleep(0.2)
        assert heard_one.notices.count((events.CARD, "E1")) == 1
        assert heard_elsewhere.notices == []


@pytest.mark.redis
def test_change_bus_drops_caches_while_cut_off_and_catches_up(
    redis_url: str, namespace: str, tcp_proxy: Callable[[str], Any]
) -> None:
    relay = tcp_proxy(redis_url)
    everything = (events.ALL, events.ALL)
    with bus(redis_url, namespace) as (direct, _), bus(relay.url(redis_url), namespace) as (cut_off, heard):
        heard.forget()
        relay.cut()
        heard.wait_for(everything, within=PROPAGATION_S)  # the link is gone: caches dropped
        heard.forget()
        heard.wait_for(everything, within=PROPAGATION_S)  # and dropped again while it stays gone
        assert not cut_off.connected.is_set()
        direct.publish(events.CARD, "lost-meanwhile")  # the cut-off bus cannot hear this one...
        heard.forget()
        relay.restore()
        assert cut_off.connected.wait(5)
        heard.wait_for(everything, within=PROPAGATION_S)  # ...so it starts again from empty caches
        time.sleep(0.1)
        heard.forget()
        time.sleep(0.5)
        assert heard.notices == []  # connected again: no more periodic drops
        direct.publish(events.MERCHANT, "m1")
        heard.wait_for((events.MERCHANT, "m1"), within=PROPAGATION_S)


@pytest.mark.redis
def test_deferred_notice_is_published_after_the_comeback(
    redis_url: str, namespace: str, tcp_proxy: Callable[[str], Any]
) -> None:
    relay = tcp_proxy(redis_url)
    with bus(redis_url, namespace) as (_, heard_direct), bus(relay.url(redis_url), namespace) as (cut_off, _):
        relay.cut()
        until(lambda: (not cut_off.connected.is_set()) or None, within=PROPAGATION_S, what="bus noticed the cut")
        cut_off.publish(events.CARD, "changed-while-cut")
        relay.restore()
        heard_direct.wait_for((events.CARD, "changed-while-cut"), within=5)


def _at_once(calls: list[Callable[[], T]]) -> list[T | BaseException]:
    """Each call on a thread of its own, all released together; what each answered or raised, in order."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T | BaseException:
        start.wait()
        try:
            return call()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as threads:
        return list(threads.map(run, calls))


@pytest.mark.redis
def test_concurrent_consumptions_share_round_trips_and_answer_as_one_by_one(
    redis_url: str, namespace: str, witness: SqliteStore
) -> None:
    """consume of concurrent threads is group-committed: fewer script calls than consumptions, each
    nonce fresh exactly once (its two threads may meet in one script call), a lost memory reported once
    and every live token refused behind it."""
    store = RedisNonceStore.from_url(redis_url, witness=witness, namespace=namespace)
    try:
        expires = time.time() + 60
        keys = [f"n{i % 40}".encode() for i in range(80)]  # each nonce twice, from two threads
        fresh = _at_once([lambda key=key: store.consume(key, expires) for key in keys])
        assert all(type(answer) is bool for answer in fresh)
        assert [fresh[i] + fresh[i + 40] for i in range(40)] == [1] * 40
        group = store._group
        assert group is not None and group.entries == 80 and group.flushes < 80
        assert not any(_at_once([lambda key=key: store.consume(key, expires) for key in keys[:5]]))

        store._client.delete(f"{namespace}:nonces-since")  # as a Redis restarted without persistence
        answers = _at_once([lambda i=i: store.consume(f"m{i}".encode(), expires) for i in range(10)])
        assert answers == [False] * 10
        assert store._client.get(f"{namespace}:nonces-since") is not None
    finally:
        store.close()


@pytest.mark.redis
def test_a_verify_keeps_its_answer_in_its_consumptions_script_call_only_when_fresh(
    redis_url: str, namespace: str, witness: SqliteStore, tcp_proxy: Callable[[str], Any]
) -> None:
    """consume(keep=...) writes a Verify's answer to the verification records in the script call that
    consumes its nonce: kept when the nonce is fresh, not for a replay nor behind a lost memory; a Redis
    that does not answer in time fails the call closed (what the script did meanwhile stands, as for
    any consumption), a cut one too, with nothing kept; a Redis that forgot the script (restarted)
    still answers; the connection heals."""
    from ecard_server.storage.redis_records import RedisVerificationRecords

    relay = tcp_proxy(redis_url)
    records = RedisVerificationRecords(relay.url(redis_url), 60, namespace)
    store = RedisNonceStore.from_url(relay.url(redis_url), witness=witness, namespace=namespace, records=records)
    try:
        expires = time.time() + 60
        keys = [f"n{i % 10}".encode() for i in range(20)]  # each nonce twice: the replay keeps nothing
        fresh = _at_once([lambda i=i, key=key: store.consume(key, expires, ("m1", f"r{i}", f"answer{i}".encode()))
                          for i, key in enumerate(keys)])
        assert [fresh[i] + fresh[i + 10] for i in range(10)] == [1] * 10
        group = store._group
        assert group is not None and group.entries == 20 and group.flushes < 20
        assert store.consume(b"without", expires)  # a call without a request_id keeps nothing

        store._client.script_flush()  # as a restarted Redis: EVALSHA finds no script, EVAL runs it
        assert store.consume(b"after-flush", expires, ("m1", "r-flush", b"flushed"))

        store._client.delete(f"{namespace}:nonces-since")  # a lost memory: refused, nothing kept
        assert not store.consume(b"behind-the-loss", expires, ("m1", "r-lost", b"lost"))

        relay.hold("down")  # Redis's answers do not come back: Unavailable after the socket timeout
        started = time.monotonic()
        with pytest.raises(Unavailable):
            store.consume(b"held", time.time() + 3600, ("m1", "r-held", b"held"))
        assert time.monotonic() - started < 3
        relay.release()
        relay.cut()
        with pytest.raises(Unavailable):
            store.consume(b"cut", time.time() + 3600, ("m1", "r-cut", b"cut"))
        relay.restore()
        assert until(lambda: _consumes_keeping(store, b"healed", ("m1", "r-healed", b"healed")), within=5,
                     what="the group commit's connection healed")[0]

        assert [records.find("m1", f"r{i}") for i in range(20)] == [
            f"answer{i}".encode() if fresh[i] else None for i in range(20)]
        assert records.find("m1", "r-flush") == b"flushed" and records.find("m1", "r-healed") == b"healed"
        assert [records.find("m1", r) for r in ("r-lost", "r-cut")] == [None, None]
    finally:
        store.close()
        records.close()


@pytest.mark.redis
def test_a_redis_that_does_not_answer_fails_every_call_of_its_script_call_closed(
    redis_url: str, namespace: str, witness: SqliteStore, tcp_proxy: Callable[[str], Any]
) -> None:
    """Threads whose consumptions wait behind a script call that gets no answer: that call and every one
    queued behind it are Unavailable (none accepted), within about two socket timeouts; then the line
    heals."""
    relay = tcp_proxy(redis_url)
    store = RedisNonceStore.from_url(relay.url(redis_url), witness=witness, namespace=namespace)
    try:
        assert store.consume(b"warm", time.time() + 60)  # the group commit's connection is open
        relay.hold("up")  # what is sent does not reach Redis
        started = time.monotonic()
        answers = _at_once([lambda i=i: store.consume(f"held-{i}".encode(), time.time() + 60) for i in range(12)])
        assert all(isinstance(answer, Unavailable) for answer in answers), answers
        assert time.monotonic() - started < 5
        group = store._group
        assert group is not None and group.flushes < 13
        relay.cut()
        relay.restore()
        assert until(lambda: _consumes(store, b"healed"), within=5, what="the group commit's connection healed")[0]
    finally:
        store.close()


def _consumes_keeping(store: RedisNonceStore, key: bytes, keep: tuple[str, str, bytes]) -> bool | None:
    try:
        return store.consume(key, time.time() + 3600, keep)
    except Unavailable:
        return None


@pytest.mark.redis
def test_the_first_verify_after_a_dropped_connection_is_answered(
    redis_url: str, namespace: str, witness: SqliteStore, tcp_proxy: Callable[[str], Any]
) -> None:
    """The group commit's connection closed by the other end while idle (a Redis restart, a relay
    dropping it): the next consumption is answered on a new connection, not failed (it was UNAVAILABLE,
    so every worker's first Verify after each Redis restart failed); a Redis that stays away still fails
    it closed."""
    relay = tcp_proxy(redis_url)
    store = RedisNonceStore.from_url(relay.url(redis_url), witness=witness, namespace=namespace)
    try:
        expires = time.time() + 60
        assert store.consume(b"before", expires)
        for round_ in range(3):
            relay.cut()
            relay.restore()
            assert store.consume(f"after-{round_}".encode(), expires)
            assert not store.consume(f"after-{round_}".encode(), expires)
        relay.cut()
        with pytest.raises(Unavailable):
            store.consume(b"gone", expires)
        relay.restore()
        assert store.consume(b"back", expires)
    finally:
        store.close()
