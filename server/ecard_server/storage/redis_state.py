"""What the processes of a shared deployment hold in Redis (`ecard serve --redis URL`).

- RedisNonceStore: a token's nonce is consumed with `SET key 1 NX EXAT expiry`, so it is consumed
  once across every process; any Redis error is Unavailable (Verify fails closed, never accepts).
  A Redis that restarts without persistence forgets every consumed nonce: a key `<ns>:nonces-since`
  says since when this Redis remembers them (0: since it first served this deployment). When it is
  gone, the first consumption to see it says "since now", and until every token live before that
  could have expired (max lifetime + twice the skew) tokens are refused as possibly used (REPLAYED).
  Only the process that first records in the durable store (the deployment's SQL store, `witness`)
  that this namespace consumes nonces in Redis may create the key with 0, inside that transaction:
  any later start finds the record, so a missing key always means "Redis lost its memory".
  A Settle by token consumes with its spender (merchant and idempotency key) as the value
  (`consume_as`): the same Settle retried after a crash finds its own consumption, not a replay.
- Every connection asks Redis its `maxmemory-policy` first (at start, and on every reconnect): a
  Redis that may evict keys could forget a consumed nonce, so ecard refuses to start on it (ValueError)
  and, should it change later, every call on a new connection is Unavailable until it is noeviction.
- RedisChangeBus: change notices travel on a pub/sub channel to every process's caches. Pub/sub
  forgets what a disconnected subscriber missed, so on every (re)connect the caches are dropped
  whole, and while disconnected they are dropped again and again: never older than a fraction of
  a second.

Every key and the channel start with a namespace (`redis_namespace` in the settings), so that
deployments, and tests, can share one Redis.

Redis Cluster: `--redis` names any one node of it (the seed); `connect` asks that node `INFO cluster`
and, when it says `cluster_enabled:1`, returns redis-py's RedisCluster. The nonces are then spread over
NONCE_BUCKETS hash tags `{<ns>:n<bucket>}`, each bucket with its own since-marker in the same slot (the
memory-loss guard works per shard), and every consumption is followed, on the same connection to that
slot's master, by `WAIT 1 <ms>`: a consumption no replica acknowledged is Unavailable (fail closed), so a
nonce that reached a master but not its replica is never accepted, and a promoted replica knows every
nonce that was. A shard without a live replica refuses Verify until one (re)joins.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
import zlib
from collections.abc import Sequence
from contextlib import suppress
from typing import Any, Protocol
from urllib.parse import urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from ecard.errors import Unavailable
from ecard_server.core import events
from ecard_server.core.ports import Listener
from ecard_server.logs import event
from ecard_server.storage.urls import redacted

log = logging.getLogger("ecard.redis")
_ERRORS = (redis.RedisError, OSError)


def describe(url: str) -> str:
    """host:port/db of a Redis URL (the socket's path for unix://), for messages (never the password)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    try:
        port = parts.port or 6379
    except ValueError:
        return redacted(url)
    return f"{parts.hostname or 'localhost'}:{port}{parts.path or ''}"


class EvictingRedis(redis.ConnectionError):
    """Redis may evict keys (its maxmemory-policy is not noeviction): it could forget a consumed nonce."""


def eviction_policy(info: bytes | str | dict[str, Any]) -> str:
    """The maxmemory-policy in `INFO memory`, as its text or as redis-py's parsed dict ('' when Redis
    does not say)."""
    if isinstance(info, dict):
        return str(info.get("maxmemory_policy", ""))
    text = info.decode() if isinstance(info, bytes) else info
    for line in text.splitlines():
        if line.startswith("maxmemory_policy:"):
            return line.split(":", 1)[1].strip()
    return ""


def _refuse_eviction(info: bytes | str | dict[str, Any], where: str) -> None:
    policy = eviction_policy(info)
    if policy != "noeviction":
        raise EvictingRedis(
            f"Redis at {where} has maxmemory-policy {policy or 'unknown'}: ecard needs noeviction "
            "(an evicted nonce is a token accepted twice)"
        )


def _checked(where: str) -> Any:
    """A connection hook (redis-py's redis_connect_func): the usual handshake, then the eviction
    policy, on every new connection, so a Redis reconfigured or replaced while we run is noticed."""

    def on_connect(connection: Any) -> None:
        connection.on_connect()
        connection.send_command("INFO", "memory")
        _refuse_eviction(connection.read_response(), where)

    return on_connect


def _checked_async(where: str) -> Any:
    async def on_connect(connection: Any) -> None:
        await connection.on_connect()
        await connection.send_command("INFO", "memory")
        _refuse_eviction(await connection.read_response(), where)

    return on_connect


def is_cluster(client: Any) -> bool:
    """Whether a client made by `connect` talks to a Redis Cluster."""
    return isinstance(client, redis.cluster.RedisCluster)


def connect_async(url: str, *, connect_timeout: float = 1.0, timeout: float = 1.0, cluster: bool = False) -> Any:
    """`connect`'s asyncio twin, for the server's event loop (no ping: the URL was checked by `connect`);
    `cluster`: what `is_cluster` said of the blocking client."""
    if cluster:
        return redis.asyncio.cluster.RedisCluster.from_url(
            url, socket_connect_timeout=connect_timeout, socket_timeout=timeout, require_full_coverage=False,
        )
    return redis.asyncio.Redis.from_url(
        url, socket_connect_timeout=connect_timeout, socket_timeout=timeout, retry=AsyncRetry(NoBackoff(), 0),
        redis_connect_func=_checked_async(describe(url)),
    )


def connect(url: str, *, connect_timeout: float = 1.0, timeout: float = 1.0) -> Any:
    """A client that answers or fails within `timeout` and never retries by itself (a repeated
    SET NX could report our own consumption as a replay), on a Redis that never evicts keys.
    ValueError (one line) when unusable. A redis.cluster.RedisCluster when the node says
    `cluster_enabled:1` (any one node of the cluster will do; every master is checked for eviction)."""
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=connect_timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0),
            redis_connect_func=_checked(describe(url)),
        )
    except ValueError as exc:
        raise ValueError(f"bad Redis URL {redacted(url)!r}: {redacted(str(exc), url)}") from None
    try:
        client.ping()
        clustered = bool(client.info("cluster").get("cluster_enabled"))
    except EvictingRedis as exc:
        client.close()
        raise ValueError(str(exc)) from None
    except _ERRORS as exc:
        client.close()
        raise ValueError(f"cannot reach Redis at {describe(url)}: {redacted(str(exc), url)}") from None
    if not clustered:
        return client
    client.close()
    try:
        cluster = redis.cluster.RedisCluster.from_url(
            url, socket_connect_timeout=connect_timeout, socket_timeout=timeout, require_full_coverage=False,
        )
    except _ERRORS as exc:
        raise ValueError(f"cannot reach the Redis Cluster at {describe(url)}: {redacted(str(exc), url)}") from None
    try:
        _refuse_evicting_shards(cluster)
    except EvictingRedis as exc:
        cluster.close()
        raise ValueError(str(exc)) from None
    except _ERRORS as exc:
        cluster.close()
        raise ValueError(f"cannot reach the Redis Cluster at {describe(url)}: {redacted(str(exc), url)}") from None
    return cluster


def _refuse_evicting_shards(cluster: Any) -> None:
    """EvictingRedis unless every master of the cluster has maxmemory-policy noeviction."""
    shards = cluster.info("memory", target_nodes=redis.cluster.RedisCluster.PRIMARIES)
    for node, info in shards.items():
        _refuse_eviction(info, str(node))


def _unavailable(exc: BaseException) -> Unavailable:
    if isinstance(exc, EvictingRedis):
        return Unavailable(str(exc), "NONCE_STORE_EVICTS")
    return Unavailable(f"nonce store unavailable: {type(exc).__name__}", "NONCE_STORE_UNAVAILABLE")


class Witness(Protocol):
    """The durable record that a namespace consumes nonces in Redis (the deployment's SQL store)."""

    def claim_meta_value(self, name: str, value: bytes, first: Any) -> bool: ...


# KEYS: the nonce, the since-key. ARGV: expiry, horizon, now, value ('1', or a Settle's spender).
# 1: fresh (or consumed before by this same spender); 0: used, or live before what this Redis
# remembers; 2: as 0, and the loss of memory was seen just now.
_CONSUME = """
local since = redis.call('GET', KEYS[2])
local lost = 0
if not since then
  since = ARGV[3]
  redis.call('SET', KEYS[2], since)
  lost = 2
end
if tonumber(ARGV[1]) <= tonumber(since) + tonumber(ARGV[2]) then return lost end
if redis.call('SET', KEYS[1], ARGV[4], 'NX', 'EXAT', ARGV[1]) then return 1 end
if ARGV[4] ~= '1' and redis.call('GET', KEYS[1]) == ARGV[4] then return 1 end
return 0
"""


class RedisNonceStore:
    """Consumed nonces in Redis, each kept until its token could no longer pass the time checks.

    Threads use one blocking client; the server's event loop uses an asyncio client of the same URL
    (`consume_async`), made on the loop that first needs it and closed by `aclose`. `horizon_s`: how
    long after its expiry (as given to consume) a token consumed before a loss of Redis's memory could
    still be live: the server's max token lifetime plus twice its clock skew.
    """

    local = False  # every consumption is a round trip to Redis
    NONCE_BUCKETS = 64  # on a cluster: the hash tags the nonces are spread over, each with its marker
    REPLICA_WAIT_MS = 500  # on a cluster: how long a consumption waits for a replica's acknowledgement

    def __init__(
        self, client: Any, namespace: str = "ecard", *, witness: Witness, url: str | None = None,
        horizon_s: int = 361,
    ) -> None:
        self._client = client
        self._cluster = is_cluster(client)
        self._namespace = namespace
        self._prefix = f"{namespace}:nonce:".encode()
        self._since_key = f"{namespace}:nonces-since".encode()
        self._refreshed = 0.0
        self._refresh_lock = threading.Lock()
        self._horizon = horizon_s
        self._url = url
        self._async_client: redis.asyncio.Redis | None = None
        self._async_script: Any = None
        self._script = client.register_script(_CONSUME)
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

    def _consume_on_cluster(self, key: bytes, expires_at: float, value: bytes = b"1") -> bool:
        """The consume script on the master of the nonce's slot, then WAIT 1 on the same connection:
        fresh only once a replica holds the nonce too (else Unavailable: the master could die with it)."""
        keys = self._keys(key)
        try:
            if self._evicting is not None:
                raise EvictingRedis(self._evicting)
            node = self._client.get_node_from_key(keys[0])
            pipe = self._client.get_redis_connection(node).pipeline(transaction=False)
            args = (max(1, math.ceil(expires_at)), self._horizon, int(time.time()), value)
            self._script(keys=keys, args=args, client=pipe)
            pipe.execute_command("WAIT", 1, self.REPLICA_WAIT_MS)
            answer, acknowledged = pipe.execute()
        except _ERRORS as exc:
            self._refresh_slots()  # a moved slot or a dead master: the next call goes where the slot is now
            raise _unavailable(exc) from exc
        if int(acknowledged) < 1:
            raise Unavailable("nonce store unavailable: no replica acknowledged", "NONCE_STORE_UNAVAILABLE")
        return self._fresh(answer)

    @staticmethod
    def witness_name(namespace: str) -> str:
        """The durable store's name for "this namespace has consumed nonces in Redis"."""
        return f"redis_nonces:{namespace}"

    @classmethod
    def from_url(
        cls, url: str, *, witness: Witness, namespace: str = "ecard", horizon_s: int = 361
    ) -> RedisNonceStore:
        client = connect(url)
        try:
            return cls(client, namespace, witness=witness, url=url, horizon_s=horizon_s)
        except BaseException:
            client.close()
            raise

    def _set(self, script: Any, key: bytes, expires_at: float, client: Any = None, value: bytes = b"1") -> Any:
        """The consume script on `client` (blocking, asyncio or a pipeline): its answer or awaitable."""
        args = (max(1, math.ceil(expires_at)), self._horizon, int(time.time()), value)
        return script(keys=self._keys(key), args=args, client=client)

    def _fresh(self, answer: Any) -> bool:
        if answer == 2:
            event(log, "nonce_memory_lost", level=logging.WARNING, refusing_for_s=self._horizon)
        return answer == 1

    def consume(self, key: bytes, expires_at: float) -> bool:
        if self._cluster:
            return self._consume_on_cluster(key, expires_at)
        try:
            if self._evicting is not None:
                raise EvictingRedis(self._evicting)
            return self._fresh(self._set(self._script, key, expires_at))
        except _ERRORS as exc:
            raise _unavailable(exc) from exc

    def consume_as(self, key: bytes, expires_at: float, spender: bytes) -> bool:
        if self._cluster:
            return self._consume_on_cluster(key, expires_at, spender)
        try:
            if self._evicting is not None:
                raise EvictingRedis(self._evicting)
            return self._fresh(self._set(self._script, key, expires_at, value=spender))
        except _ERRORS as exc:
            raise _unavailable(exc) from exc

    def _aclient(self) -> redis.asyncio.Redis:
        client = self._async_client
        if client is None:
            if self._url is None:
                raise TypeError("the asyncio calls need a store made by RedisNonceStore.from_url")
            client = self._async_client = connect_async(self._url)
            self._async_script = client.register_script(_CONSUME)
        return client

    async def consume_async(self, key: bytes, expires_at: float) -> bool:
        if self._cluster:  # the node clients of the blocking cluster client carry the WAIT
            return await asyncio.to_thread(self._consume_on_cluster, key, expires_at)
        try:
            if self._evicting is not None:
                raise EvictingRedis(self._evicting)
            self._aclient()
            return self._fresh(await self._set(self._async_script, key, expires_at))
        except _ERRORS as exc:
            raise _unavailable(exc) from exc

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
            _refuse_eviction(info, describe(self._url or ""))
        except EvictingRedis as exc:
            self._evicting = str(exc)
            raise _unavailable(exc) from exc
        self._evicting = None

    def _ping_cluster(self) -> None:
        try:
            _refuse_evicting_shards(self._client)
        except EvictingRedis as exc:
            self._evicting = str(exc)
            raise _unavailable(exc) from exc
        except _ERRORS as exc:
            self._refresh_slots()
            raise _unavailable(exc) from exc
        self._evicting = None

    async def aclose(self) -> None:
        """Closes the asyncio client, on the loop that made it."""
        client, self._async_client = self._async_client, None
        if client is not None:
            await client.aclose()

    def consume_many(self, items: Sequence[tuple[bytes, float]]) -> list[bool]:
        """`consume` of each (key, expires_at) in one round trip (a pipeline of SET NX, in order, so a key
        repeated in `items` is fresh only the first time). Any error fails the whole batch closed."""
        if not items:
            return []
        if self._cluster:  # one round trip per nonce: each waits for its own shard's replica
            return [self._consume_on_cluster(key, expires_at) for key, expires_at in items]
        try:
            if self._evicting is not None:
                raise EvictingRedis(self._evicting)
            pipe = self._client.pipeline(transaction=False)
            for key, expires_at in items:
                self._set(self._script, key, expires_at, pipe)
            return [self._fresh(answer) for answer in pipe.execute()]
        except _ERRORS as exc:
            raise _unavailable(exc) from exc

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
        self._client.close()


class RedisChangeBus:
    """Change notices for every process: delivered here at once, and to the others through Redis.

    A listener thread holds the subscription. On (re)connect it delivers an ALL invalidation (what
    was published meanwhile is lost); while disconnected it delivers one every `retry_interval`.
    It pings every `heartbeat` seconds and treats `dead_after` seconds of silence as a lost link.
    A notice that cannot be published is kept and published once Redis answers again.
    """

    MAX_PENDING = 10_000

    def __init__(
        self,
        client: redis.Redis,
        namespace: str = "ecard",
        *,
        heartbeat: float = 0.25,
        dead_after: float = 1.0,
        retry_interval: float = 0.2,
    ) -> None:
        self._client = client
        self._channel = f"{namespace}:changes"
        self._origin = uuid.uuid4().hex[:16]
        self._heartbeat = heartbeat
        self._dead_after = dead_after
        self._retry_interval = retry_interval
        self._listeners: list[Listener] = []
        self._pending: dict[tuple[str, str], None] = {}  # an ordered set
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.connected = threading.Event()
        """Set while the subscription is live (tests and health checks may wait on it)."""
        self._thread = threading.Thread(target=self._run, name="ecard-redis-bus", daemon=True)
        self._thread.start()

    @classmethod
    def from_url(cls, url: str, *, namespace: str = "ecard", **options: float) -> RedisChangeBus:
        return cls(connect(url, connect_timeout=0.5), namespace, **options)

    # -- the ChangeBus protocol -------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def publish(self, kind: str, key: str) -> None:
        self._deliver(kind, key)  # this process sees its own write at once
        try:
            self._client.publish(self._channel, f"{self._origin}\x1f{kind}\x1f{key}".encode())
        except _ERRORS as exc:
            self._defer(kind, key)
            event(log, "change_notice_deferred", level=logging.WARNING, kind=kind, error=str(exc))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            self._listeners.clear()
        self._client.close()

    # -- delivery ---------------------------------------------------------------------------------
    def _deliver(self, kind: str, key: str) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(kind, key)
            except Exception:
                event(log, "change_listener_failed", level=logging.ERROR, exc_info=True, kind=kind)

    def _on_message(self, data: bytes) -> None:
        try:
            origin, kind, key = data.decode().split("\x1f", 2)
        except (UnicodeDecodeError, ValueError):
            return
        if origin != self._origin:
            self._deliver(kind, key)

    def _defer(self, kind: str, key: str) -> None:
        with self._lock:
            if len(self._pending) >= self.MAX_PENDING:
                self._pending.clear()
                kind, key = events.ALL, events.ALL
            self._pending[(kind, key)] = None

    def _flush_pending(self) -> None:
        with self._lock:
            notices, self._pending = list(self._pending), {}
        for done, (kind, key) in enumerate(notices):
            try:
                self._client.publish(self._channel, f"{self._origin}\x1f{kind}\x1f{key}".encode())
            except _ERRORS:
                for notice in notices[done:]:
                    self._defer(*notice)
                raise

    # -- the listener thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            pubsub = self._client.pubsub()
            try:
                self._listen(pubsub)
            except _ERRORS as exc:
                if self.connected.is_set():
                    event(log, "change_bus_disconnected", level=logging.WARNING, error=str(exc))
            finally:
                self.connected.clear()
                with suppress(Exception):
                    pubsub.close()
            # Disconnected: notices may be passing us by. No cache may serve what could have changed.
            self._deliver(events.ALL, events.ALL)
            self._stop.wait(self._retry_interval)

    def _listen(self, pubsub: Any) -> None:
        pubsub.subscribe(self._channel)
        deadline = time.monotonic() + self._dead_after
        while True:  # the subscription is live once Redis confirms it
            message = pubsub.get_message(timeout=self._heartbeat)
            if message is not None and message["type"] == "subscribe":
                break
            if time.monotonic() > deadline:
                raise redis.TimeoutError("no confirmation of the subscription")
        # Whatever was published before this point is lost to us: start from empty caches.
        self.connected.set()
        self._deliver(events.ALL, events.ALL)
        event(log, "change_bus_connected", channel=self._channel)
        last_heard = last_ping = time.monotonic()
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=self._heartbeat)
            now = time.monotonic()
            if message is not None:
                last_heard = now
                if message["type"] == "message":
                    self._on_message(message["data"])
            if self._pending:
                self._flush_pending()
            if now - last_ping >= self._heartbeat:
                pubsub.ping()
                last_ping = now
            if now - last_heard > self._dead_after:
                raise redis.TimeoutError(f"no answer from Redis for {self._dead_after} s")
