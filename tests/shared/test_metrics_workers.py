"""`ecard serve --workers 2 --metrics-listen P`: one /metrics on P with the sum of both workers' counts."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ecard import ClientOptions, PharmacyClient
from ecard.testing import EcardServer, World, free_port
from ecard.v1 import types_pb2 as t
from tests.helpers.deployment import children_of, config_file, scrape
from tests.helpers.polling import until

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_one_metrics_endpoint_sums_every_worker(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    config = config_file(tmp_path, f"ecard-test-{uuid.uuid4().hex[:12]}")
    server = EcardServer(db=pg_url, redis=redis_url,
                         extra_args=["--workers", "2", "--config", config, "--metrics-listen", f"127.0.0.1:{port}"])
    with server:
        assert server.process is not None
        until(lambda: True if len(children_of(server.process.pid)) == 2 else None, within=10, what="two workers")
        world = World.seed(server.target, cards=2)
        separate = ClientOptions(channel_options=(("grpc.use_local_subchannel_pool", 1),))
        accepted = lost = 0
        for round_ in range(12):  # a connection each: the kernel spreads them over both workers
            with PharmacyClient(server.target, merchant_id=world.pharmacy_id, options=separate) as pos:
                assert pos.verify(world.mint(0), purpose=t.PURPOSE_IDENTITY).reason == t.REASON_OK
                accepted += 1
                if round_ % 3 == 0:
                    assert pos.verify("EC1:not a token", purpose=t.PURPOSE_IDENTITY).reason == t.REASON_MALFORMED
                    lost += 1
        requests = scrape(port, "ecard_rpc_requests_total")
        assert requests['{code="OK",method="Verify"}'] == accepted + lost
        assert scrape(port, "ecard_rpc_latency_seconds_count")['{method="Verify"}'] == accepted + lost
        verdicts = scrape(port, "ecard_verify_verdicts_total")
        assert (verdicts['{reason="OK"}'], verdicts['{reason="MALFORMED"}']) == (accepted, lost)
        assert scrape(port, "ecard_workers_reporting") == {"": 2.0}
        per_worker = scrape(port, "ecard_worker_rpc_requests_total")
        assert set(per_worker) == {'{worker="0"}', '{worker="1"}'} and all(v > 0 for v in per_worker.values())
        # the scrape itself is not a call: both sides count the same calls
        assert sum(per_worker.values()) == sum(requests.values())
        # gauges are not additive (a cache's size): one sample per worker; watched counters add up
        assert set(scrape(port, "ecard_card_cache_entries")) == {'{worker="0"}', '{worker="1"}'}
        lookups = scrape(port, "ecard_card_cache_hits_total")[""] + scrape(port, "ecard_card_cache_misses_total")[""]
        assert lookups >= accepted  # every accepted token looked its card up
        assert scrape(port, "ecard_workers_configured") == {"": 2.0}
        assert scrape(port, "ecard_change_bus_connected") == {'{worker="0"}': 1.0, '{worker="1"}': 1.0}
        assert all(v > 0 for v in scrape(port, "ecard_redis_used_memory_bytes").values())
        assert server.stop() == 0


def test_a_metrics_port_in_use_is_a_one_line_error(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    config = config_file(tmp_path, f"ecard-test-{uuid.uuid4().hex[:12]}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "ecard_server.cli", "serve", "--db", pg_url, "--redis", redis_url,
             "--workers", "2", "--config", config, "--listen", f"127.0.0.1:{free_port()}",
             "--secret-file", str(tmp_path / "secret"),
             "--metrics-listen", f"127.0.0.1:{busy}"],
            capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("ecard:")]
    assert errors == [f"ecard: error: cannot serve metrics on 127.0.0.1:{busy}: [Errno 98] Address already in use"]
