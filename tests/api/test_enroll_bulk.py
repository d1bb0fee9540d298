"""EnrollCards carries many cards per stream message (`more_cards`): the summary is the same as with one
card per message, rows keep their stream order (errors name the same row numbers), and a message that
only carries cards counts as no row."""

from __future__ import annotations

from ecard import physical_cards
from ecard.testing import World
from ecard.v1 import admin_pb2


def _rows(tag: str) -> list[tuple[str, str, str, str, int]]:
    good = [(f"B{tag}{n:05d}", "朱测试", f"33020319900101{n:04d}", "330200", 100) for n in range(2500)]
    good[7] = ("bad no!", "x", "330203199901010000", "330200", 0)  # row 8
    good[1203] = (f"B{tag}XX", "", "330203199901010000", "330200", 0)  # row 1204: no name
    good[2499] = (f"B{tag}YY", "负数", "330203199901010000", "330200", -1)  # row 2500
    return good


def test_packed_and_single_streams_give_the_same_summary(world: World) -> None:
    with world.admin() as admin:
        packed = admin.enroll_cards(physical_cards(_rows("p")), per_message=1000)
        single = admin.enroll_cards(physical_cards(_rows("s")), per_message=1)
        again = admin.enroll_cards(physical_cards(_rows("p")), per_message=333)  # all known now
    for summary in (packed, single):
        assert (summary.enrolled, summary.updated, summary.rejected) == (2497, 0, 3)
        assert [e.split(":")[0] for e in summary.errors] == ["row 8", "row 1204", "row 2500"]
    assert (again.enrolled, again.updated, again.rejected) == (0, 2497, 3)


def test_a_message_may_hold_its_own_card_and_carry_more(world: World) -> None:
    card = admin_pb2.PhysicalCard
    messages = [
        card(card_no="BOWN0001", holder_name="甲", id_number="330203199001010001", region="330200",
             more_cards=[card(card_no="BOWN0002", holder_name="乙", id_number="330203199001010002"),
                         card(card_no="!", holder_name="丙", id_number="330203199001010003")]),
        card(more_cards=[card(card_no="BOWN0004", holder_name="丁", id_number="330203199001010004")]),
        card(),  # nothing at all: a row, and a malformed one
    ]
    with world.admin() as admin:
        summary = admin.enroll_cards(messages, per_message=1)
    assert (summary.enrolled, summary.rejected) == (3, 2)
    assert [e.split(":")[0] for e in summary.errors] == ["row 3", "row 5"]
