"""`ecard admin` rotates and revokes a channel's keys as that channel, and any issuer's as the operator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ecard import Reason, Verdict
from ecard.testing import EcardServer, World
from tests.helpers.channel import new_signer, verdict


@pytest.fixture
def other(server: EcardServer) -> World:
    """A second channel on the same server."""
    return World.seed(server.target, cards=1)


def ecard_admin(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ecard_server.cli", "admin", "--target", world.target, *args],
                          capture_output=True, text=True, timeout=30)


def test_the_command_line_rotates_and_revokes_as_the_channel(world: World, other: World, tmp_path: Path) -> None:
    signer, pem = new_signer(world)
    (tmp_path / "new.pub.pem").write_text(pem)
    me = ("--channel", world.issuer_id)
    rotated = ecard_admin(world, "rotate-key", *me, "--pub", str(tmp_path / "new.pub.pem"),
                          "--retiring-kid", world.signer.kid, "--overlap", "600")
    assert rotated.returncode == 0, rotated.stderr
    answer = json.loads(rotated.stdout)
    assert answer["newKey"]["kid"] == signer.kid and answer["retiringKey"]["kid"] == world.signer.kid
    listed = ecard_admin(world, "keys", *me)
    assert {json.loads(line)["kid"] for line in listed.stdout.splitlines()} == {world.signer.kid, signer.kid}
    # Another channel's key is not one of its own: one line, non-zero, nothing revoked.
    theirs = ecard_admin(world, "revoke-key", *me, "--kid", other.signer.kid)
    assert theirs.returncode != 0 and len(theirs.stderr.strip().splitlines()) == 1 and "NOT_FOUND" in theirs.stderr
    assert verdict(other, other.signer) == (Verdict.ACCEPTED, Reason.OK)
    assert ecard_admin(world, "revoke-key", *me, "--kid", world.signer.kid).returncode == 0
    assert verdict(world, world.signer) == (Verdict.REJECTED, Reason.KEY_REVOKED)
    # The operator does the same for any issuer with --issuer.
    by_operator = ecard_admin(world, "keys", "--issuer", other.issuer_id)
    assert [json.loads(line)["kid"] for line in by_operator.stdout.splitlines()] == [other.signer.kid]
