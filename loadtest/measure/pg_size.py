"""Bytes per card in PostgreSQL, as ecard stores them (for docs/scaling.md).

    python -m loadtest.measure.pg_size [--cards 50000] [--ecards 10000]

Seeds a fresh database through a real `ecard serve` on loopback (EnrollCards, IssueECard, as in the
load test), runs one VACUUM ANALYZE, and prints each table's size with its indexes
(pg_total_relation_size) per row, and per enrolled card. The database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ecard.testing import EcardServer
from loadtest.harness.seeding import seed_deployment
from loadtest.rig.cluster import fresh_database

TABLES = ("cards", "ecard_channels", "ledger")


def measure(cards: int, ecards: int) -> dict[str, Any]:
    import psycopg

    with fresh_database() as db, EcardServer(db=db) as server:
        seed_deployment(server.target, cards=cards, ecards=ecards, lost_ecards=0, pharmacies=1, hospitals=1,
                        log=lambda line: None)
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            sizes: dict[str, Any] = {}
            for table in TABLES:
                row = conn.execute(f"SELECT count(*), pg_total_relation_size('{table}'), pg_relation_size('{table}') "
                                   f"FROM {table}").fetchone()
                assert row is not None
                rows, total, heap = (int(value) for value in row)
                sizes[table] = {"rows": rows, "bytes_with_indexes": total,
                                "per_row_with_indexes": round(total / max(rows, 1), 1),
                                "per_row_heap": round(heap / max(rows, 1), 1)}
    return {"cards": cards, "ecards": ecards, "tables": sizes,
            "bytes_per_enrolled_card": round(sum(t["bytes_with_indexes"] for t in sizes.values()) / cards, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.measure.pg_size", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, default=50_000)
    parser.add_argument("--ecards", type=int, default=10_000)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.cards, args.ecards)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
