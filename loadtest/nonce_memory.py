"""Bytes of Redis memory per consumed nonce, as the server stores them (for docs/scaling.md).

    python -m loadtest.nonce_memory [--redis redis://127.0.0.1:6379/0] [--count 200000]

Writes `count` nonces through the server's own RedisNonceStore (key `<namespace>:nonce:<issuer>\\0<16
random bytes>`, value "1", EXAT the token's expiry) under a namespace of its own, then reads Redis's
MEMORY USAGE of a sample of keys (what one key costs, its allocation included) and the growth of
`used_memory` (which adds the keyspace's hash table and the expiry table; on a shared Redis other
clients move it too, so the figure is given beside the per-key one, not instead of it). Deletes its
keys (every key of its namespace) afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid

from ecard._token import NONCE_BYTES
from ecard_server.core.nonces import nonce_key
from ecard_server.storage.redis_state import RedisNonceStore, connect

ISSUER = "icbc-nb"  # a realistic issuer id length
BATCH = 1000


def measure(url: str, count: int) -> dict[str, float | int]:
    namespace = f"noncemem-{uuid.uuid4().hex[:8]}"
    client = connect(url, timeout=10)
    store = RedisNonceStore(client, namespace)
    expires = time.time() + 300
    before = int(client.info("memory")["used_memory"])
    try:
        for start in range(0, count, BATCH):
            store.consume_many([(nonce_key(ISSUER, os.urandom(NONCE_BYTES)), expires)
                                for _ in range(min(BATCH, count - start))])
        after = int(client.info("memory")["used_memory"])
        sample = [key for _, key in zip(range(1000), client.scan_iter(match=f"{namespace}:nonce:*", count=1000),
                                        strict=False)]
        usage = [int(client.memory_usage(key, samples=0) or 0) for key in sample]
        key_bytes = statistics.fmean(len(key) for key in sample)
    finally:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=5000))  # the nonces and the store's marker
        for start in range(0, len(keys), 5000):
            client.delete(*keys[start:start + 5000])
        client.close()
    return {"count": count, "key_bytes": round(key_bytes, 1), "memory_usage_per_key": round(statistics.fmean(usage), 1),
            "used_memory_growth_per_key": round((after - before) / count, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.nonce_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default=os.environ.get("ECARD_TEST_REDIS", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--count", type=int, default=200_000)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.redis, args.count)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
