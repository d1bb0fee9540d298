"""A replica frozen mid-flight (SIGSTOP: its kernel still accepts connections, it answers nothing) leaves
the SDK's round robin within seconds, by the keepalive pings the SDK sends and the server allows."""

from __future__ import annotations

import contextlib
import signal
import time
import uuid
from pathlib import Path

import pytest

from ecard import ClientOptions, EcardError, NotFound, PharmacyClient, RetryConfig
from ecard.testing import EcardServer, World
from tests.helpers.deployment import config_file

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def answered(pos: PharmacyClient) -> bool:
    """One call within its 1-s deadline (an unknown settlement: NOT_FOUND is an answer)."""
    try:
        pos.get_settlement("no-such-settlement")
    except NotFound:
        return True
    except EcardError:
        return False
    return True


def test_a_frozen_replica_leaves_the_rotation_within_seconds(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    config = config_file(tmp_path, f"ecard-test-{uuid.uuid4().hex[:12]}")
    a = EcardServer(db=pg_url, redis=redis_url, extra_args=["--config", config])
    b = EcardServer(db=pg_url, redis=redis_url, extra_args=["--config", config])
    with a, b:
        assert b.process is not None
        world = World.seed(a.target, cards=1)
        options = ClientOptions(timeout=1.0, retry=RetryConfig(max_attempts=1))
        with PharmacyClient([a.target, b.target], merchant_id=world.pharmacy_id, options=options) as pos:
            assert all(answered(pos) for _ in range(20))
            # both replicas in the rotation: b has answered some of them (on a loaded machine b's
            # connection may be READY only later; until then round robin sends every call to a)
            deadline = time.monotonic() + 15
            while '"GetSettlement"' not in b.logs():
                assert time.monotonic() < deadline, "replica b never joined the rotation"
                assert answered(pos)
            b.process.send_signal(signal.SIGSTOP)
            frozen_at = time.monotonic()
            try:
                streak, failures = 0, 0
                while streak < 30:  # 30 answers in a row: the frozen replica gets no more calls
                    assert time.monotonic() - frozen_at < 30, "the frozen replica is still in the rotation"
                    if answered(pos):
                        streak += 1
                    else:
                        streak, failures = 0, failures + 1
                left = time.monotonic() - frozen_at
            finally:
                with contextlib.suppress(ProcessLookupError):
                    b.process.send_signal(signal.SIGCONT)
    print(f"frozen replica out of the rotation {left:.1f} s after SIGSTOP ({failures} calls timed out meanwhile)")
    assert failures >= 1  # it was in the rotation when frozen
