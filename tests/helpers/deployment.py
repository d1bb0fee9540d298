"""What tests of a running deployment share: its settings file, its worker processes, its /metrics."""

from __future__ import annotations

import urllib.request
from pathlib import Path


def config_file(folder: Path, namespace: str) -> str:
    """A settings file giving a server its own Redis namespace (the servers of one deployment share it)."""
    path = folder / f"{namespace}.toml"
    path.write_text(f'redis_namespace = "{namespace}"\n')
    return str(path)


def children_of(pid: int) -> list[int]:
    """The pids of the child processes of `pid` (the workers of `ecard serve --workers N`)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def scrape(metrics_port: int, name: str) -> dict[str, float]:
    """{labels: value} of one metric's samples on the server's /metrics."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    samples = (line.rsplit(" ", 1) for line in body.splitlines() if line.startswith(name + "{") or
               line.startswith(name + " "))
    return {labels[len(name):]: float(value) for labels, value in samples}
