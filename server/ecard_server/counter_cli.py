"""The counter's commands of `ecard`: reverse an uncertain Settle, export a day's statement as CSV.

    ecard reverse KEY --merchant M [--terminal T] [--operator O]
    ecard statement --merchant M --day YYYY-MM-DD [--totals] [--out FILE.csv]
    ecard day-totals --day YYYY-MM-DD [--out FILE.csv]      (the operator: per merchant, per fund, all)

`statement` writes one row per settlement settled that day (Asia/Shanghai), with its refunds and
reversal as they stand; `--totals` writes the day's totals per terminal and one `*` row for them all
(DailyTotals): the sums of the first form's rows, to the fen.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from ecard import AdminClient, PharmacyClient
from ecard.v1 import settlement_pb2, types_pb2
from ecard_server.client_args import add_client_arguments, client_settings
from ecard_server.core.rules.statements import SHANGHAI

SETTLEMENT_COLUMNS = (
    "settlement_id", "idempotency_key", "terminal_id", "operator_id", "settled_at", "status", "ecard_id",
    "total_fen", "fund_fen", "personal_account_fen", "self_pay_fen", "refunds", "refunded_fen",
    "fund_refunded_fen", "personal_account_refunded_fen", "self_pay_refunded_fen", "reversed_at", "reversed_fen",
    "net_fen",
)
TOTALS_COLUMNS = (
    "terminal_id", "settlements", "total_fen", "fund_fen", "personal_account_fen", "self_pay_fen", "refunds",
    "refunded_fen", "fund_refunded_fen", "personal_account_refunded_fen", "self_pay_refunded_fen", "reversals",
    "reversed_fen", "net_fen", "net_fund_fen", "net_personal_account_fen", "net_self_pay_fen",
)


def _local(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, SHANGHAI).isoformat()


def settlement_row(r: settlement_pb2.SettlementRecord) -> list[object]:
    reversed_fen = sum(e.amount_fen for e in r.refunds if e.reversal)
    return [
        r.settlement_id, r.idempotency_key, r.terminal_id, r.operator_id, _local(r.settled_at.seconds),
        types_pb2.SettlementStatus.Name(r.status).removeprefix("SETTLEMENT_STATUS_"), r.ecard_id, r.total_fen,
        r.fund_paid_fen, r.personal_account_paid_fen, r.self_pay_fen, sum(1 for e in r.refunds if not e.reversal),
        r.refunded_fen, r.fund_refunded_fen, r.personal_account_refunded_fen, r.self_pay_refunded_fen,
        _local(r.reversed_at.seconds) if r.HasField("reversed_at") else "", reversed_fen,
        r.total_fen - r.refunded_fen,
    ]


def totals_row(t: settlement_pb2.SettlementTotals, name: str | None = None) -> list[object]:
    return [name if name is not None else t.terminal_id, *(getattr(t, c) for c in TOTALS_COLUMNS[1:])]


def write_csv(out: Any, header: Iterable[str], rows: Iterable[list[object]]) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


def cmd_reverse(args: argparse.Namespace) -> int:
    target, options = client_settings(args)
    with PharmacyClient(target, merchant_id=args.merchant, options=options) as pos:
        answer = pos.reverse_settlement(args.key, terminal_id=args.terminal, operator_id=args.operator)
    print(json_format.MessageToJson(answer, ensure_ascii=False, indent=None), flush=True)
    return 0


def cmd_statement(args: argparse.Namespace) -> int:
    target, options = client_settings(args)
    text = io.StringIO()
    with PharmacyClient(target, merchant_id=args.merchant, options=options) as pos:
        statement = pos.daily_totals(args.day)  # checks the day before anything is listed
        if args.totals:
            rows = [totals_row(t) for t in statement.terminals] + [totals_row(statement.total, "*")]
            write_csv(text, TOTALS_COLUMNS, rows)
        else:
            since = datetime.datetime.fromtimestamp(statement.since.seconds, datetime.UTC)
            until = datetime.datetime.fromtimestamp(statement.until.seconds, datetime.UTC)
            records = pos.list_settlements(since=since, until=until, page_size=1000)
            write_csv(text, SETTLEMENT_COLUMNS, (settlement_row(r) for r in records))
    _write(args.out, text.getvalue())
    return 0


def cmd_day_totals(args: argparse.Namespace) -> int:
    target, options = client_settings(args)
    with AdminClient(target, options=options) as admin:
        day = admin.settlement_day_totals(args.day)
    rows = [["merchant", m.merchant_id, m.region, *totals_row(m.totals)[1:]] for m in day.merchants]
    rows += [["fund", "", f.region, *totals_row(f.totals)[1:]] for f in day.funds]
    rows.append(["all", "", "", *totals_row(day.total)[1:]])
    text = io.StringIO()
    write_csv(text, ("group", "merchant_id", "region", *TOTALS_COLUMNS[1:]), rows)
    _write(args.out, text.getvalue())
    return 0


def _write(out: str | None, text: str) -> None:
    if out:
        try:
            Path(out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot write {out}: {exc.strerror}") from None
    else:
        sys.stdout.write(text)


def add_counter_commands(sub: Any) -> None:
    p = sub.add_parser("reverse", help="reverse (冲正) a Settle whose outcome is unknown, by its idempotency key")
    p.add_argument("key", help="the Settle's idempotency key (the receipt number)")
    p.add_argument("--merchant", required=True)
    p.add_argument("--terminal", default="")
    p.add_argument("--operator", default="")
    add_client_arguments(p)
    p.set_defaults(func=cmd_reverse)

    p = sub.add_parser("statement", help="a merchant's day (Asia/Shanghai) as CSV: settlements, or --totals")
    p.add_argument("--merchant", required=True)
    p.add_argument("--day", required=True, help="YYYY-MM-DD")
    p.add_argument("--totals", action="store_true", help="the day's totals per terminal instead of its settlements")
    p.add_argument("--out", help="write the CSV here instead of standard output")
    add_client_arguments(p)
    p.set_defaults(func=cmd_statement)

    p = sub.add_parser("day-totals", help="the operator's day (Asia/Shanghai) as CSV: per merchant, per fund, all")
    p.add_argument("--day", required=True, help="YYYY-MM-DD")
    p.add_argument("--out", help="write the CSV here instead of standard output")
    add_client_arguments(p)
    p.set_defaults(func=cmd_day_totals)
