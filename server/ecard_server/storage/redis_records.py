"""Verification records of a shared deployment in Redis: any replica answers GetVerification.

Each merchant's records are in two keys of their own, `<namespace>:verification:{<merchant>}` (a hash:
request_id -> expiry and answer) and `<namespace>:verification-age:{<merchant>}` (a sorted set: request_id
by expiry). One script writes a record, drops that merchant's expired ones and, past `per_merchant`, its
own oldest: no merchant's records can push out another's, and since Redis runs with noeviction
(storage.redis_state) none can push out a nonce either; both keys expire with their youngest record.
Threads use a blocking client, the event loop an asyncio one (made on the loop that first needs it,
closed by `aclose`). Any Redis error is Unavailable.
"""

from __future__ import annotations

import math
import struct
import time
from typing import Any

import redis

from ecard.errors import Unavailable
from ecard_server.storage.redis_state import connect, connect_async, is_cluster

_ERRORS = (redis.RedisError, OSError)
_EXPIRY = struct.Struct(">d")  # unix seconds, fractions included: the oldest record leaves first

# KEYS: the merchant's hash, its sorted set. ARGV: request_id, expiry||answer, expiry, now, cap, ttl.
_RECORD = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
if #gone > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
  redis.call('HDEL', KEYS[1], unpack(gone))
end
redis.call('ZREM', KEYS[2], ARGV[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5]) + 1
if over > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #oldest, 2 do redis.call('HDEL', KEYS[1], oldest[i]) end
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return 1
"""


def _unavailable(exc: BaseException) -> Unavailable:
    return Unavailable(f"verification records unavailable: {type(exc).__name__}", "RECORDS_UNAVAILABLE")


class RedisVerificationRecords:
    def __init__(self, url: str, ttl_s: float, namespace: str = "ecard", *, per_merchant: int = 50_000) -> None:
        self._url = url
        self._client = connect(url)
        self._script = self._client.register_script(_RECORD)
        self._async_client: redis.asyncio.Redis | None = None
        self._async_script: Any = None
        self._records = f"{namespace}:verification:".encode()
        self._ages = f"{namespace}:verification-age:".encode()
        self._ttl = max(1, math.ceil(ttl_s))
        self._cap = max(1, per_merchant)

    def _keys(self, merchant_id: str) -> tuple[bytes, bytes]:
        tag = b"{" + merchant_id.encode() + b"}"  # one hash slot per merchant (Redis Cluster)
        return self._records + tag, self._ages + tag

    def _args(self, request_id: str, answer: bytes) -> tuple[Any, ...]:
        now = time.time()
        expiry = now + self._ttl
        return request_id.encode(), _EXPIRY.pack(expiry) + answer, repr(expiry), repr(now), self._cap, self._ttl

    def record(self, merchant_id: str, request_id: str, answer: bytes) -> None:
        try:
            self._script(keys=self._keys(merchant_id), args=self._args(request_id, answer))
        except _ERRORS as exc:
            raise _unavailable(exc) from exc

    async def record_async(self, merchant_id: str, request_id: str, answer: bytes) -> None:
        client = self._async_client
        if client is None:
            client = self._async_client = connect_async(self._url, cluster=is_cluster(self._client))
            self._async_script = client.register_script(_RECORD)
        try:
            await self._async_script(keys=self._keys(merchant_id), args=self._args(request_id, answer))
        except _ERRORS as exc:
            raise _unavailable(exc) from exc

    def find(self, merchant_id: str, request_id: str) -> bytes | None:
        try:
            found = self._client.hget(self._keys(merchant_id)[0], request_id.encode())
        except _ERRORS as exc:
            raise _unavailable(exc) from exc
        if found is None:
            return None
        data = found.encode() if isinstance(found, str) else found
        if len(data) < _EXPIRY.size or _EXPIRY.unpack_from(data)[0] <= time.time():
            return None
        return bytes(data[_EXPIRY.size:])

    async def aclose(self) -> None:
        client, self._async_client = self._async_client, None
        if client is not None:
            await client.aclose()

    def close(self) -> None:
        self._client.close()
