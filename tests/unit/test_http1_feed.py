"""How far the HTTP server feeds its parser at a time (never past the heads the pipeline has room for), and
the request headers read from the ASGI list."""

from __future__ import annotations

import pytest

from mcpmux.web.asgi import RequestHeaders
from mcpmux.web.http1_head import feed_end

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def heads_in(data: bytes) -> int:
    return data.count(b"\r\n\r\n")


@pytest.mark.parametrize("room", [1, 2, 3, 5])
def test_a_feed_ends_right_after_the_head_that_fills_the_room(room: int) -> None:
    data = GET * 10
    end = feed_end(data, 0, room)
    assert end == len(GET) * room
    assert heads_in(data[:end]) == room


def test_fewer_heads_than_room_feeds_everything() -> None:
    data = GET * 3 + b"GET /partial HTTP/1.1\r\nHo"
    assert feed_end(data, 0, 4) == len(data)


def test_no_room_feeds_nothing() -> None:
    assert feed_end(GET * 2, 5, 0) == 5


def test_feeding_continues_from_a_position() -> None:
    data = GET * 4
    assert feed_end(data, len(GET), 2) == 3 * len(GET)


@pytest.mark.parametrize("split", [1, 2, 3])
def test_a_head_end_split_across_reads_counts_in_the_next_read(split: int) -> None:
    previous, data = GET[: len(GET) - split], GET[len(GET) - split :] + GET * 3
    # room 1: the split head completes with the first bytes here, so only those may be fed
    assert feed_end(data, 0, 1, carry=previous[-3:]) == split
    assert feed_end(data, 0, 2, carry=previous[-3:]) == split + len(GET)


def test_a_body_that_looks_like_a_head_end_only_shortens_the_feed() -> None:
    body = b"x\r\n\r\ny"
    data = b"POST / HTTP/1.1\r\nContent-Length: 6\r\n\r\n" + body + GET
    end = feed_end(data, 0, 2)
    assert end < len(data)  # conservative: the real second head is not reached in this feed
    assert heads_in(data[:end]) == 2


def test_once_only_header_values_are_read_as_text_and_a_repeat_is_marked() -> None:
    raw = [
        (b"mcp-protocol-version", b"2026-07-28"),
        (b"mcp-method", b"tools/call"),
        (b"mcp-name", b"\xe9t\xe9"),
    ]
    headers = RequestHeaders(raw)
    assert (headers.protocol_version, headers.mcp_method, headers.mcp_name) == (
        "2026-07-28",
        "tools/call",
        "\xe9t\xe9",
    )
    assert headers.repeated is None
    assert RequestHeaders([*raw, (b"mcp-method", b"tools/call")]).repeated == "Mcp-Method"
