"""`python -m loadtest MODE`: steady, capacity and distributed Locust runs (loadtest.harness.runner), or
failover, three replicas in network namespaces with one killed (loadtest.rig.failover). Both use the
runner's machinery; neither imports this module."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["failover"]:
        from loadtest.rig.failover import main as failover

        return failover(argv[1:])
    from loadtest.harness.runner import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
