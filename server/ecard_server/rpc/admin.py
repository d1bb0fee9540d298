"""Admin servicer: the operator's registrations, enrollment and credits (plain methods: they run on the
blocking-work pool, an EnrollCards stream handed over message by message; see rpc.guard)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import grpc.aio

from ecard.errors import InvalidArgument
from ecard.v1 import admin_pb2, admin_pb2_grpc, cards_pb2
from ecard_server.core.admin import AdminService
from ecard_server.core.cards import CardService
from ecard_server.core.records import AuditQuery, CatalogueItem, DeniedCertificate, IssuerKey
from ecard_server.core.statements import StatementService
from ecard_server.rpc.auth import current_principal, scoped_id
from ecard_server.rpc.convert import ecard, issuer_key, merchant, seconds, timestamp
from ecard_server.rpc.settlement import settlement_totals


def stream_cards(messages: Iterable[admin_pb2.PhysicalCard]) -> Iterator[admin_pb2.PhysicalCard]:
    """Every card of an EnrollCards stream, in order: a message's own card (unless it only carries
    others, `more_cards`), then the cards it carries."""
    for message in messages:
        carried = message.more_cards
        if not carried or (
            message.card_no or message.holder_name or message.id_number or message.region
            or message.personal_account_balance_fen or message.person_category
        ):
            yield message
        if carried:
            yield from stream_cards(carried)


def _denied(entry: DeniedCertificate) -> admin_pb2.DeniedCertificate:
    return admin_pb2.DeniedCertificate(fingerprint_sha256=entry.fingerprint, reason=entry.reason,
                                       denied_at=timestamp(entry.denied_at), denied_by=entry.denied_by)
def stream_items(messages: Iterable[admin_pb2.CatalogueItem]) -> Iterator[CatalogueItem]:
    """Every item of an ImportCatalogue stream, in order (a carrier message's own item first, if any)."""
    for message in messages:
        carried = message.more_items
        if not carried or message.code or message.name or message.price_limit_fen:
            yield CatalogueItem(message.code, message.name, message.drug_class, message.price_limit_fen,
                                message.valid_from, message.valid_to)
        if carried:
            yield from stream_items(carried)


class AdminServicer(admin_pb2_grpc.AdminServicer):
    def __init__(self, admin: AdminService, cards: CardService, statements: StatementService) -> None:
        self._admin = admin
        self._cards = cards
        self._statements = statements

    def SettlementDayTotals(
        self, request: admin_pb2.SettlementDayTotalsRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.SettlementDayTotalsResponse:
        day = self._statements.operator_totals(request.day)
        return admin_pb2.SettlementDayTotalsResponse(
            day=day.day, since=timestamp(day.since), until=timestamp(day.until),
            merchants=[admin_pb2.MerchantDayTotals(merchant_id=g.key, region=g.region,
                                                   totals=settlement_totals("", g.totals)) for g in day.merchants],
            funds=[admin_pb2.FundDayTotals(region=g.key, totals=settlement_totals("", g.totals)) for g in day.funds],
            total=settlement_totals("", day.total),
        )

    def DisableIssuer(self, request: admin_pb2.IssuerRef, context: grpc.aio.ServicerContext) -> admin_pb2.Issuer:
        issuer = self._admin.disable_issuer(request.issuer_id, actor=str(current_principal.get()))
        answer = admin_pb2.Issuer(issuer_id=issuer.issuer_id, display_name=issuer.display_name,
                                  disabled=issuer.disabled_at is not None)
        if issuer.disabled_at is not None:
            answer.disabled_at.CopyFrom(timestamp(issuer.disabled_at))  # type: ignore[arg-type]
        return answer

    def DenyCertificate(
        self, request: admin_pb2.DenyCertificateRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.DeniedCertificate:
        return _denied(self._admin.deny_certificate(request.fingerprint_sha256, request.reason,
                                                    actor=str(current_principal.get())))

    def AllowCertificate(
        self, request: admin_pb2.CertificateRef, context: grpc.aio.ServicerContext
    ) -> admin_pb2.DeniedCertificate:
        return _denied(self._admin.allow_certificate(request.fingerprint_sha256, actor=str(current_principal.get())))

    def ListDeniedCertificates(
        self, request: admin_pb2.ListDeniedCertificatesRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ListDeniedCertificatesResponse:
        return admin_pb2.ListDeniedCertificatesResponse(
            certificates=[_denied(d) for d in self._admin.denied_certificates()]
        )

    def UpsertIssuer(self, request: admin_pb2.Issuer, context: grpc.aio.ServicerContext) -> admin_pb2.Issuer:
        issuer = self._admin.upsert_issuer(request.issuer_id, request.display_name)
        return admin_pb2.Issuer(issuer_id=issuer.issuer_id, display_name=issuer.display_name)

    # Key methods are open to channels too (rpc.auth.ROLE_TABLE): scoped_id holds a channel to its own keys.
    @staticmethod
    def _new_key(issuer_id: str, request: admin_pb2.IssuerKey) -> IssuerKey:
        return IssuerKey(issuer_id, request.kid, request.algorithm, request.public_key_pem,
                         seconds(request, "not_before"), seconds(request, "not_after"), False)

    def RegisterIssuerKey(self, request: admin_pb2.IssuerKey, context: grpc.aio.ServicerContext) -> admin_pb2.IssuerKey:
        return issuer_key(self._admin.register(self._new_key(scoped_id(request.issuer_id), request),
                                               actor=str(current_principal.get())))

    def RotateIssuerKey(
        self, request: admin_pb2.RotateIssuerKeyRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.RotateIssuerKeyResponse:
        issuer_id = scoped_id(request.issuer_id)
        if request.new_key.issuer_id and scoped_id(request.new_key.issuer_id) != issuer_id:
            raise InvalidArgument("new_key names another issuer than the request", "ISSUER_MISMATCH")
        new, retiring = self._admin.rotate_key(
            self._new_key(issuer_id, request.new_key), request.retiring_kid, request.overlap_seconds,
            actor=str(current_principal.get()),
        )
        return admin_pb2.RotateIssuerKeyResponse(new_key=issuer_key(new), retiring_key=issuer_key(retiring))

    def RevokeIssuerKey(self, request: admin_pb2.KeyRef, context: grpc.aio.ServicerContext) -> admin_pb2.IssuerKey:
        key = self._admin.revoke_key(scoped_id(request.issuer_id), request.kid, actor=str(current_principal.get()))
        return issuer_key(key)

    def ListIssuerKeys(
        self, request: admin_pb2.ListIssuerKeysRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ListIssuerKeysResponse:
        keys = self._admin.list_keys(scoped_id(request.issuer_id))
        return admin_pb2.ListIssuerKeysResponse(keys=[issuer_key(k) for k in keys])

    def UpsertMerchant(self, request: admin_pb2.Merchant, context: grpc.aio.ServicerContext) -> admin_pb2.Merchant:
        return merchant(
            self._admin.upsert_merchant(
                request.merchant_id, request.display_name, request.kind, request.region, request.designated
            )
        )

    def EnrollCards(
        self, request_iterator: Iterator[admin_pb2.PhysicalCard], context: grpc.aio.ServicerContext
    ) -> admin_pb2.EnrollSummary:
        result = self._admin.enroll_cards(stream_cards(request_iterator))  # the messages are the rows
        return admin_pb2.EnrollSummary(
            enrolled=result.enrolled, updated=result.updated, rejected=result.rejected, errors=result.errors
        )

    def ImportCatalogue(
        self, request_iterator: Iterator[admin_pb2.CatalogueItem], context: grpc.aio.ServicerContext
    ) -> admin_pb2.CatalogueImportSummary:
        version, items = self._admin.import_catalogue(stream_items(request_iterator))
        return admin_pb2.CatalogueImportSummary(catalogue_version=version, items=items)

    def ImportBenefitPolicy(
        self, request: admin_pb2.BenefitPolicyFile, context: grpc.aio.ServicerContext
    ) -> admin_pb2.BenefitPolicySummary:
        version, name = self._admin.import_policy(request.json)
        return admin_pb2.BenefitPolicySummary(policy_version=version, name=name)

    def CreditAccount(self, request: admin_pb2.CreditRequest, context: grpc.aio.ServicerContext) -> cards_pb2.ECard:
        return ecard(self._admin.credit_account(request.card_no, request.amount_fen, request.idempotency_key))

    def ReplaceCard(self, request: admin_pb2.ReplaceCardRequest, context: grpc.aio.ServicerContext) -> cards_pb2.ECard:
        return ecard(self._cards.replace_card(current_principal.get(), request.old_card_no, request.new_card_no,
                                              request.idempotency_key))

    def ListAuditEvents(
        self, request: admin_pb2.ListAuditEventsRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ListAuditEventsResponse:
        query = AuditQuery(kind=request.kind, actor=request.actor, subject=request.subject,
                           since=seconds(request, "since"), until=seconds(request, "until"), limit=request.page_size)
        events, next_token = self._admin.audit_events(query, request.page_token, current_principal.get())
        return admin_pb2.ListAuditEventsResponse(
            events=[admin_pb2.AuditEvent(event_id=e.event_id, at=timestamp(e.at), kind=e.kind, actor=e.actor,
                                         subject=e.subject, detail=e.detail) for e in events],
            next_page_token=next_token,
        )
