"""Reconciliation (对账): a merchant's settlements page by page, and a day's totals per terminal.

    list_settlements(query)              settled_at in [since, until), oldest first, pages of at most 1,000,
                                         keyset paging on (settled_at, settlement_id): a settlement that
                                         arrives while the pages are read never moves one already there,
                                         so none is skipped or repeated
    daily_totals(merchant, "YYYY-MM-DD") the settlements settled that day (00:00-24:00 Asia/Shanghai)
                                         per terminal, with their refunds and reversals as they stand:
                                         the sums of that day's listed records, to the fen
    operator_totals(day)                 the same day across merchants, per merchant and per fund (the
                                         pooling region of the merchant: 统筹区)

The store does the reading (core.ports.Statements); the rules of a day, a page and its token are
core.rules.statements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecard_server.core.records import (
    DayTotals,
    GroupTotals,
    OperatorDayTotals,
    SettlementPage,
    SettlementQuery,
    Totals,
)
from ecard_server.core.rules.statements import (
    DEFAULT_PAGE,
    day_range,
    page_token,
    read_page_token,
    settlement_query,
)

if TYPE_CHECKING:
    from ecard_server.core.caches import MerchantDirectory
    from ecard_server.core.ports import Statements


class StatementService:
    def __init__(self, statements: Statements, merchants: MerchantDirectory) -> None:
        self._statements = statements
        self._merchants = merchants

    def list_settlements(self, query: SettlementQuery, page_token_text: str = "") -> SettlementPage:
        settlement_query(query)
        size = query.page_size or DEFAULT_PAGE
        if page_token_text:
            query = SettlementQuery(query.merchant_id, query.since, query.until, query.terminal_id, size,
                                    read_page_token(page_token_text, query))
        found = self._statements.settlement_page(query, size + 1)
        page = tuple(found[:size])
        more = len(found) > size
        return SettlementPage(page, page_token(query, page[-1]) if more else "")

    def daily_totals(self, merchant_id: str, day: str) -> DayTotals:
        since, until = day_range(day)
        rows = self._statements.settlement_totals(since, until, merchant_id)
        return DayTotals(merchant_id, day, since, until,
                         tuple(GroupTotals(terminal, totals) for _, terminal, totals in rows))

    def operator_totals(self, day: str) -> OperatorDayTotals:
        since, until = day_range(day)
        by_merchant: dict[str, Totals] = {}
        for merchant_id, _, totals in self._statements.settlement_totals(since, until, None):
            by_merchant[merchant_id] = by_merchant.get(merchant_id, Totals()) + totals
        regions: dict[str, str] = {}
        by_fund: dict[str, Totals] = {}
        for merchant_id, totals in by_merchant.items():
            merchant = self._merchants.get(merchant_id)
            region = regions[merchant_id] = merchant.region if merchant is not None else ""
            by_fund[region] = by_fund.get(region, Totals()) + totals
        return OperatorDayTotals(day, since, until, _groups(by_merchant, regions), _groups(by_fund))


def _groups(sums: dict[str, Totals], regions: dict[str, str] | None = None) -> tuple[GroupTotals, ...]:
    return tuple(GroupTotals(key, sums[key], (regions or {}).get(key, "")) for key in sorted(sums))

