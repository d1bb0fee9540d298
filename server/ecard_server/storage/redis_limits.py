"""The deployment's rate limits in Redis: one token bucket per principal, shared by every process
(core.limits.RateLeases). A process takes a lease of tokens at a time and admits from it locally, so
the hot path pays a round trip only once per lease.

The bucket is a hash `<ns>:rate:<principal>` {tokens, stamp}, refilled by the script on Redis's own
clock (TIME), so processes on hosts with different clocks share it correctly; it expires once it
would be full again. Any Redis error is Unavailable: a call that needs a lease then fails closed.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio

from ecard.errors import Unavailable
from ecard_server.storage.redis_connect import ERRORS, connect, connect_async, is_cluster

_ERRORS = ERRORS

# KEYS: the bucket. ARGV: need, extra, rate, burst. Returns {granted, wait_s} as strings.
_LEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local need, extra = tonumber(ARGV[1]), tonumber(ARGV[2])
local rate, burst = tonumber(ARGV[3]), tonumber(ARGV[4])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(held[1]) or burst
local stamp = tonumber(held[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local needed_now = math.min(need, burst)
local granted, wait = 0, 0
if tokens >= needed_now then
  granted = need + math.min(extra, math.max(0, tokens - need))
  tokens = tokens - granted
else
  wait = (needed_now - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {tostring(granted), tostring(wait)}
"""


def _unavailable(exc: BaseException) -> Unavailable:
    return Unavailable(f"rate limit store unavailable: {type(exc).__name__}", "LIMITS_UNAVAILABLE")


class _Try:
    """One try at Redis, as a `with` block: a pooled connection that died while Redis was away fails its
    first use with a ConnectionError, so the first try's ConnectionError is swallowed (the caller's loop
    tries again, on a new connection); any other Redis error, or the last try's, is Unavailable. Safe
    for a lease (at worst it is taken twice: the caller is throttled a little early), unlike the nonce
    store's SET NX, which never retries."""

    def __init__(self, last: bool) -> None:
        self._last = last

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: object) -> bool:
        if exc is None or not isinstance(exc, _ERRORS):
            return False
        if isinstance(exc, redis.ConnectionError) and not self._last:
            return True
        raise _unavailable(exc) from exc


_TRIES = (_Try(last=False), _Try(last=True))


class RedisRateLeases:
    """Shared token buckets, one per principal, in the deployment's Redis namespace."""

    def __init__(self, url: str, namespace: str = "ecard") -> None:
        self._url = url
        self._prefix = f"{namespace}:rate:"
        self._client = connect(url)
        self._script = self._client.register_script(_LEASE)
        self._async_client: redis.asyncio.Redis | None = None
        self._async_script: Any = None

    @staticmethod
    def _answer(reply: Any) -> tuple[float, float]:
        granted, wait = reply
        return float(granted), float(wait)

    def lease(self, key: str, need: float, extra: float, rate: float, burst: float) -> tuple[float, float]:
        for attempt in _TRIES:
            with attempt:
                return self._answer(self._script(keys=(self._prefix + key,), args=(need, extra, rate, burst)))
        raise AssertionError("unreachable: the last try returns or raises")

    async def lease_async(self, key: str, need: float, extra: float, rate: float, burst: float) -> tuple[float, float]:
        for attempt in _TRIES:
            with attempt:
                if self._async_client is None:
                    self._async_client = connect_async(self._url, cluster=is_cluster(self._client))
                    self._async_script = self._async_client.register_script(_LEASE)
                reply = await self._async_script(keys=(self._prefix + key,), args=(need, extra, rate, burst))
                return self._answer(reply)
        raise AssertionError("unreachable: the last try returns or raises")

    async def aclose(self) -> None:
        client, self._async_client = self._async_client, None
        if client is not None:
            await client.aclose()

    def close(self) -> None:
        self._client.close()
