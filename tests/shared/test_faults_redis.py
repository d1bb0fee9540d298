"""Redis restarted during a Verify load: Verify fails closed while it is down (UNAVAILABLE, never an
accept), heals by itself, and no token is accepted twice after it returns, even though this Redis
keeps nothing across a restart (no persistence: every consumed nonce is forgotten). The server sees
the loss and refuses every token that was live before it (as REPLAYED: it may have been used) until
such tokens have expired: max lifetime + twice the skew, 25 s with this test's settings.

The Redis is the test's own (tests/helpers/services.py); the database is a fresh one on the shared PostgreSQL."""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ecard import Purpose, Reason
from ecard.testing import EcardServer, World
from tests.helpers.load import Load, verify_load
from tests.helpers.services import own_redis

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@dataclass
class Restarted:
    world: World
    server: EcardServer
    load: Load
    down: float  # when Redis was killed
    restarting: float  # when it was started again
    up: float  # when it answered again


LIFETIME_S, SKEW_S, TTL_S = 20, 2, 15


@pytest.fixture(scope="module")
def restarted(pg_module_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restarted]:
    """A Verify load on PostgreSQL + the test's own Redis, with Redis killed for a second midway."""
    config = tmp_path_factory.mktemp("redis-restart") / "ecard.toml"
    # No rate limit: four callers spinning on quick refusals pass the default 1,000 calls/s of one
    # principal (RESOURCE_EXHAUSTED, right but not what this test watches).
    config.write_text(f"max_token_lifetime_s = {LIFETIME_S}\nclock_skew_s = {SKEW_S}\nprincipal_calls_per_s = 0\n")
    with own_redis() as redis_server, EcardServer(db=pg_module_url, redis=redis_server.url,
                                                  extra_args=["--config", str(config)]) as server:
        world = World.seed(server.target, cards=4)
        load = verify_load(world, callers=4, ttl_seconds=TTL_S).start()
        try:
            load.wait_for(100, outcome="REASON_OK")
            down = time.monotonic()
            redis_server.stop()
            load.wait_for(20, outcome="UNAVAILABLE", since=down, timeout=20)
            time.sleep(1.0)
            restarting = time.monotonic()
            redis_server.start()
            up = time.monotonic()
            recovery_s = load.wait_for(1, outcome="REASON_OK", since=up, timeout=LIFETIME_S + 2 * SKEW_S + 10)
            load.wait_for(50, outcome="REASON_OK", since=up, timeout=30)
        finally:
            load.stop()
        outcomes = collections.Counter(a.outcome for a in load.answers)
        print(f"\nredis restart: {len(load.answers)} verifies, outcomes {dict(outcomes)}, down {up - down:.2f} s, "
              f"first accept {recovery_s:.2f} s after it was back (tokens live before it refused meanwhile)")
        assert '"nonce_memory_lost"' in server.logs()
        yield Restarted(world, server, load, down, restarting, up)


def test_redis_down_fails_closed_and_heals_without_a_restart(restarted: Restarted) -> None:
    answers = restarted.load.answers
    assert {a.outcome for a in answers} <= {"REASON_OK", "UNAVAILABLE", "REASON_REPLAYED"}  # never INTERNAL
    assert [a for a in answers if a.outcome == "REASON_REPLAYED" and a.at < restarted.restarting] == []
    # Nothing accepted from the moment Redis was gone (a call already past its SET NX may still land in
    # the first few milliseconds) until it was started again; accepts again after (the fixture waited).
    down, restarting = restarted.down, restarted.restarting
    assert [a for a in answers if a.outcome == "REASON_OK" and down + 0.05 < a.at < restarting] == []
    assert sum(1 for a in answers if a.outcome == "UNAVAILABLE" and down <= a.at) >= 20
    assert sum(1 for a in answers if a.outcome == "REASON_OK" and a.at >= restarted.up) >= 50
    assert restarted.server.process is not None and restarted.server.process.poll() is None


def test_no_token_is_accepted_twice_after_redis_returns_empty(restarted: Restarted) -> None:
    accepted = [a.key for a in restarted.load.answers if a.outcome == "REASON_OK"]
    with restarted.world.pharmacy() as pos:
        again = collections.Counter(pos.verify(token, purpose=Purpose.IDENTITY).reason for token in accepted)
    assert again == {Reason.REPLAYED: len(accepted)}, again
