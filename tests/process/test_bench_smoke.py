"""`make bench` runs end to end and reports every figure and ratio. The ratios themselves are checked by
`make bench` (non-zero exit), never here: timed assertions do not belong in unit tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.bench.run import GOALS

pytestmark = pytest.mark.serial  # the benches load both cores: not beside tests that time themselves


@pytest.mark.slow
def test_bench_writes_every_figure_and_ratio(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "loadtest.bench", "--scale", "tiny", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.exists(), result.stderr[-2000:]
    figures = json.loads(out.read_text())
    expected = {
        "rate_health", "rate_sig", "rate_verify", "verify_c1_p50_ms", "verify_c64_p99_ms", "batch_items_rate",
        "stream_items_rate", "settle_rate", "settle_p50_ms", "settle_p99_ms", "verify_p50_half_ms",
        "verify_p99_half_ms", "verify_p99_9_half_ms", "rate_codec", "rate_pyjwt", "server_rss_mb",
        "ecard_card_cache_hit_ratio", "enroll_rate", "batcher_rate", "batcher_gain", *GOALS,
    }
    assert expected <= set(figures), expected - set(figures)
    assert set(figures["goals"]) == set(GOALS)
    for key in ("verify_unexpected", "batch_unexpected", "stream_unexpected", "settle_unexpected"):
        assert figures[key] == 0, key  # every fresh token accepted, every settlement adds up
    assert result.returncode == (0 if all(g["held"] for g in figures["goals"].values()) else 1)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_bench_versus_drives_ecard_and_both_peers(tmp_path: Path) -> None:
    """The four servers of `make bench`'s comparison answer every fresh token OK through the same client."""
    from loadtest.bench.versus import PAIRS, SERVERS

    out = tmp_path / "versus.json"
    result = subprocess.run(
        [sys.executable, "-m", "loadtest.bench.versus", "--rounds", "1", "--seconds", "0.3", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.exists(), result.stderr[-2000:]
    figures = json.loads(out.read_text())
    for name in SERVERS:
        assert figures[name]["verify_rate"] > 0, name
        assert figures[name]["unexpected"] == 0, name  # a replay or an error would be counted here
    assert {f"{ours}_vs_{peer}" for ours, peer in PAIRS} <= set(figures)
    assert result.returncode == (0 if all(figures["goals"].values()) else 1)


def test_events_bench_reports_delivery_and_lag(tmp_path: Path) -> None:
    """The events bench, small: every event delivered once, and its figures written."""
    out = tmp_path / "bench_events.json"
    result = subprocess.run(
        [sys.executable, "-m", "loadtest.bench.events", "--rate", "80", "--seconds", "1", "--channels", "4",
         "--bindings", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.exists(), result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["events_received"] == figures["events_expected"] > 0
    assert figures["events_lost"] == figures["events_repeated"] == 0
    assert {"lag_p50_ms", "lag_p99_ms", "delivered_events_per_s", "change_call_p99_ms", "delivery_p50_ms",
            "delivery_p99_ms", "server_ms_per_change"} <= set(figures)
    assert figures["server_ms_per_change"] > 0


@pytest.mark.postgres
@pytest.mark.redis
def test_events_bench_on_the_shared_deployment_leaves_nothing_in_redis(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    """On PostgreSQL + Redis the events bench's server has a Redis namespace of its own: every event
    delivered once, and none of the namespace's keys left on the machine's Redis after the run."""
    import redis

    out = tmp_path / "bench_events.json"
    result = subprocess.run(
        [sys.executable, "-m", "loadtest.bench.events", "--rate", "40", "--seconds", "1", "--channels", "4",
         "--bindings", "2", "--db", pg_url, "--redis", redis_url, "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.exists(), result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["store"] == "postgresql+redis" and figures["events_lost"] == figures["events_repeated"] == 0
    namespace = figures["redis_namespace"]
    assert namespace.startswith("ecard-bench-events-")
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match=f"{namespace}:*", count=1000)) == []
    finally:
        client.close()


@pytest.mark.slow
def test_tracing_bench_reports_each_sampler(tmp_path: Path) -> None:
    """`make bench`'s tracing part, small: every traced server exported spans to the receiver, every call
    was answered OK, and each sampler's ratio is the median of the rounds' (one a round). Phases of 1 s:
    at 0.3 s a loaded machine left a round without calls, or 5 % sampling without a single sampled span
    (at 1 %, 2 rounds of 1 s record about 50)."""
    from loadtest.bench.tracing_cost import GOAL

    out = tmp_path / "tracing.json"
    result = subprocess.run(
        [sys.executable, "-m", "loadtest.bench.tracing_cost", "--rounds", "2", "--seconds", "1",
         "--sampler", "parentbased_traceidratio:0.01", "--sampler", "always_on", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.exists(), result.stderr[-2000:]
    figures = json.loads(out.read_text())
    ratio, every = figures["traced parentbased_traceidratio 0.01"], figures["traced always_on 1"]
    said = result.stdout[-2000:] + result.stderr[-2000:]
    for traced in (ratio, every):
        assert traced["export_requests"] > 0 and traced["unexpected"] == 0, said
        assert len(traced["round_ratios"]) == 2, (traced["round_rates"], figures["untraced"]["round_rates"])
    assert figures["untraced"]["unexpected"] == 0, said
    assert result.returncode == (0 if ratio["traced_vs_untraced"] >= GOAL else 1), said
