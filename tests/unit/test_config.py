"""Settings from TOML: the documented example is the defaults, and bad files say what is wrong."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from ecard.v1 import types_pb2 as t
from ecard_server.config import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "config.example.toml"


def test_documented_example_states_the_defaults() -> None:
    assert Settings.from_toml(EXAMPLE) == Settings()


def test_overrides_are_exact_fractions(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("class_b_self_pay_ratio = 0.15\nclock_skew_s = 5\n[fund_ratio]\npharmacy = 0.3\n")
    settings = Settings.from_toml(path)
    assert settings.class_b_self_pay_ratio == Fraction(15, 100)
    assert settings.fund_ratio == {t.MERCHANT_KIND_PHARMACY: Fraction(3, 10), t.MERCHANT_KIND_HOSPITAL: Fraction(1, 2)}
    assert settings.clock_skew_s == 5


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("nonsense = 1\n", "unknown setting"),
        ("class_b_self_pay_ratio = 1.5\n", "between 0 and 1"),
        ("clock_skew_s = -1\n", "non-negative"),
        ("[fund_ratio]\nclinic = 0.1\n", "clinic"),
        ("clock_skew_s = \n", "not valid TOML"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=words):
        Settings.from_toml(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        Settings.from_toml(tmp_path / "none.toml")
