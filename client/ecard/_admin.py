"""Clients for the operator (AdminClient) and for issuing channels (ChannelClient).

A channel manages its own issuer keys (never another channel's); the operator any issuer's:

    with ChannelClient(target, issuer_id="icbc-nb") as channel:
        channel.register_key(public_key_pem(new_key))          # kid from the key
        channel.rotate_key(public_key_pem(newer_key), retiring_kid=old_kid, overlap_s=3600)
        channel.revoke_key(old_kid)                            # its tokens are REASON_KEY_REVOKED at once
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Self

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ecard._keys import algorithm_of, kid_for, load_public_key_pem
from ecard._options import ClientOptions
from ecard._rpc_errors import from_grpc_error
from ecard._token import COUNTER_QR_PREFIX, TokenSigner
from ecard._transport import Req, Resp, Targets, call, principal_metadata, sync_channel
from ecard.v1 import admin_pb2, admin_pb2_grpc, cards_pb2, cards_pb2_grpc, wire


def card_ref(*, card_no: str = "", ecard_id: str = "") -> cards_pb2.CardRef:
    if bool(card_no) == bool(ecard_id):
        raise ValueError("name the card by exactly one of card_no or ecard_id")
    return cards_pb2.CardRef(card_no=card_no) if card_no else cards_pb2.CardRef(ecard_id=ecard_id)


def issuer_key(
    issuer_id: str,
    public_key_pem: str | bytes,
    *,
    kid: str | None = None,
    not_before: int | None = None,
    not_after: int | None = None,
) -> admin_pb2.IssuerKey:
    """An IssuerKey message for a public key (PEM); kid defaults to the SDK's kid_for(key)."""
    pem = public_key_pem.decode() if isinstance(public_key_pem, bytes) else public_key_pem
    public = load_public_key_pem(pem)
    key = admin_pb2.IssuerKey(
        issuer_id=issuer_id, kid=kid or kid_for(public), algorithm=wire(algorithm_of(public)), public_key_pem=pem
    )
    if not_before is not None:
        key.not_before.CopyFrom(Timestamp(seconds=not_before))
    if not_after is not None:
        key.not_after.CopyFrom(Timestamp(seconds=not_after))
    return key


class _Client:
    def __init__(self, target: Targets, principal: str, options: ClientOptions | None) -> None:
        self.options = options or ClientOptions()
        self.channel = sync_channel(target, self.options)
        self._metadata = principal_metadata(principal, self.options)
        self._cards = cards_pb2_grpc.CardsStub(self.channel)
        self._admin = admin_pb2_grpc.AdminStub(self.channel)

    def _call(self, method: grpc.UnaryUnaryMultiCallable[Req, Resp], request: Req, *, retry: bool = True) -> Resp:
        # Every call here is safe to repeat: upserts, idempotent lifecycle changes, keyed credits.
        return call(
            method, request, metadata=self._metadata, timeout=self.options.timeout,
            retry=self.options.retry if retry else None,
        )

    # Issuer keys: the operator names any issuer, a channel only its own (the server holds it to that).
    def _register_key(self, key: admin_pb2.IssuerKey) -> admin_pb2.IssuerKey:
        return self._call(self._admin.RegisterIssuerKey, key)

    def _rotate_key(
        self, issuer_id: str, retiring_kid: str, overlap_s: int, new_key: admin_pb2.IssuerKey
    ) -> admin_pb2.RotateIssuerKeyResponse:
        request = admin_pb2.RotateIssuerKeyRequest(
            issuer_id=issuer_id, retiring_kid=retiring_kid, overlap_seconds=overlap_s,
            new_key=new_key,
        )
        return self._call(self._admin.RotateIssuerKey, request)

    def _revoke_key(self, issuer_id: str, kid: str) -> admin_pb2.IssuerKey:
        return self._call(self._admin.RevokeIssuerKey, admin_pb2.KeyRef(issuer_id=issuer_id, kid=kid))

    def _list_keys(self, issuer_id: str) -> list[admin_pb2.IssuerKey]:
        return list(self._call(self._admin.ListIssuerKeys, admin_pb2.ListIssuerKeysRequest(issuer_id=issuer_id)).keys)

    def settlement_day_totals(self, day: str) -> admin_pb2.SettlementDayTotalsResponse:
        """A day's settlements (YYYY-MM-DD, Asia/Shanghai) across merchants: per merchant, per fund (the
        pooling region) and in all."""
        return self._call(self._admin.SettlementDayTotals, admin_pb2.SettlementDayTotalsRequest(day=day))

    def audit_events(self, *, kind: str = "", actor: str = "", subject: str = "", since: int | None = None,
                     until: int | None = None, page_size: int = 1000) -> Iterator[admin_pb2.AuditEvent]:
        """The audit trail, oldest first, filtered (times in unix seconds), read page by page. A channel
        reads only an e-card bound to it: `subject` its ecard_id (who else bound it, who tried, changes)."""
        request = admin_pb2.ListAuditEventsRequest(kind=kind, actor=actor, subject=subject, page_size=page_size)
        if since is not None:
            request.since.CopyFrom(Timestamp(seconds=since))
        if until is not None:
            request.until.CopyFrom(Timestamp(seconds=until))
        while True:
            page = self._call(self._admin.ListAuditEvents, request)
            yield from page.events
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    def get_ecard(self, ecard_id: str) -> cards_pb2.ECard:
        return self._call(self._cards.GetECard, cards_pb2.GetECardRequest(ecard_id=ecard_id))

    def report_lost(self, *, card_no: str = "", ecard_id: str = "") -> cards_pb2.ECard:
        return self._call(self._cards.ReportLost, card_ref(card_no=card_no, ecard_id=ecard_id))

    def list_usage(self, ecard_id: str, *, page_size: int = 0) -> Iterator[cards_pb2.UsageRecord]:
        """用卡记录: the e-card's verifications, settlements and refunds, newest first, read page by page."""
        request = cards_pb2.ListUsageRequest(ecard_id=ecard_id, page_size=page_size)
        while True:
            page = self._call(self._cards.ListUsage, request)
            yield from page.records
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    # One channel's binding: a channel names its own (issuer_id empty), the operator any channel's.
    def _binding(
        self, method: grpc.UnaryUnaryMultiCallable[cards_pb2.BindingRef, cards_pb2.ECard], ecard_id: str,
        issuer_id: str,
    ) -> cards_pb2.ECard:
        return self._call(method, cards_pb2.BindingRef(ecard_id=ecard_id, issuer_id=issuer_id))

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ChannelClient(_Client):
    """A bank or payment app: issues e-cards to its users and reports them lost.

    `signer`: a TokenSigner of one of this channel's registered keys; issue_ecard signs its statement
    of the holder check with it (docs/channel.md, issuing an e-card)."""

    def __init__(
        self, target: Targets, *, issuer_id: str, signer: TokenSigner | None = None,
        options: ClientOptions | None = None,
    ) -> None:
        super().__init__(target, f"channel:{issuer_id}", options)
        if signer is not None and signer.issuer_id != issuer_id:
            raise ValueError(f"the signer is issuer {signer.issuer_id}'s, not {issuer_id}'s")
        self.issuer_id = issuer_id
        self.signer = signer

    def issue_ecard(
        self, card_no: str, holder_name: str, id_number: str, *, assurance: int,
        checked_at: int | None = None, binding_code: str = "",
    ) -> cards_pb2.ECard:
        """Issues (or binds this channel to) the e-card of `card_no`, with a statement signed by this
        channel's signer that it checked the holder: `assurance` (required, no default: the check this
        channel made, e.g. Assurance.FACE) at `checked_at` (default now). With `binding_code` (what the
        holder scanned at a counter, "ECB1:" prefix or not), it completes that counter binding, and the
        signed statement names the code."""
        if self.signer is None:
            raise ValueError("issuing needs the channel's signer: ChannelClient(..., signer=TokenSigner(...))")
        code = binding_code.strip().removeprefix(COUNTER_QR_PREFIX)
        statement = self.signer.attest(card_no, assurance=assurance, checked_at=checked_at, binding_code=code)
        request = cards_pb2.IssueECardRequest(
            card_no=card_no, holder_name=holder_name, id_number=id_number, assurance=wire(assurance),
            assurance_statement=statement, binding_code=code,
        )
        return self._call(self._cards.IssueECard, request)

    def register_key(
        self, public_key_pem: str | bytes, *, kid: str | None = None, not_before: int | None = None,
        not_after: int | None = None,
    ) -> admin_pb2.IssuerKey:
        """Registers one of this channel's public keys. Options: kid, not_before, not_after (unix s)."""
        return self._register_key(issuer_key(
            self.issuer_id, public_key_pem, kid=kid, not_before=not_before, not_after=not_after
        ))

    def rotate_key(
        self, public_key_pem: str | bytes, *, retiring_kid: str, overlap_s: int = 0,
        kid: str | None = None, not_before: int | None = None, not_after: int | None = None,
    ) -> admin_pb2.RotateIssuerKeyResponse:
        """Registers a new key and ends the retiring key's validity `overlap_s` seconds from now (0: the
        server's maximum token lifetime plus clock skew). Options of the new key: kid, not_before, not_after."""
        return self._rotate_key(
            self.issuer_id, retiring_kid, overlap_s,
            issuer_key(self.issuer_id, public_key_pem, kid=kid, not_before=not_before, not_after=not_after),
        )

    def revoke_key(self, kid: str) -> admin_pb2.IssuerKey:
        return self._revoke_key(self.issuer_id, kid)

    def list_keys(self) -> list[admin_pb2.IssuerKey]:
        return self._list_keys(self.issuer_id)

    def suspend_binding(self, ecard_id: str) -> cards_pb2.ECard:
        """Suspends this channel's binding (the holder lost the phone): its tokens are refused
        REASON_CHANNEL_SUSPENDED at once; the card and other channels' bindings are untouched."""
        return self._binding(self._cards.SuspendBinding, ecard_id, "")

    def resume_binding(self, ecard_id: str) -> cards_pb2.ECard:
        return self._binding(self._cards.ResumeBinding, ecard_id, "")

    def unbind(self, ecard_id: str) -> cards_pb2.ECard:
        """Ends this channel's binding: its tokens are REASON_CHANNEL_NOT_BOUND; issuing again binds anew.
        Not retried: once unbound, the card is no longer this channel's to see."""
        return self._call(self._cards.Unbind, cards_pb2.BindingRef(ecard_id=ecard_id), retry=False)


class AdminClient(_Client):
    """The platform operator: issuers, keys, merchants, card enrollment, credits and card lifecycle."""

    def __init__(self, target: Targets, *, options: ClientOptions | None = None) -> None:
        super().__init__(target, "admin", options)

    def upsert_issuer(self, issuer_id: str, display_name: str = "") -> admin_pb2.Issuer:
        return self._call(self._admin.UpsertIssuer, admin_pb2.Issuer(issuer_id=issuer_id, display_name=display_name))

    def register_key(
        self, issuer_id: str, public_key_pem: str | bytes, *,
        kid: str | None = None, not_before: int | None = None, not_after: int | None = None,
    ) -> admin_pb2.IssuerKey:
        """Registers a public key (PEM). Options as for `issuer_key`: kid (default kid_for(key)), not_before,
        not_after."""
        return self._register_key(
            issuer_key(issuer_id, public_key_pem, kid=kid, not_before=not_before, not_after=not_after)
        )

    def rotate_key(
        self, issuer_id: str, public_key_pem: str | bytes, *, retiring_kid: str, overlap_s: int = 0,
        kid: str | None = None, not_before: int | None = None, not_after: int | None = None,
    ) -> admin_pb2.RotateIssuerKeyResponse:
        """ChannelClient.rotate_key, for any issuer."""
        return self._rotate_key(
            issuer_id, retiring_kid, overlap_s,
            issuer_key(issuer_id, public_key_pem, kid=kid, not_before=not_before, not_after=not_after),
        )

    def revoke_key(self, issuer_id: str, kid: str) -> admin_pb2.IssuerKey:
        return self._revoke_key(issuer_id, kid)

    def list_keys(self, issuer_id: str = "") -> list[admin_pb2.IssuerKey]:
        """One issuer's keys; every issuer's with no issuer_id."""
        return self._list_keys(issuer_id)

    def disable_issuer(self, issuer_id: str) -> admin_pb2.Issuer:
        """Shuts a (compromised) channel off: every key revoked, its calls refused, on every replica."""
        return self._call(self._admin.DisableIssuer, admin_pb2.IssuerRef(issuer_id=issuer_id))

    def deny_certificate(self, fingerprint_sha256: str, reason: str = "") -> admin_pb2.DeniedCertificate:
        """Puts a client certificate (SHA-256 of its DER: `certificate_fingerprint`) on the deny list."""
        request = admin_pb2.DenyCertificateRequest(fingerprint_sha256=fingerprint_sha256, reason=reason)
        return self._call(self._admin.DenyCertificate, request)

    def allow_certificate(self, fingerprint_sha256: str) -> admin_pb2.DeniedCertificate:
        """Takes a certificate off the deny list."""
        return self._call(self._admin.AllowCertificate, admin_pb2.CertificateRef(fingerprint_sha256=fingerprint_sha256))

    def denied_certificates(self) -> list[admin_pb2.DeniedCertificate]:
        answer = self._call(self._admin.ListDeniedCertificates, admin_pb2.ListDeniedCertificatesRequest())
        return list(answer.certificates)

    def upsert_merchant(
        self, merchant_id: str, *, kind: int, display_name: str = "", region: str = "", designated: bool = True
    ) -> admin_pb2.Merchant:
        merchant = admin_pb2.Merchant(
            merchant_id=merchant_id, display_name=display_name, kind=wire(kind), region=region, designated=designated
        )
        return self._call(self._admin.UpsertMerchant, merchant)

    def enroll_cards(
        self, cards: Iterable[admin_pb2.PhysicalCard], *, timeout: float | None = None, per_message: int = 1000
    ) -> admin_pb2.EnrollSummary:
        """Streams physical cards to the server; not retried (a retry would resend the whole stream).

        Cards travel `per_message` to a stream message (as `more_cards` of a carrier message): a gRPC
        message costs far more than a row, so 2.5 million cards take about a minute, not ten.
        `per_message=1` sends one card per message, as a client of an older server must."""
        if per_message < 1:
            raise ValueError("per_message must be at least 1")
        messages = iter(cards) if per_message == 1 else _carriers(cards, per_message)
        try:
            return self._admin.EnrollCards(messages, metadata=self._metadata, timeout=timeout)
        except grpc.RpcError as exc:
            raise from_grpc_error(exc) from exc

    def import_catalogue(
        self, items: Iterable[admin_pb2.CatalogueItem], *, timeout: float | None = None, per_message: int = 1000
    ) -> admin_pb2.CatalogueImportSummary:
        """Streams a whole new catalogue version (the first bad item refuses all of it: InvalidArgument
        naming its number); every replica prices with it at once. Not retried (a retry would import a
        second version of the same items, harmless but noisy: call again if it failed)."""
        if per_message < 1:
            raise ValueError("per_message must be at least 1")
        messages = iter(items) if per_message == 1 else _item_carriers(items, per_message)
        try:
            return self._admin.ImportCatalogue(messages, metadata=self._metadata, timeout=timeout)
        except grpc.RpcError as exc:
            raise from_grpc_error(exc) from exc

    def import_benefit_policy(self, policy_json: str) -> admin_pb2.BenefitPolicySummary:
        """A new benefit policy version from its JSON file (docs/pharmacy.md, "Yearly benefits"),
        taking effect at once on every replica; a fault refuses it whole (InvalidArgument INVALID_POLICY)."""
        return self._call(self._admin.ImportBenefitPolicy, admin_pb2.BenefitPolicyFile(json=policy_json), retry=False)

    def credit_account(self, card_no: str, amount_fen: int, idempotency_key: str) -> cards_pb2.ECard:
        request = admin_pb2.CreditRequest(card_no=card_no, amount_fen=amount_fen, idempotency_key=idempotency_key)
        return self._call(self._admin.CreditAccount, request)

    def reinstate(self, *, card_no: str = "", ecard_id: str = "") -> cards_pb2.ECard:
        return self._call(self._cards.Reinstate, card_ref(card_no=card_no, ecard_id=ecard_id))

    def suspend_binding(self, ecard_id: str, issuer_id: str) -> cards_pb2.ECard:
        return self._binding(self._cards.SuspendBinding, ecard_id, issuer_id)

    def resume_binding(self, ecard_id: str, issuer_id: str) -> cards_pb2.ECard:
        return self._binding(self._cards.ResumeBinding, ecard_id, issuer_id)

    def unbind(self, ecard_id: str, issuer_id: str) -> cards_pb2.ECard:
        return self._binding(self._cards.Unbind, ecard_id, issuer_id)

    def replace_card(self, old_card_no: str, new_card_no: str, idempotency_key: str) -> cards_pb2.ECard:
        """补换卡: the e-card, its bindings and the balance move to the new card (enrolled for the same
        holder); the old card is cancelled. Safe to retry with the same idempotency key."""
        request = admin_pb2.ReplaceCardRequest(old_card_no=old_card_no, new_card_no=new_card_no,
                                               idempotency_key=idempotency_key)
        return self._call(self._admin.ReplaceCard, request)

    def cancel(self, *, card_no: str = "", ecard_id: str = "") -> cards_pb2.ECard:
        return self._call(self._cards.Cancel, card_ref(card_no=card_no, ecard_id=ecard_id))


def catalogue_item(
    code: str, name: str, drug_class: int, price_limit_fen: int, *, valid_from: str = "", valid_to: str = ""
) -> admin_pb2.CatalogueItem:
    """One catalogue item for `AdminClient.import_catalogue` (days as YYYY-MM-DD, Asia/Shanghai)."""
    return admin_pb2.CatalogueItem(code=code, name=name, drug_class=wire(drug_class), price_limit_fen=price_limit_fen,
                                   valid_from=valid_from, valid_to=valid_to)


def _item_carriers(items: Iterable[admin_pb2.CatalogueItem], size: int) -> Iterator[admin_pb2.CatalogueItem]:
    batch: list[admin_pb2.CatalogueItem] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield admin_pb2.CatalogueItem(more_items=batch)
            batch = []
    if batch:
        yield admin_pb2.CatalogueItem(more_items=batch)


def _carriers(cards: Iterable[admin_pb2.PhysicalCard], size: int) -> Iterator[admin_pb2.PhysicalCard]:
    """Stream messages that each carry up to `size` cards (and have no card of their own)."""
    batch: list[admin_pb2.PhysicalCard] = []
    for card in cards:
        batch.append(card)
        if len(batch) == size:
            yield admin_pb2.PhysicalCard(more_cards=batch)
            batch = []
    if batch:
        yield admin_pb2.PhysicalCard(more_cards=batch)


def physical_cards(
    rows: Iterable[tuple[str, str, str, str, int] | tuple[str, str, str, str, int, str]],
) -> Iterator[admin_pb2.PhysicalCard]:
    """(card_no, holder_name, id_number, region, balance_fen[, person_category]) tuples as PhysicalCard
    messages (person_category: employee, the default, retiree or resident)."""
    for row in rows:
        card_no, name, id_number, region, balance = row[:5]
        yield admin_pb2.PhysicalCard(
            card_no=card_no, holder_name=name, id_number=id_number, region=region,
            personal_account_balance_fen=balance, person_category=row[5] if len(row) > 5 else "",
        )
