"""A throwaway certificate authority for mTLS tests: a CA, a server certificate for 127.0.0.1 and
client certificates whose URI SANs name ecard principals (ecard://merchant/<id>, ...)."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ecard import TLSConfig, write_private_file

Issued = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def issue(name: str, issuer: Issued | None, *, uris: Sequence[str] = (), server: bool = False) -> Issued:
    """A certificate signed by `issuer` (self-signed CA when None), valid for a day."""
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
    if server:
        names += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


class CertificateAuthority:
    """A CA in `folder` (ca.pem, server.pem, server.key) and TLS client configurations by name."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca = issue("ecard test CA", None)
        server_cert, server_key = issue("ecard server", self.ca, server=True)
        (folder / "ca.pem").write_bytes(cert_pem(self.ca[0]))
        (folder / "server.pem").write_bytes(cert_pem(server_cert))
        write_private_file(folder / "server.key", key_pem(server_key))

    def serve_args(self) -> list[str]:
        """The `ecard serve` options for mTLS with this CA."""
        folder = self.folder
        return ["--tls-cert", str(folder / "server.pem"), "--tls-key", str(folder / "server.key"),
                "--client-ca", str(folder / "ca.pem")]

    def client(self, name: str, *uris: str) -> TLSConfig:
        """A client certificate named `name` with these URI SANs (ecard://admin, ...)."""
        cert, key = issue(name, self.ca, uris=uris)
        return TLSConfig(cert_pem(self.ca[0]), cert_pem(cert), key_pem(key), server_name="localhost")
