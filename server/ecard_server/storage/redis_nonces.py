"""Consumed nonces of a shared deployment in Redis (RedisNonceStore, core.ports.NonceStore).

A token's nonce is consumed with `SET key 1 NX EXAT expiry`, so it is consumed once across every
process; any Redis error is Unavailable (Verify fails closed, never accepts). A Redis that restarts
without persistence forgets every consumed nonce: a key `<ns>:nonces-since` says since when this Redis
remembers them (0: since it first served this deployment). When it is gone, the first consumption to
see it says "since now", and until every token live before that could have expired (max lifetime +
twice the skew) tokens are refused as possibly used (REPLAYED). Only the process that first records in
the durable store (the deployment's SQL store, `witness`) that this namespace consumes nonces in Redis
may create the key with 0, inside that transaction: any later start finds the record, so a missing key
always means "Redis lost its memory". The witness is written once, at start: never on a call's path.
A Settle by token consumes with its spender (merchant and idempotency key) as the value (`consume_as`):
the same Settle retried after a crash finds its own consumption, not a replay.

The consumptions of concurrent calls are group-committed across their threads (storage.group_commit:
the first waiting call leads a script call for every consumption queued so far, on a connection of the
store's own, redis_connect.ScriptLine; the others wait, and the next leader takes what queued
meanwhile), in the order they came, exactly as one call each would (a nonce queued twice is fresh the
first time only; the first to see the since-marker gone reports the loss). A Redis error or timeout
fails every consumption of that script call closed. A Verify that carries a request_id gives its
accepted answer with its consumption (`consume(keep=...)`, built before the nonce is consumed): the same
script call writes it to the verification records (storage.redis_records) if, and only if, the nonce is
fresh, so a Verify makes one round trip, not two.

Redis Cluster: the nonces are spread over NONCE_BUCKETS hash tags `{<ns>:n<bucket>}`, each bucket with
its own since-marker in the same slot (the memory-loss guard works per shard), and every consumption is
followed, on the same connection to that slot's master, by `WAIT 1 <ms>`: a consumption no replica
acknowledged is Unavailable (fail closed), so a nonce that reached a master but not its replica is never
accepted, and a promoted replica knows every nonce that was. A shard without a live replica refuses
Verify until one (re)joins. (On a cluster each consumption is its own call, and a Verify's record is
written right after it: no group commit.)
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import zlib
from collections.abc import Sequence
from contextlib import suppress
from typing import Any, Protocol

import redis
import redis.asyncio
import redis.cluster

from ecard.errors import Unavailable
from ecard_server.logs import event
from ecard_server.storage.group_commit import GroupCommit
from ecard_server.storage.redis_connect import (
    ERRORS,
    EvictingRedis,
    ScriptLine,
    connect,
    connect_async,
    describe,
    is_cluster,
    refuse_evicting_shards,
    refuse_eviction,
)
from ecard_server.storage.redis_records import KEEP_LUA, Record, RedisVerificationRecords
from ecard_server.tracing import redis_span

log = logging.getLogger("ecard.redis")
_ERRORS = ERRORS


def _expiry(expires_at: float) -> int:
    return max(1, math.ceil(expires_at))


def _failed(exc: BaseException) -> BaseException:
    """What each call of a failed group commit raises: Unavailable for Redis's errors (fail closed)."""
    return _unavailable(exc) if isinstance(exc, _ERRORS) else exc


def _unavailable(exc: BaseException) -> Unavailable:
    if isinstance(exc, EvictingRedis):
        return Unavailable(str(exc), "NONCE_STORE_EVICTS")
    return Unavailable(f"nonce store unavailable: {type(exc).__name__}", "NONCE_STORE_UNAVAILABLE")


class Witness(Protocol):
    """The durable record that a namespace consumes nonces in Redis (the deployment's SQL store)."""

    def claim_meta_value(self, name: str, value: bytes, first: Any) -> bool: ...


# Consumes nonces in order, as one call each would. KEYS[1]: the since-key; ARGV[1], ARGV[2]: horizon and
# now. consume(key, expiry, value) ('1', or a Settle's spender) answers 1 fresh (or consumed before by this
# same spender); 0 used, or live before what this Redis remembers; 2 as 0, and the loss of memory was seen
# just now (by the first nonce only: it set the marker for the rest).
_CONSUME_LUA = """
local since = redis.call('GET', KEYS[1])
local lost = 0
if not since then
  since = ARGV[2]
  redis.call('SET', KEYS[1], since)
  lost = 2
end
local remembered_after = tonumber(since) + tonumber(ARGV[1])
local function consume(key, expiry, value)
  local answer = 0
  if tonumber(expiry) <= remembered_after then
    answer = lost
  elseif redis.call('SET', key, value, 'NX', 'EXAT', expiry) then
    answer = 1
  elseif value ~= '1' and redis.call('GET', key) == value then
    answer = 1
  end
  lost = 0
  return answer
end
"""

# KEYS: the since-key, then each nonce. ARGV: horizon, now, then each nonce's expiry and value. Answers,
# one per nonce.
_CONSUME = _CONSUME_LUA + """
local answers = {}
for i = 2, #KEYS do
  answers[i - 1] = consume(KEYS[i], ARGV[2 * i - 1], ARGV[2 * i])
end
return answers
"""

# A Verify's consumption with the record of its answer (redis_records.KEEP_LUA), written only when the
# nonce was fresh. KEYS: the since-key, then each nonce, followed by its record's two keys when it keeps
# one. ARGV: horizon, now, the records' now, cap and ttl, then per nonce its expiry, value, whether it
# keeps a record ('1' or '0') and that record's id, kept and expiry. Answers, one per nonce.
_CONSUME_KEEPING = _CONSUME_LUA + KEEP_LUA + """
local now, cap, ttl = ARGV[3], tonumber(ARGV[4]), ARGV[5]
local answers, k, a = {}, 2, 6
while k <= #KEYS do
  local answer = consume(KEYS[k], ARGV[a], ARGV[a + 1])
  if ARGV[a + 2] == '1' then
    if answer == 1 then
      keep(KEYS[k + 1], KEYS[k + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], now, cap, ttl)
    end
    k, a = k + 3, a + 6
  else
    k, a = k + 1, a + 3
  end
  answers[#answers + 1] = answer
end
return answers
"""

Consumption = tuple[bytes, int, bytes]
"""One nonce to consume: its key in Redis, its expiry (whole unix seconds), the value it is set to."""
Keeping = tuple[bytes, int, bytes, Record | None]
"""A consumption of the group commit, with the record kept if its nonce is fresh."""


class RedisNonceStore:
    """Consumed nonces in Redis, each kept until its token could no longer pass the time checks.

    Threads consume through the group commit, on the store's own connection (one script call at a time),
    and use the blocking client for the rest; readiness's `ping_async` uses an asyncio client of the same
    URL, made on the loop that first needs it and closed by `aclose`. `horizon_s`: how
    long after its expiry (as given to consume) a token consumed before a loss of Redis's memory could
    still be live: the server's max token lifetime plus twice its clock skew.
    """

    local = False  # every consumption is a round trip to Redis
    NONCE_BUCKETS = 64  # on a cluster: the hash tags the nonces are spread over, each with its marker
    REPLICA_WAIT_MS = 500  # on a cluster: how long a consumption waits for a replica's acknowledgement

    def __init__(
        self, client: Any, namespace: str = "ecard", *, witness: Witness, url: str | None = None,
        horizon_s: int = 361, records: RedisVerificationRecords | None = None,
    ) -> None:
        self._client = client
        self._records = records  # where consume keeps a Verify's answer (its `keep`)
        self._cluster = is_cluster(client)
        self._namespace = namespace
        self._prefix = f"{namespace}:nonce:".encode()
        self._since_key = f"{namespace}:nonces-since".encode()
        self._refreshed = 0.0
        self._refresh_lock = threading.Lock()
        self._horizon = horizon_s
        self._url = url
        self._async_client: redis.asyncio.Redis | None = None  # readiness's probe, on the event loop
        self._line: ScriptLine | None = None if self._cluster else ScriptLine(client)
        where = {} if self._cluster else client.connection_pool.connection_kwargs
        self._peer = (str(where.get("host", "")), int(where.get("port", 0))) if "host" in where else None
        self._group: GroupCommit[Keeping] | None = None if self._cluster else GroupCommit(self._send, failed=_failed)
        self._script = client.register_script(_CONSUME)
        self._keeping_script = client.register_script(_CONSUME_KEEPING)
        self._evicting: str | None = None  # why, while ping_async finds that Redis may evict keys

        markers = [self._bucket_keys(b)[1] for b in range(self.NONCE_BUCKETS)] if self._cluster else [self._since_key]

        def first_use() -> None:  # inside the witness's transaction: nothing was ever consumed here
            for marker in markers:
                client.set(marker, b"0", nx=True)

        try:
            witness.claim_meta_value(self.witness_name(namespace), b"1", first_use)
        except _ERRORS as exc:
            raise _unavailable(exc) from exc

    def _bucket_keys(self, bucket: int) -> tuple[bytes, bytes]:
        """On a cluster: the prefix of a bucket's nonces and its since-marker, in one slot."""
        tag = f"{{{self._namespace}:n{bucket}}}"
        return f"{tag}:nonce:".encode(), f"{tag}:nonces-since".encode()

    def _keys(self, key: bytes) -> tuple[bytes, bytes]:
        """The nonce's key and the since-marker that guards it."""
        if not self._cluster:
            return self._prefix + key, self._since_key
        prefix, marker = self._bucket_keys(zlib.crc32(key) % self.NONCE_BUCKETS)
        return prefix + key, marker

    def _refresh_slots(self) -> None:
        """After an error on a cluster: learn the slots' masters anew (at most every 0.2 s)."""
        with self._refresh_lock:
            if time.monotonic() - self._refreshed < 0.2:
                return
            self._refreshed = time.monotonic()
            with suppress(*_ERRORS):
                self._client.nodes_manager.initialize()

    def _script_input(self, marker: bytes, consumptions: Sequence[Consumption]) -> tuple[list[bytes], list[Any]]:
        """The consume script's KEYS and ARGV for `consumptions`, all guarded by the since-key `marker`."""
        keys: list[bytes] = [marker]
        args: list[Any] = [self._horizon, int(time.time())]
        for key, expiry, value in consumptions:
            keys.append(key)
            args.append(expiry)
            args.append(value)
        return keys, args

    def _consume_on_cluster(self, key: bytes, expires_at: float, value: bytes = b"1") -> bool:
        """The consume script on the master of the nonce's slot, then WAIT 1 on the same connection:
        fresh only once a replica holds the nonce too (else Unavailable: the master could die with it)."""
        nonce, marker = self._keys(key)
        try:
            if self._evicting is not None:
                raise EvictingRedis(self._evicting)
            node = self._client.get_node_from_key(nonce)
            pipe = self._client.get_redis_connection(node).pipeline(transaction=False)
            keys, args = self._script_input(marker, [(nonce, _expiry(expires_at), value)])
            self._script(keys=keys, args=args, client=pipe)
            pipe.execute_command("WAIT", 1, self.REPLICA_WAIT_MS)
            (answer,), acknowledged = pipe.execute()
        except _ERRORS as exc:
            self._refresh_slots()  # a moved slot or a dead master: the next call goes where the slot is now
            raise _unavailable(exc) from exc
        if int(acknowledged) < 1:  # its shard has no live replica: refused until one joins (docs/operations.md)
            raise Unavailable("nonce store unavailable: no replica acknowledged", "NONCE_STORE_UNREPLICATED")
        return self._fresh(answer)

    @staticmethod
    def witness_name(namespace: str) -> str:
        """The durable store's name for "this namespace has consumed nonces in Redis"."""
        return f"redis_nonces:{namespace}"

    @classmethod
    def from_url(
        cls, url: str, *, witness: Witness, namespace: str = "ecard", horizon_s: int = 361,
        records: RedisVerificationRecords | None = None,
    ) -> RedisNonceStore:
        client = connect(url)
        try:
            return cls(client, namespace, witness=witness, url=url, horizon_s=horizon_s, records=records)
        except BaseException:
            client.close()
            raise

    def _fresh(self, answer: Any) -> bool:
        if answer == 2:
            event(log, "nonce_memory_lost", level=logging.WARNING, refusing_for_s=self._horizon)
        return answer == 1

    def consume(self, key: bytes, expires_at: float, keep: Record | None = None) -> bool:
        """Group-committed with the other threads' consumptions. `keep` (merchant_id, request_id,
        answer): kept in the verification records this store was made with, only if the nonce is fresh,
        by the same script call (on a cluster, where they are in other slots: right after it, and a
        record that cannot be written leaves the verdict as it is)."""
        if keep is not None and self._records is None:
            raise TypeError("consume(keep=...) needs a store made with its verification records")
        if self._cluster:
            fresh = self._consume_on_cluster(key, expires_at)
            if fresh and keep is not None:
                assert self._records is not None
                try:
                    self._records.record(*keep)
                except Unavailable as exc:
                    event(log, "verification_not_recorded", merchant_id=keep[0], error=exc.reason)
            return fresh
        return self._submit(key, expires_at, b"1", keep)

    def consume_as(self, key: bytes, expires_at: float, spender: bytes) -> bool:
        if self._cluster:
            return self._consume_on_cluster(key, expires_at, spender)
        return self._submit(key, expires_at, spender, None)

    def _submit(self, key: bytes, expires_at: float, value: bytes, keep: Record | None) -> bool:
        if self._evicting is not None:
            raise _unavailable(EvictingRedis(self._evicting))
        assert self._group is not None
        with redis_span("EVALSHA consume", self._peer):  # the call's wait for its script call (maybe another thread's)
            answer = self._group.submit((self._prefix + key, _expiry(expires_at), value, keep))
        return self._fresh(answer)

    def _send(self, consumptions: Sequence[Keeping]) -> list[Any]:
        """One flush of the group commit: every queued consumption, and the records of those that keep
        one, in one script call."""
        if self._evicting is not None:
            raise EvictingRedis(self._evicting)
        records = self._records
        if records is None or all(entry[3] is None for entry in consumptions):
            keys, args = self._script_input(self._since_key, [entry[:3] for entry in consumptions])
            return self._call(self._script, keys, args)
        keys = [self._since_key]
        now = time.time()
        head, add = records.keep_input(now)
        args = [self._horizon, int(now), *head]
        for key, expiry, value, kept in consumptions:
            keys.append(key)
            if kept is None:
                args += (expiry, value, 0)
            else:
                args += (expiry, value, 1)
                add(kept, keys, args)
        return self._call(self._keeping_script, keys, args)

    def _call(self, script: Any, keys: list[bytes], args: list[Any]) -> list[Any]:
        """`script` on the store's own line (the group commit has one flush in flight at a time)."""
        assert self._line is not None
        return list(self._line.call(script, keys, args))

    def _aclient(self) -> redis.asyncio.Redis:
        client = self._async_client
        if client is None:
            if self._url is None:
                raise TypeError("ping_async needs a store made by RedisNonceStore.from_url")
            client = self._async_client = connect_async(self._url)
        return client

    async def ping_async(self) -> None:
        """Whether Redis answers and still never evicts (readiness probes it twice a second), on the
        event loop's client. Raises Unavailable if not; while Redis may evict, every consumption is
        refused too (a CONFIG SET on live connections is caught here, a new connection by `connect`).
        On a cluster: every master, so a slot without a master that answers is not ready."""
        if self._cluster:
            await asyncio.to_thread(self._ping_cluster)
            return
        try:
            info = await self._aclient().execute_command("INFO", "memory")
        except _ERRORS as exc:
            raise _unavailable(exc) from exc
        try:
            refuse_eviction(info, describe(self._url or ""))
        except EvictingRedis as exc:
            self._evicting = str(exc)
            raise _unavailable(exc) from exc
        self._evicting = None

    def _ping_cluster(self) -> None:
        try:
            refuse_evicting_shards(self._client)
        except EvictingRedis as exc:
            self._evicting = str(exc)
            raise _unavailable(exc) from exc
        except _ERRORS as exc:
            self._refresh_slots()
            raise _unavailable(exc) from exc
        self._evicting = None

    async def aclose(self) -> None:
        """Closes readiness's asyncio client, on the loop that made it."""
        client, self._async_client = self._async_client, None
        if client is not None:
            await client.aclose()

    def consume_many(self, items: Sequence[tuple[bytes, float]]) -> list[bool]:
        """`consume` of each (key, expires_at) in one round trip (one script call, in order, so a key
        repeated in `items` is fresh only the first time). Any error fails the whole batch closed."""
        if not items:
            return []
        if self._cluster:  # one round trip per nonce: each waits for its own shard's replica
            return [self._consume_on_cluster(key, expires_at) for key, expires_at in items]
        try:
            keys, args = self._script_input(
                self._since_key, [(self._prefix + key, _expiry(expires_at), b"1") for key, expires_at in items])
            answers = self._script(keys=keys, args=args)
        except _ERRORS as exc:
            raise _unavailable(exc) from exc
        return [self._fresh(answer) for answer in answers]

    def release(self, key: bytes) -> bool:
        try:
            return bool(self._client.delete(self._keys(key)[0]))
        except _ERRORS as exc:
            event(log, "nonce_release_failed", level=logging.WARNING, error=type(exc).__name__)
            return False

    def usage(self) -> dict[str, float]:
        """Redis's own figures for the metrics: keys in this database (nonces, markers, records of every
        deployment sharing it), used and maximum memory in bytes. Raises Unavailable if Redis does not
        answer (a scrape then shows nothing rather than an old reading)."""
        try:
            if self._cluster:  # the sums over the masters
                primaries = redis.cluster.RedisCluster.PRIMARIES
                keys = self._client.dbsize(target_nodes=primaries)
                shards = self._client.info("memory", target_nodes=primaries).values()
                memory = {"used_memory": sum(m["used_memory"] for m in shards),
                          "maxmemory": sum(m.get("maxmemory", 0) for m in shards)}
            else:
                pipe = self._client.pipeline(transaction=False)
                pipe.dbsize()
                pipe.info("memory")
                keys, memory = pipe.execute()
        except _ERRORS as exc:
            raise _unavailable(exc) from exc
        return {"keys": float(keys), "used_memory": float(memory["used_memory"]),
                "maxmemory": float(memory.get("maxmemory", 0))}

    def close(self) -> None:
        if self._line is not None:
            self._line.close()
        self._client.close()
