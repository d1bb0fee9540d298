"""The command line as a newcomer follows the guides: `make run`'s demo loaded only into the server it
started, follow-up commands that carry the address, a second run after the guide reported a demo card
lost, connection flags before or after the action, and one-line refusals in the tool's own words."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ecard.testing import EcardServer, free_port
from tests.helpers.cli import assert_one_line_error, ecard


def test_connection_flags_work_before_or_after_the_action() -> None:
    target = f"127.0.0.1:{free_port()}"
    for args in (("admin", "--target", target, "card", "E1"), ("admin", "card", "E1", "--target", target)):
        assert_one_line_error(ecard(*args), f"cannot reach {target} (connection refused)")


def test_refusals_in_the_tools_own_words(tmp_path: Path) -> None:
    assert_one_line_error(ecard("serve", "--listen", "localhost", "--db", f"sqlite:///{tmp_path}/x.db"),
                          "--listen expected HOST:PORT")
    assert_one_line_error(ecard("qr", "hello, pharmacy", "--out", str(tmp_path / "x.png")), "not an e-card token")
    assert not (tmp_path / "x.png").exists()
    kid = ecard("keygen", "--issuer", "bank", "--out", str(tmp_path)).stdout.strip()
    minted = ecard("mint", "--issuer", "bank", "--kid", kid, "--key", str(tmp_path / f"{kid}.key.pem"),
                   "--ecard", "E1", "--ttl", "900")
    assert_one_line_error(minted, "--ttl 900 is over the server's maximum token lifetime of 300 s")
    assert ecard("admin", "issue", "--channel", "bank", "--key", "k.pem", "A1", "N", "1").returncode == 2  # --assurance


def test_the_demo_is_loaded_only_into_the_server_that_make_run_started(tmp_path: Path) -> None:
    with EcardServer() as other:  # a server someone left on the port
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        result = ecard("demo", "--target", other.target, "--out", str(tmp_path), "--server-pid", str(gone.pid))
        assert_one_line_error(result, f"exited before it answered on {other.target}")
        assert not list(tmp_path.glob("*.pem"))  # nothing was loaded


def test_the_demo_twice_after_a_card_was_reported_lost(tmp_path: Path) -> None:
    with EcardServer() as server:
        first = ecard("demo", "--target", server.target, "--out", str(tmp_path))
        assert first.returncode == 0, first.stderr
        assert f"--target {server.target}" in first.stdout  # not the default address: the follow-ups say it
        lost = ecard("admin", "lost", "--card-no", "A00000001", "--target", server.target)
        assert lost.returncode == 0, lost.stderr
        second = ecard("demo", "--target", server.target, "--out", str(tmp_path))
        assert second.returncode == 0, second.stderr
        assert "no e-card for A00000001" in second.stdout
        assert "ecard admin reinstate --card-no A00000001" in second.stdout
        assert len(list(tmp_path.glob("demo-bank-*.key.pem"))) == 1  # the same channel key both times
