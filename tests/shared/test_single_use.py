"""Single use against what the stores underneath may do: a Redis that restarts empty while processes
start and restart in every order, a Redis that may evict keys, records that could crowd out nonces, and
PostgreSQL without Redis (one process only, held by an advisory lock).

The Redis servers are the tests' own (tests/helpers/services.py: killed, started empty, configured at
will); the databases are fresh ones on the shared PostgreSQL."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ecard import (
    DrugClass,
    EcardError,
    FailedPrecondition,
    PharmacyClient,
    Purpose,
    Reason,
    Unavailable,
    line_item,
)
from ecard.testing import EcardServer, World, shared_secret_file
from ecard_server.storage.postgres import INSTANCE_LOCK
from ecard_server.storage.redis_nonces import RedisNonceStore
from ecard_server.storage.redis_records import RedisVerificationRecords
from ecard_server.storage.sqlite import SqliteStore
from tests.helpers.ledger import assert_account_equals_ledger, database, settlement_count
from tests.helpers.polling import until
from tests.helpers.services import OwnRedis, own_postgres, own_redis
from tests.helpers.settling import SettleLoad

pytestmark = [pytest.mark.redis]

# Short enough that a loss of Redis's memory is waited out in seconds, long enough that every token
# accepted in a step is still live when the next steps show it again.
LIFETIME_S, SKEW_S, TTL_S = 15, 1, 15
SETTLE = {"purpose": Purpose.MEDICAL_SETTLEMENT}


def _config(folder: Path, namespace: str) -> list[str]:
    path = folder / f"{namespace}.toml"
    path.write_text(f'redis_namespace = "{namespace}"\nmax_token_lifetime_s = {LIFETIME_S}\n'
                    f"clock_skew_s = {SKEW_S}\n")
    return ["--config", str(path)]


def _verdict(server: EcardServer, world: World, token: str, within: float = 15.0) -> int:
    """The server's verdict on `token` (UNAVAILABLE while it reconnects to Redis is waited out)."""
    deadline = time.monotonic() + within
    with PharmacyClient(server.target, merchant_id=world.pharmacy_id) as pos:
        while True:
            try:
                return int(pos.verify(token, **SETTLE).reason)
            except EcardError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


class Deployment:
    """Two `ecard serve` processes on one PostgreSQL database and the test's own Redis."""

    def __init__(self, pg_url: str, redis_server: OwnRedis, args: list[str]) -> None:
        self.redis = redis_server
        self.servers = [EcardServer(db=pg_url, redis=redis_server.url, extra_args=args) for _ in range(2)]
        self.accepted: list[str] = []
        self.world: World | None = None

    def accept_new_token(self, on: int) -> None:
        """A fresh token accepted on server `on` (after a loss of memory, tokens are refused until one
        minted after it can no longer be confused with one live before it: a few seconds here)."""
        assert self.world is not None
        deadline = time.monotonic() + LIFETIME_S + 2 * SKEW_S + 10
        while True:
            token = self.world.mint(0, ttl_seconds=TTL_S)
            if _verdict(self.servers[on], self.world, token) == Reason.OK:
                self.accepted.append(token)
                return
            assert time.monotonic() < deadline, "no token accepted again after the loss"
            time.sleep(0.5)

    def no_token_twice(self) -> None:
        assert self.world is not None
        for server in self.servers:
            if server.process is None or server.process.poll() is not None:
                continue
            for token in self.accepted:
                assert _verdict(server, self.world, token) != Reason.OK, "a token was accepted twice"

    def restart_redis_empty(self) -> None:
        self.redis.stop()  # kill -9: no persistence, every consumed nonce forgotten
        self.redis.start()

    def restart(self, n: int) -> None:
        self.servers[n].kill()
        self.servers[n].start()


@pytest.mark.postgres
@pytest.mark.slow
def test_no_token_is_accepted_twice_whatever_the_order_of_redis_restarts_and_process_starts(
    pg_url: str, tmp_path: Path
) -> None:
    with own_redis() as redis_server:
        deployment = Deployment(pg_url, redis_server, _config(tmp_path, f"ecard-test-{uuid.uuid4().hex[:12]}"))
        a, b = deployment.servers
        try:
            a.start()
            deployment.world = World.seed(a.target, cards=1)
            # 1. Redis restarts empty, then a process starts that never ran (the reproduction).
            deployment.accept_new_token(0)
            deployment.restart_redis_empty()
            b.start()
            deployment.no_token_twice()
            # 2. Redis restarts empty, then one process restarts before any Verify reaches the new Redis.
            deployment.accept_new_token(1)
            deployment.restart_redis_empty()
            deployment.restart(0)
            deployment.no_token_twice()
            # 3. A process restarts, then Redis restarts empty, then the other process restarts.
            deployment.accept_new_token(0)
            deployment.restart(0)
            deployment.restart_redis_empty()
            deployment.restart(1)
            deployment.no_token_twice()
            # 4. Both processes down, Redis restarts empty, both start again, one after the other.
            deployment.accept_new_token(1)
            a.kill()
            b.kill()
            deployment.restart_redis_empty()
            b.start()
            a.start()
            deployment.no_token_twice()
            # 5. Redis restarts empty under running processes (seen at the first consumption after it).
            deployment.accept_new_token(0)
            deployment.restart_redis_empty()
            deployment.no_token_twice()
            deployment.accept_new_token(1)  # and single use works again afterwards
            deployment.no_token_twice()
            assert '"nonce_memory_lost"' in a.logs() + b.logs()
        finally:
            for server in deployment.servers:
                server.stop()


# -- a Redis that may evict keys ------------------------------------------------------------------
def _serve(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """`ecard serve` expected to refuse to start: its exit status and output."""
    return subprocess.run([sys.executable, "-m", "ecard_server.cli", "serve", "--listen", "127.0.0.1:0", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_serve_refuses_a_redis_that_may_evict_keys(tmp_path: Path) -> None:
    with own_redis("--maxmemory", "20mb", "--maxmemory-policy", "allkeys-lru") as evicting:
        refused = _serve("--db", f"sqlite:///{tmp_path}/e.db", "--redis", evicting.url)
    assert refused.returncode == 2, refused.stderr
    line = refused.stderr.strip()
    assert "\n" not in line and "maxmemory-policy allkeys-lru" in line and "noeviction" in line


@contextlib.contextmanager
def _served_on_own_redis(folder: Path, *redis_args: str) -> Iterator[tuple[OwnRedis, EcardServer, World]]:
    """One `ecard serve` (SQLite) on the test's own Redis, and a world seeded on it."""
    with own_redis(*redis_args) as redis_server, EcardServer(
        db=f"sqlite:///{folder}/e.db", redis=redis_server.url,
        extra_args=_config(folder, f"ecard-test-{uuid.uuid4().hex[:12]}"),
    ) as server:
        yield redis_server, server, World.seed(server.target, cards=1)


def test_a_redis_that_starts_evicting_later_fails_closed_until_it_stops(tmp_path: Path) -> None:
    """The policy is asked again by readiness twice a second and on every new connection: a Redis
    reconfigured (or replaced by one that evicts) makes Verify UNAVAILABLE (NONCE_STORE_EVICTS), never
    an accept, within a second; back to noeviction, it heals without a restart."""
    with _served_on_own_redis(tmp_path, "--maxmemory", "20mb") as (redis_server, server, world):
        admin = redis.Redis(port=redis_server.port)
        with PharmacyClient(server.target, merchant_id=world.pharmacy_id) as pos:
            assert pos.verify(world.mint(0, ttl_seconds=TTL_S), **SETTLE).reason == Reason.OK
            admin.config_set("maxmemory-policy", "allkeys-lru")  # the connections stay up
            _, seconds = until(lambda: _refusal(pos, world.mint(0, ttl_seconds=TTL_S), accepts=True), within=5,
                               what="Verify refused")
            assert seconds < 2.5
            token = world.mint(0, ttl_seconds=TTL_S)
            admin.client_kill_filter(_type="normal", skip_me=True)  # and on new connections
            reasons = [_refusal(pos, token) for _ in range(4)]
            # The rate limits' Redis client refuses an evicting Redis too (LIMITS_UNAVAILABLE, before Verify).
            assert set(reasons) <= {"NONCE_STORE_UNAVAILABLE", "NONCE_STORE_EVICTS", "LIMITS_UNAVAILABLE"}, reasons
            assert None not in reasons and "NONCE_STORE_EVICTS" in reasons, reasons
            admin.config_set("maxmemory-policy", "noeviction")
            until(lambda: True if _accepts(pos, token) else None, within=10, what="Verify heals")
        admin.close()


def _refusal(pos: PharmacyClient, token: str, accepts: bool = False) -> str | None:
    """The reason Verify is refused UNAVAILABLE for, None if it answered (an accept fails the test
    unless `accepts`: before the change was noticed)."""
    try:
        answer = pos.verify(token, **SETTLE)
    except Unavailable as exc:
        return exc.reason
    assert accepts or answer.reason != Reason.OK, "accepted while Redis may evict"
    return None


def _accepts(pos: PharmacyClient, token: str) -> bool:
    try:
        return pos.verify(token, **SETTLE).reason == Reason.OK
    except Unavailable:
        return False


def test_junk_verify_calls_leave_nothing_in_redis(tmp_path: Path) -> None:
    """The issue's eviction attack: junk Verify calls with request_ids used to leave a record each (360
    bytes for 300 s). Rejected calls leave nothing now; the nonces have Redis to themselves."""
    with _served_on_own_redis(tmp_path) as (redis_server, server, world):
        keys = redis.Redis(port=redis_server.port)
        with PharmacyClient(server.target, merchant_id=world.pharmacy_id) as pos:
            token = world.mint(0, ttl_seconds=TTL_S)
            assert pos.verify(token, **SETTLE).reason == Reason.OK
            before = keys.dbsize()
            forged = world.mint(0, ttl_seconds=TTL_S)[:-4] + "AAAA"
            for n in range(300):
                junk = (forged, world.mint(0, issued_at=int(time.time()) - 3600, ttl_seconds=TTL_S), token)[n % 3]
                assert pos.verify(junk, request_id=f"junk-{n}", **SETTLE).reason != Reason.OK
            assert keys.dbsize() == before
        keys.close()


def test_redis_records_of_one_merchant_never_push_out_anothers(tmp_path: Path) -> None:
    with own_redis() as redis_server:
        records = RedisVerificationRecords(redis_server.url, 300, "rec", per_merchant=5)
        try:
            records.record("good", "g1", b"kept")
            for n in range(50):
                records.record("evil", f"e{n}", b"junk %d" % n)
            assert records.find("good", "g1") == b"kept"
            assert [n for n in range(50) if records.find("evil", f"e{n}")] == [45, 46, 47, 48, 49]
            client = redis.Redis(port=redis_server.port)
            assert client.hlen("rec:verification:{evil}") == client.zcard("rec:verification-age:{evil}") == 5
            assert records.find("evil", "e1") is None and records.find("good", "never") is None
            client.close()
        finally:
            records.close()


def test_nonce_store_without_a_durable_record_declares_the_loss(tmp_path: Path) -> None:
    """The witness (the deployment's SQL store) says that this namespace has consumed nonces: only the
    first start of a deployment may tell an empty Redis "nothing was lost"."""
    with own_redis() as redis_server:
        witness = SqliteStore(str(tmp_path / "witness.db"))
        try:
            first = RedisNonceStore.from_url(redis_server.url, witness=witness, namespace="ns", horizon_s=60)
            assert first.consume(b"n1", time.time() + 30)  # a new deployment: nothing to refuse
            first.close()
            assert witness.meta_value(RedisNonceStore.witness_name("ns")) == b"1"
            redis_server.stop()
            redis_server.start()
            again = RedisNonceStore.from_url(redis_server.url, witness=witness, namespace="ns", horizon_s=60)
            assert not again.consume(b"n1", time.time() + 30)  # might have been used: refused
            assert not again.consume(b"n2", time.time() + 30)
            other = RedisNonceStore.from_url(redis_server.url, witness=witness, namespace="other", horizon_s=60)
            assert other.consume(b"n1", time.time() + 30)  # another namespace never consumed here
            again.close()
            other.close()
        finally:
            witness.close()


# -- PostgreSQL without Redis ---------------------------------------------------------------------
@pytest.mark.postgres
def test_postgresql_without_redis_is_one_process_and_says_so(pg_url: str) -> None:
    secret = ["--secret-file", shared_secret_file()]
    refused = _serve("--db", pg_url, *secret)
    assert refused.returncode == 2 and "\n" not in refused.stderr.strip()
    assert "--redis" in refused.stderr and "--single-instance" in refused.stderr
    with EcardServer(db=pg_url) as first:  # ecard.testing passes --single-instance here
        assert "--single-instance" in first.command()
        second = _serve("--db", pg_url, "--single-instance", *secret)
        assert second.returncode == 2 and "\n" not in second.stderr.strip()
        assert "another ecard serve --single-instance holds this database" in second.stderr
        world = World.seed(first.target, cards=1)
        token = world.mint(0, ttl_seconds=TTL_S)
        assert _verdict(first, world, token) == Reason.OK
        first.kill()  # PostgreSQL frees the lock with the dead process's session
        first.start()
        # Serving again; what the dead process consumed is unknown, so its tokens are refused.
        assert _verdict(first, world, token) == Reason.REPLAYED
        assert '"nonce_memory_lost"' in first.logs()
    both = _serve("--db", pg_url, "--single-instance", "--redis", "redis://127.0.0.1:6379/0", *secret)
    assert both.returncode == 2 and "--single-instance is for --db postgresql" in both.stderr



# -- a Settle by token cut by a crash -------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.slow
def test_settle_by_token_cut_by_sigkill_settles_when_retried_elsewhere(pg_url: str, tmp_path: Path) -> None:
    """Counters settle by token on replica A, which is SIGKILLed under the load: the Settles in flight
    had their nonces consumed in Redis and never committed. Each retried on replica B with its key and
    token settles (never REPLAYED), each key ends with exactly one settlement, and the account equals
    its ledger. The same token under another key, or by another merchant, is still REPLAYED."""
    with own_redis() as redis_server:
        args = _config(tmp_path, f"ecard-test-{uuid.uuid4().hex[:12]}")
        a = EcardServer(db=pg_url, redis=redis_server.url, extra_args=args).start()
        b = EcardServer(db=pg_url, redis=redis_server.url, extra_args=args).start()
        try:
            _settle_through_a_crash(a, b, pg_url)
        finally:
            a.stop()
            b.stop()


def _settle_through_a_crash(a: EcardServer, b: EcardServer, pg_url: str) -> None:
    world = World.seed(a.target, cards=1, balance_fen=10_000_000)
    items = [line_item("A1", "insulin", DrugClass.A, 123)]
    load = SettleLoad(world, a.target, items, counters=8, timeout=3.0, ttl_seconds=TTL_S)
    load.run(a.kill, after=60, within=60)
    acknowledged, attempted, cut = load.acknowledged, load.attempted, load.cut
    assert cut, "no Settle was in flight when A died"
    replayed = []
    with PharmacyClient(b.target, merchant_id=world.pharmacy_id) as pos:
        for key, token in attempted.items():
            try:
                record = pos.settle(items, idempotency_key=key, token=token)
            except FailedPrecondition as exc:
                replayed.append((key, exc.reason))
                continue
            if key in acknowledged:
                assert record.settlement_id == acknowledged[key]
        assert replayed == [], f"{len(replayed)} of {len(cut)} cut Settles answered {replayed[:3]} on retry"
        some_token = attempted[cut[0]]
        with pytest.raises(FailedPrecondition) as other_key:
            pos.settle(items, idempotency_key="another-key", token=some_token)
        assert other_key.value.reason == "REPLAYED"
    with PharmacyClient(b.target, merchant_id=world.hospital_id) as hospital, \
            pytest.raises(FailedPrecondition) as other_merchant:
        hospital.settle(items, idempotency_key=cut[0], token=some_token)
    assert other_merchant.value.reason == "REPLAYED"
    print(f"\nsettle by token through a SIGKILL: {len(attempted)} attempted, {len(acknowledged)} acknowledged, "
          f"{len(cut)} cut and retried on another replica: 0 REPLAYED")
    with database(pg_url) as store:
        assert settlement_count(store, world.pharmacy_id) == len(attempted)
        on_b = dataclasses.replace(world, target=b.target)  # A is dead: the balance is read on B
        assert assert_account_equals_ledger(store, on_b) == 10_000_000 - 123 * len(attempted)


def _instance_lock_held(url: str) -> bool:
    """Whether a session holds the database's single-instance advisory lock (pg_locks shows a 64-bit
    key as its high and low 32 bits)."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                           "AND classid = %s AND objid = %s AND objsubid = 1",
                           (INSTANCE_LOCK >> 32, INSTANCE_LOCK & 0xFFFFFFFF)).fetchone()
    return bool(row and row[0])


@pytest.mark.postgres
@pytest.mark.slow
def test_the_single_instance_lock_is_taken_again_after_postgresql_restarts(tmp_path: Path) -> None:
    """A restarted PostgreSQL ends the session that held the lock: the running process takes it again
    (within a second), so a second process started afterwards is still refused."""
    with own_postgres() as pg, EcardServer(db=pg.url) as first:
        world = World.seed(first.target, cards=1)
        pg.stop()
        pg.start()
        until(lambda: _instance_lock_held(pg.url) or None, within=5.0, what="the lock taken again")
        second = _serve("--db", pg.url, "--single-instance", "--secret-file", shared_secret_file())
        assert second.returncode == 2 and "another ecard serve --single-instance holds" in second.stderr
        assert _verdict(first, world, world.mint(0, ttl_seconds=TTL_S)) == Reason.OK
        assert "single_instance_lost" not in first.logs()
