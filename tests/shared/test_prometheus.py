"""deploy/prometheus: the rules pass promtool's check and unit tests, and a real Prometheus (Debian's
package, on a loopback port with its own data folder) scraping a live `ecard serve --workers 2` under a
little load evaluates every rule and every dashboard query with data."""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from ecard import DrugClass, EcardError, Purpose, Verdict, line_item
from ecard.testing import EcardServer, World, free_port
from ecard.v1 import verifier_pb2, verifier_pb2_grpc
from tests.helpers.services import OwnRedis, own_redis

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "deploy" / "prometheus"
RULES = RULES_DIR / "ecard.rules.yml"
DASHBOARD = ROOT / "docs" / "grafana-ecard.json"
SERIES = re.compile(r"\b(ecard[_:][a-z0-9_:]+|up)\b(\{[^}]*\})?")
# Exported only by a server with mTLS (server/ecard_server/tls.py), which the live run below is not:
# tests/process/test_tls_observability.py reads them from one; the unit tests feed their alerts.
MTLS_ONLY = frozenset({"ecard_tls_handshakes_total", "ecard_tls_handshake_failures_total"})


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (Debian package prometheus; .ci/run installs it)")
    return found


def test_promtool_checks_the_rules() -> None:
    done = subprocess.run([_binary("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    example = RULES_DIR / "prometheus.example.yml"
    done = subprocess.run([_binary("promtool"), "check", "config", str(example)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_of_every_alert() -> None:
    done = subprocess.run([_binary("promtool"), "test", "rules", "ecard.rules.test.yml"], cwd=RULES_DIR,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set(re.findall(r"alertname: (\w+)", (RULES_DIR / "ecard.rules.test.yml").read_text()))
    assert tested == set(re.findall(r"- alert: (\w+)", RULES.read_text())), "an alert without a unit test"


def rules() -> list[dict[str, str]]:
    """Each rule of the file as {"record" or "alert": name, "expr": text} (a reader for this file's layout)."""
    found: list[dict[str, str]] = []
    lines = RULES.read_text().splitlines()
    for i, line in enumerate(lines):
        head = re.match(r"\s*- (record|alert): (\S+)", line)
        if not head:
            continue
        indent = len(line) - len(line.lstrip()) + 2
        body = lines[i + 1]
        assert body.strip().startswith("expr:"), body
        expr = body.split("expr:", 1)[1].strip()
        if expr == "|":
            block = []
            for more in lines[i + 2:]:
                if more.strip() and len(more) - len(more.lstrip()) <= indent:
                    break
                block.append(more.strip())
            expr = " ".join(block)
        found.append({head.group(1): head.group(2), "expr": expr})
    return found


class OwnPrometheus:
    """prometheus on a free loopback port, its data in a temporary folder, removed by `close`."""

    def __init__(self, config: dict[str, Any], rules_text: str) -> None:
        self.folder = tempfile.mkdtemp(prefix="ecard-prometheus-")
        self.port = free_port()
        rules_path = Path(self.folder) / "ecard.rules.yml"
        rules_path.write_text(rules_text)
        config_path = Path(self.folder) / "prometheus.yml"
        config_path.write_text(json.dumps({**config, "rule_files": [str(rules_path)]}))  # JSON is YAML
        self.log = open(Path(self.folder) / "log", "wb")  # noqa: SIM115 (closed in close)
        self.process = subprocess.Popen(
            [_binary("prometheus"), f"--config.file={config_path}", f"--storage.tsdb.path={self.folder}/data",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1).status == 200:
                    return
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                pytest.fail("prometheus did not become ready")
            time.sleep(0.1)

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        answer = json.loads(urllib.request.urlopen(url, timeout=10).read())
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        return data["result"]  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def own_prometheus(config: dict[str, Any], rules_text: str) -> Iterator[OwnPrometheus]:
    server = OwnPrometheus(config, rules_text)
    try:
        yield server
    finally:
        server.close()


def checkouts(world: World, target: str, seconds: float) -> None:
    """A little of everything the rules and panels read: accepted Verifies, a replay, settles, a failed
    call (with its reason) and a refused one (no principal)."""
    end, n = time.monotonic() + seconds, 0
    with world.pharmacy() as pos, grpc.insecure_channel(target) as bare:
        anonymous = verifier_pb2_grpc.VerifierStub(bare)
        while time.monotonic() < end:
            token = world.mint(n % 2)
            answer = pos.verify(token, purpose=Purpose.MEDICAL_SETTLEMENT)
            assert answer.verdict == Verdict.ACCEPTED
            assert pos.verify(token, purpose=Purpose.MEDICAL_SETTLEMENT).verdict != Verdict.ACCEPTED
            pos.settle([line_item("XA01", "amoxicillin", DrugClass.A, unit_price_fen=1280)],
                       idempotency_key=uuid.uuid4().hex, verification_id=answer.verification_id)
            with pytest.raises(EcardError):
                pos.get_settlement("no-such-settlement")
            with pytest.raises(grpc.RpcError) as refused:
                anonymous.Verify(verifier_pb2.VerifyRequest(token=token), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            n += 1
            time.sleep(0.05)


def redis_outage(world: World, redis: OwnRedis, seconds: float) -> None:
    """Redis gone for a moment under Verify calls: they fail closed (UNAVAILABLE, the nonce store's
    reason), as the alerts about it expect; then Redis is back with what it had (append-only file)."""
    redis.stop()
    unavailable, end = 0, time.monotonic() + seconds
    with world.pharmacy() as pos:
        while time.monotonic() < end:
            try:
                assert pos.verify(world.mint(0), purpose=Purpose.MEDICAL_SETTLEMENT).verdict != Verdict.ACCEPTED
            except EcardError as exc:
                unavailable += exc.status_name == "UNAVAILABLE"
            time.sleep(0.05)
        redis.start()
        deadline = time.monotonic() + 60
        while pos.verify(world.mint(0), purpose=Purpose.MEDICAL_SETTLEMENT).verdict != Verdict.ACCEPTED:
            assert time.monotonic() < deadline, "ecard did not heal after Redis came back"
            time.sleep(0.2)
    assert unavailable > 0


@pytest.mark.postgres
@pytest.mark.slow
def test_a_real_prometheus_evaluates_every_rule_and_panel(pg_url: str, tmp_path: Path) -> None:
    """Every recording rule and dashboard query has data, every alert evaluates without error and every
    series an alert compares exists (a short Redis outage makes the failure series real)."""
    metrics_port = free_port()
    config = tmp_path / "ecard.toml"
    config.write_text(f'redis_namespace = "ecard-test-{uuid.uuid4().hex[:12]}"\n')
    with own_redis("--appendonly", "yes", "--appendfsync", "always") as redis:
        server = EcardServer(db=pg_url, redis=redis.url, extra_args=[
            "--workers", "2", "--config", str(config), "--metrics-listen", f"127.0.0.1:{metrics_port}"])
        # The same rules, evaluated every second instead of every 15 or 30 s, so the test takes seconds.
        fast_rules = re.sub(r"(?m)^    interval: \S+\n", "", RULES.read_text())
        job = {"job_name": "ecard", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}
        scrape = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": [job]}
        with server, own_prometheus(scrape, fast_rules) as prometheus:
            world = World.seed(server.target, cards=2)
            checkouts(world, server.target, seconds=4)
            redis_outage(world, redis, seconds=3)
            deadline = time.monotonic() + 120  # a loaded machine scrapes late: load on until 8 scrapes saw it
            checkouts(world, server.target, seconds=6)
            while not prometheus.query('count_over_time(ecard_workers_reporting{job="ecard"}[1m]) >= 8'):
                assert time.monotonic() < deadline, "fewer than 8 scrapes of ecard in a minute"
                checkouts(world, server.target, seconds=2)

            for rule in rules():
                if "record" in rule:
                    values = prometheus.query(rule["record"])
                    assert values, f"recording rule {rule['record']} has no data"
                    # (a method only called before the first scrape has a NaN quantile; not every one)
                    assert not all(math.isnan(float(v["value"][1])) for v in values), (rule, values)
                else:  # an alert's condition is false on a healthy server: what it compares must exist
                    for name, selector in SERIES.findall(rule["expr"]):
                        if (name == "up" and "absent(" in rule["expr"]) or name in MTLS_ONLY:
                            continue
                        assert prometheus.query(name + selector), f"alert {rule['alert']}: {name}{selector} has no data"
            groups = prometheus.api("rules")["groups"]
            evaluated = [r for group in groups for r in group["rules"]]
            assert len(evaluated) == len(rules())
            assert all(r["health"] == "ok" and not r.get("lastError") for r in evaluated), evaluated

            dashboard = json.loads(DASHBOARD.read_text())
            for panel in dashboard["panels"]:
                for target in panel["targets"]:
                    expr = target["expr"].replace("$job", "ecard").replace("$__rate_interval", "30s")
                    values = prometheus.query(expr)
                    assert values, f"panel {panel['title']!r}: no data for {expr}"
                    assert not all(math.isnan(float(v["value"][1])) for v in values), (panel["title"], values)
            assert server.stop() == 0
