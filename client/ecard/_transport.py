"""Channels, metadata, deadlines, retries and error mapping shared by the sync and asyncio clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import grpc.aio

from ecard._options import ClientOptions, RetryConfig
from ecard._rpc_errors import from_grpc_error

PRINCIPAL_METADATA = "x-ecard-principal"
T = TypeVar("T")


def _credentials(options: ClientOptions) -> grpc.ChannelCredentials | None:
    tls = options.tls
    if tls is None:
        return None
    return grpc.ssl_channel_credentials(tls.ca_cert, tls.client_key, tls.client_cert)


def _channel_args(options: ClientOptions) -> list[tuple[str, Any]]:
    args = list(options.channel_options)
    if options.tls and options.tls.server_name:
        args.append(("grpc.ssl_target_name_override", options.tls.server_name))
    return args


def sync_channel(target: str, options: ClientOptions) -> grpc.Channel:
    creds = _credentials(options)
    args = _channel_args(options)
    channel = grpc.secure_channel(target, creds, args) if creds else grpc.insecure_channel(target, args)
    return grpc.intercept_channel(channel, *options.interceptors) if options.interceptors else channel


def aio_channel(target: str, options: ClientOptions) -> grpc.aio.Channel:
    creds = _credentials(options)
    args = _channel_args(options)
    interceptors = list(options.interceptors) or None
    if creds:
        return grpc.aio.secure_channel(target, creds, args, interceptors=interceptors)  # type: ignore[arg-type]
    return grpc.aio.insecure_channel(target, args, interceptors=interceptors)  # type: ignore[arg-type]


def principal_metadata(principal: str | None, options: ClientOptions) -> tuple[tuple[str, str], ...]:
    """Development mode names the principal in metadata; with mTLS the certificate does."""
    return () if options.tls or not principal else ((PRINCIPAL_METADATA, principal),)


def call(
    method: Callable[..., T], request: Any, *, metadata: Any, timeout: float, retry: RetryConfig | None,
    wait_for_ready: bool | None = None,
) -> T:
    """One unary call with a deadline; retried on transient codes when `retry` is given."""
    delays = retry.delays() if retry else []
    for attempt in range(len(delays) + 1):
        try:
            return method(request, metadata=metadata, timeout=timeout, wait_for_ready=wait_for_ready)
        except grpc.RpcError as exc:
            if retry is None or attempt == len(delays) or exc.code() not in retry.retry_codes:  # type: ignore[attr-defined]
                raise from_grpc_error(exc) from exc
            time.sleep(delays[attempt])
    raise AssertionError("unreachable")


async def acall(
    method: Callable[..., Awaitable[T]], request: Any, *, metadata: Any, timeout: float, retry: RetryConfig | None,
    wait_for_ready: bool | None = None,
) -> T:
    delays = retry.delays() if retry else []
    for attempt in range(len(delays) + 1):
        try:
            return await method(request, metadata=metadata, timeout=timeout, wait_for_ready=wait_for_ready)
        except grpc.RpcError as exc:
            if retry is None or attempt == len(delays) or exc.code() not in retry.retry_codes:  # type: ignore[attr-defined]
                raise from_grpc_error(exc) from exc
            await asyncio.sleep(delays[attempt])
    raise AssertionError("unreachable")
