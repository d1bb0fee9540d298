"""What this installation is: its version (from the installed distribution's metadata) and the
versions it runs on, for `ecard --version`, the start log line and the `ecard_build_info` metric."""

from __future__ import annotations

import functools
import platform
from importlib import metadata

DISTRIBUTION = "ecard"


def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


@functools.cache
def info() -> dict[str, str]:
    """version, python, grpcio and protobuf: the labels of ecard_build_info."""
    found = {"version": version(), "python": platform.python_version()}
    for label, distribution in (("grpcio", "grpcio"), ("protobuf", "protobuf")):
        try:
            found[label] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found[label] = "unknown"
    return found
