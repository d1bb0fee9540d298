"""The rules of a catalogue import: every item checked, the whole import refused on the first bad one.

An import is one new version of the whole catalogue: items with a code (1-64 of [A-Za-z0-9._:-],
unique in the import), a name, a class (A, B or C), a unit price limit in fen (> 0, at most
MAX_AMOUNT_FEN) and an optional validity window of calendar days (YYYY-MM-DD, Asia/Shanghai,
from <= to). The first bad item refuses the import with INVALID_ARGUMENT naming its number (the CSV
row) and the reason, so a half-imported catalogue never prices a basket. No I/O.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Iterator

from ecard.errors import InvalidArgument
from ecard_server.core.records import CatalogueItem
from ecard_server.core.rules.validation import DRUG_CLASSES, MAX_AMOUNT_FEN, MAX_NAME

MAX_CATALOGUE_ITEMS = 1_000_000
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
CHINA = datetime.timezone(datetime.timedelta(hours=8), "Asia/Shanghai")  # no daylight saving since 1991


def day_of(unix_seconds: float) -> str:
    """The calendar day (YYYY-MM-DD) in Asia/Shanghai of a moment."""
    return datetime.datetime.fromtimestamp(unix_seconds, CHINA).date().isoformat()


def _day(value: str, field: str, where: str) -> str:
    if not value:
        return ""
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        value = ""
    if len(value) != 10:
        raise InvalidArgument(f"{where}: {field} is not a date YYYY-MM-DD", "INVALID_CATALOGUE_ITEM")
    return value


def checked_item(number: int, item: CatalogueItem) -> CatalogueItem:
    """The item as stored, or InvalidArgument naming item `number` and what is wrong with it."""
    where = f"item {number}"
    if not _CODE.fullmatch(item.code):
        raise InvalidArgument(f"{where}: code {item.code!r} must be 1-64 of A-Z a-z 0-9 . _ : -",
                              "INVALID_CATALOGUE_ITEM")
    name = item.name.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidArgument(f"{where} ({item.code}): name is required, at most {MAX_NAME} characters",
                              "INVALID_CATALOGUE_ITEM")
    if item.drug_class not in DRUG_CLASSES:
        raise InvalidArgument(f"{where} ({item.code}): class must be A, B or C", "INVALID_CATALOGUE_ITEM")
    if not 0 < item.price_limit_fen <= MAX_AMOUNT_FEN:
        raise InvalidArgument(f"{where} ({item.code}): price_limit_fen must be 1 to {MAX_AMOUNT_FEN} fen",
                              "INVALID_CATALOGUE_ITEM")
    valid_from = _day(item.valid_from, "valid_from", where)
    valid_to = _day(item.valid_to, "valid_to", where)
    if valid_from and valid_to and valid_to < valid_from:
        raise InvalidArgument(f"{where} ({item.code}): valid_to is before valid_from", "INVALID_CATALOGUE_ITEM")
    return CatalogueItem(item.code, name, item.drug_class, item.price_limit_fen, valid_from, valid_to)


def checked_import(items: Iterable[CatalogueItem]) -> Iterator[CatalogueItem]:
    """Every item checked in order (see checked_item), codes unique, at least one, at most
    MAX_CATALOGUE_ITEMS. A generator: the caller consumes it whole before anything is written."""
    seen: set[str] = set()
    for number, item in enumerate(items, start=1):
        if number > MAX_CATALOGUE_ITEMS:
            raise InvalidArgument(f"a catalogue holds at most {MAX_CATALOGUE_ITEMS} items", "CATALOGUE_TOO_LARGE")
        good = checked_item(number, item)
        if good.code in seen:
            raise InvalidArgument(f"item {number}: code {good.code} appears twice", "DUPLICATE_CATALOGUE_ITEM")
        seen.add(good.code)
        yield good
    if not seen:
        raise InvalidArgument("the catalogue is empty", "EMPTY_CATALOGUE")

