"""gRPC status -> typed ecard error, for the SDK (the server's reverse table is ecard_server.rpc.status)."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ecard.errors import BY_STATUS_NAME, DOMAIN, EcardError, Internal, Unavailable


def from_grpc_error(error: grpc.RpcError) -> EcardError:
    """The typed error for a failed call, with the ErrorInfo reason and metadata when the server sent one."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    reason, metadata = None, {}
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except (ValueError, AttributeError):
        status = None
    if status is not None:
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Is(info.DESCRIPTOR) and detail.Unpack(info) and info.domain == DOMAIN:
                reason, metadata = info.reason, dict(info.metadata)
    cls = BY_STATUS_NAME.get(code.name if code else "", Internal)
    if code == grpc.StatusCode.CANCELLED:
        # The SDK never cancels a call it still waits for: the server or the connection gave up on it
        # (a server shutting down cancels calls no handler has started yet, grpc/grpc#41785).
        cls, reason = Unavailable, reason or "CANCELLED"
    exc = cls(message or code.name, reason, metadata)
    exc.grpc_code = code  # type: ignore[attr-defined]
    return exc
