"""The gRPC health status follows PostgreSQL and Redis: NOT_SERVING while either is down (outages
played by a loopback relay between the server and the service), SERVING again by itself after."""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ecard import Purpose, Verdict
from ecard.testing import EcardServer, World, free_port
from ecard_server.app import SERVICE_NAMES

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def statuses(target: str) -> set[int]:
    """The status of "" and of every ecard service name, as a load balancer's health check sees them."""
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return {stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status
                for name in ["", *SERVICE_NAMES]}


def serving_gauge(metrics_port: int) -> float:
    """`ecard_serving` as Prometheus scrapes it (the dashboard's readiness panel)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    match = re.search(r"^ecard_serving (\S+)$", text, re.M)
    assert match, "no ecard_serving in /metrics"
    return float(match.group(1))


def wait_for(target: str, status: int, within: float = 20.0) -> float:
    """Seconds until every name reports `status`; fails past `within` (generous: a loaded machine)."""
    start = time.monotonic()
    while (seen := statuses(target)) != {status}:
        assert time.monotonic() - start < within, f"health still {seen} after {within} s"
        time.sleep(0.1)
    return time.monotonic() - start


@pytest.fixture
def relayed(pg_url: str, redis_url: str, tcp_proxy: Callable[[str], Any],
            tmp_path: Path) -> Iterator[tuple[EcardServer, Any, Any, int]]:
    config = tmp_path / "ecard.toml"
    config.write_text(f'redis_namespace = "ecard-test-{uuid.uuid4().hex[:12]}"\n')
    pg, redis = tcp_proxy(pg_url), tcp_proxy(redis_url)
    metrics_port = free_port()
    with EcardServer(db=pg.url(pg_url), redis=redis.url(redis_url),
                     extra_args=["--config", str(config), "--metrics-listen", f"127.0.0.1:{metrics_port}"]) as server:
        yield server, pg, redis, metrics_port


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("outage", ["postgresql", "redis"])
def test_health_is_not_serving_while_a_dependency_is_down_and_recovers(
        relayed: tuple[EcardServer, Any, Any, int], outage: str) -> None:
    server, pg, redis, metrics_port = relayed
    world = World.seed(server.target, cards=1)
    assert statuses(server.target) == {SERVING} and serving_gauge(metrics_port) == 1.0
    relay = pg if outage == "postgresql" else redis
    relay.cut()
    wait_for(server.target, NOT_SERVING)
    time.sleep(1.0)  # it stays NOT_SERVING while the service stays down (no flapping back)
    assert statuses(server.target) == {NOT_SERVING}
    assert serving_gauge(metrics_port) == 0.0
    relay.restore()
    wait_for(server.target, SERVING)
    assert serving_gauge(metrics_port) == 1.0
    with world.pharmacy() as pos:  # and the server serves again, without a restart
        assert pos.verify(world.mint(0), purpose=Purpose.IDENTITY).verdict == Verdict.ACCEPTED
    changes = [json.loads(line) for line in server.logs().splitlines() if '"readiness"' in line]
    assert [(c["serving"], c["down"]) for c in changes] == [(False, [outage]), (True, [])]


def test_an_embedded_server_is_serving_with_nothing_to_watch(server: EcardServer) -> None:
    assert statuses(server.target) == {SERVING}
    assert '"readiness"' not in server.logs()
