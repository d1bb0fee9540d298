"""Base45 (RFC 9285): bytes as text in the QR alphanumeric alphabet.

Two bytes become three characters, a last odd byte two; the whole string stays inside the 45
characters a QR code packs at 5.5 bits each.
"""

from __future__ import annotations

import struct

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_ENCODE = ALPHABET.encode("ascii")
_INVALID = 0xFF
# Maps each byte of the text to its digit value, every other byte to 0xFF.
_DECODE_TABLE = bytes(ALPHABET.find(chr(i)) & 0xFF if chr(i) in ALPHABET else _INVALID for i in range(256))


class Base45Error(ValueError):
    """The text is not valid base45."""


def b45encode(data: bytes) -> str:
    out = bytearray()
    pairs = len(data) // 2
    for (n,) in struct.iter_unpack(">H", data[: pairs * 2]):
        n, c = divmod(n, 45)
        e, d = divmod(n, 45)
        out += bytes((_ENCODE[c], _ENCODE[d], _ENCODE[e]))
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out += bytes((_ENCODE[c], _ENCODE[d]))
    return out.decode("ascii")


def b45decode(text: str) -> bytes:
    try:
        digits = text.encode("ascii").translate(_DECODE_TABLE)
    except UnicodeEncodeError:
        raise Base45Error("non-ASCII character") from None
    size = len(digits)
    if size % 3 == 1:
        raise Base45Error("length leaves a single character")
    if digits and max(digits) == _INVALID:
        raise Base45Error("character outside the base45 alphabet")
    full = size - size % 3
    values = [digits[i] + digits[i + 1] * 45 + digits[i + 2] * 2025 for i in range(0, full, 3)]
    if values and max(values) > 0xFFFF:
        raise Base45Error("group out of range")
    out = struct.pack(f">{len(values)}H", *values)
    if size % 3:
        last = digits[full] + digits[full + 1] * 45
        if last > 0xFF:
            raise Base45Error("group out of range")
        out += bytes((last,))
    return out
