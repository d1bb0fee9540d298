"""What one Settle of a 20-line basket costs the store: on PostgreSQL a few round trips, not one per
statement (the reads under the locks in one statement, the writes and the COMMIT pipelined).

Round trips are read from libpq's own trace of the connections the Settle used (PQtrace: every
message sent and received, in order): a round trip is a run of messages sent followed by the
answers awaited. In the test process's own in-process server, for a Settle priced from a catalogue.
"""

from __future__ import annotations

import itertools
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from ecard import Assurance, Purpose, catalogue_item, line_item
from ecard.testing import World
from ecard.v1 import types_pb2 as t
from ecard_server.core.records import LineItem, SettleInput
from ecard_server.storage import postgres
from tests.helpers.inprocess import InProcessServer

CLASSES = (t.DRUG_CLASS_A, t.DRUG_CLASS_B, t.DRUG_CLASS_C)
BASKET = [line_item(f"C{n:03d}", "", 0, 500 + 37 * n, 1 + n % 3) for n in range(20)]
# BEGIN with the key's lock and the card's lock in one statement, the reads under the locks (the key's
# first answer and the channels' bindings among them), the balance, the channels' (unnumbered) events
# with the COMMIT. One statement a round trip took 20; 7 while the key was read before the verification
# was opened, and the key's lock, the card's lock and the bindings were statements of their own.
MOST_ROUND_TRIPS = 4
# BEGIN, the locks, the reads under them, the balance's compare-and-set, the writes nobody reads back (the
# accumulators, the ledger row, the settlement, the fund's row, the audit row, the channels' event: one
# data-modifying WITH, SqlStore.writes), COMMIT. Eleven when each write was a statement of its own:
# psycopg's Python costs about 60 k instructions a statement.
MOST_STATEMENTS = 6


class Traced:
    """libpq's trace of every unit of work (storage.postgres._Unit) that one thread runs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.thread: int | None = None
        self.files: list[Path] = []

    def connect(self, original: Any) -> Any:
        def connect(unit: Any) -> None:
            original(unit)
            if threading.get_ident() == self.thread:
                path = self.folder / f"unit{len(self.files)}.trace"
                self.files.append(path)
                unit._trace = path.open("w")  # closed by release
                unit._conn.pgconn.trace(unit._trace.fileno())
        return connect

    def release(self, original: Any) -> Any:
        def release(unit: Any) -> None:
            trace = getattr(unit, "_trace", None)
            if trace is not None and unit._conn is not None:
                unit._conn.pgconn.untrace()
                trace.close()
            original(unit)
        return release

    def round_trips(self) -> int:
        """Runs of messages sent (F) that are followed by an answer (B), over every traced unit."""
        trips = 0
        for path in self.files:
            sides = [line.split("\t")[1] for line in path.read_text().splitlines() if "\t" in line]
            trips += sum(1 for before, after in itertools.pairwise(sides) if before == "F" and after == "B")
        return trips

    def statements(self) -> int:
        """Statements run (a Bind each, in the extended protocol that psycopg speaks), over every traced unit."""
        return sum(1 for path in self.files for line in path.read_text().splitlines()
                   if line.split("\t")[1:2] == ["F"] and line.split("\t")[3:4] == ["Bind"])


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_20_line_settle_takes_a_few_round_trips(served: InProcessServer, monkeypatch: pytest.MonkeyPatch) -> None:
    world = World.seed(served.target, cards=2, balance_fen=10**7)
    with world.admin() as admin:
        admin.import_catalogue([catalogue_item(f"C{n:03d}", f"item {n}", CLASSES[n % 3], 800 + n)
                                for n in range(100)])
    with world.hospital() as pos:
        handles = [pos.verify(world.mint(n), purpose=Purpose.MEDICAL_SETTLEMENT,
                              min_assurance=Assurance.PIN).verification_id for n in range(2)]
    assert served.deployment is not None
    settlements = served.deployment.settlements  # the service the Settle RPC calls, run in this thread
    items = tuple(LineItem(i.code, i.name, i.drug_class, i.unit_price_fen, i.quantity) for i in BASKET)
    settlements.settle(world.hospital_id, SettleInput("warm", items, verification_id=handles[0]))  # caches
    with tempfile.TemporaryDirectory() as folder:
        traced = Traced(Path(folder))
        monkeypatch.setattr(postgres._Unit, "_connect", traced.connect(postgres._Unit._connect))
        monkeypatch.setattr(postgres._Unit, "_release", traced.release(postgres._Unit._release))
        traced.thread = threading.get_ident()
        record = settlements.settle(world.hospital_id, SettleInput("counted", items, verification_id=handles[1]))
        traced.thread = None
        assert len(record.line_shares) == 20 and record.catalogue_version
        assert 0 < traced.round_trips() <= MOST_ROUND_TRIPS, traced.round_trips()
        assert 0 < traced.statements() <= MOST_STATEMENTS, traced.statements()
