"""Verification records of a shared deployment in Redis: any replica answers GetVerification.

`SET <namespace>:verification:<merchant>\\x00<request_id> <answer> EX <ttl>`; one key per record, so
Redis expires them itself. Threads use a blocking client, the event loop an asyncio one (made on the
loop that first needs it, closed by `aclose`). Any Redis error is Unavailable.
"""

from __future__ import annotations

import math

import redis

from ecard.errors import Unavailable
from ecard_server.storage.redis_state import connect, connect_async

_ERRORS = (redis.RedisError, OSError)


def _unavailable(exc: BaseException) -> Unavailable:
    return Unavailable(f"verification records unavailable: {type(exc).__name__}", "RECORDS_UNAVAILABLE")


class RedisVerificationRecords:
    def __init__(self, url: str, ttl_s: float, namespace: str = "ecard") -> None:
        self._url = url
        self._client = connect(url)
        self._async_client: redis.asyncio.Redis | None = None
        self._prefix = f"{namespace}:verification:".encode()
        self._ttl = max(1, math.ceil(ttl_s))

    def _key(self, merchant_id: str, request_id: str) -> bytes:
        return self._prefix + merchant_id.encode() + b"\x00" + request_id.encode()

    def record(self, merchant_id: str, request_id: str, answer: bytes) -> None:
        try:
            self._client.set(self._key(merchant_id, request_id), answer, ex=self._ttl)
        except _ERRORS as exc:
            raise _unavailable(exc) from exc

    async def record_async(self, merchant_id: str, request_id: str, answer: bytes) -> None:
        client = self._async_client
        if client is None:
            client = self._async_client = connect_async(self._url)
        try:
            await client.set(self._key(merchant_id, request_id), answer, ex=self._ttl)
        except _ERRORS as exc:
            raise _unavailable(exc) from exc

    def find(self, merchant_id: str, request_id: str) -> bytes | None:
        try:
            found = self._client.get(self._key(merchant_id, request_id))
        except _ERRORS as exc:
            raise _unavailable(exc) from exc
        return found.encode() if isinstance(found, str) else found

    async def aclose(self) -> None:
        client, self._async_client = self._async_client, None
        if client is not None:
            await client.aclose()

    def close(self) -> None:
        self._client.close()
