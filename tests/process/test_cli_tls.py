"""`ecard admin` and `ecard verify` against a production-mode (mTLS) server, by flags and by environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ecard import ClientOptions, TLSConfig, TokenSigner, generate_private_key, private_key_pem, public_key_pem
from ecard.testing import EcardServer
from tests.helpers.cli import assert_one_line_error


def ecard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ECARD_TLS") and k != "ECARD_TARGET"}
    return subprocess.run([sys.executable, "-m", "ecard_server.cli", *args], capture_output=True, text=True,
                          timeout=60, env={**clean, **(env or {})})


def _files(folder: Path, who: str, tls: TLSConfig) -> dict[str, str]:
    """Writes one principal's PEMs; returns them as the ECARD_TLS_* variables."""
    (folder / f"{who}.crt").write_bytes(tls.client_cert)
    (folder / f"{who}.key").write_bytes(tls.client_key)
    return {"ECARD_TLS_CA": str(folder / "ca.pem"), "ECARD_TLS_CERT": str(folder / f"{who}.crt"),
            "ECARD_TLS_KEY": str(folder / f"{who}.key"), "ECARD_TLS_SERVER_NAME": "localhost"}


def _flags(files: dict[str, str]) -> list[str]:
    return ["--tls-ca", files["ECARD_TLS_CA"], "--tls-cert", files["ECARD_TLS_CERT"],
            "--tls-key", files["ECARD_TLS_KEY"], "--tls-server-name", files["ECARD_TLS_SERVER_NAME"]]


@pytest.fixture(scope="module")
def mtls_server(pki: dict) -> EcardServer:
    folder = pki["folder"]
    server = EcardServer(
        extra_args=["--tls-cert", str(folder / "server.crt"), "--tls-key", str(folder / "server.key"),
                    "--client-ca", str(folder / "ca.pem")],
        client_options=ClientOptions(tls=pki["admin"]),
    )
    with server:
        yield server


def test_operator_and_counter_commands_reach_an_mtls_server(pki: dict, mtls_server: EcardServer,
                                                            tmp_path: Path) -> None:
    folder, target = pki["folder"], mtls_server.target
    admin = _files(folder, "admin", pki["admin"])
    merchant = _files(folder, "merchant", pki["merchant"])
    channel = _files(folder, "channel", pki["channel"])
    # flags: the admin certificate names the operator
    key = generate_private_key()
    (tmp_path / "bank.pub.pem").write_text(public_key_pem(key))
    for args in (["issuer", "tls-bank", "--name", "TLS Bank"], ["merchant", "tls-pharmacy", "--kind", "pharmacy"]):
        done = ecard("admin", "--target", target, *_flags(admin), *args)
        assert done.returncode == 0, done.stderr
    registered = ecard("admin", "--target", target, *_flags(admin), "register-key", "--issuer", "tls-bank",
                       "--pub", str(tmp_path / "bank.pub.pem"))
    assert registered.returncode == 0, registered.stderr
    kid = json.loads(registered.stdout)["kid"]
    csv = tmp_path / "cards.csv"
    csv.write_text("M00000009,周九,330203198001010099,330200,0\n")
    assert ecard("admin", "--target", target, *_flags(admin), "enroll", str(csv)).returncode == 0
    # environment only: the channel issues, the pharmacy verifies (target from ECARD_TARGET too)
    key_file = tmp_path / "bank.key.pem"
    key_file.write_bytes(private_key_pem(key))
    issued = ecard("admin", "issue", "--channel", "tls-bank", "--key", str(key_file), "--assurance", "face",
                   "M00000009", "周九", "330203198001010099", env={**channel, "ECARD_TARGET": target})
    assert issued.returncode == 0, issued.stderr
    token = TokenSigner(key, issuer_id="tls-bank", kid=kid).mint(json.loads(issued.stdout)["ecardId"])
    verify = ["verify", token, "--merchant", "tls-pharmacy"]
    first = ecard(*verify, env={**merchant, "ECARD_TARGET": target})
    assert first.returncode == 0 and json.loads(first.stdout)["reason"] == "REASON_OK", first.stderr
    again = ecard(*verify, "--target", target, *_flags(merchant))
    assert again.returncode == 3 and json.loads(again.stdout)["reason"] == "REASON_REPLAYED"
    # the certificate, not the command, names the principal: a channel certificate may not verify
    assert_one_line_error(ecard(*verify, "--target", target, *_flags(channel)), "PERMISSION_DENIED")
    # a flag wins over its variable: the merchant's files in the environment, the admin's in flags
    shown = ecard("admin", *_flags(admin), "keys", "--issuer", "tls-bank", env={**merchant, "ECARD_TARGET": target})
    assert shown.returncode == 0 and json.loads(shown.stdout)["kid"] == kid, shown.stderr


def test_plaintext_to_an_mtls_server_is_one_line_unavailable(mtls_server: EcardServer) -> None:
    done = ecard("admin", "--target", mtls_server.target, "--timeout", "2", "keys")
    assert_one_line_error(done, "UNAVAILABLE")


def test_bad_tls_settings_are_usage_errors(pki: dict, tmp_path: Path) -> None:
    files = _files(pki["folder"], "admin", pki["admin"])
    partial = ecard("admin", "--tls-ca", files["ECARD_TLS_CA"], "keys", env={"ECARD_TLS_KEY": files["ECARD_TLS_KEY"]})
    assert_one_line_error(partial, "--tls-cert")
    assert partial.returncode == 2
    missing = ecard("verify", "X", "--merchant", "m", *_flags({**files, "ECARD_TLS_CA": str(tmp_path / "no.pem")}))
    assert_one_line_error(missing, "no.pem")
    assert missing.returncode == 2
    swapped = ecard("admin", *_flags({**files, "ECARD_TLS_KEY": files["ECARD_TLS_CERT"]}), "keys")
    assert_one_line_error(swapped, "client key", "private key")
    assert swapped.returncode == 2
    assert_one_line_error(ecard("admin", "--timeout", "soon", "keys"), "--timeout")
