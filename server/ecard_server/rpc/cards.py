"""Cards servicer: e-card issuance and lifecycle, for channels and the operator."""

from __future__ import annotations

import grpc.aio

from ecard.v1 import cards_pb2, cards_pb2_grpc
from ecard_server.core.assurance import Statement
from ecard_server.core.cards import CardService
from ecard_server.rpc.auth import current_principal
from ecard_server.rpc.convert import ecard


def _ref(request: cards_pb2.CardRef) -> dict[str, str]:
    which = request.WhichOneof("ref")
    return {which: getattr(request, which)} if which else {}


class CardsServicer(cards_pb2_grpc.CardsServicer):
    def __init__(self, cards: CardService) -> None:
        self._cards = cards

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
