"""Every input check of the service, in one place: each failure is InvalidArgument naming the field.

The gRPC layer reads a request's fields and the services call these before anything is consumed or
written: Verify's request (`verify_request_error`, on the hot path), Settle's and Refund's
(`settle_request`, `basket`, `refund_request`), and the fields of operator and channel calls.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ecard.errors import InvalidArgument
from ecard.v1 import types_pb2 as t

if TYPE_CHECKING:
    from ecard_server.core.records import LineItem, SettleInput

_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_CARD_NO = re.compile(r"[A-Za-z0-9]{4,32}")
_ID_NUMBER = re.compile(r"[0-9A-Za-z]{6,32}")


def identifier(value: str, field: str) -> str:
    """Ids of issuers, keys, merchants, terminals: 1-64 of [A-Za-z0-9._:-]."""
    if not _IDENT.fullmatch(value):
        raise InvalidArgument(f"{field} must be 1-64 characters of A-Z a-z 0-9 . _ : -", "INVALID_" + field.upper())
    return value


_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


def fingerprint(value: str) -> str:
    """A SHA-256 certificate fingerprint: 64 hex digits, colons and case as openssl prints them allowed."""
    normal = value.strip().replace(":", "").lower()
    if not _FINGERPRINT.fullmatch(normal):
        raise InvalidArgument("fingerprint_sha256 must be 64 hex digits (SHA-256 of the DER certificate)",
                              "INVALID_FINGERPRINT")
    return normal


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
    if not value.isprintable():  # free text reaches the audit trail and logs: no line breaks, no bidi overrides
        raise InvalidArgument(f"{field} holds a control or formatting character", "INVALID_" + field.upper())
    return value


def enum(value: int, field: str, allowed: object) -> int:
    if value not in allowed:  # type: ignore[operator]
        raise InvalidArgument(f"{field} has an unsupported value {value}", "INVALID_" + field.upper())
    return value


# -- Verify -----------------------------------------------------------------------------------------
MAX_TOKEN_TEXT = 1024  # far above the 300-character budget: longer is a broken client, not a token
MAX_REQUEST_ID = 128
MAX_TERMINAL_ID = 64
_PURPOSES = frozenset(v for v in t.Purpose.values() if v != t.PURPOSE_UNSPECIFIED)
_ASSURANCES = frozenset(t.Assurance.values())


def verify_request_error(
    token: str, purpose: int, min_assurance: int, request_id: str, terminal_id: str
) -> InvalidArgument | None:
    """What is wrong with a Verify request's fields, or None. Returned, not raised: a bad item of a
    stream or batch is rejected alone (MALFORMED), a bad unary call raises it."""
    if not token:
        return InvalidArgument("token is required", "MISSING_TOKEN")
    if len(token) > MAX_TOKEN_TEXT:
        return InvalidArgument(f"token is longer than {MAX_TOKEN_TEXT} characters", "TOKEN_TOO_LONG")
    if purpose not in _PURPOSES:
        return InvalidArgument("purpose is required", "MISSING_PURPOSE")
    if min_assurance not in _ASSURANCES:
        return InvalidArgument("min_assurance has an unknown value", "INVALID_MIN_ASSURANCE")
    if len(request_id) > MAX_REQUEST_ID or len(terminal_id) > MAX_TERMINAL_ID:
        return InvalidArgument("request_id or terminal_id is too long", "FIELD_TOO_LONG")
    if not (terminal_id.isprintable() and request_id.isprintable()):
        return InvalidArgument("request_id or terminal_id holds a control or formatting character",
                               "FIELD_NOT_PRINTABLE")
    return None


def verify_batch_size(count: int, max_batch: int) -> None:
    if count > max_batch:
        raise InvalidArgument(f"a batch holds at most {max_batch} requests", "BATCH_TOO_LARGE")


# -- amounts ----------------------------------------------------------------------------------------
INT64_MAX = 2**63 - 1
# The ceiling of every amount a request carries (a unit price, a line, a basket, a credit, a refund,
# an opening balance) and of a balance that credits or enrolment make: 10**12 fen (10 billion
# yuan). Far above any real basket or account, and far below int64 (9.2 * 10**18), so no sum of
# amounts the service adds up (a basket of at most max_basket_items lines, a balance plus the refunds
# of its settlements) can overflow a 64-bit column.
MAX_AMOUNT_FEN = 10**12
MAX_BALANCE_FEN = 10**12


def amount(value: int, field: str, *, positive: bool = True) -> int:
    """An amount in fen: > 0 (or >= 0 when not `positive`) and at most MAX_AMOUNT_FEN."""
    if value < 0:
        raise InvalidArgument(f"{field} must not be negative", "NEGATIVE_AMOUNT")
    if positive and value == 0:
        raise InvalidArgument(f"{field} must be positive", "NON_POSITIVE_AMOUNT")
    if value > MAX_AMOUNT_FEN:
        raise InvalidArgument(f"{field} is above the ceiling of {MAX_AMOUNT_FEN} fen", "AMOUNT_TOO_LARGE")
    return value


# -- Settle and Refund ------------------------------------------------------------------------------
MAX_IDEMPOTENCY_KEY = 128
MAX_CODE = 64
MAX_NAME = 128
MAX_REFUND_REASON = 256
MAX_SETTLEMENT_ID = 64
MAX_REFUND_LINES = 1000
MAX_CREDENTIAL = 1024  # a token is at most 300 characters and a handle far less: longer is a broken client
DRUG_CLASSES = (t.DRUG_CLASS_A, t.DRUG_CLASS_B, t.DRUG_CLASS_C)
_CLASSES_OR_UNSET = frozenset((*DRUG_CLASSES, t.DRUG_CLASS_UNSPECIFIED))


def idempotency_key(key: str) -> str:
    if not key:
        raise InvalidArgument("idempotency_key is required (the receipt number)", "MISSING_IDEMPOTENCY_KEY")
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidArgument(f"idempotency_key is longer than {MAX_IDEMPOTENCY_KEY} characters",
                              "INVALID_IDEMPOTENCY_KEY")
    if not key.isprintable():
        raise InvalidArgument("idempotency_key holds a control or formatting character", "INVALID_IDEMPOTENCY_KEY")
    return key


def basket(items: Sequence[LineItem], max_items: int) -> None:
    """Raises InvalidArgument naming the first bad line; afterwards the basket's total is at most
    MAX_AMOUNT_FEN. (The line's number is written only into an error: a 20-line basket is checked on
    every Quote and Settle.)"""
    if not items:
        raise InvalidArgument("the basket is empty", "EMPTY_BASKET")
    if len(items) > max_items:
        raise InvalidArgument(f"a basket holds at most {max_items} lines", "BASKET_TOO_LARGE")
    total = 0
    for number, item in enumerate(items, start=1):
        code = item.code
        if not code.strip():
            raise InvalidArgument(f"line {number}: code is required", "MISSING_ITEM_CODE")
        if len(code) > MAX_CODE or len(item.name) > MAX_NAME:
            raise InvalidArgument(f"line {number}: code or name is too long", "INVALID_ITEM")
        if item.drug_class not in _CLASSES_OR_UNSET:
            raise InvalidArgument(f"line {number}: drug_class must be A, B or C (or unset)", "INVALID_DRUG_CLASS")
        price, quantity = item.unit_price_fen, item.quantity
        if price <= 0:
            raise InvalidArgument(f"line {number}: unit_price_fen must be positive", "INVALID_PRICE")
        if quantity <= 0:
            raise InvalidArgument(f"line {number}: quantity must be positive", "INVALID_QUANTITY")
        total += price * quantity  # the line's amount_fen
        if total > MAX_AMOUNT_FEN:
            raise InvalidArgument(f"line {number}: the basket's total is above the ceiling of {MAX_AMOUNT_FEN} "
                                  "fen", "AMOUNT_TOO_LARGE")


def settle_request(request: SettleInput, max_items: int, *, quote: bool = False) -> None:
    """A Settle's fields (a Quote's with `quote`: no idempotency key, no quote_id)."""
    if not quote:
        idempotency_key(request.idempotency_key)
    given = [bool(request.verification_id), bool(request.token), bool(request.quote_id)].count(True)
    if given != 1 or (quote and request.quote_id):
        kinds = "verification_id or token" if quote else "verification_id, token or quote_id"
        raise InvalidArgument(f"give exactly one credential: {kinds}", "MISSING_CREDENTIAL")
    if max(len(request.verification_id), len(request.token), len(request.quote_id)) > MAX_CREDENTIAL * 2:
        raise InvalidArgument(f"the credential is longer than {MAX_CREDENTIAL * 2} characters", "INVALID_CREDENTIAL")
    if len(request.verification_id) > MAX_CREDENTIAL or len(request.token) > MAX_CREDENTIAL:
        raise InvalidArgument(f"the credential is longer than {MAX_CREDENTIAL} characters", "INVALID_CREDENTIAL")
    basket(request.items, max_items)


def till(terminal_id: str, operator_id: str) -> None:
    """The till and the cashier of a Settle, Refund or reversal: each empty or an identifier."""
    if terminal_id:
        identifier(terminal_id, "terminal_id")
    if operator_id:
        identifier(operator_id, "operator_id")


def settlement_id_given(settlement_id: str) -> None:
    if not settlement_id:
        raise InvalidArgument("settlement_id is required", "MISSING_SETTLEMENT_ID")


def refund_request(settlement_id: str, key: str, reason: str) -> None:
    settlement_id_given(settlement_id)
    if len(settlement_id) > MAX_SETTLEMENT_ID:
        raise InvalidArgument("settlement_id is too long", "INVALID_SETTLEMENT_ID")
    idempotency_key(key)
    if len(reason) > MAX_REFUND_REASON:
        raise InvalidArgument(f"reason is longer than {MAX_REFUND_REASON} characters", "INVALID_REASON")
    if not reason.isprintable():
        raise InvalidArgument("reason holds a control or formatting character", "INVALID_REASON")


def refund_ask(lines: Sequence[tuple[str, int]], amount_fen: int, full: bool) -> None:
    """A Refund's selection, before any settlement is looked at (the rest: rules.refunds): exactly one
    of `full`, `lines` and `amount_fen`. An empty selection (no lines, amount 0: what proto3 sends
    for an unset field, and what an older client sends for "everything") is refused, never taken to
    mean the whole settlement."""
    if lines and amount_fen:
        raise InvalidArgument("refund either lines or amount_fen, not both", "REFUND_LINES_AND_AMOUNT")
    if full and (lines or amount_fen):
        raise InvalidArgument("a full refund names no lines and no amount", "REFUND_SELECTION_AMBIGUOUS")
    if not (full or lines or amount_fen):
        raise InvalidArgument("say what to refund: full=true for all that is left, or lines, or amount_fen > 0 "
                              "(an empty selection refunds nothing)", "REFUND_SELECTION_MISSING")
    if amount_fen:
        amount(amount_fen, "amount_fen")
    if len(lines) > MAX_REFUND_LINES:
        raise InvalidArgument(f"a refund names at most {MAX_REFUND_LINES} lines", "TOO_MANY_REFUND_LINES")
    seen: set[str] = set()
    for number, (code, quantity) in enumerate(lines, start=1):
        if not code or len(code) > MAX_CODE:
            raise InvalidArgument(f"refund line {number}: code is required (at most {MAX_CODE} characters)",
                                  "MISSING_ITEM_CODE")
        if quantity <= 0:
            raise InvalidArgument(f"refund line {number}: quantity must be positive", "INVALID_QUANTITY")
        if code in seen:
            raise InvalidArgument(f"refund line {number}: code {code} is named twice", "DUPLICATE_REFUND_LINE")
        seen.add(code)
