"""Cards servicer: e-card issuance and lifecycle, for channels and the operator; a channel's events."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator

import grpc.aio

from ecard.errors import InvalidArgument
from ecard.v1 import cards_pb2, cards_pb2_grpc
from ecard_server.core import events
from ecard_server.core.assurance import Statement
from ecard_server.core.caches import CardCache
from ecard_server.core.cards import CardService
from ecard_server.core.channel_events import PAGE, ChannelEventService
from ecard_server.core.counter import CounterBindingService
from ecard_server.core.rules import counter as counter_rules
from ecard_server.core.usage import UsageService
from ecard_server.rpc.auth import current_principal
from ecard_server.rpc.convert import channel_event, counter_binding, ecard, event_kinds, usage_record
from ecard_server.rpc.placement import Placement

MAX_COUNTER_WAIT_S = 30


def _ref(request: cards_pb2.CardRef) -> dict[str, str]:
    which = request.WhichOneof("ref")
    return {which: getattr(request, which)} if which else {}


class CardsServicer(cards_pb2_grpc.CardsServicer):
    def __init__(self, cards: CardService, events: ChannelEventService, usage: UsageService,
                 counter: CounterBindingService, card_cache: CardCache, placement: Placement) -> None:
        self._cards = cards
        self._usage = usage
        self._counter = counter
        self._card_cache = card_cache
        self._events = events
        self._placement = placement

    def IssueECard(self, request: cards_pb2.IssueECardRequest, context: grpc.aio.ServicerContext) -> cards_pb2.ECard:
        card = self._cards.issue_ecard(
            current_principal.get(), request.card_no, request.holder_name, request.id_number,
            Statement.of(request.assurance_statement), request.binding_code,
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
        read at least every poll interval), until the caller goes or the server drains. A read woken by
        a notice takes the numbered events only (their numbering thread tells again once it numbered
        what committed since); the first read and a poll's number what waits (storage.outbox)."""
        service, offload = self._events, self._placement.offload
        signals = service.signals
        kinds = event_kinds(request.kinds)
        issuer_id = await offload(service.open, current_principal.get(), request.issuer_id, request.after)
        cursor, number = request.after, True
        async with signals.waiter(events.CHANNEL_EVENTS, issuer_id) as wake:
            while not signals.closing:
                wake.clear()  # before the read: a notice during it wakes the next wait at once
                batch = await offload(functools.partial(service.page, issuer_id, cursor, kinds, number=number))
                for stored in batch:
                    yield channel_event(stored)
                    cursor = stored.seq
                number = False
                if len(batch) < PAGE and not signals.closing:
                    try:
                        await asyncio.wait_for(wake.wait(), service.poll_s)
                    except TimeoutError:
                        number = True

    def StartCounterBinding(self, request: cards_pb2.StartCounterBindingRequest, context: grpc.aio.ServicerContext
                            ) -> cards_pb2.CounterBinding:
        binding = self._counter.start(current_principal.get(), request.merchant_id, request.terminal_id)
        return counter_binding(binding, counter_rules.PENDING)

    async def GetCounterBinding(self, request: cards_pb2.CounterBindingRef, context: grpc.aio.ServicerContext
                                ) -> cards_pb2.CounterBinding:
        """The binding's state; with wait_seconds, answered as soon as it is completed or expires (woken by
        the completing replica's change notice; read again every poll interval besides)."""
        if not 0 <= request.wait_seconds <= MAX_COUNTER_WAIT_S:
            raise InvalidArgument(f"wait_seconds must be 0 to {MAX_COUNTER_WAIT_S}", "INVALID_WAIT_SECONDS")
        caller, offload, counter = current_principal.get(), self._placement.offload, self._counter
        code = counter_rules.binding_code(request.binding_code)
        deadline = asyncio.get_running_loop().time() + request.wait_seconds
        signals = self._events.signals
        async with signals.waiter(events.COUNTER_BINDING, code) as wake:
            while True:
                wake.clear()
                binding = await offload(counter.get, caller, request.merchant_id, code)
                state = counter_rules.status(binding, counter.now())
                left = deadline - asyncio.get_running_loop().time()
                if state != counter_rules.PENDING or left <= 0 or signals.closing:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), min(left, self._events.poll_s))
        counter.read(caller, binding)
        card = None
        if binding.ecard_id:
            card = await offload(self._card_cache.get, binding.ecard_id)
        return counter_binding(binding, state, card)
