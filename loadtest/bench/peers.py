"""Two servers a team could write instead of ecard, for `make bench` to measure ecard against.

Both answer the same gRPC method as ecard, `ecard.v1.Verifier/Verify` (VerifyRequest in, VerifyResponse
out), so one client drives all of them; each is the simplest of its kind, written as a team would:

    simple      the default sync grpcio server (a thread pool), PyJWT EdDSA tokens, the card read from
                SQLite on every call, single use by an in-memory set (one process only)
    shared      a sync grpcio server, PyNaCl (libsodium) on a compact signed token, the card read from
                PostgreSQL through a connection pool with an LRU cache in front, single use across
                replicas by Redis `SET key 1 NX EXAT exp`; a Redis that cannot answer fails closed

Neither has ecard's guard (roles, limits, metrics, request log, audit trail, verification records,
key rotation, binding checks): they are the floor a faster ecard has to beat, not equals.

    python -m loadtest.bench.peers simple --listen 127.0.0.1:P --sqlite cards.db --public-key HEX
    python -m loadtest.bench.peers shared --listen 127.0.0.1:P --pg URL --redis URL --namespace NS --public-key HEX

Tokens for them are made by `jwt_token` and `compact_token` below (the phone's side); their cards by
`write_sqlite_cards` and `write_pg_cards`.
"""

from __future__ import annotations

import argparse
import base64
import functools
import os
import signal
import sqlite3
import struct
import sys
import threading
import time
from collections.abc import Iterable
from concurrent import futures

import grpc

from ecard.v1 import types_pb2 as t
from ecard.v1 import verifier_pb2, verifier_pb2_grpc

CARD_COLUMNS = ("ecard_id TEXT PRIMARY KEY, status INTEGER NOT NULL, holder_name_masked TEXT NOT NULL,"
                " region TEXT NOT NULL")
Card = tuple[str, int, str, str]  # ecard_id, status, holder_name_masked, region


def _answer(request_id: str, reason: int, card: Card | None = None) -> verifier_pb2.VerifyResponse:
    response = verifier_pb2.VerifyResponse(
        request_id=request_id, reason=reason,  # type: ignore[arg-type]
        verdict=t.VERDICT_ACCEPTED if reason == t.REASON_OK else t.VERDICT_REJECTED,
    )
    if card is not None:
        response.card.ecard_id, response.card.status, response.card.holder_name_masked, response.card.region = card  # type: ignore[assignment]
    return response


def _merchant(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata():
        if key == "x-ecard-principal":
            return str(value)
    return None


# -- the simple peer: PyJWT, SQLite, a set -------------------------------------------------------------
class SimpleVerifier(verifier_pb2_grpc.VerifierServicer):
    def __init__(self, sqlite_path: str, public_key_hex: str) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        self.public_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        self.path = sqlite_path
        self.local = threading.local()
        self.used: set[str] = set()
        self.lock = threading.Lock()

    def db(self) -> sqlite3.Connection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = sqlite3.connect(self.path)
        return conn

    def Verify(self, request, context):  # type: ignore[no-untyped-def]
        import jwt

        if _merchant(context) is None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "no principal")
        try:
            claims = jwt.decode(request.token, self.public_key, algorithms=["EdDSA"])
        except jwt.ExpiredSignatureError:
            return _answer(request.request_id, t.REASON_EXPIRED)
        except jwt.InvalidTokenError:
            return _answer(request.request_id, t.REASON_BAD_SIGNATURE)
        row = self.db().execute(
            "SELECT ecard_id, status, holder_name_masked, region FROM cards WHERE ecard_id = ?", (claims["sub"],)
        ).fetchone()
        if row is None:
            return _answer(request.request_id, t.REASON_CARD_UNKNOWN)
        with self.lock:
            if claims["nonce"] in self.used:
                return _answer(request.request_id, t.REASON_REPLAYED, row)
            self.used.add(claims["nonce"])
        return _answer(request.request_id, t.REASON_OK, row)


def jwt_token(private_key: object, ecard_id: str, ttl: int = 300) -> str:
    import jwt

    now = int(time.time())
    claims = {"sub": ecard_id, "nonce": os.urandom(16).hex(), "iat": now, "exp": now + ttl}
    return jwt.encode(claims, private_key, algorithm="EdDSA")  # type: ignore[arg-type]


def write_sqlite_cards(path: str, cards: Iterable[Card]) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS cards ({CARD_COLUMNS})")
        conn.executemany("INSERT INTO cards VALUES (?, ?, ?, ?)", cards)


# -- the competent shared peer: PyNaCl, PostgreSQL behind an LRU, Redis SET NX EXAT --------------------
_COMPACT = struct.Struct(">II16s")  # issued_at, expires_at, nonce; the e-card id follows


def compact_token(signing_key: object, ecard_id: str, ttl: int = 300) -> str:
    """base64url(signature || issued_at || expires_at || nonce || ecard_id), signed by PyNaCl."""
    now = int(time.time())
    signed = signing_key.sign(_COMPACT.pack(now, now + ttl, os.urandom(16)) + ecard_id.encode())  # type: ignore[attr-defined]
    return base64.urlsafe_b64encode(bytes(signed)).decode()


class SharedVerifier(verifier_pb2_grpc.VerifierServicer):
    def __init__(self, pg_url: str, redis_url: str, namespace: str, public_key_hex: str, cache_size: int) -> None:
        import nacl.signing
        import redis
        from psycopg_pool import ConnectionPool

        self.verify_key = nacl.signing.VerifyKey(bytes.fromhex(public_key_hex))
        self.pool = ConnectionPool(pg_url, min_size=2, max_size=8, open=True)
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=2)
        self.prefix = f"{namespace}:used:"
        self.card = functools.lru_cache(maxsize=cache_size)(self._read_card)

    def _read_card(self, ecard_id: str) -> Card | None:
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT ecard_id, status, holder_name_masked, region FROM cards WHERE ecard_id = %s", (ecard_id,)
            ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3])

    def Verify(self, request, context):  # type: ignore[no-untyped-def]
        import nacl.exceptions
        import redis

        if _merchant(context) is None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "no principal")
        try:
            payload = self.verify_key.verify(base64.urlsafe_b64decode(request.token))
        except (ValueError, nacl.exceptions.BadSignatureError):
            return _answer(request.request_id, t.REASON_BAD_SIGNATURE)
        _issued_at, expires_at, nonce = _COMPACT.unpack_from(payload)
        if time.time() > expires_at:
            return _answer(request.request_id, t.REASON_EXPIRED)
        card = self.card(payload[_COMPACT.size:].decode())
        if card is None:
            return _answer(request.request_id, t.REASON_CARD_UNKNOWN)
        try:
            fresh = self.redis.set(self.prefix + nonce.hex(), 1, nx=True, exat=expires_at)
        except redis.RedisError:
            context.abort(grpc.StatusCode.UNAVAILABLE, "single-use store unavailable")
        return _answer(request.request_id, t.REASON_OK if fresh else t.REASON_REPLAYED, card)


def write_pg_cards(url: str, cards: Iterable[Card]) -> None:
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS cards ({CARD_COLUMNS})")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO cards VALUES (%s, %s, %s, %s)", list(cards))


# -- serving -------------------------------------------------------------------------------------------
def serve(servicer: verifier_pb2_grpc.VerifierServicer, listen: str, max_workers: int | None) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
    verifier_pb2_grpc.add_VerifierServicer_to_server(servicer, server)
    if server.add_insecure_port(listen) == 0:
        raise SystemExit(f"cannot listen on {listen}")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"peer serving on {listen}", flush=True)
    stop.wait()
    server.stop(2).wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.peers", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["simple", "shared"])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--public-key", required=True, help="the issuer's Ed25519 public key, hex")
    parser.add_argument("--sqlite", help="simple: the cards database file")
    parser.add_argument("--pg", help="shared: PostgreSQL URL of the cards database")
    parser.add_argument("--redis", help="shared: Redis URL for single use")
    parser.add_argument("--namespace", default="peer", help="shared: prefix of the Redis keys")
    parser.add_argument("--cache-size", type=int, default=100_000, help="shared: cards kept in the LRU")
    parser.add_argument("--threads", type=int, default=None, help="the pool's size (default: grpcio's default)")
    args = parser.parse_args(argv)
    if args.kind == "simple":
        if not args.sqlite:
            parser.error("simple needs --sqlite")
        servicer: verifier_pb2_grpc.VerifierServicer = SimpleVerifier(args.sqlite, args.public_key)
    else:
        if not (args.pg and args.redis):
            parser.error("shared needs --pg and --redis")
        servicer = SharedVerifier(args.pg, args.redis, args.namespace, args.public_key, args.cache_size)
    serve(servicer, args.listen, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
