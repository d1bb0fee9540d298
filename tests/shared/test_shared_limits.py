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

from ecard import ClientOptions, PharmacyClient, ResourceExhausted
from ecard.testing import EcardServer, World
from ecard.v1 import types_pb2 as t
from tests.helpers.deployment import children_of
from tests.helpers.polling import until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.serial]  # rates within 10 %: alone
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


def hammer(
    targets: list[str], world: World, *, threads: int = 4, separate: bool = False
) -> tuple[list[int], int, float]:
    """One merchant calling Verify as fast as `threads` threads can (thread n on targets[n % len]) for
    SECONDS; with `separate`, a new connection every 50 calls (so `--workers` spreads them). Returns the
    calls admitted per thread, the calls refused and the seconds it took."""
    token = world.mint(0)  # admitted calls answer OK once, then REPLAYED: each one charged all the same
    admitted, refused = [0] * threads, [0] * threads
    options = ClientOptions(channel_options=(("grpc.use_local_subchannel_pool", 1),)) if separate else None

    def run(n: int, stop: float) -> None:
        while time.monotonic() < stop:
            with PharmacyClient(targets[n % len(targets)], merchant_id=world.pharmacy_id, options=options) as pos:
                for _ in range(50 if separate else 1 << 30):
                    if time.monotonic() >= stop:
                        return
                    try:
                        pos.verify(token, purpose=t.PURPOSE_IDENTITY)
                        admitted[n] += 1
                    except ResourceExhausted:
                        refused[n] += 1

    time.sleep(BURST / RATE)  # the seeding's calls were the operator's and the channel's: the bucket is full
    stop = time.monotonic() + SECONDS
    workers = [threading.Thread(target=run, args=(n, stop)) for n in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return admitted, sum(refused), time.monotonic() - started


def test_one_principal_gets_its_limit_across_two_replicas_within_ten_percent(
        replicas: tuple[EcardServer, EcardServer]) -> None:
    """Sends Verify as fast as 4 threads can, 2 on each replica, for 3 s, as one merchant. Before:
    about twice the limit was admitted (each replica's own bucket). Now 100/s x 3 s + the burst of 50,
    within 10 %."""
    a, b = replicas
    world = World.seed(a.target, cards=1)
    admitted, refused, elapsed = hammer([a.target, b.target], world)
    allowed = RATE * elapsed + BURST
    total = sum(admitted)
    per_replica = (admitted[0] + admitted[2], admitted[1] + admitted[3])
    print(f"admitted {total} in {elapsed:.2f} s ({per_replica} per replica), allowed {allowed:.0f}, refused {refused}")
    assert refused > total  # the merchant really pushed past its limit
    assert 0.9 * allowed <= total <= 1.1 * allowed
    assert min(per_replica) > 0.2 * total  # both replicas served it


def test_one_principal_gets_its_limit_across_workers_within_ten_percent(
        pg_url: str, redis_url: str, tmp_path: Path) -> None:
    """The same flood on `serve --workers 2`, a new connection every 50 calls (the kernel spreads them
    over both workers). Before: each worker counted on its own."""
    config = tmp_path / "limits.toml"
    config.write_text(f'redis_namespace = "ecard-test-{uuid.uuid4().hex[:12]}"\n'
                      f"principal_calls_per_s = {RATE}\nprincipal_burst = {BURST}\n")
    with EcardServer(db=pg_url, redis=redis_url, extra_args=["--workers", "2", "--config", str(config)]) as server:
        assert server.process is not None
        until(lambda: True if len(children_of(server.process.pid)) == 2 else None, within=10, what="two workers")
        world = World.seed(server.target, cards=1)
        time.sleep(1.0)  # change notices reach the other worker
        admitted, refused, elapsed = hammer([server.target], world, separate=True)
    allowed = RATE * elapsed + BURST
    total = sum(admitted)
    print(f"--workers 2: admitted {total} in {elapsed:.2f} s, allowed {allowed:.0f}, refused {refused}")
    assert refused > total
    assert 0.9 * allowed <= total <= 1.1 * allowed
