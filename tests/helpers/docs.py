"""The code blocks of README.md and docs/*.md as a reader pastes them: what runs, in order, with the
marker before each (`<!-- doc-test: skip WHY -->`, `<!-- doc-test: demo-placeholders -->`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC_ADDRESS = "127.0.0.1:50051"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.M | re.S)
MARKER = re.compile(r"<!--\s*doc-test:\s*([\w-]+)(.*?)-->")
RUN = {"python": "python", "sh": "sh", "bash": "sh"}


@dataclass(frozen=True)
class Block:
    document: Path
    line: int
    kind: str  # "python" or "sh"
    code: str
    marker: str  # "", "skip" or "demo-placeholders"

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def blocks(document: Path) -> Iterator[Block]:
    """The runnable blocks of a document, in order (with the marker before each, if any)."""
    text = document.read_text()
    for fence in FENCE.finditer(text):
        kind = RUN.get(fence.group(1))
        if kind is None:
            continue
        before = text[: fence.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(before)
        if marker and marker.group(1) not in ("skip", "demo-placeholders"):
            raise AssertionError(f"{document.name}: unknown doc-test marker {marker.group(1)!r}")
        if marker and marker.group(1) == "skip" and not marker.group(2).strip():
            raise AssertionError(f"{document.name}: a doc-test skip must say why")
        line = text.count("\n", 0, fence.start()) + 2
        yield Block(document, line, kind, fence.group(2), marker.group(1) if marker else "")
