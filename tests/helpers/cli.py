"""The `ecard` command line as a user runs it: a subprocess, its exit code, its one-line errors."""

from __future__ import annotations

import subprocess
import sys


def ecard(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecard_server.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ecard"), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
