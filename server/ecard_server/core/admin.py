"""Operator actions: issuers and their keys, merchants, card enrollment, account credits."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from ecard.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from ecard.keys import KeyFormatError, key_material, kid_for, load_public_key_pem, weak_public_key
from ecard.v1 import types_pb2 as t
from ecard_server.config import MERCHANT_KINDS, Settings
from ecard_server.core import audit, events
from ecard_server.core.identity import IdentityHasher, mask_name
from ecard_server.core.ports import AdminStore, ChangeBus, Ledger
from ecard_server.core.principals import ADMIN, CHANNEL, Principal
from ecard_server.core.records import (
    AuditQuery,
    Card,
    CatalogueItem,
    DeniedCertificate,
    EnrollRow,
    Issuer,
    IssuerKey,
    Merchant,
    StoredAuditEvent,
)
from ecard_server.core.rules import catalogue as catalogue_rules
from ecard_server.core.rules import validation
from ecard_server.core.rules.benefits import CATEGORIES, parse_policy, policy_body

DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE = 100, 1000
ENROLL_CHUNK = 10_000  # rows per transaction: one fsync per chunk, and a chunk's rows in memory
_ALGORITHMS = (t.KEY_ALGORITHM_ED25519, t.KEY_ALGORITHM_ECDSA_P256)
_KINDS = tuple(MERCHANT_KINDS.values())
OPERATOR = Principal(ADMIN, "")


@dataclass(frozen=True)
class EnrollInput:
    card_no: str
    holder_name: str
    id_number: str
    region: str
    personal_account_balance_fen: int
    person_category: str = ""  # employee (""), retiree or resident


@dataclass
class EnrollResult:
    enrolled: int = 0
    updated: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


class AdminService:
    def __init__(
        self,
        store: AdminStore,
        ledger: Ledger,
        bus: ChangeBus,
        hasher: IdentityHasher,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._bus = bus
        self._hasher = hasher
        self._settings = settings
        self._clock = clock

    def upsert_issuer(self, issuer_id: str, display_name: str) -> Issuer:
        issuer = Issuer(validation.identifier(issuer_id, "issuer_id"), validation.text(display_name, "display_name",
                                                                                        required=False, max_len=128))
        self._store.upsert_issuer(issuer, int(self._clock()))
        self._bus.publish(events.ISSUER, issuer.issuer_id)
        return issuer

    def register_key(
        self, issuer_id: str, kid: str, algorithm: int, public_key_pem: str, not_before: int | None,
        not_after: int | None,
    ) -> IssuerKey:
        return self.register(IssuerKey(issuer_id, kid, algorithm, public_key_pem, not_before, not_after, False))

    def _checked_key(self, key: IssuerKey) -> IssuerKey:
        validation.identifier(key.issuer_id, "issuer_id")
        validation.enum(key.algorithm, "algorithm", _ALGORITHMS)
        try:
            public_key = load_public_key_pem(key.public_key_pem, key.algorithm)
        except KeyFormatError as exc:
            raise InvalidArgument(f"public_key_pem: {exc}", "BAD_PUBLIC_KEY") from None
        if weakness := weak_public_key(public_key):
            raise InvalidArgument(f"public_key_pem: {weakness}", "WEAK_PUBLIC_KEY")
        kid = validation.identifier(key.kid, "kid") if key.kid else kid_for(public_key)
        if key.not_before is not None and key.not_after is not None and key.not_after <= key.not_before:
            raise InvalidArgument("not_after must be later than not_before", "INVALID_KEY_WINDOW")
        issuer = self._store.get_issuer(key.issuer_id)
        if issuer is None:
            raise FailedPrecondition(f"issuer {key.issuer_id} is not registered", "UNKNOWN_ISSUER")
        if issuer.disabled_at is not None:
            raise FailedPrecondition(f"issuer {key.issuer_id} is disabled", "ISSUER_DISABLED")
        self._material_unused(key.issuer_id, kid, key_material(public_key))
        return replace(key, kid=kid, public_key_pem=key.public_key_pem.strip() + "\n")

    def _material_unused(self, issuer_id: str, kid: str, material: bytes) -> None:
        """The same key material is refused under any other kid or issuer: revoked (it stays revoked,
        whatever it is now called) or live (revoking one kid must end the key)."""
        for known in self._store.list_keys():
            if (known.issuer_id, known.kid) == (issuer_id, kid):
                continue
            try:
                same = key_material(load_public_key_pem(known.public_key_pem)) == material
            except KeyFormatError:
                continue
            if same and (known.revoked or self._store_issuer_disabled(known.issuer_id)):
                raise FailedPrecondition(f"this key was revoked (as {known.issuer_id}/{known.kid}): make a new one",
                                         "KEY_REVOKED")
            if same:
                raise AlreadyExists(f"this key is registered already as {known.issuer_id}/{known.kid}",
                                    "KEY_IN_USE")

    def _store_issuer_disabled(self, issuer_id: str) -> bool:
        issuer = self._store.get_issuer(issuer_id)
        return issuer is not None and issuer.disabled_at is not None

    def _room_for(self, key: IssuerKey, now: int) -> None:
        """A new kid needs room under max_keys_per_issuer (a window update of a known kid does not)."""
        keys = self._store.list_keys(key.issuer_id)
        live = [k for k in keys if not k.revoked and (k.not_after is None or k.not_after >= now)]
        if len(live) >= self._settings.max_keys_per_issuer and all(k.kid != key.kid for k in keys):
            raise ResourceExhausted(
                f"issuer {key.issuer_id} holds {len(live)} live keys, the most allowed: revoke one first",
                "TOO_MANY_KEYS",
            )

    def register(self, key: IssuerKey, *, actor: str = "admin") -> IssuerKey:
        """Adds a key (kid from the key when empty), or updates the window of the same key."""
        stored = self._add_key(self._checked_key(key), int(self._clock()), actor)
        self._bus.publish(events.KEY, stored.issuer_id)
        return stored

    def _add_key(self, checked: IssuerKey, now: int, actor: str) -> IssuerKey:
        self._room_for(checked, now)
        registered = audit.key_changed(now, "KEY_REGISTERED", actor, checked.issuer_id, checked.kid)
        return self._store.register_key(checked, now, registered)

    def rotate_key(
        self, new: IssuerKey, retiring_kid: str, overlap_s: int, *, actor: str = "admin"
    ) -> tuple[IssuerKey, IssuerKey]:
        """Registers `new`, then ends the retiring key's window `overlap_s` from now (0: the longest token
        lifetime plus clock skew, so every token minted before still verifies), unless it ends sooner."""
        if overlap_s < 0:
            raise InvalidArgument("overlap_seconds must not be negative", "INVALID_OVERLAP")
        checked = self._checked_key(new)
        retiring = self._store.get_key(checked.issuer_id, retiring_kid) if retiring_kid else None
        if retiring is None:
            raise NotFound(f"no key {retiring_kid} for issuer {checked.issuer_id}", "UNKNOWN_KEY")
        if retiring.kid == checked.kid or retiring.public_key_pem.strip() == checked.public_key_pem.strip():
            raise InvalidArgument("the new key is the retiring key", "SAME_KEY")
        now = int(self._clock())
        end = now + (overlap_s or self._settings.max_token_lifetime_s + self._settings.clock_skew_s)
        if retiring.not_after is not None:
            end = min(end, retiring.not_after)
        stored = self._add_key(checked, now, actor)
        retired = self._store.register_key(
            replace(retiring, not_after=end), now,
            audit.key_changed(now, "KEY_RETIRING", actor, retiring.issuer_id, retiring.kid, f"not_after={end}"),
        )
        self._bus.publish(events.KEY, stored.issuer_id)
        return stored, retired

    def revoke_key(self, issuer_id: str, kid: str, *, actor: str = "admin") -> IssuerKey:
        now = int(self._clock())
        key = self._store.revoke_key(issuer_id, kid, audit.key_changed(now, "KEY_REVOKED", actor, issuer_id, kid))
        if key is None:
            raise NotFound(f"no key {kid} for issuer {issuer_id}", "UNKNOWN_KEY")
        self._bus.publish(events.KEY, issuer_id)  # every replica's key cache reloads
        return key

    def disable_issuer(self, issuer_id: str, *, actor: str = "admin") -> Issuer:
        """Shuts a channel off: every key revoked at once, its principal refused, no new key; on every
        replica within the change notice's delay. Repeating it changes nothing."""
        validation.identifier(issuer_id, "issuer_id")
        now = int(self._clock())
        issuer = self._store.disable_issuer(issuer_id, now, lambda keys: audit.issuer_disabled(now, actor, issuer_id,
                                                                                                keys))
        if issuer is None:
            raise NotFound(f"no issuer {issuer_id}", "UNKNOWN_ISSUER")
        self._bus.publish(events.ISSUER, issuer_id)  # key caches reload: keys revoked, the channel refused
        return issuer

    def deny_certificate(self, fingerprint: str, reason: str, *, actor: str = "admin") -> DeniedCertificate:
        """Puts a client certificate on the deny list (every replica within the notice's delay)."""
        fingerprint = validation.fingerprint(fingerprint)
        reason = validation.text(reason, "reason", required=False, max_len=200)
        now = int(self._clock())
        denied = self._store.deny_certificate(
            DeniedCertificate(fingerprint, reason, actor, now),
            audit.certificate_listed(now, "CERTIFICATE_DENIED", actor, fingerprint, reason),
        )
        self._bus.publish(events.CERTIFICATE, fingerprint)
        return denied

    def allow_certificate(self, fingerprint: str, *, actor: str = "admin") -> DeniedCertificate:
        fingerprint = validation.fingerprint(fingerprint)
        now = int(self._clock())
        allowed = self._store.allow_certificate(
            fingerprint, audit.certificate_listed(now, "CERTIFICATE_ALLOWED", actor, fingerprint)
        )
        if allowed is None:
            raise NotFound("this certificate is not on the deny list", "CERTIFICATE_NOT_DENIED")
        self._bus.publish(events.CERTIFICATE, fingerprint)
        return allowed

    def denied_certificates(self) -> list[DeniedCertificate]:
        return self._store.list_denied_certificates()

    def audit_events(
        self, query: AuditQuery, page_token: str, caller: Principal = OPERATOR
    ) -> tuple[list[StoredAuditEvent], str]:
        """A page of the audit trail and the token of the next one ("" on the last page). A channel reads
        only the events of an e-card bound to it (`subject`): who else bound it, who tried, its changes."""
        if caller.kind == CHANNEL:
            card = self._store.get_card(ecard_id=query.subject) if query.subject else None
            if card is None or caller.id not in card.channels:
                raise PermissionDenied("a channel reads the events of an e-card bound to it (subject)",
                                       "CHANNEL_NOT_BOUND")
        if not 0 <= query.limit <= MAX_AUDIT_PAGE:
            raise InvalidArgument(f"page_size must be between 0 and {MAX_AUDIT_PAGE}", "INVALID_PAGE_SIZE")
        if page_token and not (page_token.isdigit() and len(page_token) <= 18):
            raise InvalidArgument("page_token is not one this server gave", "INVALID_PAGE_TOKEN")
        for value, name in ((query.kind, "kind"), (query.actor, "actor"), (query.subject, "subject")):
            validation.text(value, name, required=False, max_len=200)
        query = query._replace(limit=query.limit or DEFAULT_AUDIT_PAGE, after_id=int(page_token or 0))
        events = self._store.audit_page(query._replace(limit=query.limit + 1))
        more = len(events) > query.limit
        events = events[: query.limit]
        return events, str(events[-1].event_id) if more else ""

    def list_keys(self, issuer_id: str) -> list[IssuerKey]:
        return self._store.list_keys(issuer_id or None)

    def upsert_merchant(
        self, merchant_id: str, display_name: str, kind: int, region: str, designated: bool
    ) -> Merchant:
        merchant = Merchant(
            validation.identifier(merchant_id, "merchant_id"),
            validation.text(display_name, "display_name", required=False, max_len=128),
            validation.enum(kind, "kind", _KINDS),
            validation.text(region, "region", required=False),
            designated,
        )
        self._store.upsert_merchant(merchant, int(self._clock()))
        self._bus.publish(events.MERCHANT, merchant.merchant_id)
        return merchant

    def import_catalogue(self, items: Iterable[CatalogueItem]) -> tuple[str, int]:
        """A whole new catalogue version from `items`, every one checked before anything is written
        (the first bad one refuses the import: rules.catalogue); every replica prices with it at once.
        Returns (version, items)."""
        checked = list(catalogue_rules.checked_import(items))
        now = int(self._clock())
        version = self._store.import_catalogue(checked, now)
        self._bus.publish(events.CATALOGUE, version)
        return version, len(checked)

    def import_policy(self, text: str) -> tuple[str, str]:
        """A new benefit policy version from its file (JSON: rules.benefits.parse_policy), refused whole
        on a fault naming the entry; every replica prices with it at once. Returns (version, name)."""
        if len(text) > 1_000_000:
            raise InvalidArgument("a policy file is at most 1 MB", "INVALID_POLICY")
        name, benefits = parse_policy(text)
        version = self._store.import_policy(name, policy_body(name, benefits), int(self._clock()))
        self._bus.publish(events.POLICY, version)
        return version, name

    def _enroll_row(self, row: EnrollInput) -> EnrollRow:
        validation.card_no(row.card_no)
        validation.id_number(row.id_number)
        validation.amount(row.personal_account_balance_fen, "personal_account_balance_fen", positive=False)
        category = row.person_category
        if category and category not in CATEGORIES:
            raise InvalidArgument(f"person_category must be one of {', '.join(CATEGORIES)}", "INVALID_PERSON_CATEGORY")
        name = validation.text(row.holder_name, "holder_name")
        return EnrollRow(  # the masked name and a hash binding it to the identity number, never either in clear
            row.card_no,
            mask_name(name),
            self._hasher.holder_hash(row.id_number, name),
            validation.text(row.region, "region", required=False),
            row.personal_account_balance_fen,
            category,
        )

    def enroll_cards(self, rows: Iterable[EnrollInput]) -> EnrollResult:
        """Enrolls in chunks; a malformed row is counted and reported, the others still enroll."""
        result = EnrollResult()
        chunk: list[EnrollRow] = []
        now = int(self._clock())

        def flush() -> None:
            enrolled, updated = self._store.enroll(chunk, now)
            result.enrolled += enrolled
            result.updated += updated
            if updated:  # names and regions are in the card caches
                self._bus.publish(events.CARD, events.ALL)
            chunk.clear()

        for number, row in enumerate(rows, start=1):
            try:
                chunk.append(self._enroll_row(row))
            except InvalidArgument as exc:
                result.rejected += 1
                if len(result.errors) < self._settings.max_enroll_errors:
                    result.errors.append(f"row {number}: {exc.message}")
                continue
            if len(chunk) >= ENROLL_CHUNK:
                flush()
        if chunk:
            flush()
        return result

    def credit_account(self, card_no: str, amount_fen: int, idempotency_key: str) -> Card:
        validation.card_no(card_no)
        validation.text(idempotency_key, "idempotency_key", max_len=128)
        validation.amount(amount_fen, "amount_fen")
        request_hash = hashlib.sha256(f"{card_no}\x00{amount_fen}".encode()).digest()
        try:
            return self._ledger.credit(card_no, amount_fen, idempotency_key, request_hash, int(self._clock()))
        except LookupError:
            raise NotFound("no enrolled card with this number", "CARD_UNKNOWN") from None
