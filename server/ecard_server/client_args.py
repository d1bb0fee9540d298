"""Where the client commands (`ecard verify`, `ecard admin`) connect, and how: flags, else environment.

    --target HOST:PORT        ECARD_TARGET            default 127.0.0.1:50051
    --tls-ca PEM              ECARD_TLS_CA            the CA that signed the server's certificate
    --tls-cert PEM            ECARD_TLS_CERT          this client's certificate (its URI SAN is the principal)
    --tls-key PEM             ECARD_TLS_KEY           this client's private key
    --tls-server-name NAME    ECARD_TLS_SERVER_NAME   the name checked in the server's certificate (IP targets)
    --timeout SECONDS         ECARD_TIMEOUT           deadline of each call (default 5)

A flag wins over its variable. With none of the three TLS files the command speaks the development
mode (plaintext, principal in metadata); with some but not all it is a usage error.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ecard import ClientOptions, TLSConfig

DEFAULT_TARGET = "127.0.0.1:50051"
_FLAGS = {  # dest: (flag, environment variable, help)
    "target": ("--target", "ECARD_TARGET", f"server HOST:PORT (default {DEFAULT_TARGET})"),
    "tls_ca": ("--tls-ca", "ECARD_TLS_CA", "PEM of the CA that signed the server certificate (mTLS)"),
    "tls_cert": ("--tls-cert", "ECARD_TLS_CERT", "PEM of this client's certificate (mTLS)"),
    "tls_key": ("--tls-key", "ECARD_TLS_KEY", "PEM of this client's private key (mTLS)"),
    "tls_server_name": ("--tls-server-name", "ECARD_TLS_SERVER_NAME", "name to check in the server certificate"),
    "timeout": ("--timeout", "ECARD_TIMEOUT", "seconds allowed for each call (default 5)"),
}


class ClientArgsError(ValueError):
    """A bad connection setting: one line for the user."""


def add_client_arguments(parser: argparse.ArgumentParser, *, repeated: bool = False) -> None:
    """The connection flags of a client command (defaults are read later, from the environment).
    `repeated`: the same flags on an action of such a command (`ecard admin card ... --target X`), where a
    flag not given leaves what the command's own flag said (`ecard admin --target X card ...`)."""
    for dest, (flag, variable, help_text) in _FLAGS.items():
        parser.add_argument(flag, dest=dest, default=argparse.SUPPRESS if repeated else None,
                            help=f"{help_text}; env {variable}")


def repeat_on_actions(parser: argparse.ArgumentParser) -> None:
    """The connection flags also after the action, on every command of `parser` that takes them before it."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for command in action.choices.values():
            takes_them = any(a.dest == "target" for a in command._actions)
            for sub in command._actions:
                if takes_them and isinstance(sub, argparse._SubParsersAction):
                    for acting in sub.choices.values():
                        if not any(a.dest == "target" for a in acting._actions):
                            add_client_arguments(acting, repeated=True)


def _setting(args: argparse.Namespace, dest: str) -> str | None:
    value = getattr(args, dest, None)
    return value if value is not None else (os.environ.get(_FLAGS[dest][1]) or None)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ClientArgsError(f"cannot read {what} {path}: {exc.strerror}") from None


def _pem(path: str, what: str, *, key: bool = False) -> bytes:
    """The file's bytes, once they parse as a PEM certificate (or private key): a wrong file is a usage
    error here, not an UNAVAILABLE from a handshake that cannot start."""
    data = _read(path, what)
    try:
        if key:
            serialization.load_pem_private_key(data, password=None)
        else:
            x509.load_pem_x509_certificate(data)
    except (ValueError, TypeError):
        kind = "an unencrypted PEM private key" if key else "a PEM certificate"
        raise ClientArgsError(f"{what} {path} is not {kind}") from None
    return data


def client_settings(args: argparse.Namespace) -> tuple[str, ClientOptions]:
    """The target and ClientOptions the flags and environment give."""
    target = _setting(args, "target") or DEFAULT_TARGET
    timeout_text = _setting(args, "timeout")
    try:
        timeout = float(timeout_text) if timeout_text else ClientOptions().timeout
    except ValueError:
        raise ClientArgsError(f"--timeout must be a number of seconds, got {timeout_text!r}") from None
    if not timeout > 0:
        raise ClientArgsError("--timeout must be above 0")
    files = {dest: _setting(args, dest) for dest in ("tls_ca", "tls_cert", "tls_key")}
    given = [dest for dest, path in files.items() if path]
    if not given:
        return target, ClientOptions(timeout=timeout)
    if len(given) < len(files):
        missing = [_FLAGS[dest][0] for dest, path in files.items() if not path]
        raise ClientArgsError(f"mTLS needs --tls-ca, --tls-cert and --tls-key; missing {', '.join(missing)}")
    ca, cert, key = (files["tls_ca"] or "", files["tls_cert"] or "", files["tls_key"] or "")
    tls = TLSConfig(
        _pem(ca, "CA certificate"), _pem(cert, "client certificate"), _pem(key, "client key", key=True),
        server_name=_setting(args, "tls_server_name"),
    )
    return target, ClientOptions(tls=tls, timeout=timeout)
