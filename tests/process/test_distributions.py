"""Two distributions: the SDK (`ecard`, client/) installs without the server, its databases, Redis,
Locust or Prometheus, and a pharmacy integrator's code from docs/pharmacy.md runs on it alone against a
server; the server (`ecard-server`, server/) holds the server and depends on the SDK."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ecard.testing import EcardServer
from ecard_server.demo import load_demo
from tests.helpers.docs import DOC_ADDRESS, ROOT, blocks

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def build_wheel(folder: str, out: Path) -> Path:
    """The distribution's wheel, built from a copy (a build leaves build/ and *.egg-info beside its source)."""
    source = out / "src" / folder
    shutil.copytree(ROOT / folder, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob(f"{'ecard_server' if folder == 'server' else 'ecard'}-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheels")
    return {"client": build_wheel("client", out), "server": build_wheel("server", out)}


def test_each_wheel_holds_its_own_package(wheels: dict[str, Path]) -> None:
    client = zipfile.ZipFile(wheels["client"]).namelist()
    server = zipfile.ZipFile(wheels["server"]).namelist()
    assert "ecard/__init__.py" in client and "ecard/py.typed" in client and "ecard/v1/verifier_pb2.pyi" in client
    assert not any(name.startswith("ecard_server/") for name in client)
    assert "ecard_server/cli.py" in server and not any(name.startswith("ecard/") for name in server)
    metadata = next(n for n in server if n.endswith("METADATA"))
    assert "Requires-Dist: ecard[fast,qr]==0.1.0" in zipfile.ZipFile(wheels["server"]).read(metadata).decode()


def test_the_pharmacy_guide_runs_on_the_sdk_alone(wheels: dict[str, Path], tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # A clean venv; this interpreter's pip installs into it (`pip --python`): ensurepip's own copy of pip
    # in the venv cost 7 s of CPU (47 s on a loaded machine) and is not what is tested.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    pip = [sys.executable, "-m", "pip", "--python", python]
    guide = (ROOT / "docs" / "pharmacy.md").read_text()
    assert "pip install 'ecard[qr]'" in guide and "pip install zxing-cpp pillow" in guide  # what it tells to install
    installed = subprocess.run([*pip, "install", "--quiet", f"{wheels['client']}[qr]", "zxing-cpp", "pillow"],
                               capture_output=True, text=True, timeout=400)
    assert installed.returncode == 0, installed.stderr[-2000:]
    present = subprocess.run([*pip, "list", "--format=freeze"], capture_output=True, text=True,
                             timeout=60).stdout.lower()
    for absent in ("ecard-server", "psycopg", "redis", "locust", "prometheus-client", "opentelemetry"):
        assert not re.search(rf"^{absent}[=_-]", present, re.M), f"{absent} came with the SDK"
    # Up to its "Testing your integration" section the guide is the SDK alone; that section asks for
    # ecard[testing] (the server, for tests), installed from the wheel built here, then the whole guide
    # runs again on a fresh server (the section uses what the guide defined before it: basket, Purpose...).
    testing_line = guide[: guide.index("## Testing your integration")].count("\n") + 1
    for stage in ("sdk", "testing"):
        if stage == "testing":
            with_testing = subprocess.run(
                [*pip, "install", "--quiet", f"{wheels['client']}[qr,testing]", str(wheels["server"])],
                capture_output=True, text=True, timeout=400)
            assert with_testing.returncode == 0, with_testing.stderr[-2000:]
        with EcardServer() as server:
            demo = load_demo(server.target, tmp_path / stage / "var" / "demo")
            script = []
            for block in blocks(ROOT / "docs" / "pharmacy.md"):
                if block.kind != "python" or block.marker == "skip" or (stage == "sdk" and block.line > testing_line):
                    continue
                code = block.code.replace(DOC_ADDRESS, server.target)
                if block.marker == "demo-placeholders":
                    code = re.sub(r"\bKID\b", demo.kid, re.sub(r"\bECARD_ID\b", demo.ecard_ids[0], code))
                script.append(f"# {block.where}\n{code}")
            (tmp_path / stage / "guide.py").write_text("\n".join(script))
            ran = subprocess.run([python, "guide.py"], cwd=tmp_path / stage, capture_output=True, text=True,
                                 timeout=300)
        assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-3000:]
        if stage == "sdk":
            loaded = subprocess.run([python, "-c", "import sys, ecard, ecard.qr; print(sorted(sys.modules))"],
                                    capture_output=True, text=True, timeout=60).stdout
            assert "ecard" in loaded and "ecard_server" not in loaded
