"""What a till meets before and around a Verify: an address that is wrong or a server that cannot be
reached (nothing is sent, so the token is not consumed and the SDK says so at once, naming the address
and the cause), a keyboard-wedge scanner's CR/LF, and the request id that the till prints being the one
in the server's log line."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ecard import AsyncPharmacyClient, PharmacyClient, Purpose, TokenNotConsumed, Unreachable, Verdict
from ecard.testing import EcardServer, World, free_port


@pytest.mark.parametrize("address", ["foo bar", "http://127.0.0.1:50051", "127.0.0.1", "pharmacy.internal:",
                                     "127.0.0.1:99999", ""])
def test_an_address_that_is_not_host_port_is_refused_before_anything_is_sent(address: str) -> None:
    with pytest.raises(ValueError, match="server address") as refused:
        PharmacyClient(address, merchant_id="m")
    assert repr(address) in str(refused.value) or not address


def unreachable_targets() -> list[tuple[str, str]]:
    return [(f"127.0.0.1:{free_port()}", "connection refused"), ("no-such-pharmacy.invalid:50051",
                                                                  "name does not resolve")]


@pytest.mark.parametrize(("target", "cause"), unreachable_targets(), ids=["refused", "no-such-name"])
def test_an_unreachable_server_means_the_token_was_not_consumed(target: str, cause: str) -> None:
    with PharmacyClient(target, merchant_id="m") as pos, pytest.raises(TokenNotConsumed) as sync_error:
        pos.verify("EC1:ANY", purpose=Purpose.MEDICAL_SETTLEMENT)

    async def averify() -> None:
        async with AsyncPharmacyClient(target, merchant_id="m") as apos:
            await apos.verify("EC1:ANY", purpose=Purpose.MEDICAL_SETTLEMENT)

    with pytest.raises(TokenNotConsumed) as async_error:
        asyncio.run(averify())
    for error in (sync_error.value, async_error.value):
        assert isinstance(error.cause, Unreachable)
        assert f"cannot reach {target} ({cause})" in str(error)
        assert error.request_id  # the till can still print what it tried


def test_other_calls_name_the_address_and_the_cause() -> None:
    target = f"127.0.0.1:{free_port()}"
    with PharmacyClient(target, merchant_id="m") as pos, pytest.raises(Unreachable) as error:
        pos.get_settlement("S1")
    assert str(error.value) == f"UNREACHABLE: cannot reach {target} (connection refused)"
    assert error.value.status_name == "UNAVAILABLE"  # still an Unavailable: safe calls were retried


def test_ecard_verify_says_it_cannot_reach_the_server() -> None:
    target = f"127.0.0.1:{free_port()}"
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "ecard_server.cli", "verify", "EC1:ANY", "--merchant", "m",
                           "--target", target], capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - start
    assert done.returncode != 0 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot reach {target} (connection refused)" in lines[0], done.stderr
    assert "not consumed" in lines[0]
    print(f"ecard verify against a closed port answered in {elapsed:.2f} s")


@pytest.fixture(scope="module")
def logged_server(tmp_path_factory: pytest.TempPathFactory) -> tuple[EcardServer, World, Path]:
    log = tmp_path_factory.mktemp("reach") / "serve.log"
    server = EcardServer(log_path=log)
    server.__enter__()
    try:
        world = World.seed(server.target, cards=1)
    except BaseException:
        server.__exit__(None, None, None)
        raise
    yield server, world, log  # type: ignore[misc]
    server.__exit__(None, None, None)


@pytest.mark.parametrize("end", ["\r\n", "\n", "\r"], ids=["crlf", "lf", "cr"])
def test_a_scanners_line_end_is_dropped(logged_server: tuple[EcardServer, World, Path], end: str) -> None:
    _, world, _ = logged_server
    with world.pharmacy() as pos:
        answer = pos.verify(world.mint(0) + end, purpose=Purpose.MEDICAL_SETTLEMENT)
    assert answer.verdict == Verdict.ACCEPTED


def test_the_request_id_the_till_prints_is_in_the_servers_log(logged_server: tuple[EcardServer, World, Path]) -> None:
    _, world, log = logged_server
    with world.pharmacy() as pos:
        answer = pos.verify(world.mint(0), purpose=Purpose.MEDICAL_SETTLEMENT)
        chosen = pos.verify("EC1:NOT-A-TOKEN", purpose=Purpose.MEDICAL_SETTLEMENT, request_id="till-7-000042")
    assert answer.request_id and chosen.request_id == "till-7-000042"
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        verifies = [line for line in lines if (line.get("event"), line.get("method")) == ("rpc", "Verify")]
        logged = {line.get("request_id") for line in verifies}
        if {answer.request_id, "till-7-000042"} <= logged:
            return
        assert time.monotonic() < deadline, f"{answer.request_id} not among the logged ids {sorted(logged)[-5:]}"
        time.sleep(0.1)
