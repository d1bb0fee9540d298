"""A method that fails unexpectedly: logged as `rpc_crashed`, answered INTERNAL "internal error".

The log line names the method, the exception's type and the frames where it failed, never the
exception's text: it may quote a row (an identity number).
"""

from __future__ import annotations

import logging
import traceback

from ecard.errors import EcardError, Internal
from ecard_server.logs import event

log = logging.getLogger("ecard.rpc")


def as_error(method: str, exc: BaseException) -> EcardError:
    """The error a call ends with: an EcardError as it is; anything else logged and hidden."""
    if isinstance(exc, EcardError):
        return exc
    frames = traceback.extract_tb(exc.__traceback__)[-6:]
    where = [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in frames]
    event(log, "rpc_crashed", level=logging.ERROR, method=method, error=type(exc).__name__, at=where)
    return Internal("internal error", "INTERNAL")
