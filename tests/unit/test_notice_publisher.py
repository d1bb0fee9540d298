"""NoticePublisher: the caller returns before the bus publishes; every notice told reaches the bus after
it was told, at least once; what is told again while the bus is busy is published once; close
publishes what is pending."""

from __future__ import annotations

import threading
import time

from ecard_server.core.notices import NoticePublisher
from ecard_server.core.ports import Listener


class SlowBus:
    """A ChangeBus whose publish waits until the test lets it go (as a round trip to Redis would)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []
        self.go = threading.Event()
        self.entered = threading.Event()
        self.fail_next = False

    def subscribe(self, listener: Listener) -> None:
        raise AssertionError("not used")

    def publish(self, kind: str, key: str) -> None:
        self.entered.set()
        assert self.go.wait(5)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("the bus broke")
        self.published.append((kind, key))

    def close(self) -> None:
        pass


def wait_for(predicate: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_the_caller_does_not_wait_for_the_bus_and_repeats_are_published_once() -> None:
    bus = SlowBus()
    notices = NoticePublisher(bus)
    try:
        started = time.monotonic()
        notices.publish("channel-events", "bank-a")
        assert bus.entered.wait(5)  # the thread is inside publish, held there
        for _ in range(100):  # told again and again while the bus is busy
            notices.publish("channel-events", "bank-a")
            notices.publish("channel-events", "bank-b")
        assert time.monotonic() - started < 1.0  # none of these waited for the held bus
        assert bus.published == []
        bus.go.set()
        wait_for(lambda: len(bus.published) == 3)
        assert bus.published == [("channel-events", "bank-a"), ("channel-events", "bank-a"),
                                 ("channel-events", "bank-b")]
    finally:
        bus.go.set()
        notices.close()


def test_close_publishes_what_is_pending_and_later_notices_go_straight_to_the_bus() -> None:
    bus = SlowBus()
    notices = NoticePublisher(bus)
    notices.publish("channel-events", "bank-a")
    assert bus.entered.wait(5)
    notices.publish("channel-events", "bank-b")
    bus.go.set()
    notices.close()
    assert bus.published == [("channel-events", "bank-a"), ("channel-events", "bank-b")]
    notices.publish("channel-events", "bank-c")  # after close: published before publish returns
    assert bus.published[-1] == ("channel-events", "bank-c")


def test_a_bus_that_raises_does_not_stop_the_publisher() -> None:
    bus = SlowBus()
    bus.fail_next = True
    bus.go.set()
    notices = NoticePublisher(bus)
    try:
        notices.publish("channel-events", "bank-a")
        wait_for(lambda: not bus.fail_next)
        notices.publish("channel-events", "bank-b")
        wait_for(lambda: bus.published == [("channel-events", "bank-b")])
    finally:
        notices.close()
