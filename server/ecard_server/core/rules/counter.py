"""The rules of a binding at the counter (core.counter): its code, its status, and whether an issuance
may complete it (decided under the binding's lock, in the issuance's transaction)."""

from __future__ import annotations

import base64
import os
import re

from ecard.errors import FailedPrecondition, InvalidArgument
from ecard.token import COUNTER_QR_PREFIX
from ecard_server.core.records import CounterBinding

QR_PREFIX = COUNTER_QR_PREFIX  # what the POS's QR shows before the code (QR alphanumeric mode throughout)
_CODE = re.compile(r"[A-Z2-7]{16}")
PENDING, COMPLETED, EXPIRED = "PENDING", "COMPLETED", "EXPIRED"


def new_code() -> str:
    """16 base32 characters: 80 random bits, nothing to guess."""
    return base64.b32encode(os.urandom(10)).decode("ascii")


def binding_code(value: str) -> str:
    """A code as the channel app or the POS hands it over (with or without the QR prefix)."""
    code = value.strip().removeprefix(QR_PREFIX)
    if not _CODE.fullmatch(code):
        raise InvalidArgument("binding_code must be the 16 characters the counter's QR code shows",
                              "INVALID_BINDING_CODE")
    return code


def status(binding: CounterBinding, now: int) -> str:
    if binding.ecard_id:
        return COMPLETED
    return EXPIRED if now > binding.expires_at else PENDING


def check_completion(binding: CounterBinding | None, ecard_id: str, issuer_id: str, now: int) -> bool:
    """May this issuance complete the binding? Read under the binding's lock. True: complete it now;
    False: it already is, by this very issuance (a retry). FailedPrecondition otherwise."""
    if binding is None:
        raise FailedPrecondition("no counter binding has this code", "BINDING_CODE_UNKNOWN")
    if binding.ecard_id:
        if (binding.ecard_id, binding.issuer_id) == (ecard_id, issuer_id):
            return False
        raise FailedPrecondition("this counter binding was completed already", "BINDING_CODE_USED")
    if now > binding.expires_at:
        raise FailedPrecondition("this counter binding expired: the counter shows a new code", "BINDING_CODE_EXPIRED")
    return True
