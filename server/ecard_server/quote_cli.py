"""The checkout's commands of `ecard`: quote a basket (预结算), then settle exactly that quote.

    ecard quote (--token TEXT | --verification-id V) --merchant M --item CODE:PRICE_FEN[:QUANTITY[:CLASS]] ...
                [--skip-account] [--terminal T]
    ecard settle --quote-id Q --merchant M --receipt KEY --item ... [--skip-account]

`quote` prints the SettlementQuote as JSON (the split to show the holder, its per-line breakdown and
the quote_id); `settle` with that quote_id and the same items moves exactly that split, or exits 1
with QUOTE_STALE (quote again). CLASS (A, B or C) is needed only where no catalogue is imported.
"""

from __future__ import annotations

import argparse
from typing import Any

from google.protobuf import json_format

from ecard import DrugClass, PharmacyClient, line_item
from ecard.v1 import settlement_pb2
from ecard_server.client_args import add_client_arguments, client_settings

_CLASSES = {"": 0, "A": DrugClass.A, "B": DrugClass.B, "C": DrugClass.C}


def basket_item(text: str) -> settlement_pb2.LineItem:
    """CODE:PRICE_FEN[:QUANTITY[:CLASS]] as a line item (argparse calls it: ValueError is a usage error)."""
    parts = text.split(":")
    if not 2 <= len(parts) <= 4 or not parts[0]:
        raise argparse.ArgumentTypeError(f"{text!r}: expected CODE:PRICE_FEN[:QUANTITY[:CLASS]]")
    try:
        price, quantity = int(parts[1]), int(parts[2]) if len(parts) > 2 else 1
        drug_class = _CLASSES[parts[3].upper() if len(parts) > 3 else ""]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"{text!r}: price and quantity are integers, class A, B or C") from None
    return line_item(parts[0], "", drug_class, price, quantity)


def _show(message: Any) -> None:
    print(json_format.MessageToJson(message, ensure_ascii=False, indent=2))


def cmd_quote(args: argparse.Namespace) -> int:
    target, options = client_settings(args)
    with PharmacyClient(target, merchant_id=args.merchant, options=options) as client:
        _show(client.quote(args.item, token=args.token or "", verification_id=args.verification_id or "",
                           skip_personal_account=args.skip_account, terminal_id=args.terminal))
    return 0


def cmd_settle(args: argparse.Namespace) -> int:
    target, options = client_settings(args)
    with PharmacyClient(target, merchant_id=args.merchant, options=options) as client:
        _show(client.settle(args.item, idempotency_key=args.receipt, quote_id=args.quote_id,
                            skip_personal_account=args.skip_account))
    return 0


def add_quote_commands(sub: Any) -> None:
    p = sub.add_parser("quote", help="price a basket for a verified holder, moving nothing (预结算)")
    credential = p.add_mutually_exclusive_group(required=True)
    credential.add_argument("--token", help="the scanned QR text (spent by the quote)")
    credential.add_argument("--verification-id")
    p.add_argument("--merchant", required=True)
    p.add_argument("--item", type=basket_item, action="append", required=True,
                   help="CODE:PRICE_FEN[:QUANTITY[:CLASS]], once per line")
    p.add_argument("--skip-account", action="store_true", help="the holder pays the account's part")
    p.add_argument("--terminal", default="")
    add_client_arguments(p)
    p.set_defaults(func=cmd_quote)

    p = sub.add_parser("settle", help="settle exactly a quote (the same items), or exit 1 with QUOTE_STALE")
    p.add_argument("--quote-id", required=True)
    p.add_argument("--merchant", required=True)
    p.add_argument("--receipt", required=True, help="the idempotency key: the receipt number")
    p.add_argument("--item", type=basket_item, action="append", required=True)
    p.add_argument("--skip-account", action="store_true")
    add_client_arguments(p)
    p.set_defaults(func=cmd_settle)
