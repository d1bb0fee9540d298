"""The rate limit holds across replicas (issue 17): two `ecard serve` processes on one PostgreSQL and
one Redis share one bucket per principal. Before, each process counted on its own, so N processes let
a principal through N times its limit.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecard import PharmacyClient, ResourceExhausted
from ecard.testing import EcardServer, World
from ecard.v1 import types_pb2 as t

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
RATE, BURST, SECONDS = 100, 50, 3.0


@pytest.fixture(scope="module")
def replicas(pg_module_url: str, redis_module_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[EcardServer, EcardServer]]:
    config = Path(tmp_path_factory.mktemp("shared-limits")) / "limits.toml"
    config.write_text(f'redis_namespace = "ecard-test-{uuid.uuid4().hex[:12]}"\n'
                      f"principal_calls_per_s = {RATE}\nprincipal_burst = {BURST}\n")
    args = ["--config", str(config)]
    with EcardServer(db=pg_module_url, redis=redis_module_url, extra_args=args) as a, \
            EcardServer(db=pg_module_url, redis=redis_module_url, extra_args=args) as b:
        yield a, b


def test_one_principal_gets_its_limit_across_two_replicas_within_ten_percent(
        replicas: tuple[EcardServer, EcardServer]) -> None:
    """Sends Verify as fast as 4 threads can, 2 on each replica, for 3 s, as one merchant. Before:
    about twice the limit was admitted (each replica's own bucket). Now 100/s x 3 s + the burst of 50,
    within 10 %."""
    a, b = replicas
    world = World.seed(a.target, cards=1)
    token = world.mint(0)  # admitted calls answer OK once, then REPLAYED: each one charged all the same
    admitted = [0] * 4
    refused = [0] * 4

    def hammer(n: int, target: str) -> None:
        with PharmacyClient(target, merchant_id=world.pharmacy_id) as pos:
            while time.monotonic() < stop:
                try:
                    pos.verify(token, purpose=t.PURPOSE_IDENTITY)
                    admitted[n] += 1
                except ResourceExhausted:
                    refused[n] += 1

    time.sleep(BURST / RATE)  # the seeding's calls were the operator's and the channel's: the bucket is full
    stop = time.monotonic() + SECONDS
    threads = [threading.Thread(target=hammer, args=(n, (a, b)[n % 2].target)) for n in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    allowed = RATE * elapsed + BURST
    total = sum(admitted)
    per_replica = (admitted[0] + admitted[2], admitted[1] + admitted[3])
    print(f"admitted {total} in {elapsed:.2f} s ({per_replica} per replica), allowed {allowed:.0f}, "
          f"refused {sum(refused)}")
    assert sum(refused) > total  # the merchant really pushed past its limit
    assert 0.9 * allowed <= total <= 1.1 * allowed
    assert min(per_replica) > 0.2 * total  # both replicas served it
