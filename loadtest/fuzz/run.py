"""`make fuzz`: hostile tokens by the hundred thousand against a real `ecard serve`, never an accept.

    python -m loadtest.fuzz [--cases 100000] [--seed 1] [--concurrency 32] [--out reports/fuzz.json]

Starts its own server on loopback (fresh SQLite file), seeds two issuers (Ed25519 and ECDSA P-256)
through the public API, then sends Verify calls, `--concurrency` in flight:

- the hostile cases of `loadtest.fuzz.cases` (bit flips, truncations, inserted bytes, huge varints,
  wrong algorithms and versions, altered claims, other issuers' keys, bad times, garbage): each must
  answer OK with VERDICT_REJECTED and a reason (the one it must get, where a case has one), or
  INVALID_ARGUMENT; anything else (an accept, INTERNAL, UNKNOWN, UNAVAILABLE) is a failure;
- controls: one fresh valid token every CONTROL_EVERY cases, which must be accepted (the oracle can
  see an accept); mutants are made only from accepted tokens;
- replays: every REPLAY_EVERY cases the same fresh token from REPLAY_CALLERS concurrent callers,
  exactly one of them accepted, every other one REASON_REPLAYED.

At the end the server must still be alive and SERVING, with no `rpc_crashed` in its log. Prints the
counts and rates, writes the JSON and exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from ecard import generate_private_key
from ecard.testing import EcardServer, World, wait_healthy
from ecard.v1 import types_pb2 as t
from ecard.v1 import verifier_pb2, verifier_pb2_grpc
from loadtest.bench.limits import capacity_config
from loadtest.fuzz.cases import ANY_REJECTION, Case, Corpus, cases

CONTROL_EVERY = 50
REPLAY_EVERY = 2000
REPLAY_CALLERS = 50
MAX_FAILURES_KEPT = 20


@dataclass
class Tally:
    cases: int = 0
    by_kind: dict[str, collections.Counter[str]] = field(default_factory=dict)
    controls: int = 0
    replay_groups: int = 0
    failures: list[str] = field(default_factory=list)
    failure_count: int = 0

    def fail(self, message: str) -> None:
        self.failure_count += 1
        if len(self.failures) < MAX_FAILURES_KEPT:
            self.failures.append(message)

    def answer(self, kind: str, outcome: str) -> None:
        self.by_kind.setdefault(kind, collections.Counter())[outcome] += 1


class Fuzzer:
    def __init__(self, target: str, merchant_id: str, corpus: Corpus, concurrency: int) -> None:
        self.channel = grpc.aio.insecure_channel(target)
        self.stub = verifier_pb2_grpc.VerifierStub(self.channel)
        self.metadata = (("x-ecard-principal", f"merchant:{merchant_id}"),)
        self.corpus = corpus
        self.tally = Tally()
        self._slots = asyncio.Semaphore(concurrency)
        self._rng = random.Random()

    async def _verify(self, text: str) -> tuple[str, int]:
        """("OK", reason) or (status code name, 0)."""
        request = verifier_pb2.VerifyRequest(token=text, purpose=t.PURPOSE_IDENTITY, min_assurance=t.ASSURANCE_NONE)
        try:
            answer = await self.stub.Verify(request, metadata=self.metadata, timeout=30)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name, 0
        if (answer.verdict == t.VERDICT_ACCEPTED) != (answer.reason == t.REASON_OK):
            return "INCONSISTENT", answer.reason
        return "OK", answer.reason

    async def hostile(self, case: Case) -> None:
        try:
            status, reason = await self._verify(case.text)
        finally:
            self._slots.release()
        tally = self.tally
        if status == "INVALID_ARGUMENT":
            tally.answer(case.kind, "INVALID_ARGUMENT")
            return
        outcome = t.Reason.Name(reason) if status == "OK" else status
        tally.answer(case.kind, outcome)
        if status != "OK" or reason in (t.REASON_OK, t.REASON_UNSPECIFIED):
            tally.fail(f"{case.kind}: {outcome} for {case.text!r}")
        elif case.reason != ANY_REJECTION and reason != case.reason:
            tally.fail(f"{case.kind}: {outcome}, expected {t.Reason.Name(case.reason)} for {case.text!r}")

    async def control(self) -> None:
        corpus = self.corpus
        token = corpus.signer.mint(self._rng.choice(corpus.ecard_ids), purposes=[t.PURPOSE_IDENTITY])
        status, reason = await self._verify(token)
        self.tally.controls += 1
        if (status, reason) != ("OK", t.REASON_OK):
            self.tally.fail(f"control: a valid token got {status} {t.Reason.Name(reason)}")
            return
        corpus.consumed.append(token)
        del corpus.consumed[:-200]  # mutants come from recent accepted tokens

    async def replay_group(self) -> None:
        token = self.corpus.signer.mint(self._rng.choice(self.corpus.ecard_ids), purposes=[t.PURPOSE_IDENTITY])
        answers = await asyncio.gather(*(self._verify(token) for _ in range(REPLAY_CALLERS)))
        self.tally.replay_groups += 1
        counts = collections.Counter(answers)
        expected = {("OK", t.REASON_OK): 1, ("OK", t.REASON_REPLAYED): REPLAY_CALLERS - 1}
        if counts != expected:
            self.tally.fail(f"replay: {REPLAY_CALLERS} callers of one token got {dict(counts)}")

    async def run(self, rng: random.Random, count: int) -> Tally:
        self._rng = random.Random(rng.random())
        for _ in range(5):
            await self.control()
        tasks: set[asyncio.Task[None]] = set()
        for n, case in enumerate(cases(rng, self.corpus, count)):
            if n % CONTROL_EVERY == 0:
                await self.control()
            if n % REPLAY_EVERY == REPLAY_EVERY // 2:
                await self.replay_group()
            await self._slots.acquire()
            task = asyncio.create_task(self.hostile(case))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            self.tally.cases += 1
        await asyncio.gather(*tasks)
        await self.channel.close()
        return self.tally


def _corpus(target: str) -> tuple[Corpus, str]:
    first = World.seed(target, cards=20, prefix="fz")
    second = World.seed(target, cards=5, algorithm=t.KEY_ALGORITHM_ECDSA_P256, prefix="fzb")
    corpus = Corpus(signer=first.signer, signer_key=first.key, other=second.signer, other_key=second.key,
                    stranger=generate_private_key(), ecard_ids=first.ecard_ids, other_ecard_ids=second.ecard_ids,
                    now=lambda: int(time.time()))
    return corpus, first.pharmacy_id


async def _fuzz_on_a_loop(target: str, merchant_id: str, corpus: Corpus, concurrency: int, seed: int,
                          count: int) -> Tally:
    """The channel and semaphore belong to the loop that runs them."""
    return await Fuzzer(target, merchant_id, corpus, concurrency).run(random.Random(seed), count)


def fuzz(count: int, *, seed: int = 1, concurrency: int = 32) -> dict[str, Any]:
    """Runs `count` hostile cases against a fresh loopback server; the report (failures empty: passed)."""
    with tempfile.TemporaryDirectory(prefix="ecard-fuzz-") as folder, EcardServer(extra_args=[
            "--config", capacity_config(Path(folder) / "limits.toml")]) as server:  # one merchant, flat out
        corpus, merchant_id = _corpus(server.target)
        start = time.perf_counter()
        tally = asyncio.run(_fuzz_on_a_loop(server.target, merchant_id, corpus, concurrency, seed, count))
        seconds = time.perf_counter() - start
        alive = server.process is not None and server.process.poll() is None
        if not alive:
            tally.fail("the server died")
        else:
            wait_healthy(server.target, timeout=10)
        crashes = server.logs().count('"rpc_crashed"')
        if crashes:
            tally.fail(f"the server logged rpc_crashed {crashes} times")
    answers: collections.Counter[str] = collections.Counter()
    for outcomes in tally.by_kind.values():
        answers.update(outcomes)
    calls = tally.cases + tally.controls + tally.replay_groups * REPLAY_CALLERS
    return {
        "cases": tally.cases, "seed": seed, "concurrency": concurrency, "seconds": round(seconds, 2),
        "cases_per_second": round(tally.cases / seconds), "calls": calls, "calls_per_second": round(calls / seconds),
        "controls_accepted": tally.controls, "replay_groups": tally.replay_groups,
        "accepted_hostile": sum(o.get("REASON_OK", 0) for o in tally.by_kind.values()),
        "invalid_argument": answers["INVALID_ARGUMENT"], "server_crashes": crashes,
        "by_kind": {kind: dict(outcomes.most_common()) for kind, outcomes in sorted(tally.by_kind.items())},
        "failure_count": tally.failure_count, "failures": tally.failures,
    }


def print_report(report: dict[str, Any]) -> None:
    print(f"{report['cases']:,} hostile cases in {report['seconds']} s ({report['cases_per_second']:,}/s; "
          f"{report['calls']:,} Verify calls in all, {report['calls_per_second']:,}/s), seed {report['seed']}")
    print(f"controls accepted: {report['controls_accepted']:,}; replay groups of {REPLAY_CALLERS} callers: "
          f"{report['replay_groups']}; INVALID_ARGUMENT: {report['invalid_argument']:,}; "
          f"hostile accepted: {report['accepted_hostile']}; server crashes: {report['server_crashes']}")
    for kind, outcomes in report["by_kind"].items():
        top = ", ".join(f"{name} {n:,}" for name, n in list(outcomes.items())[:4])
        print(f"  {kind:17} {sum(outcomes.values()):7,}  {top}")
    if report["failure_count"]:
        print(f"FUZZ FAIL: {report['failure_count']} failures; first ones:")
        for line in report["failures"]:
            print(f"  {line}")
    else:
        print("FUZZ PASS: no accept, no crash, every answer a rejection with a reason or INVALID_ARGUMENT")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None, help="write the report as JSON")
    args = parser.parse_args(argv)
    if args.cases < 1 or args.concurrency < 1:
        parser.error("--cases and --concurrency must be positive")
    report = fuzz(args.cases, seed=args.seed, concurrency=args.concurrency)
    print_report(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return 1 if report["failure_count"] else 0
