"""The /metrics listener (`--metrics-listen HOST:PORT`), for one process or a `--workers` parent.

prometheus_client's own server answers 200 with the metrics on every path (`/`, `/favicon.ico`,
`/anything`); this one answers only GET /metrics, and 404 elsewhere, so a probe or a scanner that
mistakes the port for something else is told so.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app

PATH = "/metrics"


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged (Prometheus scrapes every few seconds)."""


def _only_metrics(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    def answer(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: the metrics are at /metrics\n"]
        return app(environ, start_response)

    return answer


def serve_metrics(address: str, registry: CollectorRegistry = REGISTRY) -> None:
    """Serves `registry` on GET /metrics at `address` (HOST:PORT) from a daemon thread.
    ValueError (one line) when the address cannot be listened on."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    server_class = _Server6 if ":" in host else _Server
    try:
        httpd = make_server(host, int(port), _only_metrics(make_wsgi_app(registry)), server_class, _Quiet)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot serve metrics on {address}: {exc}") from None
    threading.Thread(target=httpd.serve_forever, name="ecard-metrics", daemon=True).start()
