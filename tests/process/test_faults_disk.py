"""SQLite on a read-only or full disk: a clear UNAVAILABLE, nothing half-written, and the server heals
once the disk is writable again (no restart).

The disk is a small tmpfs that the test mounts and unmounts itself (CI runs as root; permission bits
would not stop root, a read-only mount does). When it cannot mount, the test FAILS."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from ecard import EcardError, PharmacyClient
from ecard.testing import EcardServer, World, free_port
from ecard_server.storage import open_store
from tests.helpers.load import ITEMS, PRICE_FEN

pytestmark = pytest.mark.slow
BALANCE_FEN = 1_000_000


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        pytest.fail(f"mount {' '.join(args)} failed (the test needs root): {result.stderr.strip()}")


@contextlib.contextmanager
def small_disk(size: str = "8m") -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="ecard-disk-")
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", folder)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", folder], capture_output=True, timeout=30)
        os.rmdir(folder)


def _settle(pos: PharmacyClient, world: World, key: str) -> str:
    """"OK", or the error as STATUS REASON."""
    token = world.mint(0, ttl_seconds=300)
    try:
        pos.settle(ITEMS, idempotency_key=key, token=token)
    except EcardError as exc:
        return f"{exc.status_name} {exc.reason}"
    return "OK"


def _consistent(db: str, world: World, settled: int) -> None:
    """Exactly the acknowledged settlements, and the account equal to its ledger."""
    store = open_store(db)
    try:
        count = store.rows("SELECT COUNT(*) FROM settlements WHERE merchant_id = ?", (world.pharmacy_id,))
        assert int(count[0][0]) == settled
        card_no = world.cards[0][0]
        card = store.get_card(card_no=card_no)
        assert card is not None
        assert card.balance_fen == store.ledger.ledger_total(card_no) == BALANCE_FEN - PRICE_FEN * settled
    finally:
        store.close()


def test_read_only_disk_refuses_to_start_in_one_line_and_changes_nothing() -> None:
    """A disk that turned read-only (the kernel does that after I/O errors): `ecard serve` says so in one
    line and exits 2, the database files are left as they were, and a writable disk serves them again.
    (A read-only remount under the running server cannot be played: the kernel refuses it while the
    server holds its files open for writing; a full disk, below, is the running case.)"""
    with small_disk() as folder:
        db = f"sqlite:///{folder}/ecard.db"
        with EcardServer(db=db) as server:
            world = World.seed(server.target, cards=1, balance_fen=BALANCE_FEN)
            with world.pharmacy() as pos:
                assert _settle(pos, world, "before") == "OK"
        before = {name: _digest(os.path.join(folder, name)) for name in os.listdir(folder)}
        _mount("-o", "remount,ro", folder)
        try:
            result = subprocess.run([sys.executable, "-m", "ecard_server.cli", "serve", "--db", db, "--listen",
                                     f"127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=60)
        finally:
            _mount("-o", "remount,rw", folder)
        print(f"\nread-only disk: exit {result.returncode}, {result.stderr.strip()!r}")
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
        assert "ecard.db" in result.stderr and "Traceback" not in result.stderr
        assert {name: _digest(os.path.join(folder, name)) for name in os.listdir(folder)} == before
        with EcardServer(db=db) as server, PharmacyClient(server.target, merchant_id=world.pharmacy_id) as pos:
            assert _settle(pos, world, "after") == "OK"
        _consistent(db, world, settled=2)


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_full_disk_is_unavailable_writes_nothing_and_heals() -> None:
    with small_disk("8m") as folder:
        db = f"sqlite:///{folder}/ecard.db"
        with EcardServer(db=db) as server:
            world = World.seed(server.target, cards=1, balance_fen=BALANCE_FEN)
            with world.pharmacy() as pos:
                assert _settle(pos, world, "before") == "OK"
                filler = os.path.join(folder, "filler")
                with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as out:
                    while True:  # until ENOSPC
                        out.write(b"\0" * 65536)
                refused = [_settle(pos, world, f"full-{n}") for n in range(5)]
                print(f"\nfull disk: settles answered {sorted(set(refused))}")
                os.remove(filler)
                assert set(refused) == {"UNAVAILABLE STORE_UNAVAILABLE"}
                assert _settle(pos, world, "after") == "OK"
            assert server.process is not None and server.process.poll() is None
        _consistent(db, world, settled=2)
