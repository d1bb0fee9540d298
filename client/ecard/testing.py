"""Test helpers that integrators can use too: a real `ecard serve` process and a seeded world.

    with EcardServer() as server:                      # fresh SQLite file, free loopback port
        world = World.seed(server.target, cards=3)     # issuer + key, pharmacy, hospital, e-cards
        with world.pharmacy() as pos:
            pos.verify(world.mint(0), purpose=Purpose.IDENTITY)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ecard._admin import AdminClient, ChannelClient, physical_cards
from ecard._client import PharmacyClient
from ecard._keys import PrivateKey, generate_private_key, public_key_pem
from ecard._options import ClientOptions
from ecard._token import ALL_PURPOSES, DEFAULT_TTL_SECONDS, TokenSigner
from ecard._transport import sync_channel
from ecard.v1 import types_pb2


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of asking."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(
    target: str,
    timeout: float = 20.0,
    process: subprocess.Popen[Any] | None = None,
    options: ClientOptions | None = None,
) -> None:
    """Blocks until the server at `target` answers the standard health check with SERVING."""
    deadline = time.monotonic() + timeout
    with sync_channel(target, options or ClientOptions()) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"ecard serve exited with status {process.returncode}")
            try:
                answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"ecard server at {target} not healthy after {timeout} s")
            time.sleep(0.05)


_SHARED_SECRETS: list[tempfile.TemporaryDirectory[str]] = []


def shared_secret_file() -> str:
    """The secret file path that every server of this process started on a shared database uses (the first
    one makes it, 0600): two servers on one PostgreSQL must hold the same secret, as replicas do."""
    if not _SHARED_SECRETS:
        _SHARED_SECRETS.append(tempfile.TemporaryDirectory(prefix="ecard-secret-"))
    return os.path.join(_SHARED_SECRETS[0].name, "secret")


class EcardServer:
    """`ecard serve` in a child process on a free loopback port. Needs the server package installed.

    db: a database URL; default a fresh SQLite file in a temporary folder. `extra_args` go to serve.
    On PostgreSQL without `redis` the server is started `--single-instance` (the only one on that database).
    A plaintext server gets `--dev-principals` (callers named in metadata) unless `dev_principals=False`.
    """

    def __init__(
        self,
        *,
        db: str | None = None,
        redis: str | None = None,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        log_path: str | Path | None = None,
        client_options: ClientOptions | None = None,
        dev_principals: bool = True,
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="ecard-test-")
        self.db = db or f"sqlite:///{self._tmp.name}/ecard.db"
        self.redis = redis
        self.port = port or free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.extra_args = list(extra_args)
        self.env = env
        self.log_path = Path(log_path) if log_path else Path(self._tmp.name) / "serve.log"
        self.client_options = client_options  # how the health check connects (mTLS servers)
        self.dev_principals = dev_principals
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "ecard_server.cli", "serve", "--db", self.db, "--listen", self.target]
        if self.redis:
            cmd += ["--redis", self.redis]
        elif not self.db.startswith("sqlite") and "--single-instance" not in self.extra_args:
            cmd.append("--single-instance")  # PostgreSQL without Redis: this server is the only one on it
        if not self.db.startswith("sqlite") and "--secret-file" not in self.extra_args and not self._env_secrets():
            cmd += ["--secret-file", shared_secret_file()]  # servers sharing a database share its secret
        if self.dev_principals and "--tls-cert" not in self.extra_args:
            cmd.append("--dev-principals")  # plaintext tests name their caller in metadata
        return cmd + self.extra_args

    def _env_secrets(self) -> bool:
        return bool((self.env or {}).get("ECARD_SECRETS") or os.environ.get("ECARD_SECRETS"))

    def start(self, timeout: float = 30.0) -> EcardServer:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        out = open(self.log_path.with_suffix(".out"), "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command(), stdout=out, stderr=log, env={**os.environ, **(self.env or {})}
        )
        try:
            wait_healthy(self.target, timeout, self.process, self.client_options)
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful) and wait; returns the exit status."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> EcardServer:
        self.stop()
        return self.start()

    def logs(self) -> str:
        """What the server logged (stderr: one JSON object per line)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def output(self) -> str:
        """What the server printed for people (stdout)."""
        path = self.log_path.with_suffix(".out")
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> EcardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._tmp.cleanup()


def fake_holder(n: int, tag: str = "") -> tuple[str, str, str]:
    """Card number, name and identity number of fictional holder number n (tag: letters/digits). The
    one maker of fake holders: tests, `World`, the load-test seed and the benchmark all use it; with
    a region and an opening balance it is a row for `ecard.physical_cards`."""
    surnames = "朱李王张刘陈杨黄赵吴周徐孙马胡郭何高林罗"
    return f"T{tag}{n:07d}", f"{surnames[n % len(surnames)]}测试{n % 100}", f"3302{n:014d}"


@dataclass
class World:
    """A seeded deployment: one channel with a key, a pharmacy, a hospital and issued e-cards."""

    target: str
    issuer_id: str
    key: PrivateKey
    signer: TokenSigner
    pharmacy_id: str
    hospital_id: str
    cards: list[tuple[str, str, str]]  # (card_no, holder_name, id_number)
    ecard_ids: list[str] = field(default_factory=list)

    @classmethod
    def seed(
        cls,
        target: str,
        *,
        cards: int = 3,
        balance_fen: int = 100_000,
        algorithm: int = types_pb2.KEY_ALGORITHM_ED25519,
        prefix: str | None = None,
        first_card: int = 0,
    ) -> World:
        """Seeds through the public API. `prefix` (letters/digits) keeps worlds on one server apart."""
        tag = prefix or uuid.uuid4().hex[:8]
        issuer_id, pharmacy_id, hospital_id = f"bank-{tag}", f"pharmacy-{tag}", f"hospital-{tag}"
        key = generate_private_key(algorithm)
        holders = [fake_holder(first_card + n, tag) for n in range(cards)]
        with AdminClient(target) as admin:
            admin.upsert_issuer(issuer_id, "Test Bank")
            registered = admin.register_key(issuer_id, public_key_pem(key))
            admin.upsert_merchant(pharmacy_id, kind=types_pb2.MERCHANT_KIND_PHARMACY, region="330200")
            admin.upsert_merchant(hospital_id, kind=types_pb2.MERCHANT_KIND_HOSPITAL, region="330200")
            admin.enroll_cards(physical_cards((no, name, idn, "330200", balance_fen) for no, name, idn in holders))
        world = cls(target, issuer_id, key, TokenSigner(key, issuer_id=issuer_id, kid=registered.kid),
                    pharmacy_id, hospital_id, holders)
        with world.channel() as channel:
            face = types_pb2.ASSURANCE_FACE
            world.ecard_ids = [channel.issue_ecard(no, name, idn, assurance=face).ecard_id for no, name, idn in holders]
        return world

    def mint(
        self, card: int = 0, *, purposes: Iterable[int] = ALL_PURPOSES, assurance: int = types_pb2.ASSURANCE_PIN,
        ttl_seconds: int = DEFAULT_TTL_SECONDS, issued_at: int | None = None, nonce: bytes | None = None,
    ) -> str:
        """A fresh token for e-card number `card` (options as TokenSigner.claims)."""
        return self.signer.mint(self.ecard_ids[card], purposes=purposes, assurance=assurance, ttl_seconds=ttl_seconds,
                                issued_at=issued_at, nonce=nonce)

    def admin(self) -> AdminClient:
        return AdminClient(self.target)

    def channel(self, issuer_id: str | None = None, signer: TokenSigner | None = None) -> ChannelClient:
        """The world's channel (signing with its key), or another one with `signer` (its key)."""
        if signer is None and issuer_id in (None, self.issuer_id):
            signer = self.signer
        return ChannelClient(self.target, issuer_id=issuer_id or self.issuer_id, signer=signer)

    def pharmacy(self, merchant_id: str | None = None) -> PharmacyClient:
        return PharmacyClient(self.target, merchant_id=merchant_id or self.pharmacy_id)

    def hospital(self) -> PharmacyClient:
        return PharmacyClient(self.target, merchant_id=self.hospital_id)
