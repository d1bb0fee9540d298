"""The SDK micro-batcher against a real server: each caller gets its own answer, errors reach everyone."""

from __future__ import annotations

import asyncio

import pytest

from ecard import AsyncPharmacyClient, PermissionDenied, VerifyBatcher
from ecard.testing import World
from ecard.v1 import types_pb2 as t


def test_concurrent_calls_share_batches_and_get_their_own_answers(world: World) -> None:
    tokens = [world.mint(i % 3) for i in range(300)]

    async def scenario() -> tuple[list, int]:
        async with AsyncPharmacyClient(world.target, merchant_id=world.pharmacy_id) as client:
            batcher = VerifyBatcher(client)
            answers = await asyncio.gather(
                *(batcher.verify(tok, purpose=t.PURPOSE_IDENTITY, request_id=f"r{i}") for i, tok in enumerate(tokens)),
                batcher.verify(tokens[0], purpose=t.PURPOSE_IDENTITY, request_id="again"),
            )
            return answers, batcher.batches_sent

    answers, batches = asyncio.run(scenario())
    assert batches <= 10  # 301 calls in a handful of VerifyBatch calls, not 301 Verify calls
    for i, answer in enumerate(answers[:300]):
        assert (answer.request_id, answer.card.ecard_id) == (f"r{i}", world.ecard_ids[i % 3])
    reasons = sorted([answers[0].reason, answers[300].reason])  # same token twice: one accept, one replay
    assert reasons == sorted([t.REASON_OK, t.REASON_REPLAYED])
    assert all(a.reason == t.REASON_OK for a in answers[1:300])


def test_max_batch_flushes_at_once(world: World) -> None:
    async def scenario() -> int:
        async with AsyncPharmacyClient(world.target, merchant_id=world.pharmacy_id) as client:
            batcher = VerifyBatcher(client, window=0.05, max_batch=10)
            await asyncio.gather(*(batcher.verify(world.mint(0), purpose=t.PURPOSE_IDENTITY) for _ in range(25)))
            return batcher.batches_sent

    assert asyncio.run(scenario()) == 3


def test_an_error_of_the_batch_reaches_every_caller(world: World) -> None:
    async def scenario() -> list:
        async with AsyncPharmacyClient(world.target, merchant_id="not-designated") as client:
            batcher = VerifyBatcher(client)
            return await asyncio.gather(
                *(batcher.verify(world.mint(0), purpose=t.PURPOSE_IDENTITY) for _ in range(5)), return_exceptions=True
            )

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, PermissionDenied) for o in outcomes), outcomes


def test_a_cancelled_caller_leaves_the_others_alone(world: World) -> None:
    async def scenario() -> list:
        async with AsyncPharmacyClient(world.target, merchant_id=world.pharmacy_id) as client:
            batcher = VerifyBatcher(client, window=0.05)
            quitter = asyncio.create_task(batcher.verify(world.mint(0), purpose=t.PURPOSE_IDENTITY))
            stayers = [asyncio.create_task(batcher.verify(world.mint(1), purpose=t.PURPOSE_IDENTITY)) for _ in range(3)]
            await asyncio.sleep(0)
            quitter.cancel()
            answers = await asyncio.gather(*stayers)
            await batcher.drain()
            return answers

    assert [a.reason for a in asyncio.run(scenario())] == [t.REASON_OK] * 3


@pytest.mark.parametrize(("window", "max_batch"), [(-1, 10), (0.5, 10), (0.002, 0), (0.002, 1001)])
def test_bad_settings_are_refused(window: float, max_batch: int) -> None:
    with pytest.raises(ValueError):
        VerifyBatcher(None, window=window, max_batch=max_batch)  # type: ignore[arg-type]
