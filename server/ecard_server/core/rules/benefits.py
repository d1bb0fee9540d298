"""Yearly benefits (待遇): what the fund pays of a covered amount, per person category and merchant kind.

A benefit policy is imported as a whole, versioned like the catalogue: for each person category
(employee, retiree, resident) and merchant kind (pharmacy, hospital) a deductible (起付线), the fund's
ratio and a yearly cap (封顶线) on what the fund pays. Each card keeps yearly accumulators, per calendar
year in Asia/Shanghai (a new year starts from zero): how much of the deductible its covered amounts
have met, and what the fund has paid. With a basket's covered amount C and the accumulators (d, f):

    toward_deductible = min(C, deductible - d)              (never negative)
    fund              = min(round_half_up((C - toward_deductible) * ratio), cap - f)
    account, self-pay as before (core.rules.settlement.shares)

The settlement adds (toward_deductible, fund) to its year's accumulators in its own transaction; a
refund takes back its fund part exactly, and the deductible in proportion to what it refunds of the
settlement (prefix floors: all of it once the whole settlement is back). No I/O.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from ecard.errors import InvalidArgument
from ecard.v1 import types_pb2 as t
from ecard_server.core.rules.allocation import times_half_up
from ecard_server.core.rules.catalogue import CHINA
from ecard_server.core.rules.validation import MAX_AMOUNT_FEN

CATEGORIES = ("employee", "retiree", "resident")
DEFAULT_CATEGORY = "employee"
KINDS: dict[str, int] = {"pharmacy": t.MERCHANT_KIND_PHARMACY, "hospital": t.MERCHANT_KIND_HOSPITAL}


@dataclass(frozen=True, slots=True)
class Benefit:
    deductible_fen: int
    fund_ratio: Fraction
    yearly_cap_fen: int


@dataclass(frozen=True, slots=True)
class BenefitPolicy:
    """One imported version; version "" is none (the settings' fund ratios, no deductible, no cap)."""

    version: str
    name: str
    benefits: Mapping[tuple[str, int], Benefit]  # (person category, merchant kind)


NO_POLICY = BenefitPolicy("", "", {})


@dataclass(frozen=True, slots=True)
class Accumulated:
    """A card's accumulators for one year."""

    deductible_fen: int = 0
    fund_fen: int = 0


NO_ACCUMULATION = Accumulated()


@dataclass(frozen=True, slots=True)
class AccountState:
    """What a settlement's rules read of the holder's card: status (None: no such e-card), whether the
    credential already settled, the balance, the person category, this year's accumulators."""

    status: int | None
    settled_before: bool
    balance_fen: int
    category: str
    accumulated: Accumulated


def year_of(unix_seconds: float) -> int:
    return datetime.datetime.fromtimestamp(unix_seconds, CHINA).year


def fund_and_deductible(covered_fen: int, benefit: Benefit, accumulated: Accumulated) -> tuple[int, int]:
    """(fund, toward_deductible) of a covered amount, given the year's accumulators (see above)."""
    toward = max(0, min(covered_fen, benefit.deductible_fen - accumulated.deductible_fen))
    fund = times_half_up(covered_fen - toward, benefit.fund_ratio)
    return max(0, min(fund, benefit.yearly_cap_fen - accumulated.fund_fen)), toward


def deductible_back(deductible_fen: int, total_fen: int, refunded_before: int, refunded_after: int) -> int:
    """What a refund gives back of a settlement's deductible: the prefix floor of its share of the
    settlement's total, so that the refunds of a settlement give back exactly all of it."""
    return deductible_fen * refunded_after // total_fen - deductible_fen * refunded_before // total_fen


def parse_policy(text: str) -> tuple[str, dict[tuple[str, int], Benefit]]:
    """A policy file (JSON): {"name": ..., "benefits": [{"person_category", "merchant_kind",
    "deductible_fen", "fund_ratio" (a decimal string such as "0.85"), "yearly_cap_fen"}, ...]}; every
    category and kind named once. InvalidArgument naming the entry on the first fault."""
    try:
        body = json.loads(text)
        name, entries = str(body["name"]), body["benefits"]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument('a policy is JSON {"name": ..., "benefits": [...]}', "INVALID_POLICY") from None
    benefits: dict[tuple[str, int], Benefit] = {}
    for number, entry in enumerate(entries, start=1):
        benefit_of = (entry.get("person_category"), KINDS.get(str(entry.get("merchant_kind"))))
        category, kind = benefit_of
        benefits[check_entry(number, category, kind, entry, benefits)] = Benefit(
            entry["deductible_fen"], Fraction(str(entry["fund_ratio"])), entry["yearly_cap_fen"])
    missing = [f"{c}/{k}" for c in CATEGORIES for k in KINDS if (c, KINDS[k]) not in benefits]
    if missing:
        raise InvalidArgument(f"the policy has no benefit for {', '.join(missing)}", "INVALID_POLICY")
    return name, benefits


def check_entry(number: int, category: object, kind: int | None, entry: dict, known: Mapping) -> tuple[str, int]:  # type: ignore[type-arg]
    where = f"benefit {number}"
    if category not in CATEGORIES or kind is None:
        raise InvalidArgument(f"{where}: person_category must be one of {', '.join(CATEGORIES)} and merchant_kind "
                              "pharmacy or hospital", "INVALID_POLICY")
    assert isinstance(category, str)
    if (category, kind) in known:
        raise InvalidArgument(f"{where}: {category}/{kind} is named twice", "INVALID_POLICY")
    for field in ("deductible_fen", "yearly_cap_fen"):
        value = entry.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_AMOUNT_FEN:
            raise InvalidArgument(f"{where}: {field} must be whole fen, 0 to {MAX_AMOUNT_FEN}", "INVALID_POLICY")
    try:
        ratio = Fraction(str(entry.get("fund_ratio")))
    except (ValueError, ZeroDivisionError):
        ratio = Fraction(-1)
    if not 0 <= ratio <= 1:
        raise InvalidArgument(f"{where}: fund_ratio must be a decimal from 0 to 1", "INVALID_POLICY")
    return category, kind


def policy_body(name: str, benefits: Mapping[tuple[str, int], Benefit]) -> str:
    """The canonical form stored with a version (and read back by parse_policy)."""
    names = {v: k for k, v in KINDS.items()}
    return json.dumps({"name": name, "benefits": [
        {"person_category": c, "merchant_kind": names[k], "deductible_fen": b.deductible_fen,
         "fund_ratio": str(b.fund_ratio), "yearly_cap_fen": b.yearly_cap_fen}
        for (c, k), b in sorted(benefits.items())]}, ensure_ascii=False, separators=(",", ":"))
