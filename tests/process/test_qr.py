"""`ecard qr` as a phone scanner reads it: the PNG and SVG files are decoded by a real QR decoder
(zxing-cpp) back to the exact token text, spaces included, up to the longest token the codec allows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zxingcpp
from PIL import Image

from ecard import TokenSigner, TokenTooLargeError, generate_private_key
from ecard._token import MAX_TOKEN_CHARS
from ecard.qr import MAX_VERSION, make_qr


def ecard_qr(token: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ecard_server.cli", "qr", token, "--out", str(out)],
                          capture_output=True, text=True, timeout=30)


def decode(pixels: np.ndarray) -> tuple[str, str, str]:
    """The one QR code in an image: (text, version, error-correction level) as the decoder saw them."""
    found = zxingcpp.read_barcodes(pixels, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1, f"decoder found {len(found)} QR codes"
    return found[0].text, found[0].symbology_identifier, found[0].ec_level


def svg_pixels(path: Path, scale: int = 4) -> np.ndarray:
    """Rasterizes the dark modules of the file's SVG path ("M x y h n" runs, as segno writes them)."""
    svg = path.read_text()
    size = re.search(r'<svg[^>]* width="(\d+)" height="(\d+)"', svg)
    path_data = re.search(r'<path transform="scale\((\d+)\)"[^>]* d="([^"]+)"', svg)
    assert size and path_data, "not an SVG as segno writes it"
    modules = int(size.group(1)) // int(path_data.group(1))
    data = path_data.group(2)
    image = np.full((modules * scale, modules * scale), 255, dtype=np.uint8)
    x = y = 0.0
    for command, a, b in re.findall(r"([MmHh])\s*(-?[\d.]+)(?:[ ,](-?[\d.]+))?", data):
        if command in "Mm":
            x, y = (float(a), float(b)) if command == "M" else (x + float(a), y + float(b))
        else:
            end = float(a) if command == "H" else x + float(a)
            row = int(y - 0.5)  # segno strokes each run along the middle of its row
            image[row * scale:(row + 1) * scale, int(x) * scale:int(end) * scale] = 0
            x = end
    return image


def longest_token() -> str:
    """A real signed token of the longest text the codec allows (MAX_TOKEN_CHARS or just under)."""
    signer = TokenSigner(generate_private_key(), issuer_id="bank-of-a-long-name", kid="ubiig7mfa4cyfthx")
    longest = ""
    for extra in range(200):
        try:
            longest = signer.mint("E" * (17 + extra))
        except TokenTooLargeError:
            return longest
    raise AssertionError("no e-card id was too long")


@pytest.fixture(scope="module")
def tokens() -> dict[str, str]:
    signer = TokenSigner(generate_private_key(), issuer_id="demo-bank", kid="ubiig7mfa4cyfthx")
    # About one random token in 200 has no space in its base45 text: take the first of a few that has one.
    typical = next(t for t in (signer.mint("EABCDEFGHIJKLMNOP") for _ in range(100)) if " " in t)
    return {"typical": typical, "longest": longest_token()}


@pytest.mark.parametrize("which", ["typical", "longest"])
@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_scanned_qr_gives_back_the_exact_token(tmp_path: Path, tokens: dict[str, str], which: str,
                                              suffix: str) -> None:
    token = tokens[which]
    assert " " in token or which == "longest"  # base45 text holds spaces: the decoder must keep them
    out = tmp_path / f"token{suffix}"
    result = ecard_qr(token, out)
    assert result.returncode == 0, result.stderr
    pixels = np.asarray(Image.open(out).convert("L")) if suffix == ".png" else svg_pixels(out)
    text, symbology, level = decode(pixels)
    assert text == token
    assert symbology == "]Q1"  # a plain QR code (no ECI, no GS1): a scanner hands the text on unchanged
    assert level == "M"


def test_the_longest_token_fits_version_10_at_level_m(tokens: dict[str, str]) -> None:
    longest = tokens["longest"]
    assert MAX_TOKEN_CHARS - 2 <= len(longest) <= MAX_TOKEN_CHARS
    code = make_qr(longest)
    assert code.version <= MAX_VERSION and code.error == "M" and code.mode == "alphanumeric"
    assert make_qr(tokens["typical"]).version == 9  # docs/token.md: a 235-character token is version 9


def test_spaces_survive_at_both_ends_and_inside(tmp_path: Path) -> None:
    text = "EC1: A B  C%D$ "  # every base45 character that a scanner's text handling could trim or fold
    out = tmp_path / "spaces.png"
    make_qr(text).save(str(out), scale=6, border=4)  # the SDK's encoding (`ecard qr` draws tokens only)
    assert decode(np.asarray(Image.open(out).convert("L")))[0] == text


def test_qr_refuses_what_is_not_a_token(tmp_path: Path, tokens: dict[str, str]) -> None:
    for text in ("hello, pharmacy", "EC1: A B  C%D$ ", "https://example.invalid/"):
        result = ecard_qr(text, tmp_path / "x.png")
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1 and "not an e-card token" in lines[0], result.stderr
        assert not (tmp_path / "x.png").exists()
    assert ecard_qr(tokens["typical"] + "\r\n", tmp_path / "scanned.png").returncode == 0  # a scanner's line end


def test_bad_output_or_oversized_text_is_one_line_error(tmp_path: Path, tokens: dict[str, str]) -> None:
    typical = tokens["typical"]
    for token, out, word in ((typical, tmp_path / "token.jpg", ".png or .svg"),
                             ("EC1:" + "A" * 400, tmp_path / "big.png", "not an e-card token"),
                             (typical, tmp_path / "missing" / "token.png", "cannot write")):
        result = ecard_qr(token, out)
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1 and word in lines[0], result.stderr
        assert not out.exists()
