"""Fixtures of the process tier: tests that run `ecard` as a user does, in child processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecard import TLSConfig
from loadtest.rig.pki import CertificateAuthority


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TLSConfig | Path]:
    authority = CertificateAuthority(tmp_path_factory.mktemp("pki"))
    out: dict[str, TLSConfig | Path] = {"folder": authority.folder}
    for who, uri in {
        "admin": "ecard://admin",
        "channel": "ecard://channel/tls-bank",
        "merchant": "ecard://merchant/tls-pharmacy",
        "nobody": "https://example.invalid/not-ecard",
    }.items():
        out[who] = authority.certificate(who, uri)
    return out
