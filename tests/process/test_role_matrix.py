"""The role matrix, over real mTLS: every RPC x every principal kind x its own and another's resource.

The principal comes from the client certificate (made here by a throwaway CA). "own" is side A: the
caller's own merchant id, settlement or e-card (channel bank-a, merchant ph-a); "other" is side B
(bank-b, ph-b): another merchant's id or settlement, an e-card bound only to another channel. The
operator may act on both sides. Every cell asserts the status code and, for a refusal, the ErrorInfo
reason. Each cell gets fresh resources, so no cell depends on another's order.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ecard import (
    AdminClient,
    ChannelClient,
    ClientOptions,
    PharmacyClient,
    TLSConfig,
    TokenSigner,
    generate_private_key,
    line_item,
    physical_cards,
    public_key_pem,
)
from ecard._keys import PrivateKey
from ecard._rpc_errors import from_grpc_error
from ecard._transport import sync_channel
from ecard.testing import EcardServer, fake_holder
from ecard.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    cards_pb2,
    cards_pb2_grpc,
    settlement_pb2,
    settlement_pb2_grpc,
    verifier_pb2,
    verifier_pb2_grpc,
)
from ecard.v1 import types_pb2 as t
from loadtest.rig.pki import CertificateAuthority

OK = ("OK", "")
ROLE = ("PERMISSION_DENIED", "ROLE_NOT_ALLOWED")  # the role table refuses the principal kind
ANON = ("UNAUTHENTICATED", "BAD_PRINCIPAL")  # a valid certificate that names no ecard:// principal
MISMATCH = ("PERMISSION_DENIED", "PRINCIPAL_MISMATCH")  # the request names another merchant
NOT_YOURS = ("NOT_FOUND", "SETTLEMENT_UNKNOWN")  # another merchant's settlement: answered as an unknown id
NOT_BOUND = ("PERMISSION_DENIED", "CHANNEL_NOT_BOUND")
UNKNOWN_CARD = ("NOT_FOUND", "CARD_UNKNOWN")
UNKNOWN_BINDING = ("NOT_FOUND", "COUNTER_BINDING_UNKNOWN")
NO_VISIT = ("NOT_FOUND", "VISIT_UNKNOWN")  # another merchant's visit
NOT_SEEN = ("NOT_FOUND", "VERIFICATION_NOT_FOUND")  # another merchant's request_id is not found for this one

PRINCIPALS = ("admin", "channel", "merchant", "none")
# rpc:             admin own/other    channel own/other   merchant own/other   none own/other
MATRIX: dict[str, tuple[tuple[str, str], ...]] = {
    "Verifier.Verify":         (ROLE, ROLE, ROLE, ROLE, OK, MISMATCH, ANON, ANON),
    "Verifier.VerifyStream":   (ROLE, ROLE, ROLE, ROLE, OK, MISMATCH, ANON, ANON),
    "Verifier.VerifyBatch":    (ROLE, ROLE, ROLE, ROLE, OK, MISMATCH, ANON, ANON),
    "Verifier.GetVerification": (ROLE, ROLE, ROLE, ROLE, OK, NOT_SEEN, ANON, ANON),
    "Settlement.Settle":       (ROLE, ROLE, ROLE, ROLE, OK, MISMATCH, ANON, ANON),
    "Settlement.Quote":        (ROLE, ROLE, ROLE, ROLE, OK, MISMATCH, ANON, ANON),
    "Settlement.Refund":       (ROLE, ROLE, ROLE, ROLE, OK, NOT_YOURS, ANON, ANON),
    "Settlement.GetSettlement": (ROLE, ROLE, ROLE, ROLE, OK, NOT_YOURS, ANON, ANON),
    # A merchant's Settle keys and statements are its own: naming another merchant is a mismatch.
    "Settlement.ReverseSettlement": (ROLE, ROLE, ROLE, ROLE, OK, MISMATCH, ANON, ANON),
    "Settlement.ListSettlements": (ROLE, ROLE, ROLE, ROLE, OK, MISMATCH, ANON, ANON),
    "Settlement.DailyTotals":  (ROLE, ROLE, ROLE, ROLE, OK, MISMATCH, ANON, ANON),
    # Another merchant's visit is not found for this one.
    "Settlement.OpenVisit":    (ROLE, ROLE, ROLE, ROLE, OK, MISMATCH, ANON, ANON),
    "Settlement.AddVisitItems": (ROLE, ROLE, ROLE, ROLE, OK, NO_VISIT, ANON, ANON),
    "Settlement.SettleVisit":  (ROLE, ROLE, ROLE, ROLE, OK, NO_VISIT, ANON, ANON),
    "Settlement.CancelVisit":  (ROLE, ROLE, ROLE, ROLE, OK, NO_VISIT, ANON, ANON),
    "Settlement.GetVisit":     (ROLE, ROLE, ROLE, ROLE, OK, NO_VISIT, ANON, ANON),
    # Issuing a card already bound to another channel binds the caller too (the contract: one e-card
    # per physical card, any channel that proves the holder's name and identity number may issue it).
    "Cards.IssueECard":        (ROLE, ROLE, OK, OK, ROLE, ROLE, ANON, ANON),
    "Cards.GetECard":          (OK, OK, OK, NOT_BOUND, ROLE, ROLE, ANON, ANON),
    "Cards.ReportLost":        (OK, OK, OK, NOT_BOUND, ROLE, ROLE, ANON, ANON),
    "Cards.Reinstate":         (OK, OK, ROLE, ROLE, ROLE, ROLE, ANON, ANON),
    "Cards.Cancel":            (OK, OK, ROLE, ROLE, ROLE, ROLE, ANON, ANON),
    # A channel changes its own binding only; naming another channel's is a mismatch.
    "Cards.SuspendBinding":    (OK, OK, OK, MISMATCH, ROLE, ROLE, ANON, ANON),
    "Cards.ResumeBinding":     (OK, OK, OK, MISMATCH, ROLE, ROLE, ANON, ANON),
    "Cards.Unbind":            (OK, OK, OK, MISMATCH, ROLE, ROLE, ANON, ANON),
    "Cards.WatchEvents":       (OK, OK, OK, MISMATCH, ROLE, ROLE, ANON, ANON),
    # Another channel's holder's usage is not found, not refused: it does not learn the e-card exists.
    "Cards.ListUsage":         (OK, OK, OK, UNKNOWN_CARD, ROLE, ROLE, ANON, ANON),
    # A merchant starts its own counter bindings and reads only those (another's code is not found).
    "Cards.StartCounterBinding": (ROLE, ROLE, ROLE, ROLE, OK, MISMATCH, ANON, ANON),
    "Cards.GetCounterBinding": (ROLE, ROLE, ROLE, ROLE, OK, UNKNOWN_BINDING, ANON, ANON),
    "Admin.UpsertIssuer":      (OK, OK, ROLE, ROLE, ROLE, ROLE, ANON, ANON),
    # A channel manages its own issuer keys, and only those.
    "Admin.RegisterIssuerKey": (OK, OK, OK, MISMATCH, ROLE, ROLE, ANON, ANON),
    "Admin.RotateIssuerKey":   (OK, OK, OK, MISMATCH, ROLE, ROLE, ANON, ANON),
    "Admin.RevokeIssuerKey":   (OK, OK, OK, MISMATCH, ROLE, ROLE, ANON, ANON),
    "Admin.ListIssuerKeys":    (OK, OK, OK, MISMATCH, ROLE, ROLE, ANON, ANON),
    "Admin.UpsertMerchant":    (OK, OK, ROLE, ROLE, ROLE, ROLE, ANON, ANON),
    "Admin.EnrollCards":       (OK, OK, ROLE, ROLE, ROLE, ROLE, ANON, ANON),
    "Admin.ImportCatalogue":   (OK, OK, ROLE, ROLE, ROLE, ROLE, ANON, ANON),
    "Admin.ImportBenefitPolicy": (OK, OK, ROLE, ROLE, ROLE, ROLE, ANON, ANON),
    "Admin.CreditAccount":     (OK, OK, ROLE, ROLE, ROLE, ROLE, ANON, ANON),
    "Admin.ReplaceCard":       (OK, OK, ROLE, ROLE, ROLE, ROLE, ANON, ANON),
    # A channel reads the events of its own e-cards (who else bound them, who tried), and only those.
    "Admin.ListAuditEvents":   (OK, OK, OK, NOT_BOUND, ROLE, ROLE, ANON, ANON),
    # Shutting a compromised channel or terminal off is the operator's alone.
    "Admin.DisableIssuer":     (OK, OK, ROLE, ROLE, ROLE, ROLE, ANON, ANON),
    "Admin.DenyCertificate":   (OK, OK, ROLE, ROLE, ROLE, ROLE, ANON, ANON),
    "Admin.AllowCertificate":  (OK, OK, ROLE, ROLE, ROLE, ROLE, ANON, ANON),
    "Admin.ListDeniedCertificates": (OK, OK, ROLE, ROLE, ROLE, ROLE, ANON, ANON),
    "Admin.SettlementDayTotals": (OK, OK, ROLE, ROLE, ROLE, ROLE, ANON, ANON),
    "Health.Check":            (OK, OK, OK, OK, OK, OK, OK, OK),
    "Reflection.ServerReflectionInfo": (OK, OK, OK, OK, OK, OK, OK, OK),
}
CELLS = [
    (rpc, principal, side, MATRIX[rpc][2 * i + j])
    for rpc in MATRIX
    for i, principal in enumerate(PRINCIPALS)
    for j, side in enumerate(("own", "other"))
]


@dataclass
class Side:
    issuer_id: str
    key: PrivateKey
    signer: TokenSigner
    merchant_id: str
    channel: ChannelClient
    pos: PharmacyClient


class Scene:
    """The mTLS server, the principals' channels, and makers of fresh resources on side A or B."""

    def __init__(self, server: EcardServer, tls: dict[str, TLSConfig]) -> None:
        self.target = server.target
        self.tls = tls
        self.admin = AdminClient(self.target, options=ClientOptions(tls=tls["admin"]))
        self._serial = itertools.count()
        self._tag = uuid.uuid4().hex[:6]
        self.sides = {side: self._side(side) for side in ("a", "b")}
        self.channels = {who: sync_channel(self.target, ClientOptions(tls=tls[who])) for who in PRINCIPALS}

    def _side(self, side: str) -> Side:
        key = generate_private_key()
        issuer_id, merchant_id = f"bank-{side}", f"ph-{side}"
        self.admin.upsert_issuer(issuer_id, f"Bank {side}")
        kid = self.admin.register_key(issuer_id, public_key_pem(key)).kid
        # hospitals: a hospital settles as a pharmacy does, and only a hospital opens visits
        self.admin.upsert_merchant(merchant_id, kind=t.MERCHANT_KIND_HOSPITAL, region="330200")
        signer = TokenSigner(key, issuer_id=issuer_id, kid=kid)
        return Side(issuer_id, key, signer, merchant_id,
                    ChannelClient(self.target, issuer_id=issuer_id, signer=signer,
                                  options=ClientOptions(tls=self.tls[f"channel-{side}"])),
                    PharmacyClient(self.target, merchant_id=merchant_id,
                                   options=ClientOptions(tls=self.tls[f"merchant-{side}"])))

    def side(self, which: str) -> Side:
        return self.sides["a" if which == "own" else "b"]

    def enrolled(self) -> tuple[str, str, str]:
        """A freshly enrolled physical card (no e-card yet)."""
        holder = fake_holder(next(self._serial), self._tag)
        self.admin.enroll_cards(physical_cards([(*holder, "330200", 50_000)]))
        return holder

    def ecard(self, which: str) -> tuple[str, str]:
        """A fresh e-card bound to the side's channel only: (card_no, ecard_id)."""
        card_no, name, idn = self.enrolled()
        return card_no, self.side(which).channel.issue_ecard(card_no, name, idn, assurance=t.ASSURANCE_FACE).ecard_id

    def verify_request(self, which: str) -> verifier_pb2.VerifyRequest:
        """A valid token, asking in the name of the side's merchant."""
        token = self.side("own").signer.mint(self.ecard("own")[1])
        return verifier_pb2.VerifyRequest(token=token, merchant_id=self.side(which).merchant_id,
                                          purpose=t.PURPOSE_IDENTITY)

    def verified(self, which: str) -> str:
        """The request_id of a Verify the side's merchant made."""
        request_id = uuid.uuid4().hex
        self.side(which).pos.verify(self.side("own").signer.mint(self.ecard("own")[1]), purpose=t.PURPOSE_IDENTITY,
                                    request_id=request_id)
        return request_id

    def visit(self, which: str) -> tuple[str, str]:
        """A fresh open visit at the side's merchant, with one fee item: (visit_id, its holder's e-card)."""
        pos, ecard_id = self.side(which).pos, self.ecard("own")[1]
        token = self.side("own").signer.mint(ecard_id)
        visit = pos.open_visit(idempotency_key=uuid.uuid4().hex, token=token)
        pos.add_visit_items(visit.visit_id, [line_item("XA01", "amoxicillin", t.DRUG_CLASS_A, unit_price_fen=1280)],
                            idempotency_key="fee")
        return visit.visit_id, ecard_id

    def settlement(self, which: str) -> str:
        """A fresh settlement made by the side's merchant."""
        side = self.side(which)
        token = self.side("own").signer.mint(self.ecard("own")[1])
        record = side.pos.settle([line_item("XA01", "amoxicillin", t.DRUG_CLASS_A, unit_price_fen=1280)],
                                 idempotency_key=uuid.uuid4().hex, token=token)
        return record.settlement_id


Call = Callable[[Scene, str, grpc.Channel], Any]


def _unary(stub: Callable[[grpc.Channel], Any], method: str, build: Callable[[Scene, str], Any]) -> Call:
    return lambda scene, side, channel: getattr(stub(channel), method)(build(scene, side), timeout=10)


def _key(scene: Scene, side: str) -> admin_pb2.IssuerKey:
    key = generate_private_key()
    pem = public_key_pem(key)
    return admin_pb2.IssuerKey(issuer_id=scene.side(side).issuer_id, algorithm=t.KEY_ALGORITHM_ED25519,
                               public_key_pem=pem.decode() if isinstance(pem, bytes) else pem)


def _registered_key(scene: Scene, side: str) -> admin_pb2.KeyRef:
    key = _key(scene, side)
    kid = scene.admin.register_key(key.issuer_id, key.public_key_pem).kid
    return admin_pb2.KeyRef(issuer_id=key.issuer_id, kid=kid)


def _lost_card(scene: Scene, side: str) -> cards_pb2.CardRef:
    ecard_id = scene.ecard(side)[1]
    scene.admin.report_lost(ecard_id=ecard_id)
    return cards_pb2.CardRef(ecard_id=ecard_id)


def _issue_request(scene: Scene, side: str) -> cards_pb2.IssueECardRequest:
    card_no, name, idn = scene.enrolled()
    if side == "other":  # already issued through channel B
        scene.side("other").channel.issue_ecard(card_no, name, idn, assurance=t.ASSURANCE_FACE)
    return cards_pb2.IssueECardRequest(card_no=card_no, holder_name=name, id_number=idn,
                                       assurance=t.ASSURANCE_FACE,  # signed by the calling channel, bank-a
                                       assurance_statement=scene.side("own").signer.attest(card_no))


def _binding(scene: Scene, side: str) -> cards_pb2.BindingRef:
    """The side's channel binding of a fresh e-card bound to that channel only."""
    return cards_pb2.BindingRef(ecard_id=scene.ecard(side)[1], issuer_id=scene.side(side).issuer_id)


def _suspended(scene: Scene, side: str) -> cards_pb2.BindingRef:
    ref = _binding(scene, side)
    scene.admin.suspend_binding(ref.ecard_id, ref.issuer_id)
    return ref


def _replacement(scene: Scene, side: str) -> admin_pb2.ReplaceCardRequest:
    """A fresh e-card of the side's channel and a new card enrolled for the same holder."""
    card_no, name, idn = scene.enrolled()
    scene.side(side).channel.issue_ecard(card_no, name, idn, assurance=t.ASSURANCE_FACE)
    new_no = f"NW{uuid.uuid4().hex[:10]}"
    scene.admin.enroll_cards(physical_cards([(new_no, name, idn, "330200", 0)]))
    return admin_pb2.ReplaceCardRequest(old_card_no=card_no, new_card_no=new_no, idempotency_key=uuid.uuid4().hex)


def _watch(scene: Scene, side: str, channel: grpc.Channel) -> Any:
    """The first event of the side's channel (it has one: the binding of a fresh e-card)."""
    scene.ecard(side)
    request = cards_pb2.WatchEventsRequest(issuer_id=scene.side(side).issuer_id)
    stream = cards_pb2_grpc.CardsStub(channel).WatchEvents(request, timeout=10)
    try:
        return next(iter(stream))
    finally:
        stream.cancel()


def _doomed_issuer(scene: Scene, side: str) -> admin_pb2.IssuerRef:
    """A fresh issuer with a key (disabling side A's or B's own would break the other cells)."""
    issuer_id = f"doomed-{side}-{uuid.uuid4().hex[:8]}"
    scene.admin.upsert_issuer(issuer_id)
    scene.admin.register_key(issuer_id, public_key_pem(generate_private_key()))
    return admin_pb2.IssuerRef(issuer_id=issuer_id)


def _denied_fingerprint(scene: Scene, side: str) -> admin_pb2.CertificateRef:
    """A fingerprint on the deny list (of no certificate the matrix uses)."""
    fingerprint = uuid.uuid4().hex * 2
    scene.admin.deny_certificate(fingerprint, reason=f"matrix {side}")
    return admin_pb2.CertificateRef(fingerprint_sha256=fingerprint)


def _settle_visit(scene: Scene, side: str) -> settlement_pb2.SettleVisitRequest:
    visit_id, ecard_id = scene.visit(side)
    return settlement_pb2.SettleVisitRequest(visit_id=visit_id, idempotency_key=uuid.uuid4().hex,
                                             token=scene.side("own").signer.mint(ecard_id))


def _verify_stream(scene: Scene, side: str, channel: grpc.Channel) -> Any:
    return list(verifier_pb2_grpc.VerifierStub(channel).VerifyStream(iter([scene.verify_request(side)]), timeout=10))


def _enroll(scene: Scene, side: str, channel: grpc.Channel) -> Any:
    card = admin_pb2.PhysicalCard(card_no=f"EN{uuid.uuid4().hex[:10]}", holder_name="吴测试",
                                  id_number="330200000000000001", region="330200" if side == "own" else "330100")
    return admin_pb2_grpc.AdminStub(channel).EnrollCards(iter([card]), timeout=10)


def _catalogue(scene: Scene, side: str, channel: grpc.Channel) -> Any:
    # The items the scene's settlements name, with their classes: the matrix's baskets price as before.
    items = [admin_pb2.CatalogueItem(code="XA01", name="amoxicillin", drug_class=t.DRUG_CLASS_A, price_limit_fen=10**6),
             admin_pb2.CatalogueItem(code="XB07", name="ibuprofen", drug_class=t.DRUG_CLASS_B, price_limit_fen=10**6)]
    return admin_pb2_grpc.AdminStub(channel).ImportCatalogue(iter(items), timeout=10)


def _reflect(scene: Scene, side: str, channel: grpc.Channel) -> Any:
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    return list(reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(iter([request]), timeout=10))


V, S, C, A = (verifier_pb2_grpc.VerifierStub, settlement_pb2_grpc.SettlementStub, cards_pb2_grpc.CardsStub,
              admin_pb2_grpc.AdminStub)
CALLS: dict[str, Call] = {
    "Verifier.Verify": _unary(V, "Verify", Scene.verify_request),
    "Verifier.VerifyStream": _verify_stream,
    "Verifier.VerifyBatch": _unary(V, "VerifyBatch", lambda s, side: verifier_pb2.VerifyBatchRequest(
        requests=[s.verify_request(side)])),
    "Verifier.GetVerification": _unary(V, "GetVerification", lambda s, side: verifier_pb2.GetVerificationRequest(
        request_id=s.verified(side))),
    "Settlement.Settle": _unary(S, "Settle", lambda s, side: settlement_pb2.SettleRequest(
        merchant_id=s.side(side).merchant_id, idempotency_key=uuid.uuid4().hex,
        token=s.side("own").signer.mint(s.ecard("own")[1]),
        items=[line_item("XB07", "ibuprofen", t.DRUG_CLASS_B, unit_price_fen=1550)])),
    "Settlement.Quote": _unary(S, "Quote", lambda s, side: settlement_pb2.QuoteRequest(
        merchant_id=s.side(side).merchant_id, token=s.side("own").signer.mint(s.ecard("own")[1]),
        items=[line_item("XB07", "ibuprofen", t.DRUG_CLASS_B, unit_price_fen=1550)])),
    "Settlement.Refund": _unary(S, "Refund", lambda s, side: settlement_pb2.RefundRequest(
        settlement_id=s.settlement(side), idempotency_key=uuid.uuid4().hex, reason="returned", full=True)),
    "Settlement.GetSettlement": _unary(S, "GetSettlement", lambda s, side: settlement_pb2.GetSettlementRequest(
        settlement_id=s.settlement(side))),
    "Settlement.ReverseSettlement": _unary(S, "ReverseSettlement", lambda s, side: (
        settlement_pb2.ReverseSettlementRequest(merchant_id=s.side(side).merchant_id,
                                                idempotency_key=uuid.uuid4().hex))),
    "Settlement.ListSettlements": _unary(S, "ListSettlements", lambda s, side: settlement_pb2.ListSettlementsRequest(
        merchant_id=s.side(side).merchant_id, page_size=10)),
    "Settlement.DailyTotals": _unary(S, "DailyTotals", lambda s, side: settlement_pb2.DailyTotalsRequest(
        merchant_id=s.side(side).merchant_id, day="2026-12-03")),
    "Settlement.OpenVisit": _unary(S, "OpenVisit", lambda s, side: settlement_pb2.OpenVisitRequest(
        merchant_id=s.side(side).merchant_id, idempotency_key=uuid.uuid4().hex,
        token=s.side("own").signer.mint(s.ecard("own")[1]))),
    "Settlement.AddVisitItems": _unary(S, "AddVisitItems", lambda s, side: settlement_pb2.AddVisitItemsRequest(
        visit_id=s.visit(side)[0], idempotency_key="more",
        items=[line_item("XB07", "ibuprofen", t.DRUG_CLASS_B, unit_price_fen=1550)])),
    "Settlement.SettleVisit": _unary(S, "SettleVisit", _settle_visit),
    "Settlement.CancelVisit": _unary(S, "CancelVisit", lambda s, side: settlement_pb2.VisitRef(
        visit_id=s.visit(side)[0])),
    "Settlement.GetVisit": _unary(S, "GetVisit", lambda s, side: settlement_pb2.VisitRef(visit_id=s.visit(side)[0])),
    "Cards.IssueECard": _unary(C, "IssueECard", _issue_request),
    "Cards.GetECard": _unary(C, "GetECard", lambda s, side: cards_pb2.GetECardRequest(ecard_id=s.ecard(side)[1])),
    "Cards.ReportLost": _unary(C, "ReportLost", lambda s, side: cards_pb2.CardRef(ecard_id=s.ecard(side)[1])),
    "Cards.Reinstate": _unary(C, "Reinstate", _lost_card),
    "Cards.Cancel": _unary(C, "Cancel", lambda s, side: cards_pb2.CardRef(card_no=s.ecard(side)[0])),
    "Cards.SuspendBinding": _unary(C, "SuspendBinding", _binding),
    "Cards.ResumeBinding": _unary(C, "ResumeBinding", _suspended),
    "Cards.Unbind": _unary(C, "Unbind", _binding),
    "Cards.WatchEvents": _watch,
    "Cards.StartCounterBinding": _unary(C, "StartCounterBinding", lambda s, side: cards_pb2.StartCounterBindingRequest(
        merchant_id=s.side(side).merchant_id, terminal_id="till-1")),
    "Cards.GetCounterBinding": _unary(C, "GetCounterBinding", lambda s, side: cards_pb2.CounterBindingRef(
        binding_code=s.side(side).pos.start_counter_binding().binding_code)),
    "Cards.ListUsage": _unary(C, "ListUsage", lambda s, side: cards_pb2.ListUsageRequest(ecard_id=s.ecard(side)[1])),
    "Admin.UpsertIssuer": _unary(A, "UpsertIssuer", lambda s, side: admin_pb2.Issuer(
        issuer_id=s.side(side).issuer_id, display_name="renamed")),
    "Admin.RegisterIssuerKey": _unary(A, "RegisterIssuerKey", _key),
    "Admin.RevokeIssuerKey": _unary(A, "RevokeIssuerKey", _registered_key),
    "Admin.RotateIssuerKey": _unary(A, "RotateIssuerKey", lambda s, side: admin_pb2.RotateIssuerKeyRequest(
        issuer_id=s.side(side).issuer_id, retiring_kid=_registered_key(s, side).kid, new_key=_key(s, side),
        overlap_seconds=60)),
    "Admin.ListIssuerKeys": _unary(A, "ListIssuerKeys", lambda s, side: admin_pb2.ListIssuerKeysRequest(
        issuer_id=s.side(side).issuer_id)),
    "Admin.UpsertMerchant": _unary(A, "UpsertMerchant", lambda s, side: admin_pb2.Merchant(
        merchant_id=s.side(side).merchant_id, kind=t.MERCHANT_KIND_PHARMACY, region="330200", designated=True)),
    "Admin.EnrollCards": _enroll,
    "Admin.ImportCatalogue": _catalogue,
    "Admin.ImportBenefitPolicy": _unary(A, "ImportBenefitPolicy", lambda s, side: admin_pb2.BenefitPolicyFile(
        json=json.dumps({"name": "matrix", "benefits": [
            {"person_category": c, "merchant_kind": k, "deductible_fen": 0, "fund_ratio": "0.5" if k == "hospital"
             else "0", "yearly_cap_fen": 10**9} for c in ("employee", "retiree", "resident")
            for k in ("pharmacy", "hospital")]}))),
    "Admin.CreditAccount": _unary(A, "CreditAccount", lambda s, side: admin_pb2.CreditRequest(
        card_no=s.ecard(side)[0], amount_fen=100, idempotency_key=uuid.uuid4().hex)),
    "Admin.ReplaceCard": _unary(A, "ReplaceCard", _replacement),
    "Admin.ListAuditEvents": _unary(A, "ListAuditEvents", lambda s, side: admin_pb2.ListAuditEventsRequest(
        subject=s.ecard(side)[1], page_size=10)),
    "Admin.DisableIssuer": _unary(A, "DisableIssuer", _doomed_issuer),
    "Admin.DenyCertificate": _unary(A, "DenyCertificate", lambda s, side: admin_pb2.DenyCertificateRequest(
        fingerprint_sha256=uuid.uuid4().hex * 2, reason=f"matrix {side}")),
    "Admin.AllowCertificate": _unary(A, "AllowCertificate", _denied_fingerprint),
    "Admin.ListDeniedCertificates": _unary(A, "ListDeniedCertificates",
                                           lambda s, side: admin_pb2.ListDeniedCertificatesRequest()),
    "Admin.SettlementDayTotals": _unary(A, "SettlementDayTotals", lambda s, side: (
        admin_pb2.SettlementDayTotalsRequest(day="2026-12-03" if side == "own" else "2026-12-04"))),
    "Health.Check": _unary(health_pb2_grpc.HealthStub, "Check", lambda s, side: health_pb2.HealthCheckRequest(
        service="" if side == "own" else "ecard.v1.Verifier")),
    "Reflection.ServerReflectionInfo": _reflect,
}


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    authority = CertificateAuthority(tmp_path_factory.mktemp("pki"))
    tls = {
        "admin": authority.certificate("admin", "ecard://admin"),
        "channel-a": authority.certificate("channel-a", "ecard://channel/bank-a"),
        "channel-b": authority.certificate("channel-b", "ecard://channel/bank-b"),
        "merchant-a": authority.certificate("merchant-a", "ecard://merchant/ph-a"),
        "merchant-b": authority.certificate("merchant-b", "ecard://merchant/ph-b"),
        "none": authority.certificate("nobody", "https://example.invalid/not-ecard"),
    }
    tls["channel"], tls["merchant"] = tls["channel-a"], tls["merchant-a"]
    with EcardServer(extra_args=authority.server_args(), client_options=ClientOptions(tls=tls["admin"])) as server:
        yield Scene(server, tls)


def test_the_matrix_covers_every_rpc_of_every_service() -> None:
    services = [svc for mod in (admin_pb2, cards_pb2, settlement_pb2, verifier_pb2)
                for svc in mod.DESCRIPTOR.services_by_name.values()]
    served = {f"{svc.name}.{m.name}" for svc in services for m in svc.methods}
    assert served <= set(MATRIX), f"RPCs missing from the role matrix: {sorted(served - set(MATRIX))}"
    assert set(MATRIX) == set(CALLS) and all(len(row) == 2 * len(PRINCIPALS) for row in MATRIX.values())


@pytest.mark.parametrize(("rpc", "principal", "side", "expected"), CELLS,
                         ids=[f"{rpc}-{who}-{side}" for rpc, who, side, _ in CELLS])
def test_cell(scene: Scene, rpc: str, principal: str, side: str, expected: tuple[str, str]) -> None:
    try:
        CALLS[rpc](scene, side, scene.channels[principal])
        got = OK
    except grpc.RpcError as exc:
        error = from_grpc_error(exc)
        got = (exc.code().name, error.reason or "")
    assert got == expected


def test_a_channel_key_never_mints_for_another_channel(scene: Scene) -> None:
    """Channel A's private key with channel B's name (and B's kid, or A's own): never accepted."""
    a, b = scene.side("own"), scene.side("other")
    ecard_id = scene.ecard("other")[1]
    forged = [
        TokenSigner(a.key, issuer_id=b.issuer_id, kid=b.signer.kid).mint(ecard_id),
        TokenSigner(a.key, issuer_id=b.issuer_id, kid=a.signer.kid).mint(ecard_id),
    ]
    reasons = [a.pos.verify(token, purpose=t.PURPOSE_IDENTITY).reason for token in forged]
    assert reasons == [t.REASON_BAD_SIGNATURE, t.REASON_UNKNOWN_KEY]
    # and a card bound only to B, in a token A signs under its own name: the channel is not bound
    own_name = a.signer.mint(ecard_id)
    assert a.pos.verify(own_name, purpose=t.PURPOSE_IDENTITY).reason == t.REASON_CHANNEL_NOT_BOUND
