"""Bounded background load for fault tests: counters settling (SDK retries, one idempotency key per
receipt) or verifying, each answer time-stamped, so a test can break a dependency mid-load and then
check every acknowledged answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ecard import ClientOptions, EcardError, PharmacyClient, RetryConfig, line_item
from ecard.testing import World
from ecard.v1 import types_pb2 as t

PRICE_FEN = 123
ITEMS = [line_item("A1", "insulin", t.DRUG_CLASS_A, unit_price_fen=PRICE_FEN)]


@dataclass
class Answer:
    at: float  # time.monotonic() when the answer came
    key: str  # idempotency key (settle) or token (verify)
    card: int
    outcome: str  # "OK", a reason name (verify) or the error's status name
    settlement_id: str = ""
    detail: str = ""  # an error's message
    sent: float = 0.0  # time.monotonic() when the call was made


@dataclass
class Load:
    """`callers` threads calling `call(pos, n, k)` until stopped, or `limit` calls each."""

    world: World
    call: Callable[[PharmacyClient, int, int], Answer]
    callers: int = 4
    limit: int = 100_000
    options: ClientOptions = field(default_factory=ClientOptions)
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(self.callers)]

    def _run(self, n: int) -> None:
        with PharmacyClient(self.world.target, merchant_id=self.world.pharmacy_id, options=self.options) as pos:
            for k in range(self.limit):
                if self._stop.is_set():
                    return
                sent = time.monotonic()
                answer = self.call(pos, n, k)
                answer.sent = sent
                with self._lock:
                    self.answers.append(answer)

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def count(self, outcome: str = "OK", since: float = 0.0) -> int:
        with self._lock:
            return sum(1 for a in self.answers if a.outcome == outcome and a.at >= since)

    def wait_for(self, n: int, outcome: str = "OK", since: float = 0.0, timeout: float = 60.0) -> float:
        """Seconds until `n` answers of `outcome` arrived after `since`; fails the test past `timeout`."""
        start = time.monotonic()
        while self.count(outcome, since) < n:
            assert time.monotonic() - start < timeout, f"fewer than {n} {outcome} answers after {timeout} s"
            time.sleep(0.01)
        return time.monotonic() - start


def settle_load(world: World, *, callers: int = 4, retry: RetryConfig | None = None) -> tuple[Load, dict[str, str]]:
    """Counters settling one line of PRICE_FEN each with a fresh token, on every card in turn; the
    tokens by idempotency key (to retry with later)."""
    tokens: dict[str, str] = {}
    lock = threading.Lock()

    def settle(pos: PharmacyClient, n: int, k: int) -> Answer:
        card = (n + k) % len(world.ecard_ids)
        key = f"r-{n}-{k}"
        token = world.mint(card, ttl_seconds=300, purposes=[t.PURPOSE_MEDICAL_SETTLEMENT])
        with lock:
            tokens[key] = token
        try:
            record = pos.settle(ITEMS, idempotency_key=key, token=token)
        except EcardError as exc:
            return Answer(time.monotonic(), key, card, exc.status_name, detail=str(exc))
        return Answer(time.monotonic(), key, card, "OK", record.settlement_id)

    options = ClientOptions(timeout=3.0, retry=retry or RetryConfig())
    return Load(world, settle, callers=callers, options=options), tokens


def verify_load(world: World, *, callers: int = 4, ttl_seconds: int = 300) -> Load:
    """Counters verifying fresh tokens (Verify is never retried: it consumes the token)."""

    def verify(pos: PharmacyClient, n: int, k: int) -> Answer:
        card = (n + k) % len(world.ecard_ids)
        token = world.mint(card, ttl_seconds=ttl_seconds)
        try:
            answer = pos.verify(token, purpose=t.PURPOSE_IDENTITY)
        except EcardError as exc:
            return Answer(time.monotonic(), token, card, exc.status_name, detail=str(exc))
        return Answer(time.monotonic(), token, card, t.Reason.Name(answer.reason))

    return Load(world, verify, callers=callers, options=ClientOptions(timeout=3.0))
