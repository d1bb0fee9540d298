"""Single use across restarts of a server whose consumed nonces live in its own memory (no Redis: the
embedded SQLite default, and PostgreSQL `--single-instance`).

A clean stop saves the live nonces in the database and the next process reads them back: a used token
stays used and an unused one still works. A crash saves nothing: the next process refuses every token
issued before its start (plus the clock skew) as REPLAYED, since any of them may have been used, and
takes fresh ones as usual. A second server on the same SQLite file is refused at start.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecard import Purpose, Reason
from ecard.testing import EcardServer, World

SKEW_S = 2


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[EcardServer]:
    config = tmp_path / "ecard.toml"
    config.write_text(f"clock_skew_s = {SKEW_S}\n")
    with EcardServer(db=db_url, extra_args=["--config", str(config)]) as running:
        yield running


def reasons(world: World, tokens: list[str]) -> list[int]:
    with world.pharmacy() as pos:
        return [pos.verify(token, purpose=Purpose.IDENTITY).reason for token in tokens]


def test_a_clean_restart_keeps_used_tokens_used_and_unused_ones_usable(served: EcardServer) -> None:
    world = World.seed(served.target, cards=2)
    used, unused = world.mint(0), world.mint(1)
    assert reasons(world, [used]) == [Reason.OK]
    assert served.stop() == 0
    served.start()
    assert reasons(world, [used, unused, world.mint(0)]) == [Reason.REPLAYED, Reason.OK, Reason.OK]
    assert '"nonce_memory_lost"' not in served.logs()


def test_after_a_crash_tokens_issued_before_the_start_are_refused(served: EcardServer) -> None:
    world = World.seed(served.target, cards=2)
    used, unused = world.mint(0), world.mint(1)
    assert reasons(world, [used]) == [Reason.OK]
    served.kill()  # SIGKILL: nothing saved
    served.start()
    started = time.time()
    # Before this fix the restarted process accepted `used` a second time.
    assert reasons(world, [used, unused]) == [Reason.REPLAYED, Reason.REPLAYED]
    assert '"nonce_memory_lost"' in served.logs()
    time.sleep(max(0.0, started + SKEW_S + 1.1 - time.time()))
    fresh = world.mint(0)
    assert reasons(world, [fresh, fresh]) == [Reason.OK, Reason.REPLAYED]
    # A clean stop after the crash saves again: the next start refuses nothing fresh.
    assert served.stop() == 0
    served.start()
    assert reasons(world, [fresh, world.mint(1)]) == [Reason.REPLAYED, Reason.OK]


def test_a_second_server_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    with EcardServer(db=f"sqlite:///{tmp_path}/ecard.db") as first:
        second = EcardServer(db=first.db)
        result = subprocess.run([*second.command()], capture_output=True, text=True, timeout=30)
        world = World.seed(first.target, cards=1)
        assert reasons(world, [world.mint(0)]) == [Reason.OK]  # the first goes on serving
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "another ecard serve uses" in last and "one process only without --redis" in last, result.stderr
