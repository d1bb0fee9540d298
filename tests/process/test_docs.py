"""Every code block of README.md and docs/*.md runs, the way a reader pastes them, against a real server.

What runs, per document, in order:
- ```python blocks: executed in one namespace per document (a block sees what the blocks above it defined).
- ```sh / ```bash blocks: run by `bash -e` (stop at the first failing command), with `ecard` on PATH.
- Blocks in any other language, or none (TOML, output, byte layouts, command synopses) are data and not run.

Where they run: one `ecard serve` (fresh SQLite) for this module, loaded with the demo set as `make run`
leaves it (`ecard demo --out var/demo`, run again in each document's own temporary working directory,
which also holds a `.venv/bin/activate` that puts this interpreter's `ecard` on PATH, and `docs/`, a link to
the repository's, as a reader at the repository root has). The address
`127.0.0.1:50051` in a block is replaced by the test server's, and shell blocks get `ECARD_TARGET`.

Markers, an HTML comment on the line just before a block (use sparingly, say why):
- `<!-- doc-test: skip WHY -->`: not run (it starts a long-running process, needs a real deployment ...).
- `<!-- doc-test: demo-placeholders -->`: the words KID and ECARD_ID in the block stand for what
  `make run` printed; the harness puts in the demo's kid and first e-card id.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecard.testing import EcardServer
from ecard_server.demo import load_demo
from tests.helpers.docs import DOC_ADDRESS, Block, blocks

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A document's blocks start `ecard` once per command (docs/operations.md: 22, three times over in this
# module). On a loaded machine (load average 20 on 2 cores, 19:00 UTC 3 Dec 2026) operations.md took over
# pytest's default 120 s and was failed by the timeout, not by a block; each block keeps its own 120 s.
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def docs_server() -> Iterator[EcardServer]:
    with EcardServer() as server:
        yield server


def activate_script(workdir: Path) -> None:
    """`.venv/bin/activate` in the working directory: what `source .venv/bin/activate` gives a reader."""
    activate = workdir / ".venv" / "bin" / "activate"
    activate.parent.mkdir(parents=True)
    activate.write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')


def run_shell(block: Block, code: str, workdir: Path, target: str) -> None:
    env = {**os.environ, "ECARD_TARGET": target, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{block.where}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def runnable_blocks(document: Path) -> list[Block]:
    """The blocks of `document` to run; the test is skipped (before any server starts) when there is none."""
    runnable = [b for b in blocks(document) if b.marker != "skip"]
    if not runnable:
        pytest.skip(f"{document.name} has no runnable code block")
    return runnable


def run_document(document: Path, server: EcardServer, workdir: Path) -> None:
    """A document's runnable blocks, in order, in `workdir` (the demo loaded, as `make run` leaves it)."""
    runnable = runnable_blocks(document)
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / ".venv").exists():
        activate_script(workdir)
        (workdir / "docs").symlink_to(ROOT / "docs", target_is_directory=True)
    demo = load_demo(server.target, workdir / "var" / "demo")
    os.chdir(workdir)
    namespace: dict[str, object] = {"__name__": f"doc_{document.stem}"}
    for block in runnable:
        code = block.code.replace(DOC_ADDRESS, server.target)
        if block.marker == "demo-placeholders":
            code = re.sub(r"\bKID\b", demo.kid, re.sub(r"\bECARD_ID\b", demo.ecard_ids[0], code))
        if block.kind == "sh":
            run_shell(block, code, workdir, server.target)
            continue
        try:
            exec(compile(code, block.where, "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{block.where}: {type(exc).__name__}: {exc}") from exc


@pytest.mark.parametrize("document", DOCUMENTS, ids=[d.name for d in DOCUMENTS])
def test_every_code_block_runs(document: Path, docs_server: EcardServer, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_document(document, docs_server, tmp_path)


@pytest.mark.parametrize("document", DOCUMENTS, ids=[d.name for d in DOCUMENTS])
def test_a_guide_pasted_twice_on_one_server(document: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader who pastes a guide's blocks a second time, on the same server, is not refused for having
    run them once (an idempotency key reused for another basket, a card issued already): each run on a
    server of its own (the shared one has run the guide already), once in a fresh folder, once again."""
    monkeypatch.chdir(tmp_path)
    runnable_blocks(document)  # a document with nothing to run needs no server of its own
    with EcardServer() as server:
        run_document(document, server, tmp_path / "first")
        run_document(document, server, tmp_path / "second")


def test_markers_are_read() -> None:
    """The harness sees a skip and what it skips (so a typo in a marker cannot turn a check off)."""
    readme = list(blocks(ROOT / "README.md"))
    assert any(b.marker == "skip" and "make run" in b.code for b in readme)
    assert any(b.kind == "python" and b.marker == "" for b in readme)
