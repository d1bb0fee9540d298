"""Bytes of Redis memory per consumed nonce, as the server stores them (for docs/scaling.md).

    python -m loadtest.measure.nonce_memory [--redis redis://127.0.0.1:6379/0] [--count 200000]

Starts `ecard serve --redis URL` (a SQLite file, a Redis namespace of its own) and has it consume
`count` nonces the way it does in service: fresh tokens of one e-card (lifetime 300 s) verified
through the public API, VerifyBatch by 1,000. Then reads Redis's MEMORY USAGE of a sample of the
server's nonce keys (what one key costs, its allocation included) and the growth of `used_memory`
(which adds the keyspace's hash table and the expiry table; on a shared Redis other clients move it
too, so the figure is given beside the per-key one, not instead of it). Deletes its keys (every key
of its namespace) afterwards. A client of the server, as the rest of loadtest: it imports no server code.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

from ecard import verify_request
from ecard.testing import EcardServer, World
from ecard.v1 import types_pb2

BATCH = 1000
LIFETIME_S = 300  # the longest a token may live: no key expires while it is counted


def measure(url: str, count: int) -> dict[str, float | int]:
    import redis

    namespace = f"noncemem-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        with tempfile.TemporaryDirectory(prefix="ecard-noncemem-") as folder:
            config = Path(folder) / "ecard.toml"
            # no rate limit: it measures Redis's memory per nonce, with VerifyBatch calls of 1,000 tokens
            config.write_text(f'redis_namespace = "{namespace}"\nprincipal_calls_per_s = 0\n')
            with EcardServer(redis=url, extra_args=["--config", str(config)]) as server:
                world = World.seed(server.target, cards=1)
                before = int(client.info("memory")["used_memory"])
                with world.pharmacy() as pos:
                    for start in range(0, count, BATCH):
                        batch = [verify_request(world.mint(0, ttl_seconds=LIFETIME_S),
                                                purpose=types_pb2.PURPOSE_IDENTITY)
                                 for _ in range(min(BATCH, count - start))]
                        answers = pos.verify_batch(batch, timeout=60)
                        refused = [a.reason for a in answers if a.verdict != types_pb2.VERDICT_ACCEPTED]
                        if refused:
                            raise RuntimeError(f"{len(refused)} of a batch not accepted: {refused[:3]}")
                after = int(client.info("memory")["used_memory"])
                pattern = f"{namespace}:nonce:*"
                sample = [key for _, key in zip(range(1000), client.scan_iter(match=pattern, count=1000),
                                                strict=False)]
                usage = [int(client.memory_usage(key, samples=0) or 0) for key in sample]
                key_bytes = statistics.fmean(len(key) for key in sample)
    finally:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=5000))  # the nonces and the store's markers
        for start in range(0, len(keys), 5000):
            client.delete(*keys[start:start + 5000])
        client.close()
    return {"count": count, "key_bytes": round(key_bytes, 1), "memory_usage_per_key": round(statistics.fmean(usage), 1),
            "used_memory_growth_per_key": round((after - before) / count, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.measure.nonce_memory",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default=os.environ.get("ECARD_TEST_REDIS", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--count", type=int, default=200_000)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.redis, args.count)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
