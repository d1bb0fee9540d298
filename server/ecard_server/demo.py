"""`ecard demo`: a first-try data set loaded through the public API into a running server.

One issuing channel (demo-bank) with an Ed25519 key written to disk, a designated pharmacy and a
hospital, three enrolled cards with balances, each with an e-card issued through demo-bank.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ecard import (
    AdminClient,
    ChannelClient,
    FailedPrecondition,
    TokenSigner,
    generate_private_key,
    kid_for,
    physical_cards,
    public_key_pem,
    write_private_key,
)
from ecard.v1 import types_pb2

ISSUER = "demo-bank"
PHARMACY = "demo-pharmacy"
HOSPITAL = "demo-hospital"
# (card_no, holder_name, id_number, region, opening balance in fen). Fictional people.
CARDS = [
    ("A00000001", "朱小明", "330203199001011234", "330200", 50_000),
    ("A00000002", "李华", "33020319850615002X", "330200", 12_000),
    ("A00000003", "王芳", "330206197203030016", "330206", 0),
]


@dataclass(frozen=True)
class DemoData:
    issuer_id: str
    kid: str
    key_path: Path
    ecard_ids: list[str]
    skipped: list[tuple[str, str]]  # (card number, why): a card an earlier run reported lost, say


def load_demo(target: str, out_dir: Path) -> DemoData:
    """Loads the demo set (idempotent: reuses a key already in out_dir)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = sorted(out_dir.glob(f"{ISSUER}-*.key.pem"))
    if existing:
        from ecard import load_private_key_pem

        key = load_private_key_pem(existing[0].read_bytes())
    else:
        key = generate_private_key()
    kid = kid_for(key)
    key_path = out_dir / f"{ISSUER}-{kid}.key.pem"
    write_private_key(key_path, key)
    with AdminClient(target) as admin:
        admin.upsert_issuer(ISSUER, "Demo Bank (channel app)")
        admin.register_key(ISSUER, public_key_pem(key), kid=kid)
        admin.upsert_merchant(PHARMACY, kind=types_pb2.MERCHANT_KIND_PHARMACY, display_name="Demo Pharmacy",
                              region="330200")
        admin.upsert_merchant(HOSPITAL, kind=types_pb2.MERCHANT_KIND_HOSPITAL, display_name="Demo Hospital",
                              region="330200")
        admin.enroll_cards(physical_cards(CARDS))
    ecard_ids: list[str] = []
    skipped: list[tuple[str, str]] = []
    with ChannelClient(target, issuer_id=ISSUER, signer=TokenSigner(key, issuer_id=ISSUER, kid=kid)) as channel:
        for card_no, name, id_number, _region, _balance in CARDS:
            try:
                ecard_ids.append(channel.issue_ecard(card_no, name, id_number,
                                                     assurance=types_pb2.ASSURANCE_FACE).ecard_id)
            except FailedPrecondition as exc:  # a guide, run earlier on this server, reported it lost
                skipped.append((card_no, exc.message))
    if not ecard_ids:
        raise FailedPrecondition("no demo card can have an e-card: " + "; ".join(f"{n}: {why}" for n, why in skipped),
                                 "DEMO_CARDS_UNUSABLE")
    return DemoData(ISSUER, kid, key_path, ecard_ids, skipped)
