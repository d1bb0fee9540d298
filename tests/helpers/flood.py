"""A hostile merchant for the overload test, in its own process (its CPU is not the victim's):
VerifyBatch calls at a fixed rate (open loop, at most 64 in flight), for a bounded time.

    python tests/helpers/flood.py TARGET MERCHANT_ID TOKEN RATE SECONDS BATCH

Prints one JSON line: answers by status code, and the p50 of the refusals in ms."""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import time

import grpc.aio

from ecard.v1 import types_pb2, verifier_pb2, verifier_pb2_grpc


async def flood(target: str, merchant_id: str, token: str, rate: float, seconds: float, batch: int) -> dict:
    item = verifier_pb2.VerifyRequest(token=token, purpose=types_pb2.PURPOSE_IDENTITY)
    request = verifier_pb2.VerifyBatchRequest(requests=[item] * batch)
    metadata = (("x-ecard-principal", f"merchant:{merchant_id}"),)
    codes: collections.Counter[str] = collections.Counter()
    refused_ms: list[float] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = verifier_pb2_grpc.VerifierStub(channel)
        slots = asyncio.Semaphore(64)

        async def one() -> None:
            start = time.perf_counter()
            try:
                await stub.VerifyBatch(request, metadata=metadata, timeout=30)
                codes["OK"] += 1
            except grpc.aio.AioRpcError as exc:
                codes[exc.code().name] += 1
                if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    refused_ms.append((time.perf_counter() - start) * 1000)
            finally:
                slots.release()

        tasks = []
        begin = time.perf_counter()
        for n in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, begin + n / rate - time.perf_counter()))
            if slots.locked():
                codes["SKIPPED"] += 1
                continue
            await slots.acquire()
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    refused_ms.sort()
    return {"codes": dict(codes), "refused_p50_ms": refused_ms[len(refused_ms) // 2] if refused_ms else None}


if __name__ == "__main__":
    target, merchant_id, token, rate, seconds, batch = sys.argv[1:7]
    print(json.dumps(asyncio.run(flood(target, merchant_id, token, float(rate), float(seconds), int(batch)))))
