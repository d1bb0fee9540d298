"""Change notices of a shared deployment through Redis (RedisChangeBus, core.ports.ChangeBus).

Notices travel on a pub/sub channel `<ns>:changes` to every process's caches. Pub/sub forgets what a
disconnected subscriber missed, so on every (re)connect the caches are dropped whole, and while
disconnected they are dropped again and again: never older than a fraction of a second.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from contextlib import suppress
from typing import Any

import redis

from ecard_server.core import events
from ecard_server.core.ports import Listener
from ecard_server.logs import event
from ecard_server.storage.redis_connect import ERRORS, connect

log = logging.getLogger("ecard.redis")
_ERRORS = ERRORS


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
