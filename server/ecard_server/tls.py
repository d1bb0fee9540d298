"""The server's mTLS files: read and checked at start (a key that does not match its certificate is
said as such), and read again on SIGHUP without a restart.

gRPC asks `ServerTls.configuration` before every new connection's handshake (its dynamic server
credentials): it answers None (keep what you have) until a reload has produced a checked new
certificate, key and client CA, which it hands over once. A reload that fails its checks keeps the
files in use and says why in the log; connections already open keep theirs.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ecard_server import handshakes
from ecard_server.logs import event
from ecard_server.rpc import metrics

log = logging.getLogger("ecard.tls")


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for mTLS: the server's certificate and key, and the CA that signs client certificates."""

    cert: str
    key: str
    client_ca: str

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(key, certificate chain, client CA), checked. ValueError (one line) naming what is wrong."""
        contents = []
        for path, what in ((self.key, "TLS key"), (self.cert, "TLS certificate"), (self.client_ca, "client CA")):
            try:
                with open(path, "rb") as file:
                    contents.append(file.read())
            except OSError as exc:
                raise ValueError(f"cannot read {what} {path}: {exc.strerror}") from None
        key_pem, cert_pem, ca_pem = contents
        try:
            certificate = x509.load_pem_x509_certificate(cert_pem)
        except ValueError:
            raise ValueError(f"TLS certificate {self.cert} is not a PEM certificate") from None
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError):
            raise ValueError(f"TLS key {self.key} is not an unencrypted PEM private key") from None
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_key().public_bytes(serialization.Encoding.DER, spki) != certificate.public_key().public_bytes(
            serialization.Encoding.DER, spki
        ):
            raise ValueError(f"TLS key {self.key} does not match the certificate {self.cert}")
        try:
            if not x509.load_pem_x509_certificates(ca_pem):
                raise ValueError
        except ValueError:
            raise ValueError(f"client CA {self.client_ca} holds no PEM certificate") from None
        return key_pem, cert_pem, ca_pem


def _configuration(files: tuple[bytes, bytes, bytes]) -> grpc.ServerCertificateConfiguration:
    key, cert, ca = files
    return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)


class ServerTls:
    """The live TLS configuration of one server process, reloadable."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self._initial = _configuration(files.read())
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self._lock = threading.Lock()
        self.reloads = 0
        self.handshakes = handshakes.HandshakeTally()
        handshakes.install(self.handshakes)
        self.handshakes.watch()
        counts = self.handshakes.counts
        metrics.watch("ecard_tls_handshakes_total", "TLS handshakes begun (connections accepted on the mTLS port)",
                      lambda: counts()["begun"], counter=True)
        metrics.watch("ecard_tls_handshakes_completed_total", "TLS handshakes that became a connection",
                      lambda: counts()["completed"], counter=True)
        metrics.watch("ecard_tls_handshake_failures_total",
                      "TLS handshakes that failed: no connection within the handshake timeout (docs/operations.md)",
                      lambda: counts()["failed"], counter=True)

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(  # its fetcher may answer None: "keep the current one"
            self._initial, self.configuration, require_client_authentication=True)  # type: ignore[arg-type]

    def configuration(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's question before each handshake: a new configuration once after a reload, else None."""
        self.handshakes.began()
        with self._lock:
            pending, self._pending = self._pending, None
        return pending

    def reload(self) -> bool:
        """Reads and checks the files again (SIGHUP); new connections use them. False if they fail."""
        try:
            new = _configuration(self.files.read())
        except ValueError as exc:
            event(log, "tls_reload_failed", level=logging.ERROR, error=str(exc))
            return False
        with self._lock:
            self._pending = new
            self.reloads += 1
        event(log, "tls_reloaded", cert=self.files.cert, client_ca=self.files.client_ca)
        return True
