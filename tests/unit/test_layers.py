"""The layers hold: the core imports neither grpc nor storage, its modules import each other one way
only (no cycle, typing-only imports included), and its kinds in order (records, rules, ports, services).
Read from the source with ast, so an import inside a function or under TYPE_CHECKING counts too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "server" / "ecard_server"


def module_name(path: Path, package_root: Path, package: str) -> str:
    parts = list(path.relative_to(package_root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports (`from a import b` counts as a.b too, b may be a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def graph(folder: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports."""
    modules = {module_name(p, folder, package): p for p in folder.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return None


CORE = graph(SERVER / "core", "ecard_server.core")


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_the_core_imports_itself_one_way() -> None:
    assert cycle(CORE) is None


def test_the_core_imports_neither_grpc_nor_storage_nor_the_layers_above() -> None:
    outside = ("grpc", "psycopg", "redis", "sqlite3", "ecard_server.storage", "ecard_server.rpc",
               "ecard_server.app", "ecard_server.serving", "ecard_server.cli")
    bad = {
        module_name(path, SERVER / "core", "ecard_server.core"): sorted(
            m for m in imports_of(path) if m.startswith(outside))
        for path in (SERVER / "core").rglob("*.py")
    }
    assert {name: found for name, found in bad.items() if found} == {}


def test_the_kinds_import_only_the_kinds_before_them() -> None:
    order = ["records", "rules", "ports"]  # then the services, which may import all three

    def kind(module: str) -> int:
        part = module.split(".")[2] if module.count(".") >= 2 else ""
        return order.index(part) if part in order else len(order)

    wrong = sorted((m, n) for m, targets in CORE.items() for n in targets if kind(n) > kind(m))
    assert wrong == []


def test_the_server_uses_only_the_sdks_public_modules() -> None:
    """The SDK's private modules (ecard._*) can change under its users; the server is one of them."""
    private = {path.relative_to(ROOT).as_posix(): sorted(m for m in imports_of(path) if m.startswith("ecard._"))
               for path in SERVER.rglob("*.py")}
    assert {path: names for path, names in private.items() if names} == {}


def test_config_imports_no_core() -> None:
    assert not {m for m in imports_of(SERVER / "config.py") if m.startswith("ecard_server.core")}


TESTS = ROOT / "tests"


def test_no_test_module_imports_another() -> None:
    """Shared test code lives in tests/helpers (and fixtures in the conftest files), never in a test module."""
    test_modules = {p.stem for p in TESTS.rglob("test_*.py")}
    bad = {}
    for path in TESTS.rglob("*.py"):
        found = {m for m in imports_of(path) if m.split(".")[-1] in test_modules or m.split(".")[0] in
                 (*test_modules, "conftest") or ".conftest" in m}
        if found:
            bad[str(path.relative_to(ROOT))] = sorted(found)
    assert bad == {}


def test_every_test_module_is_in_a_tier() -> None:
    """tests/unit, api, process, shared or cluster: a module at the top would run in no tier's target."""
    assert sorted(p.name for p in TESTS.glob("test_*.py")) == []


def test_the_daily_loop_starts_no_process() -> None:
    """`make test-fast` (unit and api) never starts `ecard serve` or any other child process."""
    starts = ("subprocess", "multiprocessing", "ecard.testing.EcardServer")
    bad = {str(path.relative_to(ROOT)): sorted(m for m in imports_of(path) if m.startswith(starts))
           for tier in ("unit", "api") for path in (TESTS / tier).rglob("*.py")}
    assert {name: found for name, found in bad.items() if found} == {}


def test_loadtest_is_a_client_of_the_server() -> None:
    """loadtest imports the SDK (ecard), never the server's code: it starts `ecard serve` processes."""
    bad = {str(path.relative_to(ROOT)): sorted(m for m in imports_of(path) if m.startswith("ecard_server"))
           for path in (ROOT / "loadtest").rglob("*.py")}
    assert {name: found for name, found in bad.items() if found} == {}


def test_loadtest_imports_itself_one_way() -> None:
    assert cycle(graph(ROOT / "loadtest", "loadtest")) is None


def without_package_faces(edges: dict[str, set[str]], folder: Path, package: str) -> dict[str, set[str]]:
    """The graph without the packages' __init__ modules: `from pkg import sub` names pkg, which imports
    its submodules in turn, a loop of the import system's, not of the code."""
    faces = {module_name(p, folder, package) for p in folder.rglob("__init__.py")}
    return {m: targets - faces for m, targets in edges.items() if m not in faces}


def test_the_whole_server_imports_itself_one_way() -> None:
    edges = without_package_faces(graph(SERVER, "ecard_server"), SERVER, "ecard_server")
    assert cycle(edges) is None
