"""`python -m loadtest.measure.nonce_memory` (the figure of docs/scaling.md) measures the keys a real
`ecard serve --redis` writes for the nonces it consumes, and leaves none behind."""

from __future__ import annotations

import pytest


@pytest.mark.redis
def test_nonce_memory_measures_the_servers_own_keys_and_leaves_none_behind(redis_url: str) -> None:
    import redis

    from loadtest.measure import nonce_memory

    figures = nonce_memory.measure(redis_url, 3000)
    assert figures["key_bytes"] == len("noncemem-12345678:nonce:") + len("bank-12345678") + 1 + 16  # World's issuer
    assert figures["key_bytes"] < figures["memory_usage_per_key"] < 1000
    assert not list(redis.Redis.from_url(redis_url).scan_iter(match="noncemem-*", count=10000))
