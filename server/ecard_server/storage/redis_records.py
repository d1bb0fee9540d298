"""Verification records of a shared deployment in Redis: any replica answers GetVerification.

Each merchant's records are in two keys of their own, `<namespace>:verification:{<merchant>}` (a hash:
request_id -> expiry and answer) and `<namespace>:verification-age:{<merchant>}` (a sorted set: request_id
by expiry). One script writes a record, drops that merchant's expired ones and, past `per_merchant`, its
own oldest: no merchant's records can push out another's, and since Redis runs with noeviction
(storage.redis_connect) none can push out a nonce either; both keys expire with their youngest record.
A Verify's record is written by the script call that consumes its nonce (storage.redis_nonces, with
KEEP_LUA below), group-committed with the other calls'; `record` writes one on its own (on a Redis
Cluster, where each merchant's keys are in a slot of their own). Any Redis error is Unavailable.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

from ecard.errors import Unavailable
from ecard_server.storage.redis_connect import ERRORS, connect

_ERRORS = ERRORS
_EXPIRY = struct.Struct(">d")  # unix seconds, fractions included: the oldest record leaves first

# One record: KEEP_LUA defines keep(records, ages, id, kept, expiry, now, cap, ttl), which writes it, drops
# that merchant's expired records and, past `cap`, its oldest (also run by redis_nonces' consume script,
# which keeps a Verify's record with its consumption).
KEEP_LUA = """
local function keep(records, ages, id, kept, expiry, now, cap, ttl)
  local gone = redis.call('ZRANGEBYSCORE', ages, '-inf', now)
  if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', ages, '-inf', now)
    redis.call('HDEL', records, unpack(gone))
  end
  redis.call('ZREM', ages, id)
  local over = redis.call('ZCARD', ages) - cap + 1
  if over > 0 then
    local oldest = redis.call('ZPOPMIN', ages, over)
    for i = 1, #oldest, 2 do redis.call('HDEL', records, oldest[i]) end
  end
  redis.call('ZADD', ages, expiry, id)
  redis.call('HSET', records, id, kept)
  redis.call('EXPIRE', records, ttl)
  redis.call('EXPIRE', ages, ttl)
end
"""

# Writes records in order. KEYS: each record's merchant hash and sorted set. ARGV: now, cap, ttl, then
# each record's request_id, expiry||answer, expiry.
_RECORD = KEEP_LUA + """
local now, cap, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
for r = 1, #KEYS / 2 do
  keep(KEYS[2 * r - 1], KEYS[2 * r], ARGV[3 * r + 1], ARGV[3 * r + 2], ARGV[3 * r + 3], now, cap, ttl)
end
return #KEYS / 2
"""

Record = tuple[str, str, bytes]
"""One record to write: merchant id, request_id, answer."""


def _unavailable(exc: BaseException) -> Unavailable:
    return Unavailable(f"verification records unavailable: {type(exc).__name__}", "RECORDS_UNAVAILABLE")


class RedisVerificationRecords:
    def __init__(self, url: str, ttl_s: float, namespace: str = "ecard", *, per_merchant: int = 50_000) -> None:
        self._client = connect(url)
        self._script = self._client.register_script(_RECORD)
        self._records = f"{namespace}:verification:".encode()
        self._ages = f"{namespace}:verification-age:".encode()
        self._ttl = max(1, math.ceil(ttl_s))
        self._cap = max(1, per_merchant)

    def _keys(self, merchant_id: str) -> tuple[bytes, bytes]:
        tag = b"{" + merchant_id.encode() + b"}"  # one hash slot per merchant (Redis Cluster)
        return self._records + tag, self._ages + tag

    def keep_input(self, now: float) -> tuple[list[Any], Callable[[Record, list[bytes], list[Any]], None]]:
        """What KEEP_LUA's callers send for records written at `now`: the ARGV of `now, cap, ttl`, and a
        function that adds one record's two keys and three arguments (id, kept, expiry) to KEYS and ARGV."""
        expiry = now + self._ttl
        stamp, expiry_text = _EXPIRY.pack(expiry), repr(expiry)
        keys_of = self._keys

        def add(record: Record, keys: list[bytes], args: list[Any]) -> None:
            merchant_id, request_id, answer = record
            keys += keys_of(merchant_id)
            args += (request_id.encode(), stamp + answer, expiry_text)

        return [repr(now), self._cap, self._ttl], add

    def _script_input(self, records: Sequence[Record]) -> tuple[list[bytes], list[Any]]:
        """The record script's KEYS and ARGV for `records`."""
        keys: list[bytes] = []
        args, add = self.keep_input(time.time())
        for record in records:
            add(record, keys, args)
        return keys, args

    def record(self, merchant_id: str, request_id: str, answer: bytes) -> None:
        try:
            keys, args = self._script_input([(merchant_id, request_id, answer)])
            self._script(keys=keys, args=args)
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

    def close(self) -> None:
        self._client.close()
