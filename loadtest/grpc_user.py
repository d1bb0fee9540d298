"""GrpcUser: a Locust user whose SDK client runs on gevent, with every RPC reported to Locust.

gRPC must be told about gevent before it makes any channel, so this module does that on import;
the locustfile imports it (through `loadtest.pacing`) before anything else opens a channel.
Each simulated user opens one SDK client, hence one channel, in `on_start` and closes it in
`on_stop`. `LocustInterceptor` sits on that channel and fires `environment.events.request` for each
RPC, named by its method (`/ecard.v1.Verifier/Verify`), so the SDK does the real work while Locust
sees every call: retries as separate requests, failures by status code and ErrorInfo reason.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import grpc
import grpc.experimental.gevent as grpc_gevent
from locust import User
from locust.env import Environment
from locust.exception import LocustError

from ecard import ClientOptions, from_grpc_error

grpc_gevent.init_gevent()

REQUEST_TYPE = "grpc"


class TransportError(Exception):
    """An RPC that ended with a status other than OK. Its text (code and reason, no ids) groups failures."""

    def __init__(self, rpc_error: grpc.RpcError) -> None:
        error = from_grpc_error(rpc_error)
        code = error.status_name
        super().__init__(code if error.reason == code else f"{code} {error.reason}")
        self.code = code
        self.reason = error.reason


class LocustInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.StreamUnaryClientInterceptor):  # type: ignore[misc]
    """Times each unary (and client-streaming) RPC and fires one Locust request event for it."""

    def __init__(self, environment: Environment) -> None:
        self._events = environment.events

    def intercept_unary_unary(self, continuation: Any, call_details: Any, request: Any) -> Any:
        return self._report(continuation, call_details, request)

    def intercept_stream_unary(self, continuation: Any, call_details: Any, request_iterator: Any) -> Any:
        return self._report(continuation, call_details, request_iterator)

    def _report(self, continuation: Any, call_details: Any, request: Any) -> Any:
        started = time.perf_counter()
        outcome = continuation(call_details, request)
        error = outcome.exception()  # waits for the answer; None when the call succeeded
        elapsed_ms = (time.perf_counter() - started) * 1000
        response = outcome.result() if error is None else None
        self._events.request.fire(
            request_type=REQUEST_TYPE,
            name=_method_name(call_details.method),
            response_time=elapsed_ms,
            response_length=response.ByteSize() if response is not None else 0,
            response=response,
            context={},
            exception=TransportError(error) if error is not None else None,
        )
        return outcome


def _method_name(method: str | bytes) -> str:
    return method.decode() if isinstance(method, bytes) else method


class Closable(Protocol):
    def close(self) -> None: ...


class GrpcUser(User):
    """Abstract: a subclass says which SDK client it needs in `connect`; this class opens and closes it.

    `self.client` is the connected SDK client; `client_options(principal)` carries the interceptor.
    """

    abstract = True
    client: Any

    def on_start(self) -> None:
        if not self.host:
            raise LocustError("give the ecard server as --host HOST:PORT (no scheme)")
        self.client = self.connect(self.host)

    def on_stop(self) -> None:
        client: Closable | None = getattr(self, "client", None)
        if client is not None:
            client.close()

    def connect(self, target: str) -> Closable:
        """Opens this user's SDK client on `target`, built with `self.client_options(principal)`."""
        raise NotImplementedError

    def client_options(self, principal: str) -> ClientOptions:
        """Plain development-mode options with the interceptor; `ScheduledUser` adds mTLS and deadlines."""
        return ClientOptions(interceptors=(LocustInterceptor(self.environment),))
