"""The limits a benchmark's server runs with: the rate limiter on (its cost is in every figure) but
far above what one principal of the benchmark can send, since the benchmark measures how much one
caller gets through, not the default limit (docs/security.md, limits)."""

from __future__ import annotations

from pathlib import Path

CAPACITY_LIMITS = "principal_calls_per_s = 100000000\nprincipal_burst = 100000000\n"


def capacity_config(path: Path, extra: str = "") -> str:
    """Writes a settings file of CAPACITY_LIMITS (and `extra` lines) at `path`; returns its path."""
    path.write_text(extra + CAPACITY_LIMITS)
    return str(path)
