"""Domain error -> gRPC status, in one place (the SDK's reverse is ecard._rpc_errors)."""

from __future__ import annotations

import grpc
import grpc.aio
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ecard.errors import DOMAIN, EcardError

_CODES: dict[str, grpc.StatusCode] = {code.name: code for code in grpc.StatusCode}


def to_status(exc: EcardError) -> grpc.Status:
    """A rich status: the code of the error's class, its message, and an ErrorInfo with its reason."""
    code = _CODES.get(exc.status_name, grpc.StatusCode.INTERNAL)
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN, metadata=exc.metadata))
    return rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=exc.message[:500], details=[detail])
    )


async def abort(context: grpc.aio.ServicerContext, exc: EcardError) -> None:
    """Ends the call with the status of `exc` (raises, as grpc.aio's abort does), keeping the trailing
    metadata the call already set (its x-request-id)."""
    status = to_status(exc)
    await context.abort(status.code, status.details, (*(context.trailing_metadata() or ()), *status.trailing_metadata))


def abort_threaded(context: grpc.ServicerContext, exc: EcardError) -> None:
    """`abort` on a handler thread of the sync server (raises, as its abort does)."""
    status = to_status(exc)
    context.set_trailing_metadata((*(context.trailing_metadata() or ()), *status.trailing_metadata))  # type: ignore[attr-defined]
    context.abort(status.code, status.details)


assert grpc.StatusCode.INVALID_ARGUMENT.value[0] == code_pb2.INVALID_ARGUMENT
