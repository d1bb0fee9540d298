"""Input checks shared by the services: each failure is InvalidArgument naming the field."""

from __future__ import annotations

import re

from ecard.errors import InvalidArgument

_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_CARD_NO = re.compile(r"[A-Za-z0-9]{4,32}")
_ID_NUMBER = re.compile(r"[0-9A-Za-z]{6,32}")


def identifier(value: str, field: str) -> str:
    """Ids of issuers, keys, merchants, terminals: 1-64 of [A-Za-z0-9._:-]."""
    if not _IDENT.fullmatch(value):
        raise InvalidArgument(f"{field} must be 1-64 characters of A-Z a-z 0-9 . _ : -", "INVALID_" + field.upper())
    return value


def card_no(value: str) -> str:
    if not _CARD_NO.fullmatch(value):
        raise InvalidArgument("card_no must be 4-32 letters or digits", "INVALID_CARD_NO")
    return value


def id_number(value: str) -> str:
    if not _ID_NUMBER.fullmatch(value.strip()):
        raise InvalidArgument("id_number must be 6-32 letters or digits", "INVALID_ID_NUMBER")
    return value


def text(value: str, field: str, *, required: bool = True, max_len: int = 64) -> str:
    value = value.strip()
    if required and not value:
        raise InvalidArgument(f"{field} is required", "MISSING_" + field.upper())
    if len(value) > max_len:
        raise InvalidArgument(f"{field} is longer than {max_len} characters", "INVALID_" + field.upper())
    return value


def enum(value: int, field: str, allowed: object) -> int:
    if value not in allowed:  # type: ignore[operator]
        raise InvalidArgument(f"{field} has an unsupported value {value}", "INVALID_" + field.upper())
    return value
