"""query_param: the legacy SSE POST's session id, read the way parse_qs would read it."""

from urllib.parse import parse_qs

import pytest

from mcpmux.web.asgi import query_param

CASES = [
    b"sessionId=abc",
    b"session_id=abc",
    b"other=1&sessionId=abc&x=2",
    b"sessionId=a%2Fb+c",
    b"session_id=zzz&sessionId=first",
    b"sessionId=one&sessionId=two",
    b"sessionIdx=nope&sessionId=yes",
    b"",
    b"unrelated=1",
]


@pytest.mark.parametrize("query", CASES)
def test_matches_parse_qs(query: bytes) -> None:
    parsed = parse_qs(query.decode("latin-1"))
    expected = (parsed.get("sessionId") or parsed.get("session_id") or [""])[0]
    assert query_param(query, "sessionId", "session_id") == expected


def test_first_name_wins_over_later_names() -> None:
    assert query_param(b"session_id=b&sessionId=a", "sessionId", "session_id") == "a"
    assert query_param(b"session_id=b", "sessionId", "session_id") == "b"
