"""A Verify whose answer was lost is asked back by its request_id (GetVerification), never sent again:
a second Verify of the same token would consume it, or answer REPLAYED for our own consumption.

    answer lost (DEADLINE_EXCEEDED, or UNAVAILABLE from the transport, without the server's ErrorInfo)
      -> GetVerification: the recorded answer            -> returned as if the Verify had answered
                          NOT_FOUND, twice, RECHECK_S apart -> TokenNotConsumed
                          fails (after its own retries)  -> VerificationUnknown

An UNAVAILABLE that the server sent itself (it has an ErrorInfo reason, e.g. NONCE_STORE_UNAVAILABLE)
is an answer: the server refused to verify, and the caller gets it as it is.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ecard.errors import DeadlineExceeded, EcardError, NotFound, TokenNotConsumed, VerificationUnknown

RECHECK_S = 0.25
"""Pause before asking a second time: a Verify past its deadline may still be finishing on the server."""
T = TypeVar("T")


def fresh_request_id() -> str:
    """A Verify's request_id when the caller gave none: what a lost answer is asked back by."""
    return uuid.uuid4().hex


def answer_lost(exc: EcardError) -> bool:
    """A transient error (`retryable`) that is not the server's own answer: a DEADLINE_EXCEEDED, or an
    UNAVAILABLE without the server's ErrorInfo reason."""
    return exc.retryable and (isinstance(exc, DeadlineExceeded) or exc.reason == exc.status_name)


def recover(lookup: Callable[[], T], cause: EcardError, request_id: str) -> T:
    for attempt in range(2):
        try:
            return lookup()
        except NotFound:
            if attempt == 0:
                time.sleep(RECHECK_S)
        except EcardError as exc:
            raise VerificationUnknown(cause, request_id) from exc
    raise TokenNotConsumed(cause, request_id) from cause


async def arecover(lookup: Callable[[], Awaitable[T]], cause: EcardError, request_id: str) -> T:
    for attempt in range(2):
        try:
            return await lookup()
        except NotFound:
            if attempt == 0:
                await asyncio.sleep(RECHECK_S)
        except EcardError as exc:
            raise VerificationUnknown(cause, request_id) from exc
    raise TokenNotConsumed(cause, request_id) from cause
