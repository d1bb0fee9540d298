"""docs/grafana-*.json: every query names metrics, labels and label values that a live server's
/metrics exports (a production-shaped `ecard serve --workers 2` on PostgreSQL and Redis, after a
checkout), and aggregates over processes, so the same panels read one process, `--workers N` (one
summed /metrics) or several hosts. (tests/shared/test_prometheus.py evaluates them in a real Prometheus.)"""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ecard import Assurance, DrugClass, EcardError, Purpose, Verdict, line_item
from ecard.testing import EcardServer, World, free_port

DASHBOARDS = sorted((Path(__file__).resolve().parents[2] / "docs").glob("grafana-*.json"))
TARGET_LABELS = {"job", "instance"}  # added by Prometheus when it scrapes, never in /metrics itself
AGGREGATIONS = ("sum", "min", "max", "avg", "count", "histogram_quantile")
METRIC = re.compile(r"\b(ecard_[a-z0-9_]+)\b(\{[^}]*\})?")
PROMETHEUS_OWN = re.compile(r"\b(up)\{")  # series Prometheus itself makes for every scrape target
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
BY = re.compile(r"\bby\s*\(([^)]*)\)")


def queries(path: Path) -> Iterator[str]:
    dashboard = json.loads(path.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield target["expr"]


@pytest.fixture(scope="module")
def exported(pg_module_url: str, redis_module_url: str, tmp_path_factory: pytest.TempPathFactory,
             ) -> dict[str, list[dict[str, str]]]:
    """Sample name -> the label sets of its samples, from a live /metrics after a verify, a replay, a
    settle and a failed call."""
    port = free_port()
    config = tmp_path_factory.mktemp("dashboard") / "ecard.toml"
    config.write_text(f'redis_namespace = "ecard-test-{uuid.uuid4().hex[:12]}"\n')
    server = EcardServer(db=pg_module_url, redis=redis_module_url, extra_args=[
        "--workers", "2", "--config", str(config), "--metrics-listen", f"127.0.0.1:{port}"])
    with server:
        world = World.seed(server.target, cards=1)
        with world.pharmacy() as pos:
            token = world.mint(0)
            answer = pos.verify(token, purpose=Purpose.MEDICAL_SETTLEMENT, min_assurance=Assurance.PIN)
            assert answer.verdict == Verdict.ACCEPTED
            pos.verify(token, purpose=Purpose.MEDICAL_SETTLEMENT)  # REPLAYED
            pos.settle([line_item("XA01", "amoxicillin", DrugClass.A, unit_price_fen=1280)],
                       idempotency_key="dash-1", verification_id=answer.verification_id)
            with pytest.raises(EcardError):  # a failed call: counted with its ErrorInfo reason
                pos.get_settlement("no-such-settlement")
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(dict(sample.labels))
    return samples


def test_there_is_a_dashboard_with_queries() -> None:
    assert DASHBOARDS, "no docs/grafana-*.json"
    for path in DASHBOARDS:
        assert len(list(queries(path))) >= 10, path.name


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_every_query_names_what_the_server_exports(path: Path, exported: dict[str, list[dict[str, str]]]) -> None:
    for expr in queries(path):
        names = METRIC.findall(expr)
        assert names or PROMETHEUS_OWN.search(expr), f"no ecard metric in {expr}"
        grouped = {label.strip() for group in BY.findall(expr) for label in group.split(",") if label.strip()}
        for name, selector in names:
            assert name in exported, f"{path.name}: {name} is not in /metrics ({expr})"
            label_sets = exported[name]
            known = {key for labels in label_sets for key in labels} | TARGET_LABELS
            for label, op, value in MATCHER.findall(selector or ""):
                assert label in known, f"{path.name}: {name} has no label {label!r}"
                if op == "=" and label not in TARGET_LABELS:
                    assert any(labels.get(label) == value for labels in label_sets), \
                        f"{path.name}: no {name} sample with {label}={value!r}"
        for label in grouped:
            assert any(label in {key for labels in exported[n] for key in labels} for n, _ in names), \
                f"{path.name}: grouped by {label!r}, which none of its metrics has ({expr})"


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_every_query_aggregates_over_processes(path: Path) -> None:
    """With --workers the gauges carry a `worker` label and several hosts are several series: a query
    that did not aggregate would draw one line per process, or fail a division."""
    for expr in queries(path):
        for term in re.split(r"\s/\s", expr):
            assert term.strip().startswith(AGGREGATIONS), f"{path.name}: not aggregated: {term}"
