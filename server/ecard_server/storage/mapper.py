"""Rows to records, by column name: the one place that knows which column of a SELECT is which.

Each record read from SQL has its columns declared here once (`Columns`). The SELECT is written from
that declaration (`columns.select`, `columns.select_as(alias)`) and its rows are read back through it
(`columns.named(row)`: a row as {column: value}), so the two cannot disagree and no code counts
positions. The stored JSON columns (a settlement's basket, a refund's lines) are decoded here too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ecard_server.core.records import (
    Card,
    CatalogueItem,
    ChannelEvent,
    CounterBinding,
    DeniedCertificate,
    Issuer,
    IssuerKey,
    LineItem,
    LinePricing,
    Merchant,
    Refunded,
    RefundRecord,
    SettlementRecord,
    Shares,
    StoredAuditEvent,
)
from ecard_server.core.rules.refunds import NOTHING, lines_by_code

Row = Sequence[Any]


class Columns:
    """The columns of one SELECT, in order."""

    def __init__(self, *names: str) -> None:
        self.names = names
        self.select = ", ".join(names)

    def select_as(self, alias: str, prefix: str = "") -> str:
        """`alias.column AS prefixcolumn, ...`: for a join, where two tables share column names."""
        return ", ".join(f"{alias}.{name} AS {prefix}{name}" for name in self.names)

    def named(self, row: Row) -> dict[str, Any]:
        """The row as {column: value}; a row of another length is a bug here (ValueError)."""
        return dict(zip(self.names, row, strict=True))


# -- issuers, catalogue, cards, keys, merchants, certificates, audit, channel events ------------------
ISSUER = Columns("issuer_id", "display_name", "disabled_at")
CATALOGUE_ITEM = Columns("code", "name", "drug_class", "price_limit_fen", "valid_from", "valid_to")
CARD = Columns("card_no", "holder_name", "id_hash", "region", "status", "balance_fen", "ecard_id", "issued_at",
               "replaced_at")
BINDING = Columns("issuer_id", "suspended_at")
KEY = Columns("issuer_id", "kid", "algorithm", "public_key_pem", "not_before", "not_after", "revoked")
MERCHANT = Columns("merchant_id", "display_name", "kind", "region", "designated")
DENIED = Columns("fingerprint", "reason", "denied_by", "denied_at")
AUDIT = Columns("event_id", "at", "kind", "actor", "subject", "detail")
COUNTER = Columns("code", "merchant_id", "terminal_id", "created_at", "expires_at", "ecard_id", "issuer_id",
                  "completed_at")
CHANNEL_EVENT = Columns("seq", "kind", "ecard_id", "detail", "created_at")


def card(row: Row, bindings: Sequence[Row]) -> Card:
    """A card row (CARD) with its channel bindings (BINDING rows, in binding order)."""
    c = CARD.named(row)
    found = [BINDING.named(b) for b in bindings]
    return Card(
        card_no=c["card_no"], holder_name=c["holder_name"], id_hash=bytes(c["id_hash"]), region=c["region"],
        status=c["status"], balance_fen=c["balance_fen"], ecard_id=c["ecard_id"], issued_at=c["issued_at"],
        channels=tuple(b["issuer_id"] for b in found),
        suspended=tuple(b["issuer_id"] for b in found if b["suspended_at"] is not None),
        replaced_at=c["replaced_at"],
    )


def issuer(row: Row) -> Issuer:
    i = ISSUER.named(row)
    return Issuer(issuer_id=i["issuer_id"], display_name=i["display_name"], disabled_at=i["disabled_at"])


def catalogue_item(row: Row) -> CatalogueItem:
    c = CATALOGUE_ITEM.named(row)
    return CatalogueItem(code=c["code"], name=c["name"], drug_class=c["drug_class"],
                         price_limit_fen=c["price_limit_fen"], valid_from=c["valid_from"], valid_to=c["valid_to"])


def issuer_key(row: Row) -> IssuerKey:
    k = KEY.named(row)
    return IssuerKey(issuer_id=k["issuer_id"], kid=k["kid"], algorithm=k["algorithm"],
                     public_key_pem=k["public_key_pem"], not_before=k["not_before"], not_after=k["not_after"],
                     revoked=bool(k["revoked"]))


def merchant(row: Row) -> Merchant:
    m = MERCHANT.named(row)
    return Merchant(merchant_id=m["merchant_id"], display_name=m["display_name"], kind=m["kind"],
                    region=m["region"], designated=bool(m["designated"]))


def denied_certificate(row: Row) -> DeniedCertificate:
    d = DENIED.named(row)
    return DeniedCertificate(fingerprint=d["fingerprint"], reason=d["reason"], denied_by=d["denied_by"],
                             denied_at=d["denied_at"])


def audit_event(row: Row) -> StoredAuditEvent:
    a = AUDIT.named(row)
    return StoredAuditEvent(event_id=int(a["event_id"]), at=int(a["at"]), kind=a["kind"], actor=a["actor"],
                            subject=a["subject"], detail=a["detail"])


def counter_binding(row: Row) -> CounterBinding:
    c = COUNTER.named(row)
    return CounterBinding(code=c["code"], merchant_id=c["merchant_id"], terminal_id=c["terminal_id"],
                          created_at=c["created_at"], expires_at=c["expires_at"], ecard_id=c["ecard_id"],
                          issuer_id=c["issuer_id"], completed_at=c["completed_at"])


def channel_event(issuer_id: str, row: Row) -> ChannelEvent:
    e = CHANNEL_EVENT.named(row)
    return ChannelEvent(issuer_id=issuer_id, seq=int(e["seq"]), kind=e["kind"], ecard_id=e["ecard_id"],
                        at=int(e["created_at"]), detail=json.loads(e["detail"]))


# -- settlements and their refunds ------------------------------------------------------------------------
SETTLEMENT = Columns("settlement_id", "ecard_id", "merchant_id", "status", "total_fen", "fund_fen", "account_fen",
                     "self_pay_fen", "balance_after_fen", "items", "settled_at", "refunded_at", "fund_refunded_fen",
                     "account_refunded_fen", "self_pay_refunded_fen", "request_hash", "catalogue_version",
                     "policy_version", "terminal_id", "operator_id", "idempotency_key", "reversed_at")
ACCOUNT = Columns("card_no", "status", "balance_fen", "person_category")  # a settlement's card, under the lock
PAID = Columns("fund_fen", "account_fen", "self_pay_fen", "fund_refunded_fen", "account_refunded_fen",
               "self_pay_refunded_fen", "items", "ecard_id", "total_fen", "benefit_year",
               "deductible_fen")  # what a refund reads of its settlement under the lock
REFUND = Columns("idempotency_key", "reason", "fund_fen", "account_fen", "self_pay_fen", "balance_after_fen", "lines",
                 "created_at", "terminal_id", "operator_id", "reversal")
SETTLEMENT_WITH_REFUNDS = Columns(*SETTLEMENT.names, *(f"refund_{name}" for name in REFUND.names))
# A settlement with its refunds, one row per refund (one row with NULLs for none), in one statement so
# that the totals and the refunds come from one snapshot; the caller adds WHERE on `s` and the order.
SETTLEMENT_SELECT = (
    f"SELECT {SETTLEMENT.select_as('s')}, {REFUND.select_as('r', 'refund_')} "
    "FROM settlements s LEFT JOIN refunds r ON r.settlement_id = s.settlement_id "
)


def request_hash(rows: Sequence[Row]) -> bytes:
    """The request hash of the settlement that SETTLEMENT_SELECT read (its idempotency identity)."""
    return bytes(SETTLEMENT_WITH_REFUNDS.named(rows[0])["request_hash"])


def settlement(rows: Sequence[Row]) -> SettlementRecord:
    """A settlement and its refunds from the rows of SETTLEMENT_SELECT, refunds oldest first."""
    named = [SETTLEMENT_WITH_REFUNDS.named(row) for row in rows]
    s = named[0]
    items, line_paid, pricing = basket(s["items"])
    made = [r for r in named if r["refund_idempotency_key"] is not None]
    refunds = tuple(
        RefundRecord(
            idempotency_key=r["refund_idempotency_key"], reason=r["refund_reason"],
            shares=Shares(r["refund_fund_fen"], r["refund_account_fen"], r["refund_self_pay_fen"]),
            balance_after_fen=r["refund_balance_after_fen"],
            lines=lines_by_code(items, refunded([r["refund_lines"]], len(items)).line_quantities),
            refunded_at=r["refund_created_at"], terminal_id=r["refund_terminal_id"],
            operator_id=r["refund_operator_id"], reversal=bool(r["refund_reversal"]),
        )
        for r in made
    )
    back = refunded([r["refund_lines"] for r in made], len(items),
                    Shares(s["fund_refunded_fen"], s["account_refunded_fen"], s["self_pay_refunded_fen"]))
    return SettlementRecord(
        settlement_id=s["settlement_id"], ecard_id=s["ecard_id"], merchant_id=s["merchant_id"], status=s["status"],
        total_fen=s["total_fen"], fund_fen=s["fund_fen"], account_fen=s["account_fen"],
        self_pay_fen=s["self_pay_fen"],
        balance_after_fen=refunds[-1].balance_after_fen if refunds else s["balance_after_fen"],
        items=items, settled_at=s["settled_at"], refunded_at=s["refunded_at"], refunded=back.shares,
        refunds=refunds, line_shares=line_paid, line_refunded=back.line_shares if line_paid else (),
        line_refunded_quantities=back.line_quantities, line_pricing=pricing,
        catalogue_version=s["catalogue_version"], policy_version=s["policy_version"], terminal_id=s["terminal_id"],
        operator_id=s["operator_id"], idempotency_key=s["idempotency_key"], reversed_at=s["reversed_at"],
    )


def settlements(rows: Sequence[Row]) -> list[SettlementRecord]:
    """Settlements from the rows of SETTLEMENT_SELECT for several (each one's rows together)."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(SETTLEMENT_WITH_REFUNDS.named(row)["settlement_id"], []).append(row)
    return [settlement(group) for group in groups.values()]


def basket(stored: str) -> tuple[tuple[LineItem, ...], tuple[Shares, ...], tuple[LinePricing, ...]]:
    """A settlement's stored basket (`items`: [[code, name, class as the POS gave it, unit price,
    quantity(, fund, account, self-pay(, priced class, covered, self-pay-first, over the limit, not
    covered))]]): its lines, the shares that paid each and how each was priced (empty for a
    settlement stored before lines kept them)."""
    lines = json.loads(stored)
    items = tuple(LineItem(*line[:5]) for line in lines)
    paid = tuple(Shares(*line[5:8]) for line in lines if len(line) >= 8)
    pricing = tuple(LinePricing(*line[8:13]) for line in lines if len(line) >= 13)
    return items, paid if len(paid) == len(items) else (), pricing if len(pricing) == len(items) else ()


def refunded(stored_lines: Sequence[str], count: int, shares: Shares = NOTHING) -> Refunded:
    """What refunds gave back, from their stored `lines` ([[line index, quantity(, fund, account,
    self-pay)]] each): the quantity per basket line and, where stored, each share per line."""
    quantities = [0] * count
    parts = [[0, 0, 0] for _ in range(count)]
    for lines in stored_lines:
        for line in json.loads(lines):
            index = line[0]
            quantities[index] += line[1]
            for share, value in enumerate(line[2:5]):
                parts[index][share] += value
    return Refunded(shares, tuple(quantities), tuple(Shares(*p) for p in parts))
