"""Limits cannot be bypassed by streams or batches (issue 17).

As reproduced: VerifyStream items were never charged (3,176 items/s through a 100/s limit) and a
VerifyBatch cost at most the bucket's size. The server here allows 100 calls/s per principal with a
bucket of 50; the merchant sends as fast as it can.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecard import ResourceExhausted, verify_request
from ecard.testing import EcardServer, World
from ecard.v1 import types_pb2 as t

pytestmark = pytest.mark.serial  # rates against a 100/s limit: alone
RATE, BURST = 100, 50


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    config = Path(tmp_path_factory.mktemp("limits")) / "limits.toml"
    config.write_text(f"principal_calls_per_s = {RATE}\nprincipal_burst = {BURST}\n")
    with EcardServer(extra_args=["--config", str(config)]) as server:
        yield World.seed(server.target, cards=1)


def test_stream_items_are_charged_one_by_one(world: World) -> None:
    """Sends 300 VerifyStream items at once on one stream. Before: all answered in a fraction of a
    second (3,176 items/s). Now the stream is paced to the limit: (300 - 50) / 100 = 2.5 s at least."""
    token = world.mint(0)  # one token: the first item is accepted, the others are REPLAYED (each charged)
    requests = [verify_request(token, purpose=t.PURPOSE_IDENTITY, request_id=f"s{n}") for n in range(300)]
    started = time.perf_counter()
    with world.pharmacy() as pos:
        answers = list(pos.verify_stream(iter(requests), timeout=30))
    seconds = time.perf_counter() - started
    assert len(answers) == 300
    rate = (len(answers) - BURST) / seconds
    assert seconds >= (300 - BURST) / RATE * 0.95 and rate <= RATE * 1.1, (seconds, rate)
    print(f"300 stream items in {seconds:.2f} s: {rate:.0f} items/s past the burst (limit {RATE}/s)")


def test_a_batch_costs_every_item(world: World) -> None:
    """Sends a VerifyBatch of 200 items, then another at once. Before: each cost at most the bucket
    (50), so the second passed half a second later. Now the first leaves the bucket 150 in debt and
    the second is refused until the bucket is back to 50: retry_after_ms about 1.5 s."""
    time.sleep(BURST / RATE + 0.1)  # the bucket is full again
    token = world.mint(0)
    batch = [verify_request(token, purpose=t.PURPOSE_IDENTITY) for _ in range(200)]
    with world.pharmacy() as pos:
        assert len(pos.verify_batch(batch)) == 200
        time.sleep(0.5)
        with pytest.raises(ResourceExhausted) as refused:
            pos.verify_batch(batch)
    assert refused.value.reason == "RATE_LIMITED"
    assert 1_200 <= int(refused.value.metadata["retry_after_ms"]) <= 2_000
