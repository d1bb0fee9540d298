"""Cards servicer: e-card issuance and lifecycle, for channels and the operator; a channel's events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc.aio

from ecard.v1 import cards_pb2, cards_pb2_grpc
from ecard_server.core.assurance import Statement
from ecard_server.core.cards import CardService
from ecard_server.core.channel_events import PAGE, ChannelEventService
from ecard_server.core.usage import UsageService
from ecard_server.rpc.auth import current_principal
from ecard_server.rpc.convert import channel_event, ecard, usage_record
from ecard_server.rpc.placement import Placement


def _ref(request: cards_pb2.CardRef) -> dict[str, str]:
    which = request.WhichOneof("ref")
    return {which: getattr(request, which)} if which else {}


class CardsServicer(cards_pb2_grpc.CardsServicer):
    def __init__(self, cards: CardService, events: ChannelEventService, usage: UsageService,
                 placement: Placement) -> None:
        self._cards = cards
        self._usage = usage
        self._events = events
        self._placement = placement

    def IssueECard(self, request: cards_pb2.IssueECardRequest, context: grpc.aio.ServicerContext) -> cards_pb2.ECard:
        card = self._cards.issue_ecard(
            current_principal.get(), request.card_no, request.holder_name, request.id_number,
            Statement.of(request.assurance_statement),
        )
        return ecard(card)

    def GetECard(self, request: cards_pb2.GetECardRequest, context: grpc.aio.ServicerContext) -> cards_pb2.ECard:
        return ecard(self._cards.find(current_principal.get(), ecard_id=request.ecard_id))

    def ReportLost(self, request: cards_pb2.CardRef, context: grpc.aio.ServicerContext) -> cards_pb2.ECard:
        return ecard(self._cards.report_lost(current_principal.get(), **_ref(request)))

    def Reinstate(self, request: cards_pb2.CardRef, context: grpc.aio.ServicerContext) -> cards_pb2.ECard:
        return ecard(self._cards.reinstate(current_principal.get(), **_ref(request)))

    def Cancel(self, request: cards_pb2.CardRef, context: grpc.aio.ServicerContext) -> cards_pb2.ECard:
        return ecard(self._cards.cancel(current_principal.get(), **_ref(request)))

    def SuspendBinding(self, request: cards_pb2.BindingRef, context: grpc.aio.ServicerContext) -> cards_pb2.ECard:
        return ecard(self._cards.suspend_binding(current_principal.get(), request.ecard_id, request.issuer_id))

    def ResumeBinding(self, request: cards_pb2.BindingRef, context: grpc.aio.ServicerContext) -> cards_pb2.ECard:
        return ecard(self._cards.resume_binding(current_principal.get(), request.ecard_id, request.issuer_id))

    def Unbind(self, request: cards_pb2.BindingRef, context: grpc.aio.ServicerContext) -> cards_pb2.ECard:
        return ecard(self._cards.unbind(current_principal.get(), request.ecard_id, request.issuer_id))

    def ListUsage(self, request: cards_pb2.ListUsageRequest, context: grpc.aio.ServicerContext
                  ) -> cards_pb2.ListUsageResponse:
        uses, token = self._usage.list_usage(current_principal.get(), request.ecard_id, request.page_size,
                                             request.page_token)
        return cards_pb2.ListUsageResponse(records=[usage_record(u) for u in uses], next_page_token=token)

    async def WatchEvents(
        self, request: cards_pb2.WatchEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[cards_pb2.ChannelEvent]:
        """The channel's events after the cursor, then each as it is written (woken by change notices,
        read at least every poll interval), until the caller goes or the server drains."""
        service, offload = self._events, self._placement.offload
        signals = service.signals
        issuer_id = await offload(service.open, current_principal.get(), request.issuer_id, request.after)
        cursor = request.after
        async with signals.waiter(issuer_id) as wake:
            while not signals.closing:
                wake.clear()  # before the read: a notice during it wakes the next wait at once
                batch = await offload(service.page, issuer_id, cursor)
                for stored in batch:
                    yield channel_event(stored)
                    cursor = stored.seq
                if len(batch) < PAGE and not signals.closing:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), service.poll_s)
