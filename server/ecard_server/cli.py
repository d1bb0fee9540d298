"""The `ecard` command line. Every command exits non-zero with one line on stderr for bad input."""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # our own one-line errors say it; set it to see gRPC's

import argparse
import csv
import functools
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from google.protobuf import json_format

from ecard import (
    ALGORITHMS,
    AdminClient,
    ChannelClient,
    DrugClass,
    EcardError,
    InvalidArgument,
    KeyFormatError,
    PharmacyClient,
    TokenSigner,
    TokenTooLargeError,
    catalogue_item,
    certificate_fingerprint,
    generate_private_key,
    kid_for,
    physical_cards,
    public_key_pem,
    write_private_key,
)
from ecard.v1 import types_pb2
from ecard_server import build
from ecard_server.client_args import DEFAULT_TARGET, add_client_arguments, client_settings, repeat_on_actions
from ecard_server.config import MERCHANT_KINDS, Settings
from ecard_server.counter_cli import add_counter_commands
from ecard_server.quote_cli import add_quote_commands

DEFAULT_DB = "sqlite:///var/ecard.db"
PURPOSES = {
    "identity": types_pb2.PURPOSE_IDENTITY,
    "medical_settlement": types_pb2.PURPOSE_MEDICAL_SETTLEMENT,
    "payment": types_pb2.PURPOSE_PAYMENT,
    "registration": types_pb2.PURPOSE_REGISTRATION,
}
ASSURANCES = {"none": types_pb2.ASSURANCE_NONE, "pin": types_pb2.ASSURANCE_PIN, "face": types_pb2.ASSURANCE_FACE}
ISSUANCE_ASSURANCES = {"face": types_pb2.ASSURANCE_FACE}  # a binding needs the holder's face checked
KINDS = MERCHANT_KINDS


class UsageError(Exception):
    """Bad input on the command line: printed as one line, exit status 2."""


def _show(message: object) -> None:
    print(json_format.MessageToJson(message, ensure_ascii=False, indent=None), flush=True)  # type: ignore[arg-type]


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None


# -- commands -------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    from ecard_server import logs
    from ecard_server.config import Settings
    from ecard_server.serving import ServeOptions, serve
    from ecard_server.tls import TlsFiles

    logs.configure(args.log_level)
    settings = Settings.from_toml(args.config) if args.config else Settings()
    tls_parts = (args.tls_cert, args.tls_key, args.client_ca)
    if any(tls_parts) and not all(tls_parts):
        raise UsageError("mTLS needs all of --tls-cert, --tls-key and --client-ca")
    if args.db.startswith("sqlite:///") and not args.db.startswith("sqlite:////"):
        Path(args.db.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536 or any(c.isspace() for c in args.listen):
        raise UsageError(f"--listen expected HOST:PORT (e.g. 127.0.0.1:50051), got {args.listen!r}")
    options = ServeOptions(
        db_url=args.db,
        redis_url=args.redis,
        listen=args.listen,
        workers=args.workers,
        settings=settings,
        tls=TlsFiles(*tls_parts) if all(tls_parts) else None,  # type: ignore[arg-type]
        metrics_listen=args.metrics_listen,
        metrics_allow_remote=args.metrics_allow_remote,
        grace_seconds=args.grace,
        dev_principals=args.dev_principals,
        secret_file=args.secret_file,
        drain_delay_seconds=args.drain_delay,
        health_listen=args.health_listen,
        single_instance=args.single_instance,
    )
    return serve(options)


def cmd_secret(args: argparse.Namespace) -> int:
    from ecard_server.config import Settings
    from ecard_server.keyring import Keyring, read_keyring_file, write_keyring_file

    now = int(time.time())
    if args.action == "init":
        if not write_keyring_file(args.file, Keyring.generate(now), exclusive=True):
            raise UsageError(f"{args.file} exists: `ecard secret rotate` adds to it")
        print(f"made {args.file} (mode 0600): give it to every replica with --secret-file")
        return 0
    keyring = read_keyring_file(args.file)
    if keyring is None:
        raise UsageError(f"no secret file {args.file}: `ecard secret init {args.file}` makes one")
    if args.after < 0:
        raise UsageError("--after must be at least 0 seconds")
    window = (Settings.from_toml(args.config) if args.config else Settings()).verification_window_s
    write_keyring_file(args.file, keyring.rotated(now, window, after_s=args.after, identity=args.identity),
                       exclusive=False)
    print(f"rotated {args.file}: a new signing secret signs from {now + args.after}; restart every replica "
          "before then" + ("; enroll the cards again, then drop the old identity line" if args.identity else ""))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from ecard_server.storage import open_store

    store = open_store(args.db)
    print(f"schema version {store.migrate()}")
    store.close()
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {out}: {exc.strerror}") from None
    key = generate_private_key(ALGORITHMS[args.alg])
    kid = kid_for(key)
    write_private_key(out / f"{kid}.key.pem", key)
    (out / f"{kid}.pub.pem").write_text(public_key_pem(key))
    print(kid)
    return 0


def cmd_mint(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise UsageError("--count must be at least 1")
    if args.ttl < 1:
        raise UsageError("--ttl must be at least 1 second")
    most = Settings().max_token_lifetime_s
    if args.ttl > most:  # the server refuses a token that claims to live longer
        raise UsageError(f"--ttl {args.ttl} is over the server's maximum token lifetime of {most} s "
                         "(max_token_lifetime_s in its settings)")
    signer = TokenSigner.from_pem(_read(args.key, "key file"), issuer_id=args.issuer, kid=args.kid)
    purposes = [PURPOSES[p] for p in args.purpose] if args.purpose else list(PURPOSES.values())
    issued_at = args.issued_at if args.issued_at is not None else int(time.time())
    lines = [
        signer.mint(args.ecard, purposes=purposes, assurance=ASSURANCES[args.assurance], ttl_seconds=args.ttl,
                    issued_at=issued_at)
        for _ in range(args.count)
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def cmd_qr(args: argparse.Namespace) -> int:
    from ecard.qr import write_qr

    write_qr(args.token.rstrip("\r\n"), args.out)  # ValueError (one line): not a .png/.svg, not a token
    print(args.out)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    target, options = client_settings(args)
    with PharmacyClient(target, merchant_id=args.merchant, options=options) as client:
        answer = client.verify(
            args.token, purpose=PURPOSES[args.purpose], min_assurance=ASSURANCES[args.min_assurance],
            terminal_id=args.terminal,
        )
    _show(answer)
    return 0 if answer.verdict == types_pb2.VERDICT_ACCEPTED else 3


def cmd_demo(args: argparse.Namespace) -> int:
    from ecard_server.demo import HOSPITAL, PHARMACY, load_demo

    if args.server_pid:
        _wait_for_own_server(args.target, args.server_pid)
    data = load_demo(args.target, Path(args.out))
    print(f"demo loaded into {args.target}")
    print(f"  channel {data.issuer_id}, key {data.kid} at {data.key_path}")
    print(f"  merchants {PHARMACY} (pharmacy), {HOSPITAL} (hospital)")
    for ecard_id in data.ecard_ids:
        print(f"  e-card {ecard_id}")
    print("mint and verify a token from a second terminal (after: source .venv/bin/activate):")
    print(f"  TOKEN=$(ecard mint --issuer {data.issuer_id} --kid {data.kid} --key {data.key_path} "
          f"--ecard {data.ecard_ids[0]})")
    target = f" --target {args.target}" if args.target != DEFAULT_TARGET else ""
    print(f"  ecard verify \"$TOKEN\" --merchant {PHARMACY} --purpose medical_settlement{target}")
    for card_no, why in data.skipped:
        print(f"  (no e-card for {card_no}: {why}; `ecard admin reinstate --card-no {card_no}{target}` "
              f"brings it back, or stop and `rm -r var` to start over)")
    return 0


def _wait_for_own_server(target: str, pid: int, timeout: float = 30.0) -> None:
    """Until `target` answers healthy, as long as process `pid` (the server we started) lives: a server
    that could not start (its port busy) is said as such, and the demo is never loaded into another."""
    from ecard.testing import wait_healthy

    deadline = time.monotonic() + timeout
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise UsageError(f"the server (pid {pid}) exited before it answered on {target}: see its error "
                             "above") from None
        try:
            wait_healthy(target, 0.5)
        except TimeoutError:
            if time.monotonic() > deadline:
                raise UsageError(f"the server (pid {pid}) did not answer on {target} in {timeout:g} s") from None
            continue
        try:  # healthy: make sure it is ours (the port was ours to bind) and not a server that was there
            os.kill(pid, 0)
        except ProcessLookupError:
            raise UsageError(f"the server (pid {pid}) exited; something else answers on {target}") from None
        return


KEY_ACTIONS = ("register-key", "rotate-key", "revoke-key", "keys")


def _key_action(args: argparse.Namespace, keys: Any) -> None:
    """A key action on `keys`: a ChannelClient (its own keys), or the AdminClient's calls for one issuer."""
    if args.action == "register-key":
        _show(keys.register_key(_read(args.pub, "public key"), kid=args.kid, not_before=args.not_before,
                                not_after=args.not_after))
    elif args.action == "rotate-key":
        _show(keys.rotate_key(_read(args.pub, "public key"), retiring_kid=args.retiring_kid, overlap_s=args.overlap,
                              kid=args.kid))
    elif args.action == "revoke-key":
        _show(keys.revoke_key(args.kid))
    else:
        for key in keys.list_keys():
            _show(key)


class _IssuerKeys:
    """The operator's key calls, bound to one issuer (the shape of ChannelClient's)."""

    def __init__(self, admin: AdminClient, issuer_id: str) -> None:
        self.register_key = functools.partial(admin.register_key, issuer_id)
        self.rotate_key = functools.partial(admin.rotate_key, issuer_id)
        self.revoke_key = functools.partial(admin.revoke_key, issuer_id)
        self.list_keys = functools.partial(admin.list_keys, issuer_id)


BINDING_ACTIONS = ("suspend-binding", "resume-binding", "unbind")


def cmd_admin(args: argparse.Namespace) -> int:
    action = args.action
    target, options = client_settings(args)
    if action == "issue" or (action in KEY_ACTIONS and args.channel):
        signer = None
        if action == "issue":  # the channel signs its statement of the face check with its own key
            signer = TokenSigner.from_pem(_read(args.key, "key file"), issuer_id=args.channel, kid=args.kid)
        with ChannelClient(target, issuer_id=args.channel, signer=signer, options=options) as channel:
            if action == "issue":
                _show(channel.issue_ecard(args.card_no, args.name, args.id_number,
                                          assurance=ISSUANCE_ASSURANCES[args.assurance]))
            else:
                _key_action(args, channel)
        return 0
    with AdminClient(target, options=options) as admin:
        if action == "issuer":
            _show(admin.upsert_issuer(args.issuer_id, args.name))
        elif action in KEY_ACTIONS:
            _key_action(args, _IssuerKeys(admin, args.issuer or ""))
        elif action == "merchant":
            _show(admin.upsert_merchant(args.merchant_id, kind=KINDS[args.kind], display_name=args.name,
                                        region=args.region, designated=not args.not_designated))
        elif action == "catalogue":
            _import_catalogue(admin, args.csv)
        elif action == "policy":
            summary = admin.import_benefit_policy(_read(args.file, "policy file").decode("utf-8-sig"))
            print(f"benefit policy {summary.policy_version}: {summary.name}")
        elif action == "enroll":
            _show(admin.enroll_cards(physical_cards(_csv_cards(args.csv)), timeout=None))
        elif action == "credit":
            _show(admin.credit_account(args.card_no, args.amount_fen, args.idempotency_key))
        elif action == "card":
            _show(admin.get_ecard(args.ecard_id))
        elif action == "disable-issuer":
            _show(admin.disable_issuer(args.issuer_id))
        elif action == "deny-cert":
            _show(admin.deny_certificate(_fingerprint(args), args.reason))
        elif action == "allow-cert":
            _show(admin.allow_certificate(_fingerprint(args)))
        elif action == "denied-certs":
            for entry in admin.denied_certificates():
                _show(entry)
        elif action == "replace":
            _show(admin.replace_card(args.old_card_no, args.new_card_no, args.idempotency_key))
        elif action in BINDING_ACTIONS:
            method = {"suspend-binding": admin.suspend_binding, "resume-binding": admin.resume_binding,
                      "unbind": admin.unbind}[action]
            _show(method(args.ecard_id, args.issuer))
        else:
            ref = {"card_no": args.card_no} if args.card_no else {"ecard_id": args.ecard_id}
            method = {"lost": admin.report_lost, "reinstate": admin.reinstate, "cancel": admin.cancel}[action]
            _show(method(**ref))
    return 0


def _fingerprint(args: argparse.Namespace) -> str:
    """The fingerprint given, or the one of the certificate file given (--cert)."""
    if args.cert:
        return certificate_fingerprint(_read(args.cert, "certificate"))
    if not args.fingerprint:
        raise UsageError("give a SHA-256 fingerprint or --cert FILE.pem")
    return str(args.fingerprint)


def _csv_cards(path: str) -> list[tuple[str, str, str, str, int]]:
    """card_no,holder_name,id_number,region,balance_fen rows (a header row is skipped)."""
    text = _read(path, "CSV file").decode("utf-8-sig")
    rows = []
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if number == 1 and row and row[0] == "card_no":
            continue
        if len(row) != 5:
            raise UsageError(f"{path} line {number}: expected 5 columns, got {len(row)}")
        try:
            rows.append((row[0], row[1], row[2], row[3], int(row[4] or 0)))
        except ValueError:
            raise UsageError(f"{path} line {number}: balance_fen must be an integer") from None
    return rows


_CLASSES = {"A": DrugClass.A, "B": DrugClass.B, "C": DrugClass.C}
_CATALOGUE_HEADER = ["code", "name", "class", "price_limit_fen", "valid_from", "valid_to"]


def _csv_catalogue(path: str) -> tuple[list[Any], int]:
    """code,name,class,price_limit_fen[,valid_from,valid_to] rows as catalogue items, and the CSV line
    of the first item (after an optional header). A row that cannot be read refuses the whole file."""
    text = _read(path, "CSV file").decode("utf-8-sig")
    items, first = [], 1
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if number == 1 and row and row[0].strip().lower() == "code":
            first = 2
            continue
        if len(row) not in (4, 6):
            raise UsageError(f"{path} line {number}: expected 4 or 6 columns ({','.join(_CATALOGUE_HEADER)}), "
                             f"got {len(row)}")
        drug_class = _CLASSES.get(row[2].strip().upper())
        if drug_class is None:
            raise UsageError(f"{path} line {number}: class must be A, B or C, not {row[2]!r}")
        try:
            limit = int(row[3])
        except ValueError:
            raise UsageError(f"{path} line {number}: price_limit_fen must be an integer (fen)") from None
        days = (row[4].strip(), row[5].strip()) if len(row) == 6 else ("", "")
        items.append(catalogue_item(row[0].strip(), row[1], drug_class, limit, valid_from=days[0], valid_to=days[1]))
    if not items:
        raise UsageError(f"{path}: no catalogue rows")
    return items, first


def _import_catalogue(admin: AdminClient, path: str) -> None:
    items, first = _csv_catalogue(path)
    try:
        summary = admin.import_catalogue(items, timeout=None)
    except InvalidArgument as exc:  # "item N: ..." is the CSV's line first + N - 1
        found = re.match(r"item (\d+)(.*)", exc.message, re.S)
        if found:
            raise UsageError(f"{path} line {first + int(found[1]) - 1}{found[2]} (nothing was imported)") from None
        raise
    print(f"catalogue version {summary.catalogue_version}: {summary.items} items")


# -- parser ---------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage itself is in --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _key_parser(acts: Any, name: str, text: str, *, required: bool = True) -> _Parser:
    a: _Parser = acts.add_parser(name, help=text)
    who = a.add_mutually_exclusive_group(required=required)
    who.add_argument("--issuer", help="as the operator, for this issuer")
    who.add_argument("--channel", help="as this channel, for its own keys")
    return a


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ecard", description="Electronic social security card service and tools.")
    parser.add_argument("--version", action="version", version=f"ecard {build.version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the gRPC server")
    p.add_argument("--db", default=DEFAULT_DB, help=f"sqlite:///PATH or postgresql://... (default {DEFAULT_DB})")
    p.add_argument("--redis", help="redis://HOST:PORT/DB or unix:///PATH (or any node of a Redis Cluster), "
                   "shared nonces and cache invalidation")
    p.add_argument("--listen", default=DEFAULT_TARGET, help=f"HOST:PORT (default {DEFAULT_TARGET})")
    p.add_argument("--workers", type=int, default=1, help="server processes sharing the port (default 1)")
    p.add_argument("--config", help="TOML file of settings (policy ratios, time limits, cache sizes)")
    p.add_argument("--tls-cert", help="server certificate PEM (mTLS)")
    p.add_argument("--tls-key", help="server private key PEM (mTLS)")
    p.add_argument("--client-ca", help="CA PEM that signs client certificates (mTLS)")
    p.add_argument("--metrics-listen", help="HOST:PORT for Prometheus /metrics (with --workers: the sum of all); "
                   "loopback only unless --metrics-allow-remote")
    p.add_argument("--metrics-allow-remote", action="store_true",
                   help="serve /metrics on a non-loopback --metrics-listen address (behind a firewall)")
    p.add_argument("--secret-file", help="server secrets, mode 0600 (default: ECARD_SECRETS, else beside a SQLite "
                   "file as DB.secret, made on first start; PostgreSQL needs one of the two)")
    p.add_argument("--dev-principals", action="store_true",
                   help="development only: on plaintext loopback, take the caller from x-ecard-principal metadata")
    p.add_argument("--single-instance", action="store_true",
                   help="PostgreSQL without --redis: this is the only ecard serve on the database (nonces and cache "
                        "notices stay in this process); a second one refuses to start (an advisory lock)")
    p.add_argument("--grace", type=float, default=10.0, help="seconds to finish in-flight calls on shutdown")
    p.add_argument("--health-listen", metavar="HOST:PORT",
                   help="also serve grpc.health.v1 alone, in plaintext, here: for probes that present no client "
                        "certificate under mTLS (a Kubernetes gRPC probe, grpc_health_probe)")
    p.add_argument("--drain-delay", type=float, default=0.0, metavar="SECONDS",
                   help="on SIGTERM, report NOT_SERVING this long while still answering, before the drain "
                        "(let probes and load balancers move away first; default 0)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("secret", help="make or rotate the server secret file (never in the database)")
    acts = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = acts.add_parser("init", help="make a new secret file, mode 0600")
    a.add_argument("file")
    a = acts.add_parser("rotate", help="add a signing secret; the old one opens handles until they expire")
    a.add_argument("file")
    a.add_argument("--after", type=int, default=0, help="seconds until the new secret signs (time to restart "
                   "every replica with the new file; default 0)")
    a.add_argument("--identity", action="store_true", help="also a new identity secret (then enroll the cards again)")
    a.add_argument("--config", help="the servers' settings TOML (for verification_window_s)")
    p.set_defaults(func=cmd_secret)

    p = sub.add_parser("migrate", help="apply schema migrations and exit")
    p.add_argument("--db", default=DEFAULT_DB)
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("keygen", help="make an issuer key pair; prints the kid")
    p.add_argument("--issuer", required=True)
    p.add_argument("--alg", choices=sorted(ALGORITHMS), default="ed25519")
    p.add_argument("--out", required=True, help="folder for <kid>.key.pem (PKCS#8) and <kid>.pub.pem")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("mint", help="mint token texts as a channel app does")
    p.add_argument("--issuer", required=True)
    p.add_argument("--kid", required=True)
    p.add_argument("--key", required=True, help="private key PEM")
    p.add_argument("--ecard", required=True)
    p.add_argument("--ttl", type=int, default=60, help="lifetime in seconds (default 60)")
    p.add_argument("--issued-at", type=int, help="unix seconds (default now)")
    p.add_argument("--purpose", action="append", choices=sorted(PURPOSES), help="repeatable (default all four)")
    p.add_argument("--assurance", choices=sorted(ASSURANCES), default="pin")
    p.add_argument("--count", type=int, default=1, help="tokens with fresh nonces, one per line")
    p.set_defaults(func=cmd_mint)

    p = sub.add_parser("qr", help="render a token as a QR code")
    p.add_argument("token")
    p.add_argument("--out", required=True, help="FILE.png or FILE.svg")
    p.set_defaults(func=cmd_qr)

    p = sub.add_parser("verify", help="verify a token as a merchant (exit 3 when rejected)")
    p.add_argument("token")
    p.add_argument("--merchant", required=True)
    p.add_argument("--purpose", choices=sorted(PURPOSES), default="identity")
    p.add_argument("--min-assurance", choices=sorted(ASSURANCES), default="none")
    p.add_argument("--terminal", default="cli")
    add_client_arguments(p)
    p.set_defaults(func=cmd_verify)
    add_counter_commands(sub)
    add_quote_commands(sub)

    p = sub.add_parser("demo", help="load demo issuers, keys, merchants and cards into a running server")
    p.add_argument("--target", default=DEFAULT_TARGET)
    p.add_argument("--out", default="var/demo", help="folder for the demo channel's private key")
    p.add_argument("--server-pid", type=int, help="wait for this server process to answer first (make run); "
                   "if it exits, load nothing")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("admin", help="operator calls (Admin and Cards services)")
    add_client_arguments(p)
    acts = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = acts.add_parser("issuer", help="create or rename an issuing channel")
    a.add_argument("issuer_id")
    a.add_argument("--name", default="")
    # Key actions: the operator names the issuer (--issuer); a channel manages its own (--channel ID).
    a = _key_parser(acts, "register-key", "register an issuer public key")
    a.add_argument("--pub", required=True, help="public key PEM")
    a.add_argument("--kid", help="default: derived from the key, as keygen prints it")
    a.add_argument("--not-before", type=int)
    a.add_argument("--not-after", type=int)
    a = _key_parser(acts, "rotate-key", "register a new key; the retiring one ends after --overlap seconds")
    a.add_argument("--pub", required=True, help="the new public key PEM")
    a.add_argument("--retiring-kid", required=True)
    a.add_argument("--overlap", type=int, default=0,
                   help="seconds the retiring key still verifies (default: token lifetime + clock skew)")
    a.add_argument("--kid", help="of the new key; default: derived from the key")
    a = _key_parser(acts, "revoke-key", "revoke a key at once")
    a.add_argument("--kid", required=True)
    _key_parser(acts, "keys", "list keys (the operator: every issuer's without --issuer)", required=False)
    a = acts.add_parser("merchant", help="create or update a merchant")
    a.add_argument("merchant_id")
    a.add_argument("--kind", choices=sorted(KINDS), required=True)
    a.add_argument("--name", default="")
    a.add_argument("--region", default="")
    a.add_argument("--not-designated", action="store_true")
    a = acts.add_parser("catalogue", help="the drug catalogue: import FILE.csv "
                        "(code,name,class,price_limit_fen[,valid_from,valid_to]) as a new version")
    a.add_argument("verb", choices=["import"])
    a.add_argument("csv")
    a = acts.add_parser("policy", help="the benefit policy: import FILE.json (deductible, fund ratio, yearly "
                        "cap per person category and merchant kind) as a new version")
    a.add_argument("verb", choices=["import"])
    a.add_argument("file")
    a = acts.add_parser("enroll", help="enroll cards from CSV: card_no,holder_name,id_number,region,balance_fen")
    a.add_argument("csv")
    a = acts.add_parser("credit", help="credit a personal account")
    a.add_argument("card_no")
    a.add_argument("amount_fen", type=int)
    a.add_argument("--idempotency-key", required=True)
    a = acts.add_parser("disable-issuer", help="shut a channel off: every key revoked, its calls refused (final)")
    a.add_argument("issuer_id")
    for name, text in (("deny-cert", "refuse a client certificate on every replica (a stolen terminal)"),
                       ("allow-cert", "take a client certificate off the deny list")):
        a = acts.add_parser(name, help=text)
        a.add_argument("fingerprint", nargs="?", help="SHA-256 of the DER certificate (hex, colons allowed)")
        a.add_argument("--cert", help="or the certificate's PEM file")
        if name == "deny-cert":
            a.add_argument("--reason", default="", help="why, for the audit trail")
    acts.add_parser("denied-certs", help="list the deny list of client certificates")
    a = acts.add_parser("card", help="show an e-card")
    a.add_argument("ecard_id")
    for name in ("lost", "reinstate", "cancel"):
        a = acts.add_parser(name, help=f"{name} a card")
        ref = a.add_mutually_exclusive_group(required=True)
        ref.add_argument("--card-no")
        ref.add_argument("--ecard-id")
    a = acts.add_parser("replace", help="move an e-card and its balance to a new card of the same holder (补换卡)")
    a.add_argument("old_card_no")
    a.add_argument("new_card_no")
    a.add_argument("--idempotency-key", required=True)
    for name in BINDING_ACTIONS:
        a = acts.add_parser(name, help=f"{name.replace('-', ' ')} of one channel")
        a.add_argument("ecard_id")
        a.add_argument("--issuer", required=True, help="the channel whose binding changes")
    a = acts.add_parser("issue", help="issue an e-card as a channel, signing its statement of the holder check")
    a.add_argument("--channel", required=True)
    a.add_argument("--assurance", required=True, choices=sorted(ISSUANCE_ASSURANCES),
                   help="the holder check the channel states, signed, that it made: face (issuance needs it)")
    a.add_argument("--key", required=True, help="the channel's private key PEM (one of its registered keys)")
    a.add_argument("--kid", help="the key's kid (default: derived from the key, as keygen prints it)")
    a.add_argument("card_no")
    a.add_argument("name")
    a.add_argument("id_number")
    p.set_defaults(func=cmd_admin)
    repeat_on_actions(parser)  # `ecard admin card X --target H:P` as well as `ecard admin --target H:P card X`
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UsageError, ValueError, KeyFormatError, TokenTooLargeError) as exc:
        print(f"ecard: error: {exc}", file=sys.stderr)
        return 2
    except EcardError as exc:
        print(f"ecard: error: {exc.status_name} {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
