"""`make bench SCALE=national`, bounded for CI: the same program on 50,000 generated cards and a second
per stream. What it must show holds at any size: the cold, half and warm streams really meet the card
cache that often (the server's own hit and miss counters say so), and every token is accepted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(300)]


def test_the_cache_is_cold_half_warm_and_warm_as_the_streams_say(tmp_path: Path) -> None:
    out = tmp_path / "national.json"
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.bench.national", "--cards", "50000", "--hot", "1000", "--rounds", "1",
         "--seconds", "1", "--out", str(out)], capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["cold"]["cache_hit_share"] < 0.2
    assert 0.3 < figures["half"]["cache_hit_share"] < 0.7
    assert figures["warm"]["cache_hit_share"] > 0.95
    for stream in ("cold", "half", "warm"):
        assert figures[stream]["verify_per_s_per_core"] > 0 and figures[stream]["unexpected"] == 0
    assert figures["server_rss_mb"] > 0 and figures["cards_and_bindings_bytes"] > 0
