"""Seeds a deployment for a run, through the public API only, and describes it in a `Seed`.

What a run needs, all named `lt<TAG>-...`:

- two channels, each with a registered key: a bank (Ed25519) and a wallet app (ECDSA P-256);
- designated pharmacies and hospitals;
- N physical cards enrolled in one `EnrollCards` stream (100,000 take seconds, not minutes);
- M e-cards issued by the bank, the first half also bound to the wallet, and a few reported lost.

The `Seed` is JSON (the channels' private keys included: they are throwaway test keys), so workers
and later runs (`--seed-file`) use the very same data.

    python -m loadtest.harness.seeding --host 127.0.0.1:50051 --cards 100000 --out reports/seed.json
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

from ecard import (
    AdminClient,
    ChannelClient,
    ClientOptions,
    TokenSigner,
    generate_private_key,
    load_private_key_pem,
    physical_cards,
    private_key_pem,
    public_key_pem,
)
from ecard.testing import fake_holder
from ecard.v1 import admin_pb2, types_pb2

REGIONS = ("330203", "330205", "330206", "330211", "330212", "330213")
ISSUE_CONCURRENCY = 8
_TAG = re.compile(r"[a-z0-9]{1,12}")


class SeedingError(RuntimeError):
    """The deployment refused part of the seed: the run would measure the wrong thing."""


@dataclass(frozen=True)
class ChannelKey:
    """A channel (issuer) and the private key its app signs tokens with."""

    issuer_id: str
    kid: str
    private_key_pem: str

    def signer(self) -> TokenSigner:
        return TokenSigner(load_private_key_pem(self.private_key_pem.encode()), issuer_id=self.issuer_id, kid=self.kid)


@dataclass(frozen=True)
class Seed:
    """The data a run uses. `ecards` pairs each e-card id with the channels (indexes) bound to it."""

    tag: str
    target: str
    channels: tuple[ChannelKey, ...]
    pharmacies: tuple[str, ...]
    hospitals: tuple[str, ...]
    ecards: tuple[tuple[str, tuple[int, ...]], ...]
    lost_ecards: tuple[str, ...]
    cards_enrolled: int
    timings_s: dict[str, float] = field(default_factory=dict, compare=False)

    @cached_property
    def usable(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """E-cards a holder can pay with: not lost."""
        lost = set(self.lost_ecards)
        return tuple(item for item in self.ecards if item[0] not in lost)

    @cached_property
    def bank_only(self) -> tuple[str, ...]:
        """Usable e-cards bound to the first channel alone: a token from the second is CHANNEL_NOT_BOUND."""
        return tuple(ecard_id for ecard_id, bound in self.usable if bound == (0,))

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Seed:
        d = dict(data)
        return cls(
            tag=str(d["tag"]),
            target=str(d["target"]),
            channels=tuple(ChannelKey(**c) for c in d["channels"]),  # type: ignore[attr-defined]
            pharmacies=tuple(d["pharmacies"]),  # type: ignore[arg-type]
            hospitals=tuple(d["hospitals"]),  # type: ignore[arg-type]
            ecards=tuple((str(e), tuple(b)) for e, b in d["ecards"]),  # type: ignore[attr-defined]
            lost_ecards=tuple(d["lost_ecards"]),  # type: ignore[arg-type]
            cards_enrolled=int(d["cards_enrolled"]),  # type: ignore[call-overload]
            timings_s=dict(d.get("timings_s") or {}),  # type: ignore[call-overload]
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Seed:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def holder(tag: str, n: int) -> tuple[str, str, str, str, int]:
    """Physical card number n of a seed: (card_no, holder_name, id_number, region, balance_fen)."""
    balance_fen = 0 if n % 10 == 9 else (n * 7_919) % 300_000  # one in ten has an empty personal account
    return (*fake_holder(n, f"L{tag}"), REGIONS[n % len(REGIONS)], balance_fen)


def seed_cards(tag: str, count: int) -> Iterator[admin_pb2.PhysicalCard]:
    return physical_cards(holder(tag, n) for n in range(count))


def seed_deployment(
    target: str,
    *,
    cards: int,
    ecards: int,
    lost_ecards: int = 20,
    pharmacies: int = 20,
    hospitals: int = 4,
    tag: str = "",
    options_for: Callable[[str], ClientOptions] = lambda principal: ClientOptions(),
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> Seed:
    """Seeds `target` and returns what it seeded. `options_for(principal)` gives each client's options."""
    tag = tag or secrets.token_hex(3)
    if not _TAG.fullmatch(tag):
        raise ValueError("the seed tag must be 1-12 lowercase letters or digits")
    if not 2 <= ecards <= cards or not 0 <= lost_ecards < ecards // 2:
        raise ValueError("need 2 <= ecards <= cards and 0 <= lost_ecards < ecards / 2")
    timings: dict[str, float] = {}
    channel_specs = ((f"lt{tag}-bank", "Load-test bank", types_pb2.KEY_ALGORITHM_ED25519),
                     (f"lt{tag}-wallet", "Load-test wallet app", types_pb2.KEY_ALGORITHM_ECDSA_P256))
    pharmacy_ids = tuple(f"lt{tag}-ph{i:03d}" for i in range(pharmacies))
    hospital_ids = tuple(f"lt{tag}-hosp{i:02d}" for i in range(hospitals))
    channels = []
    with AdminClient(target, options=options_for("admin")) as admin:
        started = time.perf_counter()
        for issuer_id, display_name, algorithm in channel_specs:
            key = generate_private_key(algorithm)
            admin.upsert_issuer(issuer_id, display_name)
            registered = admin.register_key(issuer_id, public_key_pem(key))
            channels.append(ChannelKey(issuer_id, registered.kid, private_key_pem(key).decode()))
        for i, merchant_id in enumerate(pharmacy_ids):
            admin.upsert_merchant(merchant_id, kind=types_pb2.MERCHANT_KIND_PHARMACY,
                                  display_name=f"压测药房 {i}", region=REGIONS[i % len(REGIONS)])
        for i, merchant_id in enumerate(hospital_ids):
            admin.upsert_merchant(merchant_id, kind=types_pb2.MERCHANT_KIND_HOSPITAL,
                                  display_name=f"压测医院 {i}", region=REGIONS[i % len(REGIONS)])
        timings["issuers_keys_merchants"] = time.perf_counter() - started

        started = time.perf_counter()
        summary = admin.enroll_cards(seed_cards(tag, cards), timeout=None)
        timings["enroll_cards"] = time.perf_counter() - started
        if summary.rejected:
            raise SeedingError(f"EnrollCards rejected {summary.rejected} of {cards} cards: {list(summary.errors)[:3]}")
        rate = cards / max(timings["enroll_cards"], 1e-9)
        log(f"seed {tag}: enrolled {cards} cards in {timings['enroll_cards']:.1f} s ({rate:,.0f} cards/s; "
            f"{summary.enrolled} new, {summary.updated} updated)")

    started = time.perf_counter()
    ecard_ids = _issue(target, channels[0], tag, range(ecards), options_for)
    wallet_ids = _issue(target, channels[1], tag, range(ecards // 2), options_for)
    if wallet_ids != ecard_ids[: ecards // 2]:
        raise SeedingError("issuing through a second channel returned other e-card ids: one e-card per card is broken")
    lost = tuple(ecard_ids[-lost_ecards:]) if lost_ecards else ()  # the tail is bound to the bank alone
    with ChannelClient(target, issuer_id=channels[0].issuer_id,
                       options=options_for(f"channel:{channels[0].issuer_id}")) as bank:
        for ecard_id in lost:
            bank.report_lost(ecard_id=ecard_id)
    timings["issue_ecards"] = time.perf_counter() - started
    log(f"seed {tag}: issued {ecards} e-cards ({ecards // 2} also bound to the wallet), {len(lost)} reported lost, "
        f"in {timings['issue_ecards']:.1f} s")
    bound = tuple((ecard_id, (0, 1) if n < ecards // 2 else (0,)) for n, ecard_id in enumerate(ecard_ids))
    return Seed(tag, target, tuple(channels), pharmacy_ids, hospital_ids, bound, lost, cards, timings)


def _issue(
    target: str, key: ChannelKey, tag: str, numbers: range, options_for: Callable[[str], ClientOptions]
) -> list[str]:
    """IssueECard for card numbers `numbers`, a few calls in flight on one channel; ids in card order."""
    issuer_id = key.issuer_id
    with ChannelClient(target, issuer_id=issuer_id, signer=key.signer(),
                       options=options_for(f"channel:{issuer_id}")) as channel:

        def issue(n: int) -> str:
            card_no, name, id_number, _, _ = holder(tag, n)
            return channel.issue_ecard(card_no, name, id_number, assurance=types_pb2.ASSURANCE_FACE).ecard_id

        with ThreadPoolExecutor(ISSUE_CONCURRENCY, thread_name_prefix="seed-issue") as pool:
            return list(pool.map(issue, numbers))


def main(argv: list[str] | None = None) -> int:
    from loadtest.harness.settings import HarnessSettings, add_arguments

    parser = argparse.ArgumentParser(prog="python -m loadtest.harness.seeding", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", required=True, help="HOST:PORT of the ecard deployment")
    parser.add_argument("--out", required=True, help="seed JSON to write (pass it to Locust as --seed-file)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings = HarnessSettings.from_options(args)
        seed = seed_deployment(
            args.host, cards=settings.cards, ecards=settings.ecards, lost_ecards=settings.lost_ecards,
            pharmacies=settings.pharmacies, hospitals=settings.hospitals, tag=settings.seed_tag,
            options_for=settings.client_options,
        )
    except (ValueError, OSError, SeedingError) as exc:
        print(f"seeding failed: {exc}", file=sys.stderr)
        return 2
    print(seed.save(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
