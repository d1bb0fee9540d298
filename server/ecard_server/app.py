"""Assembly: a Deployment holds one process's state; create_server puts it on a gRPC port.

    deployment = Deployment.open(Settings(), "sqlite:///var/ecard.db")
    bound = create_server(deployment, "127.0.0.1:0")  # on the event loop that will serve it
    await bound.start()
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from ecard.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    cards_pb2,
    cards_pb2_grpc,
    settlement_pb2,
    settlement_pb2_grpc,
    verifier_pb2,
    verifier_pb2_grpc,
)
from ecard_server.config import Settings
from ecard_server.core import events
from ecard_server.core.admin import AdminService
from ecard_server.core.audit import AuditTrail
from ecard_server.core.books import CurrentBook
from ecard_server.core.caches import CardCache, CertificateDenyList, KeyRegistry, MerchantDirectory
from ecard_server.core.cards import CardService
from ecard_server.core.channel_events import ChannelEventService, OutboxUpkeep
from ecard_server.core.counter import CounterBindingService
from ecard_server.core.handles import VerificationHandles
from ecard_server.core.identity import IdentityHasher, derive_key, mask_name
from ecard_server.core.limits import Admission, RateLeases
from ecard_server.core.nonces import remember_across_restarts, save_for_restart
from ecard_server.core.notices import NoticePublisher
from ecard_server.core.ports import ChangeBus, NonceStore, Store, VerificationRecords
from ecard_server.core.records import NO_CATALOGUE
from ecard_server.core.rules.benefits import NO_POLICY
from ecard_server.core.rules.quotes import QuoteSeal
from ecard_server.core.rules.settlement import SettlementPolicy
from ecard_server.core.settlement import SettlementService
from ecard_server.core.signals import Signals
from ecard_server.core.statements import StatementService
from ecard_server.core.usage import UsageService
from ecard_server.core.verification import TokenVerifier
from ecard_server.core.visits import VisitService
from ecard_server.deployment_metrics import watch_deployment
from ecard_server.handshakes import HANDSHAKE_TIMEOUT_S
from ecard_server.keyring import Keyring, SecretSource, load_keyring
from ecard_server.logs import event
from ecard_server.rpc.admin import AdminServicer
from ecard_server.rpc.auth import Authorizer, no_principal, principal_from_certificate, principal_from_metadata
from ecard_server.rpc.cards import CardsServicer
from ecard_server.rpc.guard import GuardedRegistry
from ecard_server.rpc.parsing import MessageLimits
from ecard_server.rpc.placement import Placement
from ecard_server.rpc.request_log import RequestLog
from ecard_server.rpc.settlement import SettlementServicer
from ecard_server.rpc.threaded import HOT_THREADS, HotPool, ThreadedServer
from ecard_server.rpc.verifier import SharedVerifierServicer, VerifierServicer
from ecard_server.storage import open_store
from ecard_server.storage.memory import LocalChangeBus, MemoryNonceStore, MemoryVerificationRecords
from ecard_server.tls import ServerTls, TlsFiles

log = logging.getLogger("ecard.server")


@dataclass
class Deployment:
    """Everything one server process holds: store, caches, nonce store, services."""

    settings: Settings
    store: Store
    bus: ChangeBus
    nonces: NonceStore
    keys: KeyRegistry
    merchants: MerchantDirectory
    card_cache: CardCache
    denied_certificates: CertificateDenyList
    verifier: TokenVerifier
    cards: CardService
    admin: AdminService
    audit: AuditTrail
    handles: VerificationHandles
    settlements: SettlementService
    statements: StatementService
    visits: VisitService
    records: VerificationRecords
    channel_events: ChannelEventService
    usage: UsageService
    counter: CounterBindingService
    upkeep: OutboxUpkeep
    notices: NoticePublisher  # the channels' notices, published off the committing caller's thread
    clock: Callable[[], float]
    rate_leases: RateLeases | None = None  # the rate limits' buckets, shared in Redis (None: per process)
    saves_nonces: bool = False  # nonces in this process only: saved at close for the next (core.nonces)

    @classmethod
    def open(
        cls, settings: Settings, db_url: str, redis_url: str | None = None, *, clock: Callable[[], float] = time.time,
        secrets: SecretSource | None = None, single_instance: bool = False,
    ) -> Deployment:
        """`secrets`: where the server secrets are (default: SecretSource.for_database, which reads
        ECARD_SECRETS). Raises ValueError with one line when the store or the secrets cannot be used.

        Without Redis, consumed nonces and the caches' change notices stay in this process: a second
        process on the same PostgreSQL database would accept a token again and verify a card lost on
        the first. So PostgreSQL without Redis needs `single_instance`, and then holds the database's
        single-instance lock (refused when another process has it)."""
        shared_db = db_url.startswith(("postgresql://", "postgres://"))
        if single_instance and (redis_url or not shared_db):
            raise ValueError("--single-instance is for --db postgresql://... without --redis")
        if shared_db and not redis_url and not single_instance:
            raise ValueError(
                "PostgreSQL without --redis keeps single use and revocation in one process: give --redis URL "
                "(replicas), or --single-instance if this is the only ecard serve on the database"
            )
        source = secrets or SecretSource.for_database(db_url)
        store = open_store(db_url)
        try:
            if single_instance and not store.hold_instance_lock():  # type: ignore[attr-defined]
                raise ValueError(
                    "another ecard serve --single-instance holds this database: one process only without --redis"
                )
            keyring = cls.keyring_of(store, source, settings, clock)
        except BaseException:
            store.close()
            raise
        bus: ChangeBus
        nonces: NonceStore
        records: VerificationRecords
        if redis_url:
            from ecard_server.storage.redis_bus import RedisChangeBus
            from ecard_server.storage.redis_limits import RedisRateLeases
            from ecard_server.storage.redis_nonces import RedisNonceStore
            from ecard_server.storage.redis_records import RedisVerificationRecords

            namespace = settings.redis_namespace
            try:
                horizon = settings.max_token_lifetime_s + 2 * settings.clock_skew_s + 1
                records = RedisVerificationRecords(
                    redis_url, settings.verification_window_s, namespace,
                    per_merchant=settings.verification_records_per_merchant,
                )
                nonces = RedisNonceStore.from_url(redis_url, witness=store, namespace=namespace, horizon_s=horizon,
                                                  records=records)
                bus = RedisChangeBus.from_url(redis_url, namespace=namespace)
                leases = RedisRateLeases(redis_url, namespace)
            except ValueError:
                store.close()
                raise
            deployment = cls.assemble(settings, store, bus, nonces, records=records, clock=clock, keyring=keyring)
            deployment.rate_leases = leases
            return deployment
        records = MemoryVerificationRecords(
            settings.verification_window_s, settings.verification_records, clock,
            per_merchant=settings.verification_records_per_merchant,
        )
        nonces, bus = MemoryNonceStore(settings.nonce_capacity, clock=clock, records=records), LocalChangeBus()
        try:
            if not single_instance and not store.hold_instance_lock():  # type: ignore[attr-defined]
                raise ValueError(f"another ecard serve uses {store.url}: one process only without --redis")
            if remember_across_restarts(store, nonces, skew_s=settings.clock_skew_s, now=clock()):
                event(log, "nonce_memory_lost", level=logging.WARNING,
                      refusing_issued_until=int(nonces.forgotten_until),
                      message="the last process on this database stopped without saving its consumed nonces: "
                              "tokens issued before this start are refused as REPLAYED")
        except BaseException:
            store.close()
            raise
        deployment = cls.assemble(settings, store, bus, nonces, records=records, clock=clock, keyring=keyring)
        deployment.saves_nonces = True
        return deployment

    @staticmethod
    def keyring_of(store: Store, source: SecretSource, settings: Settings, clock: Callable[[], float]) -> Keyring:
        return load_keyring(
            store, source, window_s=settings.verification_window_s, clock=clock,
            warn=lambda message: event(log, "server_secret_moved", level=logging.WARNING, message=message),
        )

    @classmethod
    def assemble(
        cls, settings: Settings, store: Store, bus: ChangeBus, nonces: NonceStore, *,
        records: VerificationRecords | None = None, clock: Callable[[], float], keyring: Keyring | None = None,
    ) -> Deployment:
        """`keyring`: the server secrets (default: made in memory, for a store that lives no longer)."""
        if keyring is None:
            keyring = cls.keyring_of(store, SecretSource(ephemeral=True), settings, clock)
        hasher = IdentityHasher(*keyring.identity)
        store.seal_holders(lambda name, id_hash: (mask_name(name), hasher.seal(id_hash, name)))  # older rows
        keys, merchants = KeyRegistry(store), MerchantDirectory(store)
        card_cache = CardCache(store, settings.card_cache_size)
        trail = AuditTrail(store.append_audit, clock=clock)
        signals = Signals()
        channel_events = ChannelEventService(store.outbox, trail, settings, signals, clock)
        denied = CertificateDenyList(store)
        catalogue = CurrentBook(store.current_catalogue, events.CATALOGUE, NO_CATALOGUE)
        benefits = CurrentBook(store.current_policy, events.POLICY, NO_POLICY)
        for listener in (keys.on_change, merchants.on_change, card_cache.on_change, signals.on_change,
                         denied.on_change, catalogue.on_change, benefits.on_change):
            bus.subscribe(listener)
        # Once a transaction that wrote channel events commits, their streams on every replica wake:
        # from the publisher's thread, so that the Settle that committed does not wait for Redis.
        notices = NoticePublisher(bus)

        def told(issuers: Iterable[str]) -> None:
            for issuer_id in issuers:
                notices.publish(events.CHANNEL_EVENTS, issuer_id)

        store.outbox.on_committed = told
        handles = VerificationHandles(keyring.handle_keys(), window_s=settings.verification_window_s, now=int(clock()))
        verifier = TokenVerifier(
            keys=keys, cards=card_cache, nonces=nonces, handles=handles, settings=settings, clock=clock
        )
        settlements = SettlementService(
            ledger=store.ledger, policy=SettlementPolicy.from_settings(settings), verifier=verifier,
            handles=handles, merchants=merchants, settings=settings, catalogue=catalogue, benefits=benefits,
            quotes=QuoteSeal([derive_key(key.secret, "quote") for key in keyring.handle_keys()]), clock=clock,
        )
        return cls(
            settings=settings,
            store=store,
            bus=bus,
            nonces=nonces,
            keys=keys,
            merchants=merchants,
            card_cache=card_cache,
            denied_certificates=denied,
            verifier=verifier,
            cards=CardService(store, bus, hasher, keys, settings, clock, ledger=store.ledger),
            admin=AdminService(store, store.ledger, bus, hasher, settings, clock),
            audit=trail,
            handles=handles,
            settlements=settlements,
            statements=StatementService(store.statements, merchants),
            visits=VisitService(visits=store.visits, settlements=settlements, verifier=verifier, handles=handles,
                                merchants=merchants, settings=settings, clock=clock),
            records=records if records is not None else MemoryVerificationRecords(
                settings.verification_window_s, settings.verification_records, clock,
                per_merchant=settings.verification_records_per_merchant,
            ),
            channel_events=channel_events,
            usage=UsageService(store, store.usage, trail, clock),
            counter=CounterBindingService(store, trail, settings, clock),
            upkeep=OutboxUpkeep(store.outbox, settings, clock, counter=store),
            notices=notices,
            clock=clock,
        )

    @property
    def hot_state_local(self) -> bool:
        """Whether Verify's state is all in this process: nonces in memory, cards and keys cached in
        memory over a store whose reads are local (a miss is never a network round trip)."""
        return self.store.local and self.nonces.local

    async def aclose(self) -> None:
        """Closes what lives on the server's event loop (the asyncio Redis client), on that loop."""
        for holder in (self.nonces, self.records, self.rate_leases):
            aclose = getattr(holder, "aclose", None)
            if aclose is not None:
                await aclose()

    def close(self) -> None:
        """Once no call runs any more: an in-process nonce set is saved for the next process first."""
        if self.saves_nonces:
            try:
                save_for_restart(self.store, self.nonces)  # type: ignore[arg-type]
            except Exception as exc:  # the store is down: the next start refuses what this one consumed
                event(log, "nonces_not_saved", level=logging.ERROR, error=type(exc).__name__)
        self.upkeep.close()
        self.channel_events.signals.close()
        self.audit.close()
        self.notices.close()
        self.bus.close()
        for holder in (self.nonces, self.records, self.rate_leases):
            close = getattr(holder, "close", None)
            if close:
                close()
        self.store.close()


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


SERVICE_NAMES = (
    verifier_pb2.DESCRIPTOR.services_by_name["Verifier"].full_name,
    cards_pb2.DESCRIPTOR.services_by_name["Cards"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,
    settlement_pb2.DESCRIPTOR.services_by_name["Settlement"].full_name,
)


@dataclass
class BoundServer:
    """A gRPC server with every ecard service on a bound port, not yet started."""

    server: grpc.Server  # grpc's thread-pool server (rpc.threaded), its async work on the loop that made it
    port: int
    pool: futures.ThreadPoolExecutor
    health: health.aio.HealthServicer
    service_names: list[str]
    tls: ServerTls | None = None  # reloaded on SIGHUP (ecard_server.serving)
    health_server: grpc.aio.Server | None = None  # plaintext, the health service alone (--health-listen)
    health_port: int = 0
    readers: futures.ThreadPoolExecutor | None = None  # where streams' request messages are waited for
    hot: futures.ThreadPoolExecutor | None = None  # where hot methods' calls run (rpc.threaded.HotPool)
    on_drain: tuple[Callable[[], None], ...] = ()
    """Called as the drain starts: endless streams (WatchEvents) end, so that their clients move on."""

    async def start(self) -> None:
        for name in ["", *self.service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.server.start()
        if self.health_server is not None:
            await self.health_server.start()

    async def report_not_serving(self) -> None:
        """NOT_SERVING for every name while calls are still answered (the drain's first step)."""
        for name in ["", *self.service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    async def drain(self, grace: float) -> None:
        """Reports NOT_SERVING, refuses new calls, lets calls in flight finish for up to `grace` seconds."""
        await self.health.enter_graceful_shutdown()
        for begin in self.on_drain:
            begin()
        stopped = self.server.stop(grace)
        await asyncio.to_thread(stopped.wait)
        if self.health_server is not None:
            await self.health_server.stop(0)
        # Waited for off the loop: a pool thread reading a client stream may still need the loop once.
        await asyncio.to_thread(self.pool.shutdown, wait=True)
        if self.readers is not None:
            self.readers.shutdown(wait=False)
        if self.hot is not None:
            self.hot.shutdown(wait=False)


CALL_THREADS = 512
"""Handler threads of the server (made as calls need them): each long stream (WatchEvents, health's
Watch) holds one while it lasts, a unary call only while it runs."""
DEV_PRINCIPALS_UNDER_TLS = ("--dev-principals is for plaintext on loopback; under mTLS the principal is the "
                            "certificate's")
KEEPALIVE = (
    # Pings a silent client every 30 s and drops it after 10 s without an answer (a POS that lost power),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # and lets clients ping it every 2 s, even between calls: the SDK's pings (every 5 s) are how a
    # frozen replica leaves its round robin within seconds. A client pinging faster is told GOAWAY
    # ENHANCE_YOUR_CALM "too_many_pings" at its third early ping (gRPC's default strikes).
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 2_000),
    ("grpc.http2.max_ping_strikes", 2),
)


def transport_options(settings: Settings, limits: MessageLimits, *, reuse_port: bool) -> list[tuple[str, int]]:
    """What the HTTP/2 transport holds for anyone who can reach the port, before any caller is known
    (docs/security.md): connections, streams per connection, the largest message (a full batch; each
    method's own limit is applied when the guard reads it), no stream window grown past HTTP/2's initial
    64 KB for a message nobody asked to read, a handshake that must finish in 10 s."""
    return [
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.max_receive_message_length", limits.largest),
        ("grpc.max_concurrent_streams", settings.max_streams_per_connection),
        ("grpc.max_allowed_incoming_connections", settings.max_connections),
        ("grpc.http2.bdp_probe", 0),
        ("grpc.server_handshake_timeout_ms", int(HANDSHAKE_TIMEOUT_S * 1000)),
        *KEEPALIVE,
    ]


def create_server(
    deployment: Deployment,
    address: str,
    *,
    tls: TlsFiles | None = None,
    max_workers: int = 32,
    reuse_port: bool = False,
    dev_principals: bool = False,
    health_address: str | None = None,
) -> BoundServer:
    """Every ecard service on grpc's thread-pool server, its async work on the event loop this is called
    on (rpc.threaded), and the port it bound.

    A unary call runs on its handler thread (an async method's coroutine on the loop, the thread
    waiting); streams run on the loop. Other blocking work runs on a pool of `max_workers` threads.
    Plaintext is allowed only on a loopback address; anything else needs mTLS. On plaintext the principal
    comes from the metadata only with `dev_principals` (development); without it every ecard call is
    UNAUTHENTICATED and only health and reflection answer. Raises ValueError with a one-line reason when
    the address cannot be used.
    """
    if tls is None and not is_loopback(address):
        raise ValueError(
            f"refusing plaintext on non-loopback address {address}: give --tls-cert, --tls-key and --client-ca"
        )
    if tls is not None and dev_principals:
        raise ValueError(DEV_PRINCIPALS_UNDER_TLS)
    server_tls = ServerTls(tls) if tls else None  # ValueError: a file missing, unreadable or not matching
    watch_deployment(deployment)
    resolve = principal_from_certificate if tls else principal_from_metadata if dev_principals else no_principal
    authorizer = Authorizer(deployment.merchants, deployment.keys, resolve,
                            deny=deployment.denied_certificates if tls is not None else None)
    pool = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ecard-rpc")
    placement = Placement(pool, inline=deployment.hot_state_local)
    settings = deployment.settings
    limits = MessageLimits(max_batch=settings.max_batch)
    loop = asyncio.get_running_loop()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=CALL_THREADS, thread_name_prefix="ecard-call"),
        options=transport_options(settings, limits, reuse_port=reuse_port),
    )
    readers = futures.ThreadPoolExecutor(max_workers=CALL_THREADS, thread_name_prefix="ecard-read")
    hot = HotPool(HOT_THREADS, CALL_THREADS)
    registry = GuardedRegistry(
        ThreadedServer(server, loop, readers, hot), authorizer, placement,
        RequestLog(settings.request_log_verify_ok_per_second,
                   refused_per_second=settings.request_log_refused_per_second),
        Admission.from_settings(settings, deployment.rate_leases), limits, loop=loop,
    )
    servicer = VerifierServicer if placement.inline else SharedVerifierServicer
    verifier_pb2_grpc.add_VerifierServicer_to_server(
        servicer(deployment.verifier, deployment.audit, deployment.records, deployment.settings), registry
    )
    cards_pb2_grpc.add_CardsServicer_to_server(
        CardsServicer(deployment.cards, deployment.channel_events, deployment.usage, deployment.counter,
                      deployment.card_cache, placement), registry
    )
    admin_pb2_grpc.add_AdminServicer_to_server(
        AdminServicer(deployment.admin, deployment.cards, deployment.statements), registry
    )
    settlement_pb2_grpc.add_SettlementServicer_to_server(
        SettlementServicer(deployment.settlements, deployment.statements, deployment.visits), registry
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, registry)
    names = list(SERVICE_NAMES)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        reflection.aio.ReflectionServicer([*names, health.SERVICE_NAME, reflection.SERVICE_NAME]), registry
    )
    try:
        if server_tls is not None:
            port = server.add_secure_port(address, server_tls.credentials())
        else:
            port = server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if port == 0:
        pool.shutdown(wait=False)
        readers.shutdown(wait=False)
        hot.shutdown(wait=False)
        raise ValueError(f"cannot listen on {address}: address in use or not available")
    bound = BoundServer(server, port, pool, health_servicer, names, server_tls, readers=readers, hot=hot,
                        on_drain=(deployment.channel_events.signals.close,))
    if health_address:  # for probes that cannot present a client certificate (kubelet, grpc_health_probe)
        bound.health_server = grpc.aio.server(options=[("grpc.so_reuseport", 1 if reuse_port else 0)])
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, bound.health_server)
        try:
            bound.health_port = bound.health_server.add_insecure_port(health_address)
        except RuntimeError:
            bound.health_port = 0
        if bound.health_port == 0:
            pool.shutdown(wait=False)
            raise ValueError(f"cannot listen on {health_address} (--health-listen): address in use or not available")
    return bound
