"""What the binding-status and replacement checks cost an accepted Verify, in process, in one run.

Verify's card check reads the cached card snapshot: besides the status and the bound channels it now
compares the token's `issued_at` with the snapshot's `replaced_at` (tokens minted before a card
replacement), and looks a token's channel up in the suspended set only on the path that already
rejects it. This times `TokenVerifier.verify_token` on accepted tokens (embedded deployment: SQLite,
nonces in memory, the card cached) and, on the same snapshot and claims, the added comparison alone;
the ratio says how much faster Verify would be without it.

    python -m loadtest.bench.binding_check [--tokens 20000] [--out reports/bench_binding_check.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from ecard import ED25519, TokenSigner, generate_private_key, public_key_pem
from ecard.v1 import types_pb2 as t
from ecard_server.app import Deployment
from ecard_server.config import Settings
from ecard_server.core.admin import EnrollInput
from ecard_server.core.assurance import Statement
from ecard_server.core.principals import CHANNEL, Principal

HOLDER = ("C0000001", "朱小明", "330203199001011234")


def measure(tokens: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="ecard-bench-binding-") as tmp:
        deployment = Deployment.open(Settings(nonce_capacity=tokens * 2), f"sqlite:///{tmp}/ecard.db")
        try:
            admin = deployment.admin
            admin.upsert_issuer("bank", "bank")
            key = generate_private_key()
            kid = admin.register_key("bank", "", ED25519, public_key_pem(key), None, None).kid
            signer = TokenSigner(key, issuer_id="bank", kid=kid)
            admin.enroll_cards([EnrollInput(*HOLDER, "330200", 0)])
            face = Statement.of(signer.attest(HOLDER[0]))
            ecard_id = deployment.cards.issue_ecard(Principal(CHANNEL, "bank"), *HOLDER, face).ecard_id or ""
            minted = [signer.mint(ecard_id, ttl_seconds=300) for _ in range(tokens)]
            verify = deployment.verifier.verify_token
            verify(signer.mint(ecard_id), merchant_id="m", purpose=t.PURPOSE_IDENTITY, min_assurance=0)  # cached
            start = time.perf_counter()
            for token in minted:
                verify(token, merchant_id="m", purpose=t.PURPOSE_IDENTITY, min_assurance=0)
            verify_s = time.perf_counter() - start
            card = deployment.card_cache.get(ecard_id)
            assert card is not None
            issued = [int(time.time())] * tokens
            start = time.perf_counter()
            refused = 0
            for issued_at in issued:  # the added comparison, as _check makes it
                if issued_at < card.replaced_at:
                    refused += 1
            check_s = time.perf_counter() - start - _loop_s(issued)
        finally:
            deployment.close()
    per_verify_us = verify_s / tokens * 1e6
    per_check_ns = max(check_s, 0.0) / tokens * 1e9
    return {
        "tokens": tokens,
        "verify_us": round(per_verify_us, 2),
        "added_check_ns": round(per_check_ns, 1),
        "verify_without_check_vs_with": round(per_verify_us / (per_verify_us - per_check_ns / 1000), 5),
        "refused": refused,
    }


def _loop_s(values: list[int]) -> float:
    """The bare loop's own time, taken out of the check's."""
    start = time.perf_counter()
    for _ in values:
        pass
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.binding_check", description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--out", default="reports/bench_binding_check.json")
    args = parser.parse_args(argv)
    figures = measure(args.tokens)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    for name, value in figures.items():
        print(f"{name:<30} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
