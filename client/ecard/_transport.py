"""Channels, metadata, deadlines, retries and error mapping shared by the sync and asyncio clients."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import time
from collections.abc import Sequence
from typing import Any, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from ecard._options import ClientOptions, RetryConfig
from ecard._rpc_errors import from_grpc_error
from ecard._tracing import with_trace_context

PRINCIPAL_METADATA = "x-ecard-principal"
REQUEST_ID = "x-request-id"
"""Metadata the server's log line and trailing metadata take the call's request id from (a Verify sends its
request_id there too, so the id the till prints is the one in the server's log)."""
Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
Metadata = tuple[tuple[str, str], ...]
"""Call metadata as the clients send it: (key, value) pairs."""
Targets = str | Sequence[str]
"""One server ("10.0.0.2:50051"), several replicas (["10.0.0.2:50051", "10.0.0.3:50051"] or the same
comma-separated), or any gRPC target ("dns:///ecard.internal:50051", "ipv4:10.0.0.2:50051,10.0.0.3:50051")."""

BALANCED_SERVICE_CONFIG = json.dumps(
    {"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}}
)
"""Round robin over every address, skipping one that is down or whose health check is not SERVING."""
_BALANCED_SCHEMES = ("dns:", "ipv4:", "ipv6:")


def _address(target: str) -> tuple[str, str]:
    """("ipv4" | "ipv6", address) of an IP:PORT replica; ValueError for anything else."""
    host, sep, port = target.rpartition(":")
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        ip = None
    if not sep or not port.isdigit() or ip is None:
        raise ValueError(
            f"replica {target!r} is not IP:PORT; for a DNS name with several addresses use 'dns:///NAME:PORT'"
        )
    return ("ipv4", f"{ip}:{port}") if ip.version == 4 else ("ipv6", f"[{ip}]:{port}")


_BALANCED_OR_LOCAL = (*_BALANCED_SCHEMES, "unix:", "unix-abstract:")
_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$")


def _checked(target: str) -> str:
    """`target` if it is HOST:PORT; ValueError naming it and what is wrong (before anything is sent)."""
    found = _HOST_PORT.match(target)
    if found and 0 < int(found.group(1)) < 65536:
        return target
    if "://" in target:
        raise ValueError(f"server address {target!r} is a URL: give HOST:PORT (e.g. 127.0.0.1:50051)")
    if any(c.isspace() for c in target) or not target:
        raise ValueError(f"server address {target!r} is not HOST:PORT (e.g. 127.0.0.1:50051)")
    if ":" not in target.strip("[]") or target.endswith(":"):
        raise ValueError(f"server address {target!r} has no port: give HOST:PORT (e.g. {target.rstrip(':')}:50051)")
    raise ValueError(f"server address {target!r} is not HOST:PORT (e.g. 127.0.0.1:50051)")


def channel_target(targets: Targets) -> tuple[str, bool]:
    """The gRPC target for `targets` and whether the channel balances between several addresses.

    A single HOST:PORT stays as it is (one server, gRPC's default pick-first). Several IP:PORT replicas
    become one `ipv4:` (or `ipv6:`) target; that and any `dns:`/`ipv4:`/`ipv6:` target are balanced."""
    if isinstance(targets, str):
        if targets.startswith(_BALANCED_SCHEMES):
            return targets, True
        targets = [part.strip() for part in targets.split(",")]
    replicas = [target for target in targets if target]
    if not replicas:
        raise ValueError("no server address given")
    if len(replicas) == 1:
        return (replicas[0] if replicas[0].startswith(_BALANCED_OR_LOCAL) else _checked(replicas[0])), False
    addresses = [_address(replica) for replica in replicas]
    families = {family for family, _ in addresses}
    if len(families) > 1:
        raise ValueError("replicas must all be IPv4 or all IPv6")
    return f"{families.pop()}:{','.join(address for _, address in addresses)}", True


def _credentials(options: ClientOptions) -> grpc.ChannelCredentials | None:
    tls = options.tls
    if tls is None:
        return None
    return grpc.ssl_channel_credentials(tls.ca_cert, tls.client_key, tls.client_cert)


def _channel_args(options: ClientOptions, balanced: bool) -> list[tuple[str, Any]]:
    args = list(options.channel_options)
    given = {name for name, _ in args}
    if options.keepalive_s > 0 and "grpc.keepalive_time_ms" not in given:
        timeout_ms = int(options.keepalive_timeout_s * 1000)
        args += [("grpc.keepalive_time_ms", int(options.keepalive_s * 1000)), ("grpc.keepalive_timeout_ms", timeout_ms),
                 # gRPC 1.5x+ waits this long for any ping's answer (a minute by default): the keepalive
                 # timeout alone does not drop a frozen server whose calls are in flight
                 ("grpc.http2.ping_timeout_ms", timeout_ms),
                 ("grpc.keepalive_permit_without_calls", 1), ("grpc.http2.max_pings_without_data", 0)]
    if balanced and not any(name == "grpc.service_config" for name, _ in args):
        args.append(("grpc.service_config", BALANCED_SERVICE_CONFIG))
    if options.tls and options.tls.server_name:
        args.append(("grpc.ssl_target_name_override", options.tls.server_name))
    return args


def sync_channel(targets: Targets, options: ClientOptions) -> grpc.Channel:
    target, balanced = channel_target(targets)
    creds = _credentials(options)
    args = _channel_args(options, balanced)
    channel = grpc.secure_channel(target, creds, args) if creds else grpc.insecure_channel(target, args)
    if not options.interceptors:
        return channel
    interceptors = [kind for kind in options.interceptors if isinstance(kind, _SYNC_INTERCEPTORS)]
    if len(interceptors) != len(options.interceptors):
        raise TypeError("a sync client takes grpc.*ClientInterceptor interceptors, not grpc.aio ones")
    return grpc.intercept_channel(channel, *interceptors)


_SYNC_INTERCEPTORS = (grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                      grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor)


def aio_channel(targets: Targets, options: ClientOptions) -> grpc.aio.Channel:
    target, balanced = channel_target(targets)
    creds = _credentials(options)
    args = _channel_args(options, balanced)
    interceptors = [kind for kind in options.interceptors if isinstance(kind, grpc.aio.ClientInterceptor)]
    if len(interceptors) != len(options.interceptors):
        raise TypeError("an asyncio client takes grpc.aio.*ClientInterceptor interceptors, not sync ones")
    if creds:
        return grpc.aio.secure_channel(target, creds, args, interceptors=interceptors or None)
    return grpc.aio.insecure_channel(target, args, interceptors=interceptors or None)


def principal_metadata(principal: str | None, options: ClientOptions) -> Metadata:
    """Development mode names the principal in metadata; with mTLS the certificate does."""
    return () if options.tls or not principal else ((PRINCIPAL_METADATA, principal),)


def call(
    method: grpc.UnaryUnaryMultiCallable[Req, Resp], request: Req, *, metadata: Metadata, timeout: float,
    retry: RetryConfig | None, wait_for_ready: bool | None = None,
) -> Resp:
    """One unary call with a deadline; retried on transient codes when `retry` is given."""
    delays = retry.delays() if retry else []
    metadata = with_trace_context(metadata)
    for attempt in range(len(delays) + 1):
        try:
            return method(request, metadata=metadata, timeout=timeout, wait_for_ready=wait_for_ready)
        except grpc.RpcError as exc:
            if retry is None or attempt == len(delays) or exc.code() not in retry.retry_codes:
                raise from_grpc_error(exc) from exc
            time.sleep(delays[attempt])
    raise AssertionError("unreachable")


async def acall(
    method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp], request: Req, *, metadata: Metadata, timeout: float,
    retry: RetryConfig | None, wait_for_ready: bool | None = None,
) -> Resp:
    delays = retry.delays() if retry else []
    metadata = with_trace_context(metadata)
    for attempt in range(len(delays) + 1):
        try:
            return await method(request, metadata=metadata, timeout=timeout, wait_for_ready=wait_for_ready)
        except grpc.RpcError as exc:
            if retry is None or attempt == len(delays) or exc.code() not in retry.retry_codes:
                raise from_grpc_error(exc) from exc
            await asyncio.sleep(delays[attempt])
    raise AssertionError("unreachable")
