"""core.rules.compact writes what json.dumps writes, byte for byte: the settle and basket digests, the
quote ids and the stored lines of settlements made before it must read (and hash) the same."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from ecard_server.core.rules.compact import compact_ascii_json, compact_json

plain = st.none() | st.booleans() | st.integers() | st.text()
forms = st.recursive(plain, lambda inner: st.lists(inner, max_size=6) | st.tuples(inner, inner), max_leaves=40)


@given(forms)
def test_compact_json_is_json_dumps(form: object) -> None:
    assert compact_json(form) == json.dumps(form, ensure_ascii=False, separators=(",", ":"))
    assert compact_ascii_json(form) == json.dumps(form, separators=(",", ":"))


def test_non_ascii() -> None:
    assert compact_json(["朱小明", 1]) == '["朱小明",1]'
    assert compact_ascii_json(["朱", True]) == '["\\u6731",true]'
