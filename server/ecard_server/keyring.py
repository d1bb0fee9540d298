"""The server's secrets, kept outside the data store they guard: a file of mode 0600, or ECARD_SECRETS.

A reader of the whole database (the SQLite file, every PostgreSQL table) must not be able to forge a
verification handle that Settle accepts, nor confirm identity guesses offline; so the keys of both live
here, never in `meta`. The keyring's text, one secret a line (`#` starts a comment; in ECARD_SECRETS a
`;` may stand for a line break):

    identity <64 hex>                         keys identity hashes; the first line hashes, every line matches
    signing <64 hex> <from unix> [<until>]    keys verification handles

The newest `signing` line whose `from` has come signs new handles; every signing line opens handles
until its `until` (a rotation gives the old line an `until` of the new line's `from` plus the
verification window, so a handle it signed settles until it expires, and not one second longer).
An `identity` line cannot be dropped while cards enrolled under it remain: rotating it means adding a
new first line, enrolling the cards again (EnrollCards rewrites their hashes), then removing the old
line. The database keeps a keyed fingerprint of the current identity secret (`meta.secret_check`),
so a server started with another deployment's secret file refuses to start instead of answering
IDENTITY_MISMATCH to every holder.

Databases of earlier versions kept one secret in `meta.server_secret`: `load_keyring` moves it out
(identity = that secret; it also opens the handles it signed until they expire; a fresh secret signs)
into the secret file when that file does not exist yet, and scrubs it from the database.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ecard import write_private_file
from ecard_server.core.handles import HandleKey

ENVIRONMENT = "ECARD_SECRETS"
LEGACY = "server_secret"  # where versions before issue 17 kept the secret, in the database
CHECK = "secret_check"


class SecretStore(Protocol):
    """What the keyring needs of a store: its `meta` table."""

    def meta_value(self, name: str) -> bytes | None: ...
    def set_meta_value(self, name: str, value: bytes) -> None: ...
    def scrub_meta_value(self, name: str) -> None: ...


@dataclass(frozen=True)
class SigningSecret:
    secret: bytes
    valid_from: int
    until: int | None = None  # opens handles up to this time; None: no end set yet


@dataclass(frozen=True)
class Keyring:
    identity: tuple[bytes, ...]  # the first hashes; all match
    signing: tuple[SigningSecret, ...] = field(default=())

    # -- text form ------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str, where: str) -> Keyring:
        identity: list[bytes] = []
        signing: list[SigningSecret] = []
        lines = enumerate(text.splitlines(), 1)
        entries = [(n, part) for n, line in lines for part in line.split("#", 1)[0].split(";")]
        for number, raw in entries:
            words = raw.split()
            if not words:
                continue
            try:
                kind, secret = words[0], bytes.fromhex(words[1])
                if len(secret) < 32:
                    raise ValueError
                if kind == "identity" and len(words) == 2:
                    identity.append(secret)
                elif kind == "signing" and len(words) in (3, 4):
                    signing.append(SigningSecret(secret, int(words[2]), int(words[3]) if len(words) == 4 else None))
                else:
                    raise ValueError
            except (ValueError, IndexError):
                raise ValueError(
                    f"{where} line {number}: expected 'identity HEX' or 'signing HEX FROM [UNTIL]' "
                    "with a secret of at least 32 bytes (64 hex digits)"
                ) from None
        if not identity or not signing:
            raise ValueError(f"{where} needs an identity line and a signing line (ecard secret init FILE makes them)")
        return cls(tuple(identity), tuple(signing))

    def text(self) -> str:
        lines = ["# ecard server secrets: never in the database; keep this file 0600 (docs/security.md)"]
        lines += [f"identity {secret.hex()}" for secret in self.identity]
        for s in self.signing:
            lines.append(f"signing {s.secret.hex()} {s.valid_from}" + (f" {s.until}" if s.until is not None else ""))
        return "\n".join(lines) + "\n"

    # -- making and rotating ----------------------------------------------------------------------
    @classmethod
    def generate(cls, now: int) -> Keyring:
        return cls((secrets.token_bytes(32),), (SigningSecret(secrets.token_bytes(32), now),))

    @classmethod
    def from_legacy(cls, secret: bytes, now: int, window_s: int) -> Keyring:
        """What a database's old `meta.server_secret` becomes: it keeps keying identity hashes (the cards
        enrolled under it), opens the handles it signed until they expire, and signs nothing new."""
        return cls((secret,), (SigningSecret(secrets.token_bytes(32), now), SigningSecret(secret, 0, now + window_s)))

    def rotated(self, now: int, window_s: int, *, after_s: int = 0, identity: bool = False) -> Keyring:
        """A new signing secret that signs from `now + after_s` (time for every replica to load it first);
        the ones it replaces open handles until `from + window_s`; lines already past their end are dropped.
        With `identity`, a new first identity line as well (enroll the cards again, then drop the old)."""
        start = now + after_s
        kept = [
            s if s.until is not None else SigningSecret(s.secret, s.valid_from, start + window_s)
            for s in self.signing
            if s.until is None or s.until >= now
        ]
        new_identity = (secrets.token_bytes(32), *self.identity) if identity else self.identity
        return Keyring(new_identity, (SigningSecret(secrets.token_bytes(32), start), *kept))

    # -- use --------------------------------------------------------------------------------------
    def handle_keys(self) -> list[HandleKey]:
        """The signing secrets as core.handles takes them."""
        return [HandleKey(s.secret, s.valid_from, s.until) for s in self.signing]

    def check_value(self, secret: bytes | None = None) -> bytes:
        """The keyed fingerprint of an identity secret kept in the database: it tells which secret the
        cards were hashed with, and says nothing of it (HMAC of a fixed word, under the secret itself)."""
        return hmac.new(secret or self.identity[0], b"ecard/v1/secret-check", hashlib.sha256).digest()[:16]


@dataclass(frozen=True)
class SecretSource:
    """Where a deployment's keyring is: `text` (ECARD_SECRETS), else the file `path` (made, 0600, for a
    new database when missing), else nowhere persistent (`ephemeral`: an in-memory database)."""

    path: str | None = None
    text: str | None = None
    ephemeral: bool = False

    @classmethod
    def for_database(cls, db_url: str, path: str | None = None, environ: dict[str, str] | None = None) -> SecretSource:
        """The source a server uses: ECARD_SECRETS, else `path` (--secret-file), else for a SQLite file the
        file beside it (`<database>.secret`). PostgreSQL has no default: every replica must be given the
        same secret, so it is refused without one (ValueError)."""
        text = (os.environ if environ is None else environ).get(ENVIRONMENT)
        if text:
            return cls(text=text)
        if path:
            return cls(path=path)
        if db_url.startswith("sqlite://"):
            database = db_url.removeprefix("sqlite:///")
            return cls(ephemeral=True) if database == ":memory:" else cls(path=f"{database}.secret")
        if not db_url.startswith(("postgresql://", "postgres://")):
            return cls(ephemeral=True)  # not a database URL at all: opening it says so
        raise ValueError(
            "a shared database needs the server secret outside it: give --secret-file FILE (mode 0600, the same "
            f"file on every replica; `ecard secret init FILE` makes one) or set {ENVIRONMENT}"
        )

    @property
    def where(self) -> str:
        return self.path or (ENVIRONMENT if self.text else "the in-memory keyring")


def read_keyring_file(path: str) -> Keyring | None:
    """The keyring in `path`, None when there is no such file. A file others may read is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "r", encoding="utf-8") as file:
        if os.fstat(file.fileno()).st_mode & 0o077:
            raise ValueError(f"secret file {path} may be read by others: chmod 600 {path}")
        return Keyring.parse(file.read(), path)


def write_keyring_file(path: str, keyring: Keyring, *, exclusive: bool) -> bool:
    """Writes the keyring at mode 0600 from its first byte; with `exclusive`, only if no file is there
    (returns False when another process made it first). Otherwise replaced atomically."""
    folder = Path(path).parent
    if not folder.is_dir():
        raise ValueError(f"secret file folder does not exist: {folder}")
    data = keyring.text().encode()
    if exclusive:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        return True
    temporary = f"{path}.{secrets.token_hex(4)}.tmp"
    write_private_file(temporary, data)
    os.replace(temporary, path)
    return True


def load_keyring(
    store: SecretStore, source: SecretSource, *, window_s: int, clock: Callable[[], float] = time.time,
    warn: Callable[[str], None] = lambda message: None,
) -> Keyring:
    """The deployment's keyring, checked against the database it serves (ValueError with one line when
    it does not fit), with an older database's in-store secret moved out (see the module docstring)."""
    now = int(clock())
    legacy = store.meta_value(LEGACY)
    keyring = _from_source(source)
    if keyring is None and legacy is not None:
        if source.path is None:
            raise ValueError(f"this database still holds its secret (meta.{LEGACY}): start once with "
                             "--secret-file FILE (a file that does not exist yet) to move it out")
        moved = Keyring.from_legacy(legacy, now, window_s)
        if not write_keyring_file(source.path, moved, exclusive=True):
            keyring = _from_source(source)  # another process moved it first
        else:
            keyring = moved
            warn(f"moved the server secret out of the database into {source.path} (mode 0600); whoever read the "
                 "database before could check identity guesses against the cards enrolled so far: re-enroll them "
                 "under a new identity secret (docs/security.md)")
    if keyring is None:
        if store.meta_value(CHECK) is not None:
            raise ValueError(f"no server secret at {source.where}, and this database's cards were hashed with one: "
                             "restore that file (or ECARD_SECRETS) from where the other replicas have it")
        keyring = Keyring.generate(now)
        if source.path is not None and not write_keyring_file(source.path, keyring, exclusive=True):
            keyring = _from_source(source) or keyring  # another replica or worker made it first
    if legacy is not None:
        if bytes(legacy) not in keyring.identity:
            raise ValueError(f"{source.where} does not hold this database's secret (meta.{LEGACY}): move it out with "
                             "a --secret-file that does not exist yet")
        store.scrub_meta_value(LEGACY)
    _check_fits(store, keyring, source)
    return keyring


def _from_source(source: SecretSource) -> Keyring | None:
    if source.text is not None:
        return Keyring.parse(source.text, ENVIRONMENT)
    if source.path is not None:
        return read_keyring_file(source.path)
    return None


def _check_fits(store: SecretStore, keyring: Keyring, source: SecretSource) -> None:
    """Refuses a keyring that did not hash this database's cards; records the current identity secret."""
    stored = store.meta_value(CHECK)
    known = [keyring.check_value(s) for s in keyring.identity]
    if stored is not None and not any(hmac.compare_digest(bytes(stored), value) for value in known):
        raise ValueError(f"{source.where} is not this database's server secret (its cards were hashed with another): "
                         "give the secret file of this deployment")
    current = keyring.check_value()
    if stored is None or bytes(stored) != current:
        store.set_meta_value(CHECK, current)

