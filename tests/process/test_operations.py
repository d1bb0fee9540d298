"""What an operator relies on: metrics, structured logs, the audit trail, graceful shutdown."""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import time
import urllib.request

import pytest

from ecard import verify_request
from ecard.testing import EcardServer, World, free_port
from ecard.v1 import types_pb2 as t
from ecard.v1.admin_pb2 import PhysicalCard


@pytest.fixture(scope="module")
def observed() -> tuple[EcardServer, int]:
    metrics_port = free_port()
    with EcardServer(extra_args=["--metrics-listen", f"127.0.0.1:{metrics_port}"]) as server:
        yield server, metrics_port


def test_metrics_count_requests_latency_and_verdicts(observed: tuple[EcardServer, int]) -> None:
    server, port = observed
    world = World.seed(server.target, cards=1)
    with world.pharmacy() as pos:
        token = world.mint(0)
        pos.verify(token, purpose=t.PURPOSE_IDENTITY)
        pos.verify(token, purpose=t.PURPOSE_IDENTITY)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'ecard_rpc_requests_total{code="OK",method="Verify"}' in text
    assert 'ecard_verify_verdicts_total{reason="OK"}' in text
    assert 'ecard_verify_verdicts_total{reason="REPLAYED"}' in text
    assert 'ecard_rpc_latency_seconds_bucket{le="0.005",method="Verify"}' in text


def test_logs_are_json_lines_without_personal_data(observed: tuple[EcardServer, int]) -> None:
    server, _ = observed
    world = World.seed(server.target, cards=2)
    lines = [line for line in server.logs().splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(e.get("event") == "serving" for e in events)
    for _card_no, name, id_number in world.cards:
        assert id_number not in server.logs() and name not in server.logs()


def test_audit_trail_records_verifications_and_status_changes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with EcardServer(db=f"sqlite:///{tmp_path}/audit.db") as server:
        world = World.seed(server.target, cards=1)
        with world.pharmacy() as pos:
            pos.verify(world.mint(0), purpose=t.PURPOSE_IDENTITY, terminal_id="till-7")
        with world.admin() as admin:
            admin.report_lost(ecard_id=world.ecard_ids[0])
        deadline = time.monotonic() + 5
        rows: list[tuple[str, str, str, str]] = []
        while time.monotonic() < deadline:
            with sqlite3.connect(f"{tmp_path}/audit.db") as db:
                rows = db.execute("SELECT kind, actor, subject, detail FROM audit ORDER BY event_id").fetchall()
            if any(kind == "VERIFY" for kind, *_ in rows):
                break
            time.sleep(0.1)
    verify = [r for r in rows if r[0] == "VERIFY"]
    assert verify == [("VERIFY", world.pharmacy_id, world.ecard_ids[0], f"till-7 {t.REASON_OK}")]
    assert ("CARD_STATUS", "admin", world.ecard_ids[0], str(t.CARD_STATUS_LOST)) in rows
    assert any(kind == "ECARD_ISSUED" for kind, *_ in rows)


def test_sigterm_finishes_in_flight_calls_then_exits() -> None:
    server = EcardServer().start()
    world = World.seed(server.target, cards=2)
    requests: queue.Queue = queue.Queue()
    answers: list = []

    def feed():  # type: ignore[no-untyped-def]
        while (item := requests.get()) is not None:
            yield item

    def consume() -> None:
        with world.pharmacy() as pos:
            answers.extend(pos.verify_stream(feed(), timeout=30))

    reader = threading.Thread(target=consume)
    reader.start()
    requests.put(verify_request(world.mint(0), purpose=t.PURPOSE_IDENTITY, request_id="before"))
    deadline = time.monotonic() + 10
    while not answers and time.monotonic() < deadline:
        time.sleep(0.01)
    assert answers, "the stream never answered"
    assert server.process is not None
    server.process.terminate()  # SIGTERM while the stream is open
    time.sleep(0.3)
    requests.put(verify_request(world.mint(1), purpose=t.PURPOSE_IDENTITY, request_id="after"))
    requests.put(None)
    reader.join(15)
    assert [(a.request_id, a.reason) for a in answers] == [("before", t.REASON_OK), ("after", t.REASON_OK)]
    assert server.process.wait(15) == 0
    assert '"event": "stopped"' in server.logs()


def test_sigterm_ends_an_enrollment_stream_left_open_past_the_grace_period() -> None:
    """A client stream read on the event loop for a pool thread (EnrollCards): after --grace the call is
    cancelled and the process exits; nothing waits for a message that will never come."""
    server = EcardServer(extra_args=["--grace", "1"]).start()
    world = World.seed(server.target, cards=1)
    stalled = threading.Event()
    errors: list[Exception] = []

    def cards():  # type: ignore[no-untyped-def]
        yield PhysicalCard(card_no="C7000001", holder_name="孙测试", id_number="330200199001017000", region="330200")
        stalled.set()
        time.sleep(30)  # the client neither sends more nor ends the stream

    def enroll() -> None:
        try:
            with world.admin() as admin:
                admin.enroll_cards(cards(), per_message=1, timeout=60)
        except Exception as exc:  # the call ends with an error: expected
            errors.append(exc)

    client = threading.Thread(target=enroll, daemon=True)
    client.start()
    assert stalled.wait(10)
    time.sleep(0.3)  # the first message is on the server's pool thread
    assert server.process is not None
    started = time.monotonic()
    server.process.terminate()
    assert server.process.wait(15) == 0
    assert time.monotonic() - started < 8  # the grace period (1 s) and a shutdown, not a hang
    assert '"event": "stopped"' in server.logs()
    client.join(5)
    assert errors and not client.is_alive()
