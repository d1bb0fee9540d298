"""One error hierarchy for the SDK and the server core.

    EcardError                      reason: an UPPER_SNAKE word (ErrorInfo.reason, domain "ecard.v1")
     ├── InvalidArgument            INVALID_ARGUMENT     malformed request: fix it, do not retry
     ├── NotFound                   NOT_FOUND
     ├── AlreadyExists              ALREADY_EXISTS       e.g. IDEMPOTENCY_KEY_REUSED
     ├── PermissionDenied           PERMISSION_DENIED    the principal may not do this
     ├── Unauthenticated            UNAUTHENTICATED      no principal at all
     ├── FailedPrecondition         FAILED_PRECONDITION  e.g. CARD_LOST, VERIFICATION_EXPIRED
     ├── ResourceExhausted          RESOURCE_EXHAUSTED
     ├── Unavailable                UNAVAILABLE          transient: a store is down; safe calls retry
     │    ├── Unreachable            no connection to the server could be made (refused, no such name):
     │    │                          the call was never sent
     │    └── VerifyInterrupted      a Verify whose answer was lost (DEADLINE_EXCEEDED, or UNAVAILABLE
     │         │                     from the transport) and could not be asked back with GetVerification
     │         ├── TokenNotConsumed      the server has no answer under that request_id: nothing consumed
     │         └── VerificationUnknown   the lookup failed too: the token may or may not be consumed
     ├── DeadlineExceeded           DEADLINE_EXCEEDED    transient
     └── Internal                   INTERNAL (and any other status)

The server raises these from its core; `ecard_server.rpc.status` maps each to its gRPC status in one
table. The SDK maps a gRPC error back with `ecard.from_grpc_error`. This module imports no gRPC.
"""

from __future__ import annotations

DOMAIN = "ecard.v1"

TRANSIENT_STATUS_NAMES: frozenset[str] = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"})
"""The one definition of a transient failure, by gRPC status name: what `RetryConfig.retry_codes`
retries by default, what makes an error class `retryable`, and (without a server's ErrorInfo) what
makes a Verify's answer lost rather than given (CANCELLED: the server or the connection gave the call up;
the SDK raises it as Unavailable, reason CANCELLED)."""


class EcardError(Exception):
    """Base of every ecard error. `reason` is the ErrorInfo word, `metadata` its details."""

    status_name = "INTERNAL"
    retryable = False
    """Transient (`TRANSIENT_STATUS_NAMES`): a call that is safe to repeat may be tried again."""

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if "status_name" in vars(cls) and "retryable" not in vars(cls):  # a class that names its status
            cls.retryable = cls.status_name in TRANSIENT_STATUS_NAMES

    def __init__(self, message: str, reason: str | None = None, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.status_name
        self.metadata = dict(metadata or {})

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}" if self.reason != self.status_name else self.message


class InvalidArgument(EcardError):
    status_name = "INVALID_ARGUMENT"


class NotFound(EcardError):
    status_name = "NOT_FOUND"


class AlreadyExists(EcardError):
    status_name = "ALREADY_EXISTS"


class PermissionDenied(EcardError):
    status_name = "PERMISSION_DENIED"


class Unauthenticated(EcardError):
    status_name = "UNAUTHENTICATED"


class FailedPrecondition(EcardError):
    status_name = "FAILED_PRECONDITION"


class ResourceExhausted(EcardError):
    status_name = "RESOURCE_EXHAUSTED"


class Unavailable(EcardError):
    status_name = "UNAVAILABLE"


class DeadlineExceeded(EcardError):
    status_name = "DEADLINE_EXCEEDED"


class Unreachable(Unavailable):
    """No connection to the server could be made: refused, a name that does not resolve, a TLS
    handshake that failed. The call was never sent, so it did nothing (a Verify consumed no token)."""

    def __init__(self, message: str, target: str = "") -> None:
        super().__init__(message, "UNREACHABLE", {"target": target} if target else None)
        self.target = target


class VerifyInterrupted(Unavailable):
    """A Verify that ended without its answer, which the SDK then asked for by request_id. `cause` is
    the Verify's own error. Never retried: a repeated Verify would consume or replay the token."""

    retryable = False

    def __init__(self, message: str, reason: str, cause: EcardError, request_id: str) -> None:
        super().__init__(message, reason, {"request_id": request_id})
        self.cause = cause
        self.request_id = request_id


class TokenNotConsumed(VerifyInterrupted):
    """No Verify of this merchant finished under that request_id, or it was never sent (the server
    could not be reached: `cause` is then Unreachable): the token was not consumed. Ask the holder for a
    new code (the phone shows a fresh one)."""

    def __init__(self, cause: EcardError, request_id: str) -> None:
        message = "not consumed: ask the holder for a new code"
        if isinstance(cause, Unreachable):
            message = (f"{cause.message}: nothing was sent, the token is not consumed (scan it again once the "
                       "server answers, or ask the holder for a new code)")
        super().__init__(message, "TOKEN_NOT_CONSUMED", cause, request_id)


class VerificationUnknown(VerifyInterrupted):
    """The lookup failed too: whether the token was consumed is unknown. Ask the holder for a new code;
    GetVerification with `request_id` tells later (an accepted answer can still be settled)."""

    def __init__(self, cause: EcardError, request_id: str) -> None:
        super().__init__("unknown whether the token was consumed: ask the holder for a new code",
                         "VERIFICATION_UNKNOWN", cause, request_id)


class Internal(EcardError):
    status_name = "INTERNAL"


BY_STATUS_NAME: dict[str, type[EcardError]] = {
    cls.status_name: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        Unauthenticated,
        FailedPrecondition,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
        Internal,
    )
}
