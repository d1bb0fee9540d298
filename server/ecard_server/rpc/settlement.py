"""Settlement servicer: proto in, SettlementService, proto out. The rules live in core.settlement."""

from __future__ import annotations

from collections.abc import Sequence

import grpc.aio
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from ecard.v1 import settlement_pb2, settlement_pb2_grpc, wire
from ecard_server.core.records import (
    VISIT_OPEN,
    LineItem,
    RefundAsk,
    RefundRecord,
    SettleInput,
    SettlementQuery,
    SettlementRecord,
    Shares,
    Totals,
    Visit,
)
from ecard_server.core.rules.settlement import ReversalDraft
from ecard_server.core.settlement import Quoted, SettlementService
from ecard_server.core.statements import StatementService
from ecard_server.core.visits import OpenVisitInput, VisitService
from ecard_server.rpc.auth import own_id
from ecard_server.rpc.convert import seconds, timestamp


def _item(line: settlement_pb2.LineItem) -> LineItem:
    return LineItem(line.code, line.name, line.drug_class, line.unit_price_fen, line.quantity)


def _lines(lines: tuple[tuple[str, int], ...]) -> list[settlement_pb2.RefundLine]:
    return [settlement_pb2.RefundLine(code=code, quantity=quantity) for code, quantity in lines]


def refund_entry(refund: RefundRecord) -> settlement_pb2.RefundEntry:
    return settlement_pb2.RefundEntry(
        idempotency_key=refund.idempotency_key,
        reason=refund.reason,
        amount_fen=refund.amount_fen,
        fund_fen=refund.shares.fund_fen,
        personal_account_fen=refund.shares.account_fen,
        self_pay_fen=refund.shares.self_pay_fen,
        personal_account_balance_fen=refund.balance_after_fen,
        lines=_lines(refund.lines),
        refunded_at=timestamp(refund.refunded_at),
        terminal_id=refund.terminal_id,
        operator_id=refund.operator_id,
        reversal=refund.reversal,
    )


def add_lines(lines: RepeatedCompositeFieldContainer[settlement_pb2.SettlementLine], record: SettlementRecord) -> None:
    """The record's lines with their shares and, where it kept them, how each was priced, each added in
    place (a list handed to a message's constructor is copied line by line: a 20-line answer paid twice)."""
    if not record.line_shares:  # a settlement stored before lines kept their shares
        return
    pricing = record.line_pricing  # empty for older settlements
    for n, (item, paid, back, quantity) in enumerate(zip(
        record.items, record.line_shares, record.line_refunded, record.line_refunded_quantities, strict=True
    )):
        # Every field in the one call (each assignment afterwards would be a call of its own).
        priced = {} if n >= len(pricing) else {
            "drug_class": wire(pricing[n].drug_class), "covered_fen": pricing[n].covered_fen,
            "self_pay_first_fen": pricing[n].self_pay_first_fen, "over_limit_fen": pricing[n].over_limit_fen,
            "not_covered_fen": pricing[n].not_covered_fen,
        }
        lines.add(
            code=item.code, quantity=item.quantity, amount_fen=item.amount_fen, fund_fen=paid.fund_fen,
            personal_account_fen=paid.account_fen, self_pay_fen=paid.self_pay_fen, refunded_quantity=quantity,
            fund_refunded_fen=back.fund_fen, personal_account_refunded_fen=back.account_fen,
            self_pay_refunded_fen=back.self_pay_fen, **priced,
        )


def add_items(items: RepeatedCompositeFieldContainer[settlement_pb2.LineItem], basket: Sequence[LineItem]) -> None:
    """A basket's lines as the POS gave them, added in place."""
    for i in basket:
        items.add(code=i.code, name=i.name, drug_class=wire(i.drug_class), unit_price_fen=i.unit_price_fen,
                  quantity=i.quantity)


def settlement_quote(quoted: Quoted) -> settlement_pb2.SettlementQuote:
    quote, split = quoted.quote, quoted.split
    nothing = (Shares(0, 0, 0),) * len(quoted.line_shares)
    priced = SettlementRecord("", "", quote.merchant_id, 0, split.total_fen, 0, 0, 0, 0, quoted.items, 0, None,
                              line_shares=quoted.line_shares, line_refunded=nothing,
                              line_refunded_quantities=(0,) * len(nothing), line_pricing=split.lines)
    message = settlement_pb2.SettlementQuote(
        quote_id=quoted.quote_id, expires_at=timestamp(quote.expires_at), total_fen=split.total_fen,
        fund_paid_fen=quote.shares.fund_fen, personal_account_paid_fen=quote.shares.account_fen,
        self_pay_fen=quote.shares.self_pay_fen, catalogue_version=quote.catalogue_version,
        policy_version=quote.policy_version, personal_account_balance_fen=quote.balance_fen,
    )
    add_lines(message.lines, priced)
    return message


def settlement_record(record: SettlementRecord) -> settlement_pb2.SettlementRecord:
    message = settlement_pb2.SettlementRecord(
        settlement_id=record.settlement_id,
        ecard_id=record.ecard_id,
        merchant_id=record.merchant_id,
        status=wire(record.status),
        total_fen=record.total_fen,
        fund_paid_fen=record.fund_fen,
        personal_account_paid_fen=record.account_fen,
        self_pay_fen=record.self_pay_fen,
        personal_account_balance_fen=record.balance_after_fen,
        settled_at=timestamp(record.settled_at),
        refunded_at=timestamp(record.refunded_at),
        refunded_fen=record.refunded.total_fen,
        fund_refunded_fen=record.refunded.fund_fen,
        personal_account_refunded_fen=record.refunded.account_fen,
        self_pay_refunded_fen=record.refunded.self_pay_fen,
        refunds=[refund_entry(r) for r in record.refunds],
        catalogue_version=record.catalogue_version,
        policy_version=record.policy_version,
        terminal_id=record.terminal_id,
        operator_id=record.operator_id,
        idempotency_key=record.idempotency_key,
        reversed_at=timestamp(record.reversed_at),
    )
    add_items(message.items, record.items)
    add_lines(message.lines, record)
    return message


def _whole_second_up(message: settlement_pb2.ListSettlementsRequest, field: str) -> int | None:
    """A bound as whole seconds, rounded up: settled_at is whole seconds, so `>= 10.5` is `>= 11` and
    `< 10.5` is `< 11`."""
    at = seconds(message, field)
    return None if at is None else at + (1 if getattr(message, field).nanos > 0 else 0)


def settlement_totals(key: str, totals: Totals) -> settlement_pb2.SettlementTotals:
    """`key`: the terminal (a merchant's statement); the operator's statements name their group apart."""
    return settlement_pb2.SettlementTotals(
        terminal_id=key,
        settlements=totals.settlements,
        total_fen=totals.total_fen,
        fund_fen=totals.fund_fen,
        personal_account_fen=totals.account_fen,
        self_pay_fen=totals.self_pay_fen,
        refunds=totals.refunds,
        refunded_fen=totals.refunded_fen,
        fund_refunded_fen=totals.fund_refunded_fen,
        personal_account_refunded_fen=totals.account_refunded_fen,
        self_pay_refunded_fen=totals.self_pay_refunded_fen,
        reversals=totals.reversals,
        reversed_fen=totals.reversed_fen,
        net_fen=totals.net_fen,
        net_fund_fen=totals.fund_fen - totals.fund_refunded_fen,
        net_personal_account_fen=totals.account_fen - totals.account_refunded_fen,
        net_self_pay_fen=totals.self_pay_fen - totals.self_pay_refunded_fen,
    )


def visit_message(visit: Visit, status: int) -> settlement_pb2.Visit:
    message = settlement_pb2.Visit(
        visit_id=visit.visit_id, merchant_id=visit.merchant_id, ecard_id=visit.ecard_id, status=wire(status),
        total_fen=visit.total_fen, opened_at=timestamp(visit.opened_at), expires_at=timestamp(visit.expires_at),
        closed_at=timestamp(visit.closed_at if visit.closed_at is not None or status == VISIT_OPEN
                            else visit.expires_at),
        settlement_id=visit.settlement_id, terminal_id=visit.terminal_id, department=visit.department,
        idempotency_key=visit.idempotency_key,
    )
    add_items(message.items, visit.items)
    return message


class SettlementServicer(settlement_pb2_grpc.SettlementServicer):
    def __init__(self, settlements: SettlementService, statements: StatementService, visits: VisitService) -> None:
        self._settlements = settlements
        self._statements = statements
        self._visits = visits

    def _visit(self, visit: Visit) -> settlement_pb2.Visit:
        return visit_message(visit, self._visits.status(visit))

    def OpenVisit(self, request: settlement_pb2.OpenVisitRequest, context: grpc.aio.ServicerContext) -> (
            settlement_pb2.Visit):
        opened = OpenVisitInput(request.idempotency_key, request.verification_id, request.token, request.terminal_id,
                                request.operator_id, request.department)
        return self._visit(self._visits.open(own_id(request.merchant_id), opened))

    def AddVisitItems(self, request: settlement_pb2.AddVisitItemsRequest, context: grpc.aio.ServicerContext) -> (
            settlement_pb2.Visit):
        items = tuple(_item(line) for line in request.items)
        return self._visit(self._visits.add_items(own_id(request.merchant_id), request.visit_id,
                                                  request.idempotency_key, items))

    def SettleVisit(self, request: settlement_pb2.SettleVisitRequest, context: grpc.aio.ServicerContext) -> (
            settlement_pb2.SettlementRecord):
        settle = SettleInput(idempotency_key=request.idempotency_key, items=(), verification_id=request.verification_id,
                             token=request.token, skip_personal_account=request.skip_personal_account,
                             terminal_id=request.terminal_id, operator_id=request.operator_id)
        return settlement_record(self._visits.settle(own_id(request.merchant_id), request.visit_id, settle))

    def CancelVisit(self, request: settlement_pb2.VisitRef, context: grpc.aio.ServicerContext) -> settlement_pb2.Visit:
        return self._visit(self._visits.cancel(own_id(request.merchant_id), request.visit_id))

    def GetVisit(self, request: settlement_pb2.VisitRef, context: grpc.aio.ServicerContext) -> settlement_pb2.Visit:
        return self._visit(self._visits.get(own_id(request.merchant_id), request.visit_id))

    def Settle(
        self, request: settlement_pb2.SettleRequest, context: grpc.aio.ServicerContext
    ) -> settlement_pb2.SettlementRecord:
        settle = SettleInput(
            idempotency_key=request.idempotency_key,
            items=tuple(_item(line) for line in request.items),
            verification_id=request.verification_id,
            token=request.token,
            skip_personal_account=request.skip_personal_account,
            quote_id=request.quote_id,
            terminal_id=request.terminal_id,
            operator_id=request.operator_id,
        )
        return settlement_record(self._settlements.settle(own_id(request.merchant_id), settle))

    def Quote(
        self, request: settlement_pb2.QuoteRequest, context: grpc.aio.ServicerContext
    ) -> settlement_pb2.SettlementQuote:
        ask = SettleInput(
            idempotency_key="",
            items=tuple(_item(line) for line in request.items),
            verification_id=request.verification_id,
            token=request.token,
            skip_personal_account=request.skip_personal_account,
        )
        return settlement_quote(self._settlements.quote(own_id(request.merchant_id), ask))

    def Refund(
        self, request: settlement_pb2.RefundRequest, context: grpc.aio.ServicerContext
    ) -> settlement_pb2.SettlementRecord:
        ask = RefundAsk(tuple((line.code, line.quantity) for line in request.lines), request.amount_fen, request.full)
        record = self._settlements.refund(
            own_id(request.merchant_id), request.settlement_id, request.idempotency_key, request.reason, ask,
            terminal_id=request.terminal_id, operator_id=request.operator_id,
        )
        return settlement_record(record)

    def GetSettlement(
        self, request: settlement_pb2.GetSettlementRequest, context: grpc.aio.ServicerContext
    ) -> settlement_pb2.SettlementRecord:
        return settlement_record(self._settlements.get(own_id(request.merchant_id), request.settlement_id))

    def ReverseSettlement(
        self, request: settlement_pb2.ReverseSettlementRequest, context: grpc.aio.ServicerContext
    ) -> settlement_pb2.ReverseSettlementResponse:
        done = self._settlements.reverse(ReversalDraft(
            own_id(request.merchant_id), request.idempotency_key, request.terminal_id, request.operator_id
        ))
        return settlement_pb2.ReverseSettlementResponse(
            settlement=None if done.settlement is None else settlement_record(done.settlement),
            settled=done.settlement is not None,
            reversed_at=timestamp(done.reversed_at),
        )

    def ListSettlements(
        self, request: settlement_pb2.ListSettlementsRequest, context: grpc.aio.ServicerContext
    ) -> settlement_pb2.ListSettlementsResponse:
        query = SettlementQuery(own_id(request.merchant_id), _whole_second_up(request, "since"),
                                _whole_second_up(request, "until"), request.terminal_id, request.page_size)
        page = self._statements.list_settlements(query, request.page_token)
        return settlement_pb2.ListSettlementsResponse(
            settlements=[settlement_record(r) for r in page.settlements], next_page_token=page.next_page_token
        )

    def DailyTotals(
        self, request: settlement_pb2.DailyTotalsRequest, context: grpc.aio.ServicerContext
    ) -> settlement_pb2.DailyTotalsResponse:
        day = self._statements.daily_totals(own_id(request.merchant_id), request.day)
        return settlement_pb2.DailyTotalsResponse(
            merchant_id=day.merchant_id, day=day.day, since=timestamp(day.since), until=timestamp(day.until),
            terminals=[settlement_totals(g.key, g.totals) for g in day.terminals],
            total=settlement_totals("", day.total),
        )
