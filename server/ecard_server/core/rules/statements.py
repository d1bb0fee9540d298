"""The rules of a statement: its day (Asia/Shanghai), a listing's page size and its page token."""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json

from ecard.errors import InvalidArgument
from ecard_server.core.records import SettlementQuery, SettlementRecord
from ecard_server.core.rules import validation

# China Standard Time: UTC+8, with no daylight saving since 1991 (before any statement day allowed here).
SHANGHAI = datetime.timezone(datetime.timedelta(hours=8), "Asia/Shanghai")
FIRST_DAY = datetime.date(2000, 1, 1)
DEFAULT_PAGE = 100
MAX_PAGE = 1000
_TOKEN_VERSION = 1


def day_range(day: str) -> tuple[int, int]:
    """The unix seconds [since, until) of the calendar day "YYYY-MM-DD" in Asia/Shanghai."""
    try:
        date = datetime.date.fromisoformat(day) if len(day) == 10 else None
    except ValueError:
        date = None
    if date is None:
        raise InvalidArgument("day must be a date written YYYY-MM-DD", "INVALID_DAY")
    if date < FIRST_DAY or date >= datetime.date(9999, 12, 31):
        raise InvalidArgument(f"day must be from {FIRST_DAY.isoformat()} on", "INVALID_DAY")
    start = datetime.datetime.combine(date, datetime.time(), SHANGHAI)
    return int(start.timestamp()), int((start + datetime.timedelta(days=1)).timestamp())


def _filters_digest(query: SettlementQuery) -> str:
    form = [query.merchant_id, query.since, query.until, query.terminal_id]
    return hashlib.sha256(json.dumps(form).encode()).hexdigest()[:16]


def page_token(query: SettlementQuery, last: SettlementRecord) -> str:
    body = json.dumps([_TOKEN_VERSION, _filters_digest(query), last.settled_at, last.settlement_id])
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def read_page_token(token: str, query: SettlementQuery) -> tuple[int, str]:
    """The position a page token names; InvalidArgument for a token that is not one of this listing's."""
    bad = InvalidArgument("page_token is not one this listing gave (the filters must stay the same)",
                          "INVALID_PAGE_TOKEN")
    if len(token) > 256:
        raise bad
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        raise bad from None
    if (not isinstance(body, list) or len(body) != 4 or body[0] != _TOKEN_VERSION
            or body[1] != _filters_digest(query) or type(body[2]) is not int or not isinstance(body[3], str)):
        raise bad
    return body[2], body[3]


def settlement_query(query: SettlementQuery) -> None:
    """A listing's filters and page size, before anything is read."""
    if query.terminal_id:
        validation.identifier(query.terminal_id, "terminal_id")
    if not 0 <= query.page_size <= MAX_PAGE:
        raise InvalidArgument(f"page_size must be 0-{MAX_PAGE} (0: {DEFAULT_PAGE})", "INVALID_PAGE_SIZE")
    for bound in (query.since, query.until):
        if bound is not None and not 0 <= bound < 2**62:
            raise InvalidArgument("since and until must be times after 1970", "INVALID_TIME_RANGE")
    if query.since is not None and query.until is not None and query.since > query.until:
        raise InvalidArgument("since is after until", "INVALID_TIME_RANGE")
