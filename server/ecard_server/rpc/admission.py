"""The guard's admission layer: after authorization (and the reading of its request), the caller's call
is admitted by the limits (core.limits.Admission: rate per principal, calls in flight) or refused with
RESOURCE_EXHAUSTED before its method runs or any work is queued for it; at the call's end its place is
given back. Each item of a metered request stream (VerifyStream) is charged as it is read (`metered`).

A call's admitted principal is kept in the call's own context (like its principal), so the end of
the call, wherever it ends, gives back exactly what its start took.
"""

from __future__ import annotations

import asyncio
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
ChargeItem = Callable[[], Awaitable[None]]
ChargeItemSync = Callable[[], None]

# What a call costs of its caller's rate when it is admitted, by method (default one call): a batch
# costs its items; a stream nothing at its start, since each of its items is charged (ITEM_COSTS).
COSTS: dict[str, Callable[[Any], int]] = {
    "/ecard.v1.Verifier/VerifyBatch": lambda request: len(request.requests),
    "/ecard.v1.Verifier/VerifyStream": lambda request: 0,
}
ITEM_COSTS: dict[str, int] = {"/ecard.v1.Verifier/VerifyStream": 1}
_admitted: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("ecard_admitted", default=None)


def admitted_by_nothing(request: Any, context: grpc.aio.ServicerContext) -> None:
    """The admission of a method without limits (public ones, or no limits configured)."""


async def admitted_by_nothing_async(request: Any, context: grpc.aio.ServicerContext) -> None:
    """`admitted_by_nothing`, awaited."""


def limited(admission: Admission, method: str, finished: Finished) -> tuple[Admit, AdmitAsync, Finished]:
    """The admission of `method` by the limits (for its authorized caller, its request read), where the
    method runs (`admit`, the inline hot path) or awaited on the loop (`admit_async`), and `finished`
    that gives the call's place back; nothing for public methods."""
    if allowed_kinds(method) is None:
        return admitted_by_nothing, admitted_by_nothing_async, finished
    enter_sync, enter_async, leave = admission.enter_sync, admission.enter_async, admission.leave
    principal_of, admitted_set = current_principal.get, _admitted.set
    weigh = COSTS.get(method)

    def admit_limited(request: Any, context: grpc.aio.ServicerContext) -> None:
        principal = principal_of()
        enter_sync(principal, weigh(request) if weigh is not None else 1)
        admitted_set(principal)

    async def admit_async_limited(request: Any, context: grpc.aio.ServicerContext) -> None:
        principal = principal_of()
        await enter_async(principal, weigh(request) if weigh is not None else 1)
        admitted_set(principal)

    def finished_limited(status_name: str, seconds: float, outcome: object = None) -> None:
        principal = _admitted.get()
        if principal is not None:
            admitted_set(None)
            leave(principal)
        finished(status_name, seconds, outcome)

    return admit_limited, admit_async_limited, finished_limited


def metered(admission: Admission, method: str) -> ChargeItem | None:
    """For a request stream whose items are charged: what charges one item to the call's principal
    as it is read (paced to the rate, or the stream refused with RATE_LIMITED)."""
    cost = ITEM_COSTS.get(method)
    if cost is None:
        return None
    charge, principal_of = admission.charge, current_principal.get

    async def charge_item() -> None:
        await charge(principal_of(), cost)

    return charge_item


def metered_sync(admission: Admission, method: str, loop: asyncio.AbstractEventLoop) -> ChargeItemSync | None:
    """`metered` for a stream run on its handler thread: an item taken at once stays on the thread; one
    that waits for its turn or for a lease is charged on `loop`, the thread waiting for it."""
    cost = ITEM_COSTS.get(method)
    if cost is None:
        return None
    at_once, charge, principal_of = admission.charged_at_once, admission.charge, current_principal.get

    def charge_item() -> None:
        principal = principal_of()
        if not at_once(principal, cost):
            asyncio.run_coroutine_threadsafe(charge(principal, cost), loop).result()

    return charge_item
