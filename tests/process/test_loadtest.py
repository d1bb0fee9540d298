"""The load-test harness (loadtest/): its pure parts here, and whole Locust runs against real servers.

The Locust runs are subprocesses (Locust patches the standard library for gevent on import, which
must not happen inside pytest): a smoke run through `python -m loadtest` as `make loadtest` does,
a distributed run whose thresholds are set below what it achieves, and a run against an in-test
server that accepts every token, which the harness must fail for its wrong verdicts.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from ecard import DrugClass, Reason, SettlementStatus, Verdict, line_item
from ecard.testing import EcardServer
from ecard.v1 import settlement_pb2, verifier_pb2
from loadtest.harness.baskets import HOSPITAL_CATALOGUE, PHARMACY_CATALOGUE, basket, check_settlement
from loadtest.harness.runner import parse_seconds
from loadtest.harness.seeding import Seed, seed_deployment
from loadtest.harness.slo import Measurement, Thresholds, WrongAnswer, evaluate
from loadtest.harness.tally import Tally

ROOT = Path(__file__).resolve().parents[2]
SMALL_SEED = ["--cards", "3000", "--ecards", "300", "--lost-ecards", "10", "--pharmacies", "5", "--hospitals", "2"]
HOSTILE_CASES = {
    "hostile forged expects BAD_SIGNATURE",
    "hostile expired expects EXPIRED",
    "hostile replayed expects REPLAYED",
    "hostile lost card expects CARD_LOST",
    "hostile unbound channel expects CHANNEL_NOT_BOUND",
    "hostile no PIN for settlement expects ASSURANCE_TOO_LOW",
}


# -- the pure parts -------------------------------------------------------------------------------
def test_the_pure_parts_do_not_import_locust() -> None:
    """Locust patches the standard library for gevent on import: never inside pytest."""
    assert "locust" not in sys.modules and "gevent.monkey" not in sys.modules


def measured(p50: float | None = 0.02, p99: float | None = 0.2, **kw: int) -> Measurement:
    fields = {"checkouts": 100, "requests": 1000, "failures": 0, "wrong_verdicts": 0, **kw}
    return Measurement(checkout_p50_s=p50, checkout_p99_s=p99, **fields)


def test_gate_passes_within_every_threshold() -> None:
    assert evaluate(Thresholds(), measured()) == []


@pytest.mark.parametrize(
    ("measurement", "failed"),
    [
        (measured(p99=3.5), ["slo-checkout-p99"]),
        (measured(p50=1.2, p99=2.0), ["slo-checkout-p50"]),
        (measured(failures=2), ["slo-failure-ratio"]),
        (measured(wrong_verdicts=1), ["slo-wrong-verdicts"]),
        (measured(p50=None, p99=None, checkouts=0), ["slo-checkout-p99"]),
    ],
)
def test_gate_names_the_threshold_that_failed(measurement: Measurement, failed: list[str]) -> None:
    breaches = evaluate(Thresholds(), measurement)
    assert [b.name for b in breaches] == failed
    assert failed[0] in str(breaches[0])


def test_tally_merges_worker_reports_and_measures_windows() -> None:
    master, worker = Tally(), Tally()
    worker.record_start("checkout", 0.5, tolerance_s=0.1)
    worker.record_start("checkout", 0.01, tolerance_s=0.1)
    worker.record_verdict("REJECTED", "CARD_LOST")
    worker.record_wrong("hostile forged: expected REJECTED/BAD_SIGNATURE, got ACCEPTED/OK")
    master.merge(worker.drain())
    assert worker.to_dict() == Tally().to_dict()
    assert (master.starts["checkout"], master.late["checkout"], master.max_lateness_s) == (2, 1, 0.5)
    assert master.verdicts == {"REJECTED/CARD_LOST": 1} and master.wrong_verdicts == 1
    before = master.snapshot()
    master.record_verdict("ACCEPTED", "OK")
    assert master.since(before).verdicts == {"ACCEPTED/OK": 1}


def test_a_1_s_gate_fails_at_1_05_s() -> None:
    """Checkout times are exact (HdrHistogram, 3 significant digits), not Locust's buckets: Locust keeps
    a 1,050-ms time as 1,000 ms (it rounds times over a second to 100 ms), so its p99 would pass a 1-s gate."""
    worker, master = Tally(), Tally()
    for _ in range(99):
        worker.record_checkout(0.2)
    worker.record_checkout(1.05)
    worker.record_checkout(1.05)
    master.merge(worker.drain())  # shipped to the master as workers do
    p99 = master.checkout_percentile(0.99)
    assert p99 is not None and 1.049 <= p99 <= 1.051
    assert round(1050, -2) == 1000  # what Locust's StatsEntry keeps of it
    breaches = evaluate(Thresholds(checkout_p99_s=1.0), measured(p99=p99, checkouts=master.checkouts))
    assert [b.name for b in breaches] == ["slo-checkout-p99"]
    window = master.snapshot()
    master.record_checkout(2.5)
    assert master.since(window).checkouts == 1 and master.since(window).checkout_percentile(0.5) == pytest.approx(2.5,
                                                                                                                rel=1e-3)


def test_baskets_are_realistic_and_settlements_are_checked() -> None:
    rng = random.Random(7)
    for catalogue in (PHARMACY_CATALOGUE, HOSPITAL_CATALOGUE):
        baskets = [basket(catalogue, rng) for _ in range(300)]
        assert all(1 <= len(b) <= 5 for b in baskets)
        classes = {item.drug_class for b in baskets for item in b}
        assert classes == {DrugClass.A, DrugClass.B, DrugClass.C}
    items = [line_item("X1", "阿莫西林", DrugClass.A, 1_250, 2)]
    record = settlement_pb2.SettlementRecord
    settled = SettlementStatus.SETTLED
    check_settlement(record(status=settled, total_fen=2_500, personal_account_paid_fen=2_000, self_pay_fen=500), items)
    for wrong in (record(status=settled, total_fen=2_500, self_pay_fen=400),
                  record(status=settled, total_fen=2_400, self_pay_fen=2_400),
                  record(status=SettlementStatus.REFUNDED, total_fen=2_500, self_pay_fen=2_500)):
        with pytest.raises(WrongAnswer):
            check_settlement(wrong, items)


def test_run_time_syntax() -> None:
    assert [parse_seconds(t) for t in ("90", "90s", "5m", "1h30m")] == [90, 90, 300, 5400]


# -- seeding --------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.serial
def test_seeding_enrolls_100000_cards_well_under_a_minute(server: EcardServer, tmp_path: Path) -> None:
    started = time.perf_counter()
    seed = seed_deployment(server.target, cards=100_000, ecards=20, lost_ecards=2, log=lambda line: None)
    enroll_s = seed.timings_s["enroll_cards"]
    assert enroll_s < 45, f"EnrollCards of 100,000 cards took {enroll_s:.1f} s"
    assert time.perf_counter() - started < 60
    assert seed.cards_enrolled == 100_000 and len(seed.usable) == 18 and seed.bank_only
    assert Seed.load(seed.save(tmp_path / "seed.json")) == seed  # what workers and later runs read


# -- whole runs -----------------------------------------------------------------------------------
def run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "loadtest", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def report_of(prefix: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(Path(f"{prefix}.report.json").read_text(encoding="utf-8"))


HOLDERS_AT_COUNTERS = """
import random, types
import gevent
from gevent.event import Event
from loadtest.counter import MerchantCounter

counters = []
for _ in range(3):
    counter = MerchantCounter.__new__(MerchantCounter)  # what holder() reads; no Locust environment
    counter.rng, counter.signers = random.Random(7), ["bank"]  # the same draws: the same first pick
    counter.seed = types.SimpleNamespace(usable=[("e1", (0,)), ("e2", (0,))])
    counters.append(counter)
inside, leave = [], Event()

def visit(counter):
    try:
        inside.append(counter.holder()[0])
        leave.wait()
    finally:
        counter.visit_ended()

first = [gevent.spawn(visit, c) for c in counters[:2]]
gevent.sleep(0)
print(sorted(inside))  # two visits under way at once: two people
leave.set()
gevent.joinall(first)
again = [counters[2].holder()[0] for _ in range(40)]
print(sorted(set(again)))  # both free again once those visits ended
"""


def test_a_holder_is_in_one_visit_at_a_time() -> None:
    """Two visits under way at once take two holders, not one holder twice (her second quote would be
    stale: QUOTE_STALE, a failed RPC against the SLO), and a holder is free again once her visit ends."""
    done = subprocess.run([sys.executable, "-c", HOLDERS_AT_COUNTERS], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:2] == ["['e1', 'e2']", "['e1', 'e2']"], done.stdout


@pytest.mark.slow
@pytest.mark.serial
@pytest.mark.timeout(90)
def test_smoke_run_passes_the_slo_with_every_scenario_and_no_wrong_verdict(tmp_path: Path) -> None:
    """What `make loadtest` does, shorter: its own server on loopback, seeded, 25 s of load, stopped."""
    started = time.monotonic()
    result = run(["steady", "--run-time", "25s", "--reports", str(tmp_path), "--", *SMALL_SEED], timeout=85)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert time.monotonic() - started < 60
    assert "SLO PASS" in result.stdout
    report = report_of(tmp_path / "loadtest")
    assert report["verdict"] == "PASS" and report["failed_thresholds"] == []
    assert set(report["scheduled_starts_by_scenario"]) == {"checkout", "hospital", "identity", "hostile"}
    assert all(n > 0 for n in report["scheduled_starts_by_scenario"].values())
    checks = report["verdict_checks"]
    assert set(checks) >= HOSTILE_CASES, sorted(checks)
    assert all(checks[case]["count"] > 0 and checks[case]["wrong"] == 0 for case in HOSTILE_CASES)
    assert report["wrong_verdicts"]["count"] == 0
    reasons = {key.split("/")[1] for key in report["verdicts_by_reason"]}
    assert {"OK", "BAD_SIGNATURE", "EXPIRED", "REPLAYED", "CARD_LOST", "CHANNEL_NOT_BOUND"} <= reasons
    assert report["checkout"]["count"] > 100 and report["checkout"]["p99_s"] <= 3.0
    assert report["rpcs"]["/ecard.v1.Settlement/Settle"]["count"] > 0
    # the failure ratio is over RPCs alone: the gRPC rows, not the visits nor the verdict checks
    assert report["requests"]["over"] == "RPCs"
    assert report["requests"]["count"] == sum(r["count"] for r in report["rpcs"].values())
    assert report["requests"]["failures"] == sum(r["failures"] for r in report["rpcs"].values())
    assert report["late_starts"]["of_scheduled"] > 0 and "count" in report["late_starts"]
    for suffix in (".report.txt", ".report.json", ".html", "_stats.csv", "_failures.csv", ".seed.json"):
        assert Path(f"{tmp_path / 'loadtest'}{suffix}").is_file(), suffix
    text = Path(f"{tmp_path / 'loadtest'}.report.txt").read_text(encoding="utf-8")
    assert text.startswith("SLO PASS") and "late starts:" in text and "REJECTED/CARD_LOST" in text


@pytest.mark.slow
@pytest.mark.serial
@pytest.mark.timeout(90)
def test_gate_fails_naming_the_threshold_set_below_the_run_on_the_master(server: EcardServer, tmp_path: Path) -> None:
    """Distributed (a master and one worker): the config file sets p50 below any checkout, the command line
    relaxes another threshold; the master alone judges and exits 1 naming slo-checkout-p50."""
    config = tmp_path / "locust.conf"
    defaults = (ROOT / "loadtest" / "locust.conf").read_text(encoding="utf-8")
    config.write_text(defaults + "\nslo-checkout-p50 = 0.0001\narrival-rate = 20\n", encoding="utf-8")
    result = run(["distributed", "--workers", "1", "--host", server.target, "--config", str(config),
                  "--run-time", "12s", "--reports", str(tmp_path), "--", *SMALL_SEED, "--slo-failure-ratio", "0.5"],
                 timeout=85)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-4000:]
    assert output.count("SLO threshold failed: slo-checkout-p50") == 1  # the master's verdict, not the worker's
    report = report_of(tmp_path / "distributed")
    assert report["failed_thresholds"] == ["slo-checkout-p50"]
    assert report["thresholds"]["checkout_p50_s"] == 0.0001 and report["thresholds"]["failure_ratio"] == 0.5
    assert report["workers"] == 1 and report["checkout"]["count"] > 0
    assert report["arrival_rate"]["target_visits_per_s"] == 20


# -- a server that accepts everything: a test double, only here ------------------------------------
class AcceptEverything(grpc.GenericRpcHandler):
    """Answers every Verify ACCEPTED, every Settle SETTLED (self-pay, adding up) and every hospital visit
    opened, added to and settled the same way; everything else (seeding: Admin, Cards) is relayed to a
    real server, so the harness seeds as usual."""

    def __init__(self, upstream: grpc.Channel) -> None:
        self._upstream = upstream
        self._handles = 0
        self._visits: dict[str, list[settlement_pb2.LineItem]] = {}
        self._lock = threading.Lock()

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if method == "/ecard.v1.Verifier/Verify":
            return grpc.unary_unary_rpc_method_handler(
                self._verify, verifier_pb2.VerifyRequest.FromString, verifier_pb2.VerifyResponse.SerializeToString
            )
        if method == "/ecard.v1.Settlement/Settle":
            return grpc.unary_unary_rpc_method_handler(
                self._settle, settlement_pb2.SettleRequest.FromString, settlement_pb2.SettlementRecord.SerializeToString
            )
        if method == "/ecard.v1.Settlement/Quote":
            return grpc.unary_unary_rpc_method_handler(
                self._quote, settlement_pb2.QuoteRequest.FromString, settlement_pb2.SettlementQuote.SerializeToString
            )
        if method == "/ecard.v1.Settlement/OpenVisit":
            return grpc.unary_unary_rpc_method_handler(
                self._open_visit, settlement_pb2.OpenVisitRequest.FromString, settlement_pb2.Visit.SerializeToString
            )
        if method == "/ecard.v1.Settlement/AddVisitItems":
            return grpc.unary_unary_rpc_method_handler(
                self._add_visit_items, settlement_pb2.AddVisitItemsRequest.FromString,
                settlement_pb2.Visit.SerializeToString
            )
        if method == "/ecard.v1.Settlement/SettleVisit":
            return grpc.unary_unary_rpc_method_handler(
                self._settle_visit, settlement_pb2.SettleVisitRequest.FromString,
                settlement_pb2.SettlementRecord.SerializeToString
            )
        if method == "/ecard.v1.Admin/EnrollCards":
            relay = self._upstream.stream_unary(method)
            return grpc.stream_unary_rpc_method_handler(lambda it, ctx: self._relay(relay, it, ctx))
        relay = self._upstream.unary_unary(method)
        return grpc.unary_unary_rpc_method_handler(lambda request, ctx: self._relay(relay, request, ctx))

    def _verify(self, request: verifier_pb2.VerifyRequest, context: object) -> verifier_pb2.VerifyResponse:
        with self._lock:
            self._handles += 1
            handle = f"accept-all-{self._handles}"
        return verifier_pb2.VerifyResponse(request_id=request.request_id, verdict=Verdict.ACCEPTED, reason=Reason.OK,
                                           verification_id=handle)

    def _settle(self, request: settlement_pb2.SettleRequest, context: object) -> settlement_pb2.SettlementRecord:
        total = sum(item.unit_price_fen * item.quantity for item in request.items)
        return settlement_pb2.SettlementRecord(settlement_id=request.idempotency_key, status=SettlementStatus.SETTLED,
                                               total_fen=total, self_pay_fen=total, items=request.items)

    def _quote(self, request: settlement_pb2.QuoteRequest, context: object) -> settlement_pb2.SettlementQuote:
        total = sum(item.unit_price_fen * item.quantity for item in request.items)
        return settlement_pb2.SettlementQuote(quote_id=f"quote-{request.verification_id}", total_fen=total,
                                              self_pay_fen=total)

    def _open_visit(self, request: settlement_pb2.OpenVisitRequest, context: object) -> settlement_pb2.Visit:
        visit_id = f"visit-{request.idempotency_key}"
        with self._lock:
            self._visits.setdefault(visit_id, [])
        return settlement_pb2.Visit(visit_id=visit_id, merchant_id=request.merchant_id,
                                    status=settlement_pb2.VISIT_STATUS_OPEN, idempotency_key=request.idempotency_key)

    def _add_visit_items(self, request: settlement_pb2.AddVisitItemsRequest, context: object) -> settlement_pb2.Visit:
        with self._lock:
            items = self._visits.setdefault(request.visit_id, [])
            items.extend(request.items)
            return settlement_pb2.Visit(visit_id=request.visit_id, status=settlement_pb2.VISIT_STATUS_OPEN,
                                        items=items, total_fen=sum(i.unit_price_fen * i.quantity for i in items))

    def _settle_visit(self, request: settlement_pb2.SettleVisitRequest,
                      context: object) -> settlement_pb2.SettlementRecord:
        with self._lock:
            items = self._visits.pop(request.visit_id, [])
        total = sum(item.unit_price_fen * item.quantity for item in items)
        return settlement_pb2.SettlementRecord(settlement_id=request.idempotency_key, status=SettlementStatus.SETTLED,
                                               total_fen=total, self_pay_fen=total, items=items)

    @staticmethod
    def _relay(relay: grpc.UnaryUnaryMultiCallable, request: object, context: grpc.ServicerContext) -> bytes:
        metadata = [(k, v) for k, v in context.invocation_metadata() if k.startswith("x-ecard")]
        try:
            return relay(request, metadata=metadata, timeout=30)
        except grpc.RpcError as exc:
            context.abort(exc.code(), exc.details())
            raise


@pytest.fixture
def accept_everything(server: EcardServer) -> Iterator[str]:
    upstream = grpc.insecure_channel(server.target)
    double = grpc.server(futures.ThreadPoolExecutor(max_workers=16), handlers=[AcceptEverything(upstream)])
    port = double.add_insecure_port("127.0.0.1:0")
    double.start()
    yield f"127.0.0.1:{port}"
    double.stop(grace=None)
    upstream.close()


@pytest.mark.slow
@pytest.mark.serial
@pytest.mark.timeout(90)
def test_a_server_that_accepts_everything_fails_the_run_for_wrong_verdicts(
    accept_everything: str, tmp_path: Path
) -> None:
    result = run(["steady", "--host", accept_everything, "--run-time", "12s", "--reports", str(tmp_path), "--",
                  *SMALL_SEED], timeout=85)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-4000:]
    assert "SLO threshold failed: slo-wrong-verdicts" in output
    report = report_of(tmp_path / "loadtest")
    assert "slo-wrong-verdicts" in report["failed_thresholds"]
    wrong = report["wrong_verdicts"]
    assert wrong["count"] > 0
    assert any(case.startswith("hostile forged: expected REJECTED/BAD_SIGNATURE, got ACCEPTED/OK")
               for case in wrong["by_case"])
    assert report["transport_errors"]["count"] == 0, report["transport_errors"]  # counted apart from wrong verdicts
    assert sum(c["wrong"] for name, c in report["verdict_checks"].items() if name in HOSTILE_CASES) == wrong["count"]
