"""`ecard serve`: one process, or N worker processes sharing one port (SO_REUSEPORT).

Workers are forked before any gRPC object exists in the parent (gRPC's own multiprocessing example
does the same): each child opens its own store connections, caches and server. A worker dies with its
parent (Linux's parent-death signal), so a parent killed with SIGKILL leaves no orphan serving the port.

Signals: SIGTERM or SIGINT drains (NOT_SERVING for `drain_delay_seconds` while still answering, so load
balancers and probes move away first; then no new calls, and `grace_seconds` for those in flight);
SIGHUP reads the TLS certificate, key and client CA again (ecard_server.tls) without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import signal
import sys
from dataclasses import dataclass, replace
from typing import Any

from ecard.errors import Unavailable
from ecard_server import build, tracing
from ecard_server.app import DEV_PRINCIPALS_UNDER_TLS, Deployment, create_server, is_loopback
from ecard_server.config import Settings
from ecard_server.keyring import SecretSource
from ecard_server.logs import event
from ecard_server.metrics_http import serve_metrics
from ecard_server.metrics_relay import WorkerLinks, check_bindable, serve_aggregated
from ecard_server.readiness import Readiness
from ecard_server.tls import TlsFiles

log = logging.getLogger("ecard.server")
_PLAINTEXT_NOTE = {
    True: "development mode (--dev-principals): plaintext, the caller is whoever x-ecard-principal names; "
          "never for real money",
    False: "plaintext without --dev-principals: only health and reflection answer, every ecard call is "
           "UNAUTHENTICATED (give --tls-cert/--tls-key/--client-ca, or --dev-principals for development)",
}
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
_HELD_WHILE_FORKING = {*_STOP_SIGNALS, signal.SIGHUP}
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ServeOptions:
    db_url: str
    redis_url: str | None
    listen: str
    workers: int
    settings: Settings
    tls: TlsFiles | None
    metrics_listen: str | None
    grace_seconds: float = 10.0
    threads: int = 32
    dev_principals: bool = False
    secret_file: str | None = None
    drain_delay_seconds: float = 0.0
    health_listen: str | None = None
    single_instance: bool = False
    metrics_allow_remote: bool = False

    def secrets(self) -> SecretSource:
        """Where the server secrets are: ECARD_SECRETS, --secret-file, or beside a SQLite file."""
        return SecretSource.for_database(self.db_url, self.secret_file)


def check_options(options: ServeOptions) -> None:
    """Refuses combinations that would silently be wrong. Raises ValueError with one line."""
    if options.workers < 1:
        raise ValueError("--workers must be at least 1")
    if not 0 <= options.drain_delay_seconds <= 300:
        raise ValueError("--drain-delay must be between 0 and 300 seconds")
    if options.metrics_listen and not options.metrics_allow_remote and not is_loopback(options.metrics_listen):
        raise ValueError(
            f"refusing metrics on non-loopback address {options.metrics_listen}: /metrics tells anyone who asks "
            "the traffic, refusals and cache sizes; give --metrics-allow-remote to serve it there anyway"
        )
    if options.tls is not None:
        if options.dev_principals:
            raise ValueError(DEV_PRINCIPALS_UNDER_TLS)
        options.tls.read()  # a missing, unreadable or mismatched file is said once, before any worker starts
    if options.workers > 1:
        if options.db_url.startswith("sqlite"):
            raise ValueError("--workers above 1 needs a shared store: --db postgresql://... and --redis URL")
        if not options.redis_url:
            raise ValueError("--workers above 1 needs --redis URL for single use and cache invalidation")
        if options.single_instance:
            raise ValueError("--single-instance is one process: not with --workers above 1")
        if options.listen.rsplit(":", 1)[-1] == "0":
            raise ValueError("--workers above 1 needs a fixed port in --listen")
        if options.health_listen and options.health_listen.rsplit(":", 1)[-1] == "0":
            raise ValueError("--workers above 1 needs a fixed port in --health-listen")
    options.secrets()  # a shared database without a secret outside it is refused before anything starts


def _start_metrics(address: str | None) -> None:
    if address:
        serve_metrics(address)


def run_server(options: ServeOptions, *, worker: int = 0, reuse_port: bool = False) -> None:
    """Runs one server process until SIGTERM or SIGINT, then drains in-flight calls and exits."""
    tracing.configure()  # before any connection is made (after the fork, in a worker); off unless OTEL_* asks
    try:
        asyncio.run(_serve(options, worker, reuse_port))
    finally:
        tracing.shutdown()


async def _serve(options: ServeOptions, worker: int, reuse_port: bool) -> None:
    deployment = Deployment.open(options.settings, options.db_url, options.redis_url, secrets=options.secrets(),
                                 single_instance=options.single_instance)
    try:
        bound = create_server(
            deployment, options.listen, tls=options.tls, reuse_port=reuse_port, max_workers=options.threads,
            dev_principals=options.dev_principals, health_address=options.health_listen,
        )
        _start_metrics(options.metrics_listen)  # with --workers, the parent serves them (metrics_relay)
    except ValueError:
        deployment.close()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if bound.tls is not None:
        loop.add_signal_handler(signal.SIGHUP, bound.tls.reload)
    # Everything made so far (modules, the deployment) lives as long as the process: moved out of the
    # collector's sight, a full collection no longer walks it, and Verify's p99 loses that pause.
    gc.collect()
    gc.freeze()
    await bound.start()
    readiness = Readiness.of(deployment, bound.health, bound.service_names)
    readiness.start()  # NOT_SERVING while PostgreSQL or Redis is down, SERVING again once both answer
    watch = asyncio.create_task(_keep_instance_lock(deployment, stop)) if options.single_instance else None
    host = options.listen.rsplit(":", 1)[0]
    event(log, "serving", address=f"{host}:{bound.port}", worker=worker, version=build.version(),
          db=options.db_url.split("://")[0], redis=bool(options.redis_url), tls=options.tls is not None,
          dev_principals=options.dev_principals, verify_inline=deployment.hot_state_local)
    if worker == 0:
        print(f"ecard serving on {host}:{bound.port}", flush=True)
        if bound.health_server is not None:
            print(f"health (plaintext, grpc.health.v1 only) on {options.health_listen.rsplit(':', 1)[0]}:"  # type: ignore[union-attr]
                  f"{bound.health_port}", flush=True)
        if options.tls is None:
            print(_PLAINTEXT_NOTE[options.dev_principals], flush=True)
    await stop.wait()
    if watch is not None:
        watch.cancel()
    event(log, "stopping", grace_seconds=options.grace_seconds, drain_delay_seconds=options.drain_delay_seconds,
          worker=worker)
    await readiness.stop()
    if options.drain_delay_seconds:  # NOT_SERVING while still answering: probes and balancers move away first
        await bound.report_not_serving()
        await asyncio.sleep(options.drain_delay_seconds)
    await bound.drain(options.grace_seconds)
    await deployment.aclose()
    deployment.close()
    event(log, "stopped", worker=worker)


async def _keep_instance_lock(deployment: Deployment, stop: asyncio.Event, every_s: float = 1.0) -> None:
    """--single-instance: a restarted PostgreSQL ends the session that held the lock; take it again. If
    another process took it meanwhile, two would serve without shared nonces: this one stops (drains)."""
    store: Any = deployment.store
    while not stop.is_set():
        await asyncio.sleep(every_s)
        if await asyncio.to_thread(store.instance_lock_held):
            continue
        try:
            held = await asyncio.to_thread(store.hold_instance_lock)
        except Unavailable:
            continue  # the database is down: nobody can take it; try again
        if not held:
            event(log, "single_instance_lost", level=logging.ERROR,
                  message="another ecard serve --single-instance took this database's lock: stopping")
            stop.set()


def _die_with(parent: int) -> None:
    """Asks Linux to send this worker SIGTERM when its parent dies (a SIGKILLed parent included)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:  # it died before we asked
        os.kill(os.getpid(), signal.SIGTERM)


def _run_worker(options: ServeOptions, worker: int, parent: int) -> int:
    """A forked worker's life; returns its exit status (never returns into the parent's code)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's forwarding handlers are not ours
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the server's loop takes it (TLS reload)
    _die_with(parent)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD_WHILE_FORKING)  # one sent while forking lands now
    try:
        run_server(options, worker=worker, reuse_port=True)
    except ValueError as exc:
        print(f"ecard: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except BaseException:
        event(log, "worker_crashed", level=logging.ERROR, exc_info=True, worker=worker)
        return 1
    return 0


def serve(options: ServeOptions) -> int:
    """Runs the server: in this process, or as `options.workers` forked processes on one port.

    The parent only forks and waits: it creates no gRPC object, thread or connection before forking, so
    each child starts clean (afterwards, with --metrics-listen, one thread serves the workers' summed
    metrics: ecard_server.metrics_relay). SIGTERM or SIGINT to the parent reaches every worker; when any
    worker ends (a crash, a bad start, a signal of its own) the parent stops the others and exits with the
    worst status.
    """
    check_options(options)
    if options.workers == 1:
        run_server(options)
        return 0
    children: dict[int, int] = {}  # pid -> worker number
    stopping: list[int] = []  # the signal that stops the group, once there is one

    def stop_all(signum: int) -> None:
        if not stopping:
            stopping.append(signum)
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def reload_all(signum: int) -> None:
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, lambda signum, _frame: stop_all(signum))
    signal.signal(signal.SIGINT, lambda signum, _frame: stop_all(signum))
    signal.signal(signal.SIGHUP, lambda signum, _frame: reload_all(signum))
    if options.metrics_listen:
        check_bindable(options.metrics_listen)  # a port in use is refused before any worker starts
    links = WorkerLinks(options.workers) if options.metrics_listen else None
    worker_options = replace(options, metrics_listen=None)
    # Held while forking: a child must not run the parent's handler, nor the parent miss a child.
    signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_WHILE_FORKING)
    parent = os.getpid()
    for worker in range(options.workers):
        pid = os.fork()
        if pid == 0:
            if links is not None:
                links.in_worker(worker)
            os._exit(_run_worker(worker_options, worker, parent))
        children[pid] = worker
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD_WHILE_FORKING)
    worst = 0
    if links is not None:
        links.in_parent()
        try:
            serve_aggregated(options.metrics_listen, links)  # type: ignore[arg-type]
        except ValueError as exc:
            print(f"ecard: error: {exc}", file=sys.stderr, flush=True)
            stop_all(signal.SIGTERM)
            worst = 2
    if stopping:  # a signal came while forking: make sure the late children hear it too
        stop_all(stopping[0])
    while children:
        pid, status = os.wait()
        if pid not in children:
            continue
        worker = children.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        if not stopping:
            event(log, "worker_exited", level=logging.WARNING, worker=worker, status=code)
            stop_all(signal.SIGTERM)
            worst = max(worst, code if code > 0 else 1)
        elif code > 0 or (code < 0 and -code != stopping[0]):
            worst = max(worst, code if code > 0 else 1)
    return worst
