"""Waiting for a condition with a bound, and how long it took."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def until(check: Callable[[], T | None], *, within: float, what: str, interval: float = 0.02) -> tuple[T, float]:
    """Calls `check` until it returns something other than None; returns it and the seconds it took."""
    start = time.monotonic()
    while True:
        found = check()
        elapsed = time.monotonic() - start
        if found is not None:
            return found, elapsed
        assert elapsed < within, f"{what}: not within {within} s"
        time.sleep(interval)
