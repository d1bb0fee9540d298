"""The .proto files keep every name of the shared contract, and the committed generated code is fresh."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKER = ROOT.parent / "shared" / "tools" / "check_contract.py"


@pytest.mark.skipif(not CHECKER.exists(), reason="../shared/tools/check_contract.py is not beside this checkout")
def test_protos_match_the_shared_contract() -> None:
    result = subprocess.run(
        [sys.executable, str(CHECKER), "--proto-dir", str(ROOT / "proto")], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "contract: 0 problem(s)" in result.stdout


def test_generated_code_matches_the_protos(tmp_path: Path) -> None:
    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    plugins = Path(sys.executable).parent  # mypy-protobuf's, as `make proto` runs them
    args = ["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            f"--plugin=protoc-gen-mypy={plugins / 'protoc-gen-mypy'}", f"--mypy_out=quiet:{tmp_path}",
            f"--plugin=protoc-gen-mypy_grpc={plugins / 'protoc-gen-mypy_grpc'}", f"--mypy_grpc_out=quiet:{tmp_path}",
            *protos]
    assert protoc.main(args) == 0
    fresh = sorted(tmp_path.rglob("*_pb2*.py*"))
    assert fresh, "protoc generated nothing"
    stale = [
        str(path.relative_to(tmp_path))
        for path in fresh
        if path.read_bytes() != (ROOT / "client" / path.relative_to(tmp_path)).read_bytes()
    ]
    assert not stale, f"run `make proto`: stale generated files {stale}"


@pytest.mark.parametrize(
    "name", ["Purpose", "Assurance", "Verdict", "Reason", "CardStatus", "DrugClass", "MerchantKind",
             "KeyAlgorithm", "SettlementStatus", "ChannelEventKind", "BindingState", "CounterBindingStatus",
             "UsageKind"],
)
def test_friendly_enums_mirror_the_proto_enums(name: str) -> None:
    import ecard.v1
    from ecard.v1 import cards_pb2, types_pb2

    friendly = getattr(ecard.v1, name)
    module = cards_pb2 if name in cards_pb2.DESCRIPTOR.enum_types_by_name else types_pb2
    values = module.DESCRIPTOR.enum_types_by_name[name].values
    prefix = values[0].name.removesuffix("UNSPECIFIED")
    assert {m.name: m.value for m in friendly} == {v.name.removeprefix(prefix): v.number for v in values}
