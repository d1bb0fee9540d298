"""Events for channels: what a WatchEvents stream reads, who may read it, and what wakes it.

The events themselves are written by the store, in the transaction of the change they tell of
(ports.ChannelOutbox). Here:

    ChannelEventService.open   whose stream (a channel: its own; the operator: any, named) and from
                               which cursor (refused when events after it were pruned, or it is ahead)
    (core.signals.Signals wakes the open streams of a channel when a change notice says its outbox
    grew, any replica's write, through the change bus; every stream also reads on its own every
    `poll` seconds, so a lost notice only delays)
    OutboxUpkeep               a thread per process: KEY_EXPIRING warnings and pruning of old events
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ecard.errors import EcardError, FailedPrecondition, InvalidArgument
from ecard_server.config import Settings
from ecard_server.core import audit
from ecard_server.core.audit import AuditTrail
from ecard_server.core.ports import ChannelOutbox, CounterBindingStore
from ecard_server.core.principals import Principal, channel_acted_for
from ecard_server.core.records import ChannelEvent
from ecard_server.core.signals import Signals
from ecard_server.logs import event

log = logging.getLogger("ecard.channel_events")
PAGE = 500  # events per read of the outbox


class ChannelEventService:
    def __init__(self, outbox: ChannelOutbox, trail: AuditTrail, settings: Settings, signals: Signals,
                 clock: Callable[[], float] = time.time) -> None:
        self._outbox = outbox
        self._trail = trail
        self._clock = clock
        self.signals = signals
        self.poll_s = max(settings.channel_event_poll_ms, 10) / 1000

    def open(self, caller: Principal, issuer_id: str, after: int) -> str:
        """The channel whose events `caller` may read from `after`: a channel its own (an empty issuer_id
        is its own), the operator any, named. Recorded in the audit trail."""
        issuer_id = channel_acted_for(caller, issuer_id)
        if after < 0:
            raise InvalidArgument("after must be a cursor of an event (0: from the oldest kept)", "INVALID_CURSOR")
        first, last = self._outbox.bounds(issuer_id)
        if after > last:
            raise FailedPrecondition(f"cursor {after} is ahead of the last event ({last})", "CURSOR_AHEAD")
        if after + 1 < first:
            raise FailedPrecondition(
                f"events after cursor {after} were pruned (the oldest kept is {first}): read from 0", "EVENTS_PRUNED"
            )
        self._trail.record(audit.events_watched(int(self._clock()), str(caller), issuer_id, after))
        return issuer_id

    def page(self, issuer_id: str, after: int, kinds: tuple[str, ...] = (), *, number: bool = True
             ) -> list[ChannelEvent]:
        return self._outbox.page(issuer_id, after, PAGE, kinds, number=number)


class OutboxUpkeep:
    """Every `interval` seconds: KEY_EXPIRING events for keys ending within the warning horizon (once
    per key, whichever process gets there first), events older than the retention pruned, and counter
    bindings that expired a day ago (completed or not) dropped."""

    COUNTER_BINDINGS_KEPT_S = 86_400

    def __init__(self, outbox: ChannelOutbox, settings: Settings, clock: Callable[[], float] = time.time,
                 counter: CounterBindingStore | None = None) -> None:
        self._outbox = outbox
        self._counter = counter
        self._settings = settings
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if settings.channel_event_upkeep_s > 0:
            self._thread = threading.Thread(target=self._run, name="ecard-outbox-upkeep", daemon=True)
            self._thread.start()

    def run_once(self) -> int:
        now = int(self._clock())
        warned = self._outbox.warn_expiring_keys(now, self._settings.key_expiry_warning_s)
        self._outbox.prune(now - self._settings.channel_event_retention_s)
        if self._counter is not None:
            self._counter.prune_counter_bindings(now - self.COUNTER_BINDINGS_KEPT_S)
        return warned

    def _run(self) -> None:
        while not self._stop.wait(self._settings.channel_event_upkeep_s):
            try:
                self.run_once()
            except EcardError as exc:  # the store is down: next round
                event(log, "outbox_upkeep_deferred", level=logging.WARNING, error=str(exc))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
