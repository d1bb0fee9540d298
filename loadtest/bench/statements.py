"""`make bench` (statements): DailyTotals over 1,000,000 settlements on PostgreSQL, answered in <= 1 s.

    python -m loadtest.bench.statements [--settlements 1000000] [--rounds 5] [--out reports/bench_statements.json]

A fresh PostgreSQL database (on ECARD_BENCH_PG's server, default the machine's) is migrated by
`ecard serve`; a hospital and a pharmacy are made through the API, then `--settlements` settlements
are generated in the database (INSERT ... SELECT FROM generate_series, in chunks; not through the API):

    busy day   all of them settled on ONE day at the hospital, over 40 terminals, one in 10 partly
               refunded and one in 50 reversed: the worst case, DailyTotals aggregates every row
    quiet day  one more day at the pharmacy with 2,000 settlements: the usual case beside a big table

After ANALYZE, each day's DailyTotals is called `--rounds` times through the SDK against the running
server (the whole RPC: the merchant's principal, the aggregate, the answer); the report gives each
round's seconds and their max, checks the busy day's totals against a direct SUM over the rows, and
exits 1 when the max is above `--limit` (1 s). The database is dropped at the end, also on failure.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from ecard import AdminClient, PharmacyClient
from ecard.testing import EcardServer
from ecard.v1 import types_pb2
from loadtest.bench.workers import PG_ADMIN_URL, FreshDatabase

SHANGHAI = datetime.timezone(datetime.timedelta(hours=8))
BUSY_DAY, QUIET_DAY = "2026-11-30", "2026-12-01"
HOSPITAL, PHARMACY = "bench-hospital", "bench-pharmacy"
CHUNK = 200_000

# One settlement per n: total 1000-20999 fen; fund 50 % at the hospital, account 30 %, the rest self-pay;
# every 10th partly refunded (its fund part back), every 50th reversed (all back).
_GENERATE = """
INSERT INTO settlements (settlement_id, merchant_id, idempotency_key, request_hash, ecard_id, card_no, status,
    total_fen, fund_fen, account_fen, self_pay_fen, balance_after_fen, items, verification_nonce, settled_at,
    terminal_id, operator_id, refund_count, fund_refunded_fen, account_refunded_fen, self_pay_refunded_fen,
    reversed_at, reversed_fen)
SELECT 'B' || %(tag)s || n, %(merchant)s, %(tag)s || n, '\\x00', 'E' || (n %% 5000), 'C' || (n %% 5000),
    CASE WHEN n %% 50 = 0 THEN 2 WHEN n %% 10 = 0 THEN 3 ELSE 1 END,
    t, t / 2, (t - t / 2) * 3 / 10, t - t / 2 - (t - t / 2) * 3 / 10, 0, '[]',
    convert_to(%(tag)s, 'UTF8') || int8send(n),
    %(since)s::bigint + (n %% 86400),
    'till-' || (n %% 40), 'op-' || (n %% 12),
    CASE WHEN n %% 50 = 0 THEN 0 WHEN n %% 10 = 0 THEN 1 ELSE 0 END,
    CASE WHEN n %% 50 = 0 OR n %% 10 = 0 THEN t / 2 ELSE 0 END,
    CASE WHEN n %% 50 = 0 THEN (t - t / 2) * 3 / 10 ELSE 0 END,
    CASE WHEN n %% 50 = 0 THEN t - t / 2 - (t - t / 2) * 3 / 10 ELSE 0 END,
    CASE WHEN n %% 50 = 0 THEN %(since)s::bigint + (n %% 86400) + 60 END,
    CASE WHEN n %% 50 = 0 THEN t ELSE 0 END
FROM (SELECT n, 1000 + (n * 7919) %% 20000 AS t FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n) AS g
"""


def day_start(day: str) -> int:
    return int(datetime.datetime.combine(datetime.date.fromisoformat(day), datetime.time(), SHANGHAI).timestamp())


def generate(url: str, merchant: str, tag: str, day: str, count: int) -> float:
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for first in range(1, count + 1, CHUNK):
            conn.execute(_GENERATE, {"tag": tag, "merchant": merchant, "since": day_start(day), "first": first,
                                     "last": min(count, first + CHUNK - 1)})
        conn.execute("VACUUM ANALYZE settlements")  # what autovacuum does after a load: index-only scans
    return time.perf_counter() - started


def direct_sums(url: str, merchant: str, day: str) -> dict[str, int]:
    since = day_start(day)
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT COUNT(*), SUM(total_fen), SUM(fund_fen) - SUM(fund_refunded_fen), "
            "SUM(total_fen - fund_refunded_fen - account_refunded_fen - self_pay_refunded_fen), "
            "COUNT(reversed_at) FROM settlements WHERE merchant_id = %s AND settled_at >= %s AND settled_at < %s",
            (merchant, since, since + 86_400)).fetchone()
    assert row is not None
    return {"settlements": row[0], "total_fen": int(row[1] or 0), "net_fund_fen": int(row[2] or 0),
            "net_fen": int(row[3] or 0), "reversals": row[4]}


def timed(target: str, merchant: str, day: str, rounds: int) -> tuple[list[float], Any]:
    seconds, answer = [], None
    with PharmacyClient(target, merchant_id=merchant) as pos:
        for _ in range(rounds):
            started = time.perf_counter()
            answer = pos.daily_totals(day)
            seconds.append(round(time.perf_counter() - started, 4))
    return seconds, answer


def run(settlements: int, rounds: int, limit: float) -> dict[str, Any]:
    with FreshDatabase(os.environ.get("ECARD_BENCH_PG", PG_ADMIN_URL)) as url, EcardServer(db=url) as server:
        with AdminClient(server.target) as admin:
            admin.upsert_merchant(HOSPITAL, kind=types_pb2.MERCHANT_KIND_HOSPITAL, region="330200")
            admin.upsert_merchant(PHARMACY, kind=types_pb2.MERCHANT_KIND_PHARMACY, region="330200")
        load_s = generate(url, HOSPITAL, "h", BUSY_DAY, settlements)
        load_s += generate(url, PHARMACY, "p", QUIET_DAY, 2_000)
        busy_s, busy = timed(server.target, HOSPITAL, BUSY_DAY, rounds)
        quiet_s, quiet = timed(server.target, PHARMACY, QUIET_DAY, rounds)
        expected = direct_sums(url, HOSPITAL, BUSY_DAY)
        got = {"settlements": busy.total.settlements, "total_fen": busy.total.total_fen,
               "net_fund_fen": busy.total.net_fund_fen, "net_fen": busy.total.net_fen,
               "reversals": busy.total.reversals}
        return {
            "settlements_in_table": settlements + 2_000, "generate_s": round(load_s, 1),
            "busy_day": {"day": BUSY_DAY, "settlements": busy.total.settlements, "terminals": len(busy.terminals),
                         "seconds": busy_s, "max_s": max(busy_s)},
            "quiet_day": {"day": QUIET_DAY, "settlements": quiet.total.settlements, "seconds": quiet_s,
                          "max_s": max(quiet_s)},
            "totals_match_direct_sum": got == expected, "limit_s": limit,
            "passed": got == expected and max(busy_s) <= limit and max(quiet_s) <= limit,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.statements", description=__doc__.split("\n")[0])
    parser.add_argument("--settlements", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--limit", type=float, default=1.0, help="seconds a DailyTotals may take (default 1)")
    parser.add_argument("--out", default="reports/bench_statements.json")
    args = parser.parse_args(argv)
    report = run(args.settlements, args.rounds, args.limit)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
