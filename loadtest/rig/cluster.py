"""Replicas on their own addresses: `ecard serve` in network namespaces, on one PostgreSQL and Redis.

    with Cluster(replicas=3, db=pg_url, redis_upstream=("127.0.0.1", 6379)) as cluster:
        PharmacyClient(cluster.targets, merchant_id=M, options=cluster.options(f"merchant:{M}"))  # round robin
        cluster.kill(1); cluster.start(1)                   # SIGKILL a replica, start it again

The network (needs root) is `loadtest.rig.netns`: a bridge, one namespace per replica with its own address
10.231.N.(i+2), no route beyond that subnet. Replicas cannot reach the host's loopback, so PostgreSQL
is reached on its Unix socket in /var/run/postgresql (`socket_url`), and Redis through a relay in this
process from a Unix socket in a temporary folder to the real Redis (`netns.UnixRelay`); sockets cross
network namespaces. When PostgreSQL refuses the socket (peer authentication, as a fresh Debian
cluster does for root), PostgreSQL is relayed the same way, so its TCP rules (password) apply.
Replicas are not on loopback, so they speak mTLS only (`loadtest.rig.pki`: one
throwaway CA; `cluster.options(principal)` gives a client its certificate). Everything is torn down
on exit, on error and at interpreter exit.

`python -m loadtest.rig.cluster` (make cluster-demo) brings three replicas up on a fresh database, seeds
them, shows round robin and a replica killed and restarted, and tears everything down.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import tempfile
import threading
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from ecard import ClientOptions, PharmacyClient
from ecard.testing import EcardServer
from ecard.v1 import types_pb2
from loadtest.harness.seeding import Seed, seed_deployment
from loadtest.rig.netns import Network, UnixRelay
from loadtest.rig.pki import CertificateAuthority

PG_ADMIN_URL = os.environ.get("ECARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
PG_SOCKET_DIR = "/var/run/postgresql"
REPLICA_PORT = 50051
VERIFY = "Verify"


def socket_url(pg_url: str, socket_dir: str = PG_SOCKET_DIR, port: int | None = None) -> str:
    """The same PostgreSQL database reached on the Unix socket in `socket_dir` (sockets cross network
    namespaces); the socket file is .s.PGSQL.PORT, PORT that of the URL unless given."""
    parts = urlsplit(pg_url)
    credentials = parts.netloc.rpartition("@")[0]
    query = urlencode({"host": socket_dir, "port": port or parts.port or 5432})
    return f"{parts.scheme}://{credentials + '@' if credentials else ''}{parts.path}?{query}"


class Replica(EcardServer):
    """`ecard serve` inside network namespace `namespace`, listening on `address`:`port`, with its
    Prometheus /metrics on `address`:`port + 1`."""

    def __init__(self, namespace: str, address: str, port: int = REPLICA_PORT, **options: Any) -> None:
        super().__init__(port=port, **options)
        self.namespace = namespace
        self.target = f"{address}:{port}"
        self.metrics_target = f"{address}:{port + 1}"

    def command(self) -> list[str]:
        serve = [*super().command(), "--metrics-listen", self.metrics_target, "--metrics-allow-remote"]
        return ["ip", "netns", "exec", self.namespace, *serve]

    def requests(self, method: str, code: str = "OK") -> int:
        """ecard_rpc_requests_total of `method` (e.g. "Verify") with `code`, from /metrics."""
        with urllib.request.urlopen(f"http://{self.metrics_target}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith("ecard_rpc_requests_total{") and f'method="{method}"' in line \
                    and f'code="{code}"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return int(total)


class Cluster:
    """`replicas` Replicas on the PostgreSQL database `db` (a TCP URL, as for psql) and on the Redis at
    `redis_upstream`, with their own Redis namespace. `extra_args` go to every `ecard serve`."""

    def __init__(
        self,
        replicas: int = 3,
        *,
        db: str,
        redis_upstream: tuple[str, int] = ("127.0.0.1", 6379),
        redis_namespace: str | None = None,
        extra_args: Sequence[str] = (),
        log_dir: str | Path | None = None,
        pg_socket_dir: str = PG_SOCKET_DIR,
    ) -> None:
        self.network = Network(replicas)
        self.pg_socket_dir = pg_socket_dir
        self._tmp = tempfile.TemporaryDirectory(prefix="ecard-cluster-")
        self.folder = Path(self._tmp.name)
        self.log_dir = Path(log_dir) if log_dir else self.folder
        self.redis_namespace = redis_namespace or f"cluster-{self.network.tag}"
        self.redis_upstream = redis_upstream
        self.redis_url = f"unix://{self.folder / 'redis.sock'}"
        config = self.folder / "ecard.toml"
        config.write_text(f'redis_namespace = "{self.redis_namespace}"\n')
        self.pki = CertificateAuthority(self.folder / "pki", self.network.addresses)
        args = ["--config", str(config), *self.pki.server_args(), *extra_args]
        self.replicas = [
            Replica(namespace, address, db=db, redis=self.redis_url, extra_args=args,
                    log_path=self.log_dir / f"replica-{i}.log", client_options=self.options("admin"))
            for i, (namespace, address) in enumerate(zip(self.network.namespaces, self.network.addresses, strict=True))
        ]
        self.db = db
        self.relays: list[UnixRelay] = []

    def options(self, principal: str, **fields: object) -> ClientOptions:
        """Client options with `principal`'s certificate (replicas speak mTLS only: not on loopback)."""
        return self.pki.options(principal, **fields)

    def _reachable_db(self) -> str:
        """`db` on PostgreSQL's own socket when it lets us in, else through a relayed socket of ours."""
        import psycopg

        direct = socket_url(self.db, self.pg_socket_dir)
        with contextlib.suppress(psycopg.Error), psycopg.connect(direct, connect_timeout=5):
            return direct
        folder = self.folder / "pg"
        if not folder.exists():
            folder.mkdir()
            parts = urlsplit(self.db)
            self.relays.append(UnixRelay(folder / ".s.PGSQL.5432", (parts.hostname or "127.0.0.1", parts.port or 5432)))
        return socket_url(self.db, str(folder), port=5432)

    @property
    def targets(self) -> list[str]:
        return [replica.target for replica in self.replicas]

    @property
    def target(self) -> str:
        """Every replica as one comma-separated target (what `--host` and the SDK take)."""
        return ",".join(self.targets)

    def start(self, i: int) -> Replica:
        replica = self.replicas[i]
        try:
            return replica.start()
        except (RuntimeError, TimeoutError) as exc:
            tail = (replica.logs() + replica.output()).strip().splitlines()[-3:]
            raise RuntimeError(f"replica {i} ({replica.target}): {exc}: {' | '.join(tail)}") from None

    def kill(self, i: int) -> None:
        """SIGKILL replica i: the crash case (no drain, no NOT_SERVING)."""
        self.replicas[i].kill()

    def __enter__(self) -> Cluster:
        atexit.register(self.close)
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.network.up()
            self.relays.append(UnixRelay(self.folder / "redis.sock", self.redis_upstream))
            db = self._reachable_db()
            for replica in self.replicas:
                replica.db = db
            self.start(0)  # the first one migrates the database; the others find it ready
            starters = [threading.Thread(target=self.start, args=(i,)) for i in range(1, len(self.replicas))]
            for thread in starters:
                thread.start()
            for thread in starters:
                thread.join()
            down = [replica.target for replica in self.replicas if not replica.process or replica.process.poll()]
            if down:
                raise RuntimeError(f"replicas did not start: {down} (logs in {self.log_dir})")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for replica in self.replicas:
            replica.stop(5)
        while self.relays:
            self.relays.pop().close()
        self.network.down()
        self._tmp.cleanup()

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def fresh_database(admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL on the admin URL's server), dropped afterwards."""
    import psycopg

    name = f"ecard_cluster_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def demo_cluster(
    replicas: int = 3, *, cards: int = 200, ecards: int = 100, log_dir: str | Path | None = None, **options: Any
) -> Iterator[tuple[Cluster, Seed]]:
    """A cluster on a fresh database, seeded through replica 0 (everything gone afterwards)."""
    with fresh_database() as pg_url, Cluster(replicas, db=pg_url, log_dir=log_dir, **options) as cluster:
        seed = seed_deployment(cluster.targets[0], cards=cards, ecards=ecards, lost_ecards=10, pharmacies=4,
                               hospitals=1, options_for=cluster.options, log=lambda line: None)
        yield cluster, seed


def _verify_round(cluster: Cluster, seed: Seed, calls: int) -> tuple[list[int], int]:
    """`calls` Verify calls through one balanced SDK client; (new calls per replica, calls accepted)."""
    before = [replica.requests(VERIFY) if replica.process and replica.process.poll() is None else 0
              for replica in cluster.replicas]
    merchant, signer, accepted = seed.pharmacies[0], seed.channels[0].signer(), 0
    with PharmacyClient(cluster.targets, merchant_id=merchant, options=cluster.options(f"merchant:{merchant}")) as pos:
        for n in range(calls):
            answer = pos.verify(signer.mint(seed.usable[n % len(seed.usable)][0]), purpose=types_pb2.PURPOSE_IDENTITY)
            accepted += answer.verdict == types_pb2.VERDICT_ACCEPTED
    after = [replica.requests(VERIFY) if replica.process and replica.process.poll() is None else 0
             for replica in cluster.replicas]
    return [a - b for a, b in zip(after, before, strict=True)], accepted


def main() -> int:
    """make cluster-demo: three replicas, round robin, one SIGKILLed and restarted, all torn down."""
    with demo_cluster(3) as (cluster, seed):
        print(f"3 replicas up: {', '.join(cluster.targets)} (PostgreSQL on its socket, Redis via {cluster.redis_url})")
        spread, accepted = _verify_round(cluster, seed, 30)
        print(f"30 Verify through one SDK client: {accepted} accepted; per replica {spread}")
        cluster.kill(1)
        print(f"SIGKILL replica 1 ({cluster.targets[1]})")
        spread, accepted = _verify_round(cluster, seed, 30)
        print(f"30 Verify: {accepted} accepted; per replica {spread} (replica 1 skipped)")
        cluster.start(1)
        print(f"replica 1 restarted on {cluster.targets[1]}")
        spread, accepted = _verify_round(cluster, seed, 30)
        print(f"30 Verify: {accepted} accepted; per replica {spread}")
    print("cluster torn down: namespaces, bridge, database and Redis relay removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
