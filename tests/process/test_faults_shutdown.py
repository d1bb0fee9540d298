"""SIGTERM under load: calls in flight finish within --grace, new calls are refused, the process
exits 0, and what the finished calls wrote is there after a restart on the same database."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from ecard import NO_RETRY, AdminClient
from ecard.testing import EcardServer, World, fake_holder
from ecard.v1.admin_pb2 import EnrollSummary, PhysicalCard
from ecard_server.storage import open_store
from tests.helpers.load import settle_load

pytestmark = pytest.mark.slow
GRACE_S = 10
STREAM_CARDS = 40_000


def test_sigterm_under_load_drains_in_flight_calls_and_refuses_new_ones() -> None:
    server = EcardServer(extra_args=["--grace", str(GRACE_S)]).start()
    try:
        world = World.seed(server.target, cards=4, balance_fen=10_000_000)
        load, _ = settle_load(world, callers=4, retry=NO_RETRY)
        halfway = [threading.Event() for _ in range(2)]
        summaries: list[EnrollSummary] = []

        def cards(n: int) -> Iterator[PhysicalCard]:
            for i in range(STREAM_CARDS):
                if i == STREAM_CARDS // 2:
                    halfway[n].set()
                    time.sleep(0.5)  # SIGTERM arrives while this stream is open on the server
                no, name, idn = fake_holder(i, f"sd{n}")
                yield PhysicalCard(card_no=no, holder_name=name, id_number=idn, region="330200")

        def enroll(n: int) -> None:
            with AdminClient(server.target) as admin:
                summaries.append(admin.enroll_cards(cards(n), timeout=60))

        streams = [threading.Thread(target=enroll, args=(n,)) for n in range(2)]
        load.start()
        load.wait_for(40)
        for stream in streams:
            stream.start()
        assert all(event.wait(30) for event in halfway)
        assert server.process is not None
        term = time.monotonic()
        server.process.terminate()
        status = server.process.wait(GRACE_S + 10)
        exited_s = time.monotonic() - term
        for stream in streams:
            stream.join(30)
        time.sleep(0.5)
        load.stop()

        sent_after = [a for a in load.answers if a.sent > term + 0.2]
        print(f"\nSIGTERM under load: exit {status} after {exited_s:.2f} s (grace {GRACE_S} s); both "
              f"{STREAM_CARDS}-card streams in flight finished: {[s.enrolled for s in summaries]}; "
              f"{load.count()} settles OK, {len(sent_after)} calls made after SIGTERM, all refused")
        assert status == 0 and exited_s < GRACE_S + 5
        assert sorted(s.enrolled for s in summaries) == [STREAM_CARDS, STREAM_CARDS]
        assert sent_after and {a.outcome for a in sent_after} == {"UNAVAILABLE"}  # new calls refused
        odd = [(a.outcome, a.detail) for a in load.answers if a.outcome not in ("OK", "UNAVAILABLE")]
        assert odd == []  # never INTERNAL
        assert '"event": "stopped"' in server.logs()

        acknowledged = {a.key: a.settlement_id for a in load.answers if a.outcome == "OK"}
        store = open_store(server.db)
        try:
            enrolled = store.rows("SELECT COUNT(*) FROM cards WHERE card_no LIKE ?", ("Tsd%",))
            assert int(enrolled[0][0]) == 2 * STREAM_CARDS
            written = {row[0] for row in store.rows("SELECT settlement_id FROM settlements WHERE merchant_id = ?",
                                                    (world.pharmacy_id,))}
            assert set(acknowledged.values()) <= written
        finally:
            store.close()
    finally:
        server.kill()


def test_a_call_the_server_cancelled_is_unavailable_and_retried() -> None:
    """What a call pending at shutdown gets (grpc/grpc#41785): for the SDK a transient refusal."""
    import grpc

    from ecard import RetryConfig, Unavailable
    from ecard._rpc_errors import from_grpc_error

    class Cancelled(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.CANCELLED

        def details(self) -> str:
            return "CANCELLED"

        def trailing_metadata(self) -> tuple[()]:
            return ()

    error = from_grpc_error(Cancelled())
    assert isinstance(error, Unavailable) and error.retryable and error.reason == "CANCELLED"
    assert grpc.StatusCode.CANCELLED in RetryConfig().retry_codes
