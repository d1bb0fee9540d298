"""Connections to the Redis of a shared deployment (`ecard serve --redis URL`), for every module that
keeps something there (storage.redis_nonces, redis_bus, redis_records, redis_limits).

Every connection asks Redis its `maxmemory-policy` first (at start, and on every reconnect): a Redis
that may evict keys could forget a consumed nonce, so ecard refuses to start on it (ValueError) and,
should it change later, every call on a new connection is Unavailable until it is noeviction.

Redis Cluster: `--redis` names any one node of it (the seed); `connect` asks that node `INFO cluster`
and, when it says `cluster_enabled:1`, returns redis-py's RedisCluster (every master checked for
eviction).

Every key and channel of a deployment starts with a namespace (`redis_namespace` in the settings), so
that deployments, and tests, can share one Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from ecard_server.storage.urls import redacted

ERRORS = (redis.RedisError, redis.exceptions.RedisClusterException, OSError)
"""What a Redis call may raise when Redis cannot answer. RedisClusterException is not a RedisError: the
cluster client raises it (SlotNotCoveredError) while a failover leaves slots without a master."""
_ERRORS = ERRORS
T = TypeVar("T")

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


def refuse_eviction(info: bytes | str | dict[str, Any], where: str) -> None:
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
        refuse_eviction(connection.read_response(), where)

    return on_connect


def _checked_async(where: str) -> Any:
    async def on_connect(connection: Any) -> None:
        await connection.on_connect()
        await connection.send_command("INFO", "memory")
        refuse_eviction(await connection.read_response(), where)

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
    def clustered() -> bool:
        client.ping()
        return bool(client.info("cluster").get("cluster_enabled"))

    if not _checked_or_closed(client, clustered, url, "Redis"):
        return client
    client.close()
    try:
        cluster = redis.cluster.RedisCluster.from_url(
            url, socket_connect_timeout=connect_timeout, socket_timeout=timeout, require_full_coverage=False,
        )
    except _ERRORS as exc:
        raise ValueError(f"cannot reach the Redis Cluster at {describe(url)}: {redacted(str(exc), url)}") from None
    _checked_or_closed(cluster, lambda: refuse_evicting_shards(cluster), url, "the Redis Cluster")
    return cluster


def _checked_or_closed(client: Any, check: Callable[[], T], url: str, what: str) -> T:
    """`check()`'s answer; when it finds Redis evicting or unreachable, the client closed and ValueError
    (one line)."""
    try:
        return check()
    except EvictingRedis as exc:
        client.close()
        raise ValueError(str(exc)) from None
    except _ERRORS as exc:
        client.close()
        raise ValueError(f"cannot reach {what} at {describe(url)}: {redacted(str(exc), url)}") from None


def refuse_evicting_shards(cluster: Any) -> None:
    """EvictingRedis unless every master of the cluster has maxmemory-policy noeviction."""
    shards = cluster.info("memory", target_nodes=redis.cluster.RedisCluster.PRIMARIES)
    for node, info in shards.items():
        refuse_eviction(info, str(node))


class ScriptLine:
    """A connection of its own for a caller that has at most one call in flight (a group commit's
    leader), on which a script call is one write and one read of RESP done here: none of the client's
    pool checkout, retry wrapper, per-command bookkeeping, argument encoder and reply parser, which cost
    about twice the call itself (docs/performance.md, issue 18). The connection is made by redis-py,
    from a blocking client of `connect` (same address, credentials, timeouts and eviction check on every
    new connection). EVALSHA, then EVAL when Redis does not know the script (it restarted). A read that
    waits longer than the client's socket timeout, or any error, closes the connection and raises (the
    next call opens a new one); Redis's errors are those of ERRORS. Script answers are integers or
    arrays of integers (what the consume scripts return); anything else is a ResponseError."""

    def __init__(self, client: Any) -> None:
        pool = client.connection_pool
        self._connection = pool.connection_class(**pool.connection_kwargs)

    def call(self, script: Any, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """The answer of `script` (a registered script: its `sha` and `script`) on KEYS and ARGV.

        A connection made earlier that turns out closed by the other end (Redis restarted, or a relay
        between dropped it while idle) is made again once: the first call after every Redis restart
        would fail otherwise. Sent again, a consumption fails closed at worst (a nonce the first attempt
        consumed before the connection broke answers "used"). redis-py's instrumentation does not see
        this line: its caller makes the span (tracing.redis_span)."""
        connection = self._connection
        try:
            reused = connection._sock is not None
            try:
                return self._evaluate(script, keys, args)
            except redis.exceptions.ConnectionError:
                if not reused:
                    raise
                connection.disconnect()
                return self._evaluate(script, keys, args)
        except BaseException:
            connection.disconnect()  # an answer may still be on its way: never read it
            raise

    def _evaluate(self, script: Any, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """EVALSHA, then EVAL when Redis does not know the script."""
        answer = self._round_trip(_command(b"EVALSHA", script.sha, keys, args))
        if answer is _NO_SCRIPT:
            answer = self._round_trip(_command(b"EVAL", script.script, keys, args))
            if answer is _NO_SCRIPT:
                raise redis.exceptions.ResponseError("NOSCRIPT after EVAL")
        return answer

    def _round_trip(self, command: bytes) -> Any:
        connection = self._connection
        if connection._sock is None:
            connection.connect()  # redis-py's handshake and the eviction check (`_checked`)
        sock = connection._sock
        try:
            sock.sendall(command)
            data = sock.recv(65536)
            while True:
                if not data:
                    raise redis.exceptions.ConnectionError("Connection closed by server.")
                answer = _reply(data)
                if answer is not _INCOMPLETE:
                    return answer
                more = sock.recv(65536)
                data = data + more if more else b""
        except TimeoutError:  # socket.timeout: the client's socket timeout passed
            raise redis.exceptions.TimeoutError("Timeout reading from Redis") from None
        except OSError as exc:
            raise redis.exceptions.ConnectionError(f"Error while talking to Redis: {exc}") from None

    def close(self) -> None:
        self._connection.disconnect()


_NO_SCRIPT, _INCOMPLETE = object(), object()


def _command(name: bytes, script: Any, keys: Sequence[Any], args: Sequence[Any]) -> bytes:
    """The RESP of `name script len(keys) *keys *args`, each argument encoded as redis-py does (bytes as
    they are, str as UTF-8, a number as its repr)."""
    items = [name, script, len(keys), *keys, *args]
    parts = [b"*%d\r\n" % len(items)]
    add = parts.append
    for item in items:
        if type(item) is not bytes:
            item = (item if type(item) is str else repr(item)).encode()
        add(b"$%d\r\n%b\r\n" % (len(item), item))
    return b"".join(parts)


def _reply(data: bytes) -> Any:
    """A script's whole answer in `data` (an integer, or an array of integers), _NO_SCRIPT, or
    _INCOMPLETE while more is to come; a Redis error, or any other kind of answer, is a ResponseError."""
    if not data.endswith(b"\r\n"):
        return _INCOMPLETE
    kind = data[:1]
    if kind == b":":
        return int(data[1:-2])
    if kind == b"*":
        lines = data.split(b"\r\n")
        count = int(lines[0][1:])
        if len(lines) < count + 2:
            return _INCOMPLETE
        if len(lines) > count + 2 or any(line[:1] != b":" for line in lines[1:-1]):
            raise redis.exceptions.ResponseError("unexpected answer to a script call")
        return [int(line[1:]) for line in lines[1:-1]]
    if kind == b"-":
        message = data[1:-2].decode(errors="replace")
        if message.startswith("NOSCRIPT"):
            return _NO_SCRIPT
        raise redis.exceptions.ResponseError(message)
    raise redis.exceptions.ResponseError("unexpected answer to a script call")
