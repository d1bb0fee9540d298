"""`make fuzz`, CI size: 10,000 hostile tokens against a real server, and the fuzzer's oracle itself."""

from __future__ import annotations

import asyncio

import pytest

from ecard.testing import EcardServer
from ecard.v1 import types_pb2 as t
from loadtest.fuzz.cases import GENERATORS, Case
from loadtest.fuzz.run import Fuzzer, _corpus, fuzz


@pytest.mark.slow
def test_ten_thousand_hostile_tokens_no_accept_no_crash() -> None:
    report = fuzz(10_000, seed=7, concurrency=32)
    assert report["failures"] == [] and report["failure_count"] == 0
    assert report["cases"] == 10_000 and report["accepted_hostile"] == 0 and report["server_crashes"] == 0
    assert report["controls_accepted"] >= 10_000 // 50 and report["replay_groups"] == 5
    kinds = set(report["by_kind"])
    assert {"bit_flip", "truncation", "insertion", "huge_varint", "wrong_algorithm", "altered_claims",
            "other_issuer_key", "expired", "future", "lifetime", "garbage"} <= kinds
    assert len(GENERATORS) == 9


def test_the_oracle_sees_an_accept_and_a_wrong_reason() -> None:
    """A valid fresh token slipped in among the hostile cases is a failure; so is a wrong expected reason."""
    with EcardServer() as server:
        corpus, merchant_id = _corpus(server.target)

        async def run() -> list[str]:
            fuzzer = Fuzzer(server.target, merchant_id, corpus, 4)
            await fuzzer.control()
            for case in (Case("slipped_in", corpus.signer.mint(corpus.ecard_ids[0])),
                         Case("wrong_reason", corpus.consumed[0][:40], reason=t.REASON_EXPIRED)):
                await fuzzer._slots.acquire()
                await fuzzer.hostile(case)
            await fuzzer.channel.close()
            return fuzzer.tally.failures

        failures = asyncio.run(run())
    assert len(failures) == 2
    assert failures[0].startswith("slipped_in: REASON_OK") and "expected" in failures[1]
