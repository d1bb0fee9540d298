"""core.rules.compact writes what json.dumps writes, byte for byte: the settle and basket digests, the
quote ids and the stored lines of settlements made before it must read (and hash) the same; and the
digests themselves are pinned."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from ecard_server.core.records import LineItem, SettleInput
from ecard_server.core.rules.compact import compact_ascii_json, compact_json
from ecard_server.core.rules.quotes import basket_digest
from ecard_server.core.rules.settlement import settle_hash

plain = st.none() | st.booleans() | st.integers() | st.text()
forms = st.recursive(plain, lambda inner: st.lists(inner, max_size=6) | st.tuples(inner, inner), max_leaves=40)


@given(forms)
def test_compact_json_is_json_dumps(form: object) -> None:
    assert compact_json(form) == json.dumps(form, ensure_ascii=False, separators=(",", ":"))
    assert compact_ascii_json(form) == json.dumps(form, separators=(",", ":"))


def test_non_ascii() -> None:
    assert compact_json(["朱小明", 1]) == '["朱小明",1]'
    assert compact_ascii_json(["朱", True]) == '["\\u6731",true]'


def test_the_request_digests_are_those_of_earlier_versions() -> None:
    """A Settle retried across an upgrade is compared by its stored request hash, and a quote_id carries
    its basket's digest: both must stay what 7bd9914 (and every version before it) computed."""
    items = tuple(LineItem(f"C{n:03d}", "阿莫西林" if n % 2 else "", n % 4, 500 + 37 * n, 1 + n % 3) for n in range(20))
    assert settle_hash(SettleInput("k", items, verification_id="v")).hex() == (
        "a090b7e674d7880299548733d3aa53a5e5ad21e1e95b0ede503a8fd7fcb87ace")
    assert basket_digest(items, True).hex() == "acb4123f12309151121fcf2beb983087"
