"""No token accepted twice, across replicas, while one of them dies and comes back.

Beside the load, `ReplayProbe` takes a fresh token every `interval_s`, has it accepted by one replica
(turning round them) and presents the same token to the others, straight to each replica's address:
each must answer REPLAYED. Tokens accepted while the victim was down are presented to it once it is
back: it must refuse them too (the consumed nonces live in Redis, not in the process that died).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ecard import EcardError, PharmacyClient
from ecard.v1 import types_pb2
from loadtest.harness.seeding import Seed

IDENTITY = types_pb2.PURPOSE_IDENTITY


class ReplayProbe(threading.Thread):
    def __init__(self, targets: list[str], seed: Seed, options_for: Callable[..., Any], *,
                 load_started: Callable[[], bool], back_after_restart: Callable[[], bool], victim: int,
                 interval_s: float = 0.05) -> None:
        super().__init__(daemon=True, name="replay-probe")
        merchant = seed.pharmacies[0]
        self.counters = [PharmacyClient(t, merchant_id=merchant, options=options_for(f"merchant:{merchant}", timeout=2))
                         for t in targets]
        self.seed, self.victim, self.interval_s = seed, victim, interval_s
        self.load_started, self.back_after_restart = load_started, back_after_restart
        self.stop = threading.Event()
        self.counts = {"accepted_first": 0, "replays_refused": 0, "accepted_twice": 0, "unreachable": 0,
                       "refused_by_restarted": 0}
        self._while_down: list[str] = []  # tokens accepted elsewhere while the victim was unreachable

    def _ask(self, replica: int, token: str) -> int | None:
        """The reason replica gives to `token`, or None when it cannot be reached."""
        try:
            return int(self.counters[replica].verify(token, purpose=IDENTITY).reason)
        except EcardError:
            self.counts["unreachable"] += 1
            return None

    def _replay(self, replica: int, token: str) -> int | None:
        reason = self._ask(replica, token)
        if reason == types_pb2.REASON_OK:
            self.counts["accepted_twice"] += 1
        elif reason == types_pb2.REASON_REPLAYED:
            self.counts["replays_refused"] += 1
        return reason

    def run(self) -> None:
        signer, ecards = self.seed.channels[0].signer(), self.seed.usable
        n, checked_restarted = 0, False
        while not self.load_started():  # its own Verify calls must not look like the load's start
            if self.stop.wait(0.1):
                return
        while not self.stop.wait(self.interval_s):
            first = n % len(self.counters)
            token = signer.mint(ecards[n % len(ecards)][0])
            n += 1
            if self._ask(first, token) != types_pb2.REASON_OK:
                continue
            self.counts["accepted_first"] += 1
            for other in range(len(self.counters)):
                if other != first and self._replay(other, token) is None and other == self.victim:
                    self._while_down.append(token)
            if not checked_restarted and self.back_after_restart():
                checked_restarted = True
                self._replay_on_restarted()

    def _replay_on_restarted(self, within_s: float = 15.0) -> None:
        """Every token accepted while the victim was down, shown to it; its channel may need a moment to
        reconnect (gRPC's backoff), so an unreachable answer is asked again, up to `within_s`."""
        deadline = time.monotonic() + within_s
        for old in self._while_down:
            reason = self._replay(self.victim, old)
            while reason is None and time.monotonic() < deadline and not self.stop.wait(0.2):
                reason = self._replay(self.victim, old)
            if reason == types_pb2.REASON_REPLAYED:
                self.counts["refused_by_restarted"] += 1

    def result(self) -> dict[str, Any]:
        return {**self.counts, "accepted_while_victim_down": len(self._while_down),
                "ok": self.counts["accepted_twice"] == 0 and self.counts["accepted_first"] > 0
                and self.counts["refused_by_restarted"] == len(self._while_down)}

    def close(self) -> None:
        for counter in self.counters:
            counter.close()
