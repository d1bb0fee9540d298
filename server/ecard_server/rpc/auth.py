"""Who is calling, and may they: the principal of each call and the role table of the contract.

Production: mTLS, the principal is the client certificate's URI SAN (ecard://merchant/<id>, ...).
Development (plaintext on loopback only, `ecard serve --dev-principals`): the `x-ecard-principal`
metadata value. Plaintext without that flag accepts no principal (`no_principal`): only the public
methods (health, reflection) answer.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

import grpc.aio
from cryptography import x509

from ecard.errors import EcardError, PermissionDenied, Unauthenticated, Unavailable
from ecard.keys import certificate_fingerprint as fingerprint_of
from ecard_server import handshakes
from ecard_server.core.caches import CacheMiss, CertificateDenyList, KeyRegistry, MerchantDirectory
from ecard_server.core.principals import ADMIN, CHANNEL, MERCHANT, Principal

PRINCIPAL_METADATA = "x-ecard-principal"

_ALL = frozenset({ADMIN, CHANNEL, MERCHANT})
ROLE_TABLE: dict[str, frozenset[str]] = {
    "/ecard.v1.Verifier/Verify": frozenset({MERCHANT}),
    "/ecard.v1.Verifier/VerifyStream": frozenset({MERCHANT}),
    "/ecard.v1.Verifier/VerifyBatch": frozenset({MERCHANT}),
    "/ecard.v1.Verifier/GetVerification": frozenset({MERCHANT}),
    "/ecard.v1.Settlement/Settle": frozenset({MERCHANT}),
    "/ecard.v1.Settlement/Refund": frozenset({MERCHANT}),
    "/ecard.v1.Settlement/GetSettlement": frozenset({MERCHANT}),
    "/ecard.v1.Settlement/Quote": frozenset({MERCHANT}),
    "/ecard.v1.Settlement/ReverseSettlement": frozenset({MERCHANT}),
    "/ecard.v1.Settlement/ListSettlements": frozenset({MERCHANT}),
    "/ecard.v1.Settlement/DailyTotals": frozenset({MERCHANT}),
    "/ecard.v1.Settlement/OpenVisit": frozenset({MERCHANT}),
    "/ecard.v1.Settlement/AddVisitItems": frozenset({MERCHANT}),
    "/ecard.v1.Settlement/SettleVisit": frozenset({MERCHANT}),
    "/ecard.v1.Settlement/CancelVisit": frozenset({MERCHANT}),
    "/ecard.v1.Settlement/GetVisit": frozenset({MERCHANT}),
    "/ecard.v1.Cards/IssueECard": frozenset({CHANNEL}),
    "/ecard.v1.Cards/GetECard": frozenset({ADMIN, CHANNEL}),
    "/ecard.v1.Cards/ReportLost": frozenset({ADMIN, CHANNEL}),
    "/ecard.v1.Cards/Reinstate": frozenset({ADMIN}),
    "/ecard.v1.Cards/Cancel": frozenset({ADMIN}),
    # A channel changes its own binding (core.cards holds it to its own issuer_id); the operator any.
    "/ecard.v1.Cards/SuspendBinding": frozenset({ADMIN, CHANNEL}),
    "/ecard.v1.Cards/ResumeBinding": frozenset({ADMIN, CHANNEL}),
    "/ecard.v1.Cards/Unbind": frozenset({ADMIN, CHANNEL}),
    "/ecard.v1.Cards/WatchEvents": frozenset({ADMIN, CHANNEL}),
    "/ecard.v1.Cards/ListUsage": frozenset({ADMIN, CHANNEL}),
    # Binding at the counter: the merchant starts it and reads its outcome (core.counter: its own only).
    "/ecard.v1.Cards/StartCounterBinding": frozenset({MERCHANT}),
    "/ecard.v1.Cards/GetCounterBinding": frozenset({MERCHANT}),
    # A channel manages its own issuer keys (rpc.admin holds it to its own issuer_id); the rest of
    # Admin is the operator's.
    "/ecard.v1.Admin/RegisterIssuerKey": frozenset({ADMIN, CHANNEL}),
    "/ecard.v1.Admin/RotateIssuerKey": frozenset({ADMIN, CHANNEL}),
    "/ecard.v1.Admin/RevokeIssuerKey": frozenset({ADMIN, CHANNEL}),
    "/ecard.v1.Admin/ListIssuerKeys": frozenset({ADMIN, CHANNEL}),
    # A channel reads the audit events of an e-card bound to it (core.admin holds it to those).
    "/ecard.v1.Admin/ListAuditEvents": frozenset({ADMIN, CHANNEL}),
}
ADMIN_SERVICE = "/ecard.v1.Admin/"
# Open to anyone who can reach the port: health checks and reflection.
PUBLIC_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")

current_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("ecard_principal")
NO_CALLER = "none"  # the caller presented no principal (or this server takes none over plaintext)
UNKNOWN_CALLER = "unknown"  # it presented one that cannot be read, or a claim the directory does not know
refused_caller: contextvars.ContextVar[str] = contextvars.ContextVar("ecard_refused_caller", default=NO_CALLER)
"""How the request log names the caller of a call refused before it was authorized (current_principal
unset): its principal when known (the certificate's, or a claim the directory knows), else NO_CALLER or
UNKNOWN_CALLER; never the text of a claim nobody vouches for (it may be anything, an identity number too)."""


def allowed_kinds(method: str) -> frozenset[str] | None:
    """Principal kinds that may call `method`; None for public methods; empty for unknown ones."""
    if method.startswith(PUBLIC_PREFIXES):
        return None
    if method in ROLE_TABLE:
        return ROLE_TABLE[method]
    return frozenset({ADMIN}) if method.startswith(ADMIN_SERVICE) else frozenset()


@lru_cache(maxsize=4096)
def _principal_from_pem(pem: bytes) -> Principal:
    cert = x509.load_pem_x509_certificate(pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise Unauthenticated("client certificate has no subject alternative name", "BAD_PRINCIPAL") from None
    named = [uri for uri in san.get_values_for_type(x509.UniformResourceIdentifier) if uri.startswith("ecard://")]
    if len(named) > 1:  # which one would be the caller is not for the order of a SAN list to decide
        raise Unauthenticated("client certificate names several ecard:// principals", "BAD_PRINCIPAL")
    if not named:
        raise Unauthenticated("client certificate names no ecard:// principal", "BAD_PRINCIPAL")
    return Principal.from_uri(named[0])


certificate_fingerprint = lru_cache(maxsize=4096)(fingerprint_of)  # what the deny list holds, per certificate


@lru_cache(maxsize=4096)
def _parse_principal(text: str) -> Principal:
    """Principal.parse, remembered: a server sees the same few principals on every call."""
    return Principal.parse(text)


def principal_from_metadata(context: grpc.aio.ServicerContext) -> Principal:
    for key, value in context.invocation_metadata() or ():
        if key == PRINCIPAL_METADATA:
            return _parse_principal(value if isinstance(value, str) else value.decode())
    raise Unauthenticated(f"no principal: send the {PRINCIPAL_METADATA} metadata", "NO_PRINCIPAL")


def no_principal(context: grpc.aio.ServicerContext) -> Principal:
    """Plaintext without --dev-principals: nobody is anybody, whatever the metadata says."""
    raise Unauthenticated(
        "this server takes no principal over plaintext: use mTLS (or, for development on loopback, "
        "start it with --dev-principals)", "NO_PRINCIPAL",
    )


def client_certificate(context: grpc.aio.ServicerContext) -> bytes | None:
    """The PEM of the caller's TLS client certificate; None over plaintext."""
    for pem in context.auth_context().get("x509_pem_cert", ()):
        return bytes(pem)
    return None


def principal_from_certificate(context: grpc.aio.ServicerContext) -> Principal:
    pem = client_certificate(context)
    if pem is None:
        raise Unauthenticated("no client certificate", "NO_PRINCIPAL")
    return _principal_from_pem(pem)


class Authorizer:
    """Resolves the caller and applies the role table. Merchants must be known and designated;
    channels must be registered issuers."""

    def __init__(
        self,
        merchants: MerchantDirectory,
        keys: KeyRegistry,
        resolve: Callable[[grpc.aio.ServicerContext], Principal] = principal_from_metadata,
        *,
        deny: CertificateDenyList | None = None,
    ) -> None:
        """`deny`: under mTLS, the operator's deny list of client certificates (checked first)."""
        self._merchants = merchants
        self._keys = keys
        self._resolve = resolve
        self._deny = deny
        self.proven = resolve is principal_from_certificate  # the operator's CA vouches for the principal

    def caller(self, context: grpc.aio.ServicerContext) -> str:
        """The name a refused call's log line gives its caller (`refused_caller`), from memory only."""
        try:
            principal = self._resolve(context)
        except Unauthenticated as exc:
            return NO_CALLER if exc.reason == "NO_PRINCIPAL" else UNKNOWN_CALLER
        try:
            if self.proven or principal.kind == ADMIN:
                known = True
            elif principal.kind == MERCHANT:
                known = self._merchants.get(principal.id, cached_only=True) is not None
            else:
                known = self._keys.has_issuer(principal.id, cached_only=True)
        except CacheMiss:  # a directory being reloaded: the claim is not checked now
            known = False
        return str(principal) if known else UNKNOWN_CALLER

    def _refuse_denied(self, context: grpc.aio.ServicerContext, cached_only: bool) -> None:
        deny = self._deny
        if deny is not None and not deny.empty(cached_only=cached_only):
            pem = client_certificate(context)
            if pem is not None and deny.denied(certificate_fingerprint(pem), cached_only=cached_only):
                raise Unauthenticated("this client certificate is on the deny list", "CERTIFICATE_DENIED")

    def recheck(self, context: grpc.aio.ServicerContext) -> None:
        """For each item of a long call (a stream), on the event loop: its certificate not denied since
        the call began. A deny list that could not be reloaded ends the stream (fail closed)."""
        try:
            self._refuse_denied(context, cached_only=True)
        except CacheMiss:
            raise Unavailable("the certificate deny list is being reloaded", "DENY_LIST_UNAVAILABLE") from None

    def authorize(
        self, method: str, kinds: frozenset[str], context: grpc.aio.ServicerContext, cached_only: bool = False
    ) -> Principal:
        """The caller, if the role table lets it call `method`. With `cached_only`, raises CacheMiss
        instead of reloading a directory from the store."""
        self._refuse_denied(context, cached_only)
        principal = self._resolve(context)
        if principal.kind not in kinds:
            raise PermissionDenied(f"{principal.kind} may not call {method.rsplit('/', 1)[-1]}", "ROLE_NOT_ALLOWED")
        if principal.kind == MERCHANT:
            merchant = self._merchants.get(principal.id, cached_only=cached_only)
            if merchant is None or not merchant.designated:
                raise PermissionDenied("merchant is unknown or not designated", "MERCHANT_NOT_DESIGNATED")
        elif principal.kind == CHANNEL:
            if not self._keys.has_issuer(principal.id, cached_only=cached_only):
                raise PermissionDenied("channel is not a registered issuer", "UNKNOWN_CHANNEL")
            if self._keys.is_disabled(principal.id, cached_only=cached_only):
                raise PermissionDenied("the operator disabled this channel", "CHANNEL_DISABLED")
        return principal


class MethodAuthorization:
    """The guard's authorization layer for one method: the caller checked against the role table and
    set as the call's principal (`current_principal`). Public methods check nothing."""

    __slots__ = ("_authorize", "_caller", "_connected", "_kinds", "_method", "_recheck")

    def __init__(self, authorizer: Authorizer, method: str) -> None:
        self._method = method
        self._kinds = allowed_kinds(method)
        self._authorize = authorizer.authorize
        self._recheck = authorizer.recheck
        self._caller = authorizer.caller
        # Under mTLS each call tells the handshake tally that its connection's handshake completed.
        self._connected = handshakes.call_seen if authorizer.proven else _nothing

    def recheck(self, context: grpc.aio.ServicerContext) -> None:
        """Each item of a request stream: the caller's certificate still trusted (public methods: nothing)."""
        if self._kinds is not None:
            self._recheck(context)

    def check(self, context: grpc.aio.ServicerContext) -> None:
        """Where the method runs (on the loop for the inline hot path): a stale directory is reloaded."""
        self._connected()
        if self._kinds is not None:
            try:
                principal = self._authorize(self._method, self._kinds, context)
            except EcardError:
                refused_caller.set(self._caller(context))
                raise
            current_principal.set(principal)

    async def check_async(
        self, context: grpc.aio.ServicerContext, run: Callable[..., Awaitable[Any]]
    ) -> None:
        """On the loop, from the in-memory directories; a directory that must be reloaded is read
        through `run` (where the deployment's store reads may run)."""
        self._connected()
        kinds = self._kinds
        if kinds is None:
            return
        try:
            try:
                principal = self._authorize(self._method, kinds, context, cached_only=True)
            except CacheMiss:
                principal = await run(self._authorize, self._method, kinds, context)
        except EcardError:  # set here, on the loop: the pool's copy of the context would lose it
            refused_caller.set(self._caller(context))
            raise
        current_principal.set(principal)


def _nothing() -> None:
    pass


def scoped_id(requested: str) -> str:
    """The id a request names, for the operator (any, or none); for anyone else `own_id(requested)`."""
    if current_principal.get().kind == ADMIN:
        return requested
    return own_id(requested)


def own_id(requested: str) -> str:
    """The id a request names for its caller: empty means the caller's own; anything else must match."""
    principal = current_principal.get()
    if requested and requested != principal.id:
        raise PermissionDenied("a request may only name the caller's own id", "PRINCIPAL_MISMATCH")
    return principal.id
