"""storage.redis_connect.ScriptLine's own RESP: a script call as redis-py would send it, and a script's
answer read whole however it arrives (an integer or an array of them), a Redis error raised."""

from __future__ import annotations

import pytest
import redis

from ecard_server.storage.redis_connect import _INCOMPLETE, _NO_SCRIPT, _command, _reply


def test_a_script_call_is_packed_as_redis_py_packs_it() -> None:
    keys = [b"ns:nonces-since", b"ns:nonce:\x00\xff"]
    args = [361, 1764790000, "1764790000.25", 1.5, b"1", "r\u00e9"]
    ours = _command(b"EVALSHA", "ab" * 20, keys, args)
    theirs = b"".join(redis.connection.Connection().pack_command("EVALSHA", "ab" * 20, len(keys), *keys, *args))
    assert ours == theirs


def test_an_answer_is_read_whole_however_it_is_cut() -> None:
    whole = b"*3\r\n:1\r\n:0\r\n:2\r\n"
    for cut in range(1, len(whole)):
        assert _reply(whole[:cut]) is _INCOMPLETE, whole[:cut]
    assert _reply(whole) == [1, 0, 2]
    assert _reply(b"*0\r\n") == []
    assert _reply(b":7\r\n") == 7
    assert _reply(b"-NOSCRIPT No matching script.\r\n") is _NO_SCRIPT


@pytest.mark.parametrize("answer", [
    b"-BUSY Redis is busy running a script\r\n",
    b"$3\r\nabc\r\n",  # not what a consume script answers
    b"*2\r\n:1\r\n$1\r\nx\r\n",
    b"*1\r\n:1\r\n:1\r\n",  # more than the array holds
])
def test_a_redis_error_or_an_unexpected_answer_is_a_response_error(answer: bytes) -> None:
    with pytest.raises(redis.exceptions.ResponseError):
        _reply(answer)
