"""The supply chain (issue 17): what `make install` and CI install is a lock with a hash for every file,
its versions are past every release with a known vulnerability that requirements/floors.txt names, and
CI sets no fixed password. Before: `pip install -e '.[dev]'` resolved whatever the index offered, with
lower bounds such as cryptography>=42 and protobuf>=4.25, and .ci/run set the password 'ecard-ci'.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ("requirements/dev.txt", "requirements/server.txt")


def locked(path: str) -> dict[str, tuple[Version, list[str]]]:
    """name -> (pinned version, sha256 hashes) of a pip-compile lock."""
    found: dict[str, tuple[Version, list[str]]] = {}
    text = (ROOT / path).read_text()
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        head = block.split(maxsplit=1)[0] if block.strip() and not block.startswith("#") else ""
        if "==" in head:
            name, version = head.split("==")
            found[canonicalize_name(name)] = (Version(version), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
        elif head:
            pytest.fail(f"{path}: {head!r} is not pinned with ==")
    return found


def floors() -> dict[str, Requirement]:
    lines = (ROOT / "requirements/floors.txt").read_text().splitlines()
    reqs = [Requirement(line.split("#", 1)[0].strip()) for line in lines if line.split("#", 1)[0].strip()]
    return {canonicalize_name(r.name): r for r in reqs}


OWN = {"ecard", "ecard-server", "ecard-workspace"}  # this repository's distributions


def project_requirements(pyproject: str = "pyproject.toml") -> list[Requirement]:
    """Every requirement of a pyproject.toml, its extras' included, but those on this repository's own."""
    project = tomllib.loads((ROOT / pyproject).read_text())["project"]
    names = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        names += extra
    return [r for r in map(Requirement, names) if canonicalize_name(r.name) not in OWN]


@pytest.mark.parametrize("pyproject", ["client/pyproject.toml", "server/pyproject.toml"])
def test_each_distribution_asks_only_for_what_the_workspace_locks(pyproject: str) -> None:
    """The SDK and the server name nothing the workspace (and so the locks) does not, within its bounds."""
    workspace = {canonicalize_name(r.name): r for r in project_requirements()}
    for requirement in project_requirements(pyproject):
        name = canonicalize_name(requirement.name)
        assert name in workspace, f"{pyproject}: {requirement} is not in pyproject.toml"
        assert str(requirement.specifier) == str(workspace[name].specifier), (pyproject, requirement)


@pytest.mark.parametrize("path", LOCKS)
def test_every_locked_package_is_pinned_with_hashes(path: str) -> None:
    packages = locked(path)
    assert packages and all(hashes for _, hashes in packages.values()), [n for n, (_, h) in packages.items() if not h]
    assert {"pip", "setuptools"} <= set(packages)  # the installers too


def test_the_locks_hold_every_requirement_of_the_project() -> None:
    dev, server = locked("requirements/dev.txt"), locked("requirements/server.txt")
    for requirement in project_requirements():
        name = canonicalize_name(requirement.name)
        assert name in dev and dev[name][0] in requirement.specifier, requirement
    runtime = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for text in runtime["dependencies"] + runtime["optional-dependencies"]["postgres"] + \
            runtime["optional-dependencies"]["redis"]:
        requirement = Requirement(text)
        assert canonicalize_name(requirement.name) in server, requirement
        assert server[canonicalize_name(requirement.name)][0] == dev[canonicalize_name(requirement.name)][0]


@pytest.mark.parametrize("path", LOCKS)
def test_locked_versions_are_past_every_known_vulnerable_release(path: str) -> None:
    packages = locked(path)
    for name, floor in floors().items():
        if name in packages:
            assert packages[name][0] in floor.specifier, f"{path}: {name} {packages[name][0]} not {floor.specifier}"


def test_the_project_bounds_exclude_the_vulnerable_releases() -> None:
    """A `pip install ecard` without the lock still never takes a release below a floor."""
    known = floors()
    for requirement in project_requirements():
        floor = known.get(canonicalize_name(requirement.name))
        if floor is None:
            continue
        lowest = min(Version(s.version) for s in floor.specifier if s.operator == ">=")
        own = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        assert own and max(own) >= lowest, f"pyproject.toml: {requirement} allows releases below {lowest}"


def test_make_install_and_ci_use_the_lock_and_no_fixed_password() -> None:
    makefile = (ROOT / "Makefile").read_text()
    install = makefile[makefile.index("$(VENV)/.installed:"):].split("\n\n", 1)[0]
    assert "--require-hashes" in install and "requirements/dev.txt" in install
    assert "--no-deps" in install.split("-e client -e server", 1)[0].rsplit("\n", 1)[-1]  # they resolve nothing
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make install" in ci
    assert not re.search(r"PASSWORD\s+'[^$']", ci), "a fixed password in .ci/run"
