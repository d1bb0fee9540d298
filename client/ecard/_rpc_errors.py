"""gRPC status -> typed ecard error, for the SDK (the server's reverse table is ecard_server.rpc.status)."""

from __future__ import annotations

import re

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ecard.errors import BY_STATUS_NAME, DOMAIN, EcardError, Internal, Unavailable, Unreachable

# How gRPC words an UNAVAILABLE that it raised before the call left the client (no connection could
# be made, a name did not resolve): such a call was never sent. The words in brackets are the cause.
_NOT_SENT = re.compile(
    r"^(?:failed to connect to all addresses; last error: \w+: (?P<address>\S+?): (?P<why>.*)"
    r"|errors resolving (?P<name>.+?): .*?(?P<lookup>address lookup failed|Domain name not found|"
    r"Misformatted domain name|DNS resolution failed).*"
    r"|DNS resolution failed for (?P<dns>\S+?): .*)$",
    re.S,
)
_CAUSES = (("connection refused", "connection refused"), ("domain name not found", "name does not resolve"),
           ("misformatted domain name", "not a valid host name"), ("timed out", "connection timed out"),
           ("ssl", "TLS handshake failed"), ("handshake", "TLS handshake failed"),
           ("no route to host", "no route to host"), ("network is unreachable", "network is unreachable"))


def unreachable(code: grpc.StatusCode | None, message: str) -> Unreachable | None:
    """The Unreachable error for an UNAVAILABLE that gRPC raised without sending the call, else None."""
    if code != grpc.StatusCode.UNAVAILABLE:
        return None
    found = _NOT_SENT.match(message)
    if found is None:
        return None
    where = found.group("address") or found.group("name") or found.group("dns") or ""
    where = where.removeprefix("ipv4:").removeprefix("ipv6:")
    lowered = message.lower()
    cause = next((said for word, said in _CAUSES if word in lowered), None)
    if cause is None:
        cause = (found.group("why") or "no connection").strip().rstrip(".")
    return Unreachable(f"cannot reach {where} ({cause})", where)


def from_grpc_error(error: grpc.RpcError) -> EcardError:
    """The typed error for a failed call, with the ErrorInfo reason and metadata when the server sent one."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    reason, metadata = None, {}
    try:
        status = rpc_status.from_call(error)
    except (ValueError, AttributeError):
        status = None
    if status is not None:
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Is(info.DESCRIPTOR) and detail.Unpack(info) and info.domain == DOMAIN:
                reason, metadata = info.reason, dict(info.metadata)
    if reason is None:
        never_sent = unreachable(code, message or "")
        if never_sent is not None:
            never_sent.grpc_code = code  # type: ignore[attr-defined]
            return never_sent
    cls = BY_STATUS_NAME.get(code.name if code else "", Internal)
    if code == grpc.StatusCode.CANCELLED:
        # The SDK never cancels a call it still waits for: the server or the connection gave up on it
        # (a server shutting down cancels calls no handler has started yet, grpc/grpc#41785).
        cls, reason = Unavailable, reason or "CANCELLED"
    exc = cls(message or code.name, reason, metadata)
    exc.grpc_code = code  # type: ignore[attr-defined]
    return exc
