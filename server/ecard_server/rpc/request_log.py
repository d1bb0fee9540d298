"""One JSON line per call, and its request id sent back to the caller.

    {"event": "rpc", "method": "Settle", "principal": "merchant:nb-ph-001", "code": "OK", "reason": "",
     "ms": 6.21, "request_id": "3f9a0c1e-118"}

- `request_id`: the caller's `x-request-id` metadata when it sends one (at most 128 printable
  characters), else one made here: `<process tag>-<counter>` (no random draw per call). It goes back to
  the caller as `x-request-id` trailing metadata, on errors too.
- `principal`: `admin`, `channel:<issuer_id>` or `merchant:<merchant_id>`, on refusals too: a call refused
  before it was authorized names the principal of its certificate, or of a development-mode claim the
  directory knows; `none` when the caller presented none (and on the public methods), `unknown` when
  what it presented cannot be read or names nobody the server knows (that text is never logged);
  `reason`: the ErrorInfo word of a failed call, or the reason of a Verify's verdict. A line never holds
  a card number, a name, an identity number or a token: none of them is among these fields.
- Sampling: Verify (the hot path) logs every call that fails or rejects, and at most
  `request_log_verify_ok_per_second` accepted ones each second (settings; 0 logs none of those); the
  standard health check, which probes and load balancers call many times a second, logs every failure
  and as many OK calls again, on a budget of its own. Every other method logs every OK call. `skipped_ok`
  on a sampled line counts the OK calls of that method not logged since the last logged one.
- Refusals (any call that fails, UNAUTHENTICATED included, and a Verify's rejection) are logged at most
  `request_log_refused_per_second` a second in the whole process (settings): a flood of bad calls cannot
  fill the disk or bury the lines around it. `skipped_refused` on a refusal's line counts the refusals
  not logged since the last logged one.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from contextvars import ContextVar

import grpc.aio

from ecard.errors import EcardError
from ecard.v1 import types_pb2
from ecard_server import tracing
from ecard_server.logs import event
from ecard_server.rpc.auth import current_principal, refused_caller

SAMPLED = ("/ecard.v1.Verifier/Verify", "/grpc.health.v1.Health/Check")
REQUEST_ID = "x-request-id"
MAX_REQUEST_ID = 128
log = logging.getLogger("ecard.requests")
_call_id: ContextVar[str] = ContextVar("ecard_request_id", default="")  # each call runs in a context of its own
_REASON_NAMES = {value: name.removeprefix("REASON_") for name, value in types_pb2.Reason.items()}


class LineBudget:
    """At most `per_second` lines each second (of one method's OK calls, or of the process's refusals).
    Bumped without a lock: a race can cost a lost `skipped` count or one extra line."""

    def __init__(self, per_second: int, clock: Callable[[], float]) -> None:
        self._rate = per_second
        self._clock = clock
        self._second = -1
        self._left = 0
        self.skipped = 0

    def take(self) -> bool:
        """Whether this call gets a line (within this second's budget)."""
        second = int(self._clock())
        if second != self._second:
            self._second, self._left = second, self._rate
        if self._left > 0:
            self._left -= 1
            return True
        self.skipped += 1
        return False


class RequestLog:
    """What every method of one server shares: the request id maker and the sampling rate.

    Made in the serving process (after any fork), so each worker has its own tag (itertools.count is
    atomic under the GIL: no two calls get one id)."""

    def __init__(
        self, verify_ok_per_second: int, clock: Callable[[], float] = time.monotonic, refused_per_second: int = 50
    ) -> None:
        self._tag = f"{os.getpid():x}{os.urandom(2).hex()}"
        self._next = itertools.count(1).__next__
        self.ok_per_second = verify_ok_per_second
        self.clock = clock
        self.refused = LineBudget(refused_per_second, clock)

    def method(self, method: str) -> MethodLog:
        return MethodLog(method, self)

    def begin(self, context: grpc.aio.ServicerContext) -> str:
        """The call's request id: the caller's x-request-id, or a new one. Sent back in the call's
        trailing metadata (rpc.status.abort keeps it on errors) and remembered for its log line."""
        request_id = ""
        for key, value in context.invocation_metadata() or ():
            if key == REQUEST_ID:
                text = value if isinstance(value, str) else value.decode("ascii", "replace")
                if 0 < len(text) <= MAX_REQUEST_ID and text.isprintable():
                    request_id = text
                break
        if not request_id:
            request_id = f"{self._tag}-{self._next()}"
        context.set_trailing_metadata(((REQUEST_ID, request_id),))
        _call_id.set(request_id)
        return request_id

    @staticmethod
    def write(
        method: str, code: str, reason: str, seconds: float, skipped_ok: int | None = None,
        skipped_refused: int | None = None,
    ) -> None:
        principal = current_principal.get(None)
        fields: dict[str, object] = {
            "method": method, "principal": str(principal) if principal else refused_caller.get(), "code": code,
            "reason": reason,
            "ms": round(seconds * 1000, 3), "request_id": _call_id.get(),
        }
        if skipped_ok is not None:
            fields["skipped_ok"] = skipped_ok
        if tracing.enabled():
            fields["trace_id"] = tracing.trace_id()
        if skipped_refused:
            fields["skipped_refused"] = skipped_refused
        event(log, "rpc", **fields)  # type: ignore[arg-type]  # no key of these is `level`


class MethodLog:
    """The request log of one method, made when its handler is wrapped: `begin` at the call's start,
    `finished` at its end (on the loop, in the call's context: its principal and request id are there)."""

    __slots__ = ("_budget", "_name", "_refused", "_verdicts", "_write", "begin")

    def __init__(self, method: str, request_log: RequestLog) -> None:
        self._name = method.rsplit("/", 1)[-1]
        self._write = request_log.write
        self._budget = LineBudget(request_log.ok_per_second, request_log.clock) if method in SAMPLED else None
        self._refused = request_log.refused
        self._verdicts = method == SAMPLED[0]  # a Verify's line says its verdict's reason
        self.begin = request_log.begin

    def finished(self, code: str, seconds: float, outcome: object = None) -> None:
        """A call that ended with status `code` after `seconds`; `outcome` is its response (OK) or its
        error (an EcardError), None when it was cancelled or streamed."""
        if code != "OK":
            self._refusal(code, outcome.reason if isinstance(outcome, EcardError) else "", seconds)
            return
        budget = self._budget
        if budget is None:
            self._write(self._name, code, "", seconds)
            return
        reason = outcome.reason if self._verdicts else types_pb2.REASON_OK  # type: ignore[attr-defined]
        if reason != types_pb2.REASON_OK:  # a rejection: on the refusals' budget
            self._refusal(code, _REASON_NAMES.get(reason, str(reason)), seconds)
        elif budget.take():
            skipped, budget.skipped = budget.skipped, 0
            self._write(self._name, code, "OK" if self._verdicts else "", seconds, skipped_ok=skipped)

    def _refusal(self, code: str, reason: str, seconds: float) -> None:
        refused = self._refused
        if refused.take():
            skipped, refused.skipped = refused.skipped, 0
            self._write(self._name, code, reason, seconds, skipped_refused=skipped)
