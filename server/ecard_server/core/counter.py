"""Binding at the counter: a merchant starts a binding and shows its code as a QR; the holder scans it in
a channel app; the channel completes IssueECard naming the code (and its signed face statement names it
too); the merchant learns the holder's e-card and scans her first token.

    StartCounterBinding   a merchant: a fresh code (80 random bits), alive `counter_binding_ttl_s`
    IssueECard            a channel: completes it in the issuance's own transaction (check_completion)
    GetCounterBinding     the merchant that started it (anyone else: NOT_FOUND), long-polled by the POS
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ecard.errors import NotFound, PermissionDenied
from ecard_server.config import Settings
from ecard_server.core import audit
from ecard_server.core.audit import AuditTrail
from ecard_server.core.ports import CounterBindingStore
from ecard_server.core.principals import MERCHANT, Principal
from ecard_server.core.records import CounterBinding
from ecard_server.core.rules import validation
from ecard_server.core.rules.counter import binding_code, new_code


class CounterBindingService:
    def __init__(self, store: CounterBindingStore, trail: AuditTrail, settings: Settings,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._trail = trail
        self._ttl = settings.counter_binding_ttl_s
        self._clock = clock

    @staticmethod
    def _merchant(caller: Principal, merchant_id: str) -> str:
        if caller.kind != MERCHANT:
            raise PermissionDenied("only merchants bind at the counter", "ROLE_NOT_ALLOWED")
        if merchant_id and merchant_id != caller.id:
            raise PermissionDenied("a request may only name the caller's own id", "PRINCIPAL_MISMATCH")
        return caller.id

    def start(self, caller: Principal, merchant_id: str, terminal_id: str) -> CounterBinding:
        merchant_id = self._merchant(caller, merchant_id)
        if terminal_id:
            validation.identifier(terminal_id, "terminal_id")
        now = int(self._clock())
        binding = CounterBinding(new_code(), merchant_id, terminal_id, now, now + self._ttl)
        self._store.start_counter_binding(binding, audit.counter_binding_started(now, merchant_id, binding.code,
                                                                                 terminal_id))
        return binding

    def get(self, caller: Principal, merchant_id: str, code: str) -> CounterBinding:
        """The binding, to the merchant that started it; NOT_FOUND to anyone else and for unknown codes."""
        merchant_id = self._merchant(caller, merchant_id)
        code = binding_code(code)
        binding = self._store.get_counter_binding(code)
        if binding is None or binding.merchant_id != merchant_id:
            raise NotFound("no counter binding of this merchant has this code", "COUNTER_BINDING_UNKNOWN")
        return binding

    def read(self, caller: Principal, binding: CounterBinding) -> None:
        """Records that the merchant read the binding's outcome (once per GetCounterBinding)."""
        self._trail.record(audit.counter_binding_read(int(self._clock()), str(caller), binding.code,
                                                      binding.ecard_id or ""))

    def now(self) -> int:
        return int(self._clock())
