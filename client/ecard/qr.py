"""QR rendering of token texts and counter-binding codes (segno). Alphanumeric mode, error correction M,
version 10 at most; `write_qr` refuses any other text (it would only be refused at the counter)."""

from __future__ import annotations

from pathlib import Path

import segno

from ecard._token import COUNTER_QR_PREFIX, TokenFormatError, parse_token

MAX_VERSION = 10


def make_qr(token: str) -> segno.QRCode:
    """The QR code of a token text. Raises ValueError when it does not fit version 10-M."""
    try:
        return segno.make_qr(token, error="m", boost_error=False, mode="alphanumeric", version=None)
    except (segno.DataOverflowError, ValueError) as exc:
        raise ValueError(f"token does not fit a QR code: {exc}") from None


def write_qr(token: str, out: str | Path, *, scale: int = 6) -> segno.QRCode:
    path = Path(out)
    if path.suffix.lower() not in (".png", ".svg"):
        raise ValueError("QR output must end in .png or .svg")
    if not token.startswith(COUNTER_QR_PREFIX):  # a counter binding's code, or else a token
        try:
            parse_token(token)
        except TokenFormatError as exc:  # a QR of anything else would only be refused at the counter
            raise ValueError(f"not an e-card token ({exc}): the QR is drawn of what a channel minted "
                             f"(EC1:...) or of a counter binding ({COUNTER_QR_PREFIX}...)") from None
    code = make_qr(token)
    if code.version > MAX_VERSION:  # type: ignore[operator]
        raise ValueError(f"token needs QR version {code.version}, above {MAX_VERSION}: it is too long")
    try:
        code.save(str(path), scale=scale, border=4)
    except OSError as exc:
        raise ValueError(f"cannot write {path}: {exc.strerror}") from None
    return code
