"""Connection options for every ecard client: frozen, typed, one docstring per field."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import grpc.aio

from ecard.errors import TRANSIENT_STATUS_NAMES

SyncInterceptor = (
    grpc.UnaryUnaryClientInterceptor | grpc.UnaryStreamClientInterceptor | grpc.StreamUnaryClientInterceptor
    | grpc.StreamStreamClientInterceptor
)
"""What `grpc.intercept_channel` takes: the interceptors of the sync clients."""
ClientInterceptor = SyncInterceptor | grpc.aio.ClientInterceptor
"""An interceptor of either kind (`grpc.aio.ClientInterceptor` for the asyncio client)."""


@dataclass(frozen=True)
class TLSConfig:
    """mTLS to a production server. The principal is the client certificate's URI SAN."""

    ca_cert: bytes
    """PEM of the CA that signed the server's certificate."""
    client_cert: bytes
    """PEM of this client's certificate (URI SAN ecard://merchant/<id>, ecard://channel/<id> or ecard://admin)."""
    client_key: bytes
    """PEM of this client's private key."""
    server_name: str | None = None
    """Overrides the name checked against the server certificate (tests, IP targets)."""

    @classmethod
    def from_files(
        cls, ca_cert: str | Path, client_cert: str | Path, client_key: str | Path, *, server_name: str | None = None
    ) -> TLSConfig:
        return cls(Path(ca_cert).read_bytes(), Path(client_cert).read_bytes(), Path(client_key).read_bytes(),
                   server_name=server_name)


@dataclass(frozen=True)
class RetryConfig:
    """Retries of calls that are safe to repeat (never Verify: it consumes the token)."""

    max_attempts: int = 4
    """Attempts in all, the first included."""
    initial_backoff: float = 0.05
    """Seconds before the first retry; later waits grow by `multiplier`, with full jitter."""
    max_backoff: float = 1.0
    """Upper bound of one wait, in seconds."""
    multiplier: float = 2.0
    retry_codes: frozenset[grpc.StatusCode] = field(
        default_factory=lambda: frozenset(grpc.StatusCode[name] for name in TRANSIENT_STATUS_NAMES)
    )
    """Status codes that mean "try again": by default the transient ones (`ecard.TRANSIENT_STATUS_NAMES`)."""

    def delays(self) -> list[float]:
        """The jittered waits between attempts."""
        return [
            random.uniform(0, min(self.max_backoff, self.initial_backoff * self.multiplier**n))
            for n in range(self.max_attempts - 1)
        ]


NO_RETRY = RetryConfig(max_attempts=1)


@dataclass(frozen=True)
class ClientOptions:
    """What every ecard client takes besides its target."""

    tls: TLSConfig | None = None
    """mTLS settings; None for the development mode (plaintext on loopback, principal as metadata)."""
    timeout: float = 5.0
    """Deadline of each call, in seconds."""
    lookup_timeout: float = 1.0
    """Deadline of each GetVerification that asks back the answer of a Verify that timed out (it is
    retried on transient codes, as `retry` says, and waits for the connection to be ready)."""
    retry: RetryConfig = RetryConfig()
    """Retry policy for the calls that are safe to repeat."""
    keepalive_s: float = 5.0
    """Seconds between HTTP/2 pings on an idle or busy connection; a server that does not answer one
    within `keepalive_timeout_s` is dropped (a frozen or cut-off replica leaves the round robin within
    about their sum). 0 turns the pings off."""
    keepalive_timeout_s: float = 2.0
    """How long a ping may wait for its answer."""
    channel_options: tuple[tuple[str, object], ...] = ()
    """Extra gRPC channel arguments, e.g. (("grpc.lb_policy_name", "round_robin"),)."""
    interceptors: tuple[ClientInterceptor, ...] = ()
    """Client interceptors wrapped around the channel, outermost first (timing, tracing, load-test
    events): `grpc.UnaryUnaryClientInterceptor` and kin for the sync clients, their `grpc.aio`
    counterparts for the asyncio client."""
