"""How the SDK reads one or several replica addresses (no server needed), and Redis over a Unix socket."""

from __future__ import annotations

import json

import pytest

from ecard import AdminClient, ClientOptions, PharmacyClient
from ecard._transport import BALANCED_SERVICE_CONFIG, channel_target
from ecard_server.storage.redis_connect import describe


def test_one_address_stays_a_plain_target() -> None:
    assert channel_target("127.0.0.1:50051") == ("127.0.0.1:50051", False)
    assert channel_target(["ecard.local:50051"]) == ("ecard.local:50051", False)


def test_several_replicas_become_one_balanced_target() -> None:
    expected = ("ipv4:10.231.1.2:50051,10.231.1.3:50051", True)
    assert channel_target(["10.231.1.2:50051", "10.231.1.3:50051"]) == expected
    assert channel_target("10.231.1.2:50051, 10.231.1.3:50051") == expected  # what Locust's --host takes
    assert channel_target(["[fd00::5]:50051", "[fd00::6]:50051"]) == ("ipv6:[fd00::5]:50051,[fd00::6]:50051", True)


def test_grpc_name_schemes_are_balanced_as_given() -> None:
    assert channel_target("dns:///ecard.internal:50051") == ("dns:///ecard.internal:50051", True)
    assert channel_target("ipv4:10.0.0.2:1,10.0.0.3:1") == ("ipv4:10.0.0.2:1,10.0.0.3:1", True)


@pytest.mark.parametrize("bad", [[], "", ["ecard-a:50051", "ecard-b:50051"], ["10.0.0.2", "10.0.0.3:1"],
                                 ["10.0.0.2:1", "[fd00::5]:1"]])
def test_unusable_replica_lists_are_refused_with_a_clear_message(bad: object) -> None:
    with pytest.raises(ValueError, match=r"address|IP:PORT|IPv4"):
        channel_target(bad)  # type: ignore[arg-type]


def test_balancing_asks_for_round_robin_and_health_checks() -> None:
    config = json.loads(BALANCED_SERVICE_CONFIG)
    assert config == {"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}}


def test_clients_take_a_list_of_replicas() -> None:
    with PharmacyClient(["10.231.1.2:50051", "10.231.1.3:50051"], merchant_id="m", options=ClientOptions()) as pos:
        assert pos.target == ["10.231.1.2:50051", "10.231.1.3:50051"]
    AdminClient("10.231.1.2:1,10.231.1.3:1").close()


def test_redis_unix_socket_urls_are_described_by_their_path() -> None:
    assert describe("unix:///tmp/ecard/redis.sock?db=0") == "/tmp/ecard/redis.sock"
    assert describe("redis://:secret@10.0.0.9:6380/2") == "10.0.0.9:6380/2"
