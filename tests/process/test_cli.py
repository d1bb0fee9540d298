"""The `ecard` command line, run as a user runs it: a subprocess, exit codes, one-line errors."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from ecard import kid_for, load_public_key_pem, parse_token, private_key_pem
from ecard.testing import EcardServer, World, free_port
from ecard.v1 import types_pb2 as t
from tests.helpers.cli import assert_one_line_error, ecard


@pytest.mark.parametrize("alg", ["ed25519", "p256"])
def test_keygen_writes_a_key_pair_named_by_kid(tmp_path: Path, alg: str) -> None:
    result = ecard("keygen", "--issuer", "bank", "--alg", alg, "--out", str(tmp_path / "keys"))
    assert result.returncode == 0, result.stderr
    kid = result.stdout.strip()
    public = load_public_key_pem((tmp_path / "keys" / f"{kid}.pub.pem").read_bytes())
    assert kid_for(public) == kid
    assert (tmp_path / "keys" / f"{kid}.key.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_mint_defaults_count_and_options(tmp_path: Path) -> None:
    kid = ecard("keygen", "--issuer", "bank", "--out", str(tmp_path)).stdout.strip()
    key = str(tmp_path / f"{kid}.key.pem")
    base = ["mint", "--issuer", "bank", "--kid", kid, "--key", key, "--ecard", "E1234"]
    tokens = ecard(*base, "--count", "3").stdout.splitlines()  # base45 has spaces: one token per line
    assert len(set(tokens)) == 3
    claims = parse_token(tokens[0]).claims
    assert sorted(claims.purposes) == [1, 2, 3, 4] and claims.assurance == t.ASSURANCE_PIN
    assert claims.expires_at - claims.issued_at == 60
    one = parse_token(ecard(*base, "--purpose", "identity", "--purpose", "payment", "--assurance", "face",
                            "--ttl", "30", "--issued-at", "1800000000").stdout.strip()).claims
    assert list(one.purposes) == [t.PURPOSE_IDENTITY, t.PURPOSE_PAYMENT] and one.assurance == t.ASSURANCE_FACE
    assert (one.issued_at, one.expires_at) == (1_800_000_000, 1_800_000_030)


def test_bad_inputs_exit_non_zero_with_one_line(tmp_path: Path) -> None:
    kid = ecard("keygen", "--issuer", "bank", "--out", str(tmp_path)).stdout.strip()
    mint = ["mint", "--issuer", "bank", "--kid", kid, "--ecard", "E1"]
    assert_one_line_error(ecard(*mint, "--key", str(tmp_path / "missing.pem")), "missing.pem")
    assert_one_line_error(ecard(*mint, "--key", str(tmp_path / f"{kid}.pub.pem")), "private key")
    assert_one_line_error(ecard(*mint, "--key", str(tmp_path / f"{kid}.key.pem"), "--assurance", "high"), "assurance")
    assert_one_line_error(ecard(*mint, "--key", str(tmp_path / f"{kid}.key.pem"), "--count", "0"), "--count")
    assert_one_line_error(ecard("serve", "--db", "mysql://nope"), "unsupported database URL")
    assert_one_line_error(ecard("serve", "--listen", "0.0.0.0:0", "--db", f"sqlite:///{tmp_path}/x.db"), "loopback")
    assert_one_line_error(ecard("serve", "--db", f"sqlite:///{tmp_path}/no/such/dir/x.db", "--workers", "2"),
                          "--workers")
    (tmp_path / "bad.toml").write_text("clock_skew_s = 'soon'\n")
    assert_one_line_error(ecard("serve", "--config", str(tmp_path / "bad.toml")), "clock_skew_s")
    assert_one_line_error(ecard("qr", "EC1:ABC", "--out", str(tmp_path / "x.gif")), ".png")
    assert_one_line_error(ecard("verify", "EC1:X", "--merchant", "m", "--target", f"127.0.0.1:{free_port()}"),
                          "UNAVAILABLE")


def test_serve_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = ecard("serve", "--listen", f"127.0.0.1:{port}", "--db", f"sqlite:///{tmp_path}/x.db")
    assert_one_line_error(result, "cannot listen")


def test_qr_renders_png_and_svg(tmp_path: Path) -> None:
    kid = ecard("keygen", "--issuer", "bank", "--out", str(tmp_path)).stdout.strip()
    token = ecard("mint", "--issuer", "bank", "--kid", kid, "--key", str(tmp_path / f"{kid}.key.pem"),
                  "--ecard", "EABCDEFGHIJKLMNOP").stdout.strip()
    for name in ("t.png", "t.svg"):
        assert ecard("qr", token, "--out", str(tmp_path / name)).returncode == 0
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (tmp_path / "t.svg").read_bytes()


def test_demo_then_mint_and_verify_from_the_command_line(server: EcardServer, tmp_path: Path) -> None:
    demo = ecard("demo", "--target", server.target, "--out", str(tmp_path))
    assert demo.returncode == 0, demo.stderr
    mint_line = next(line for line in demo.stdout.splitlines() if "ecard mint" in line)
    args = mint_line.split("ecard mint", 1)[1].rstrip(")").split()
    token = ecard("mint", *args).stdout.strip()
    verify = ["verify", token, "--merchant", "demo-pharmacy", "--purpose", "medical_settlement",
              "--target", server.target]
    first = ecard(*verify)
    assert first.returncode == 0 and "VERDICT_ACCEPTED" in first.stdout, first.stdout + first.stderr
    again = ecard(*verify)
    assert again.returncode == 3 and "REASON_REPLAYED" in again.stdout
    assert ecard("demo", "--target", server.target, "--out", str(tmp_path)).returncode == 0  # idempotent


def test_admin_commands(world: World, tmp_path: Path) -> None:
    csv_file = tmp_path / "cards.csv"
    csv_file.write_text("card_no,holder_name,id_number,region,balance_fen\n"
                        "K00000001,钱一,330203198001010011,330200,1000\nbad row!,x,1,330200,0\n")
    target = ["admin", "--target", world.target]
    enrolled = ecard(*target, "enroll", str(csv_file))
    assert enrolled.returncode == 0 and '"enrolled": "1"' in enrolled.stdout and '"rejected": "1"' in enrolled.stdout
    key_file = tmp_path / "channel.key.pem"
    key_file.write_bytes(private_key_pem(world.key))
    issued = ecard(*target, "issue", "--channel", world.issuer_id, "--key", str(key_file), "--assurance", "face",
                   "K00000001", "钱一", "330203198001010011")
    assert issued.returncode == 0 and "K00000001" not in issued.stdout  # the card number is masked
    assert '"status": "CARD_STATUS_LOST"' in ecard(*target, "lost", "--card-no", "K00000001").stdout
    assert ecard(*target, "keys", "--issuer", world.issuer_id).stdout.count(world.signer.kid) == 1
    assert_one_line_error(ecard(*target, "credit", "Z00000000", "5", "--idempotency-key", "k"), "NOT_FOUND")
    assert_one_line_error(ecard(*target, "enroll", str(tmp_path / "none.csv")), "none.csv")


def test_admin_catalogue_import(tmp_path: Path) -> None:
    """`ecard admin catalogue import FILE.csv`: a new version, or a one-line refusal naming the CSV line
    (nothing imported). Its own server: a catalogue changes how every later basket is priced."""
    good, bad = tmp_path / "catalogue.csv", tmp_path / "bad.csv"
    good.write_text("code,name,class,price_limit_fen,valid_from,valid_to\n"
                    "XA01,amoxicillin,A,1200,,\nXB07,ibuprofen,b,2000,2026-01-01,2030-12-31\n")
    bad.write_text("code,name,class,price_limit_fen\nXA01,amoxicillin,A,1200\nXB07,ibuprofen,B,-5\n")
    with EcardServer() as fresh:
        target = ["admin", "--target", fresh.target]
        imported = ecard(*target, "catalogue", "import", str(good))
        assert imported.returncode == 0 and "catalogue version 1: 2 items" in imported.stdout, imported.stderr
        assert_one_line_error(ecard(*target, "catalogue", "import", str(bad)), "bad.csv line 3", "price_limit_fen",
                              "nothing was imported")
        bad.write_text("XA01,amoxicillin,Z,1200\n")
        assert_one_line_error(ecard(*target, "catalogue", "import", str(bad)), "bad.csv line 1", "class")
        again = ecard(*target, "catalogue", "import", str(good))
        assert "catalogue version 2" in again.stdout
        policy = tmp_path / "policy.json"
        policy.write_text(json.dumps({"name": "cli", "benefits": [
            {"person_category": c, "merchant_kind": k, "deductible_fen": 100, "fund_ratio": "0.5",
             "yearly_cap_fen": 10_000}
            for c in ("employee", "retiree", "resident") for k in ("pharmacy", "hospital")]}))
        assert "benefit policy b1: cli" in ecard(*target, "policy", "import", str(policy)).stdout
        policy.write_text('{"name": "half", "benefits": []}')
        assert_one_line_error(ecard(*target, "policy", "import", str(policy)), "INVALID_POLICY", "no benefit")


def test_quote_then_settle_from_the_command_line(world: World) -> None:
    """`ecard quote` prints the split and its quote_id; `ecard settle` moves exactly it, once."""
    items = ["--item", "XA01:1280:2:A", "--item", "XC11:900:1:C"]
    common = ["--merchant", world.pharmacy_id, "--target", world.target]
    quoted = ecard("quote", "--token", world.mint(0), *items, *common)
    assert quoted.returncode == 0, quoted.stderr
    quote = json.loads(quoted.stdout)
    assert (quote["personalAccountPaidFen"], quote["selfPayFen"]) == ("2560", "900")
    settled = ecard("settle", "--quote-id", quote["quoteId"], "--receipt", "cli-q-1", *items, *common)
    assert settled.returncode == 0 and json.loads(settled.stdout)["personalAccountPaidFen"] == "2560", settled.stderr
    assert_one_line_error(ecard("settle", "--quote-id", quote["quoteId"], "--receipt", "cli-q-2",
                                "--item", "XA01:1280:1:A", *common), "QUOTE_MISMATCH")
    assert_one_line_error(ecard("quote", "--token", world.mint(0), "--item", "XA01:12.80", *common), "XA01:12.80")
