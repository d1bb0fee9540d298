"""The guard's admission layer: after authorization, the caller's call is admitted by the limits
(core.limits.Admission: rate per principal, calls in flight) or refused with RESOURCE_EXHAUSTED
before its method runs or any work is queued for it; at the call's end its place is given back.

A call's admitted principal is kept in the call's own context (like its principal), so the end of
the call, wherever it ends, gives back exactly what its start took.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

import grpc.aio

from ecard_server.core.limits import Admission
from ecard_server.core.principals import Principal
from ecard_server.rpc.auth import allowed_kinds, current_principal

Admit = Callable[[Any, grpc.aio.ServicerContext], None]
AdmitAsync = Callable[[Any, grpc.aio.ServicerContext], Awaitable[None]]
Finished = Callable[[str, float, object], None]

# What a call costs of its caller's rate, by method (default one call): a batch costs its items.
COSTS: dict[str, Callable[[Any], int]] = {
    "/ecard.v1.Verifier/VerifyBatch": lambda request: len(request.requests),
}
_admitted: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("ecard_admitted", default=None)


def limited(
    admission: Admission, method: str, admit: Admit, admit_async: AdmitAsync, finished: Finished
) -> tuple[Admit, AdmitAsync, Finished]:
    """`admit`, `admit_async` and `finished` with the limits around them; unchanged for public methods."""
    if allowed_kinds(method) is None:
        return admit, admit_async, finished
    enter, leave, principal_of, admitted_set = admission.enter, admission.leave, current_principal.get, _admitted.set
    weigh = COSTS.get(method)

    def take(request: Any) -> None:
        principal = principal_of()
        enter(principal, weigh(request) if weigh is not None else 1)
        admitted_set(principal)

    def admit_limited(request: Any, context: grpc.aio.ServicerContext) -> None:
        admit(request, context)
        take(request)

    async def admit_async_limited(request: Any, context: grpc.aio.ServicerContext) -> None:
        await admit_async(request, context)
        take(request)

    def finished_limited(status_name: str, seconds: float, outcome: object = None) -> None:
        principal = _admitted.get()
        if principal is not None:
            admitted_set(None)
            leave(principal)
        finished(status_name, seconds, outcome)

    return admit_limited, admit_async_limited, finished_limited
