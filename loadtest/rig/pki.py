"""The throwaway certificate authority of the rig and of the tests (one CA for both): one server
certificate for every replica address (and localhost), and a client certificate per principal (URI SAN
ecard://admin, ecard://merchant/ID, ecard://channel/ID), or with any URI SANs, written as NAME.crt +
NAME.key (the layout `--tls-cert-dir` of the load test reads).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ecard import ClientOptions, TLSConfig, write_private_file

SERVER_NAME = "ecard.cluster"
"""The name clients check the server certificate against (the replicas share one certificate)."""


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def new_key_pem() -> bytes:
    """A fresh private key (PEM) that matches no certificate of any CA: the wrong key for a test."""
    return _pem_key(ec.generate_private_key(ec.SECP256R1()))


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class CertificateAuthority:
    """The CA and the server certificate in `folder`; `client(principal)` makes a client's on demand."""

    def __init__(self, folder: str | Path, server_addresses: Sequence[str] = ("127.0.0.1",)) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._now = datetime.datetime.now(datetime.UTC)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        self._ca = self._sign("ecard cluster test CA", self._ca_key, ca=True, names=[])
        self.ca = self.folder / "ca.pem"
        self.ca.write_bytes(_pem_cert(self._ca))
        names: list[x509.GeneralName] = [x509.DNSName(SERVER_NAME), x509.DNSName("localhost")]
        names += [x509.IPAddress(ipaddress.ip_address(address)) for address in server_addresses]
        self.server_cert, self.server_key = self._write("server", names)

    def _sign(self, subject: str, key: ec.EllipticCurvePrivateKey, *, ca: bool,
              names: list[x509.GeneralName]) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name if ca else self._ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now - datetime.timedelta(minutes=5))
            .not_valid_after(self._now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(key if ca else self._ca_key, hashes.SHA256())

    def _write(self, name: str, names: list[x509.GeneralName]) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert_path, key_path = self.folder / f"{name}.crt", self.folder / f"{name}.key"
        cert_path.write_bytes(_pem_cert(self._sign(name, key, ca=False, names=names)))
        write_private_file(key_path, _pem_key(key))  # 0600 from its first byte
        return cert_path, key_path

    def server_args(self) -> list[str]:
        """What `ecard serve` takes for mTLS with this CA."""
        return ["--tls-cert", str(self.server_cert), "--tls-key", str(self.server_key), "--client-ca", str(self.ca)]

    def client(self, principal: str) -> TLSConfig:
        """mTLS settings of `principal` ("admin", "merchant:ID", "channel:ID"), made the first time."""
        name = principal.replace(":", "-")
        if not (self.folder / f"{name}.crt").exists():
            uri = "ecard://admin" if principal == "admin" else "ecard://" + principal.replace(":", "/", 1)
            return self.certificate(name, uri)
        return self._settings(name)

    def certificate(self, name: str, *uris: str) -> TLSConfig:
        """A client certificate NAME.crt with these URI SANs (any, an ecard:// one or not), made now."""
        self._write(name, [x509.UniformResourceIdentifier(uri) for uri in uris])
        return self._settings(name)

    def _settings(self, name: str) -> TLSConfig:
        return TLSConfig.from_files(self.ca, self.folder / f"{name}.crt", self.folder / f"{name}.key",
                                    server_name=SERVER_NAME)

    def options(self, principal: str, **fields: object) -> ClientOptions:
        return ClientOptions(tls=self.client(principal), **fields)  # type: ignore[arg-type]
