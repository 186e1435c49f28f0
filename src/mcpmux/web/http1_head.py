"""Request heads for web/http1.py: where to stop feeding the parser, and what a head announces."""

from __future__ import annotations

from typing import Any

HEAD_END = b"\r\n\r\n"  # the parser refuses bare LF line ends: every request head ends with this


class HeadTooLargeError(Exception):
    """A request head past `maxHeadBytes`, raised in a parser callback to stop the parser."""


def feed_end(data: bytes, pos: int, room: int, carry: bytes = b"") -> int:
    """Where to stop feeding `data[pos:]` to the parser so that at most `room` request heads complete.

    A head completes only with its CRLF CRLF, so feeding up to the end of the `room`-th one past `pos`
    completes at most `room` heads (body bytes that look like one only make the feed shorter). `carry`
    is up to 3 bytes fed just before `pos`: a CRLF CRLF split across reads counts too. Pure.
    """
    if room <= 0:
        return pos
    if carry:
        split = (carry + data[pos : pos + 3]).find(HEAD_END)
        if split >= 0:
            room -= 1
            if room == 0:
                return pos + split + 4 - len(carry)
    found = pos - 1
    for _ in range(room):
        found = data.find(HEAD_END, found + 1)
        if found < 0:
            return len(data)
    return found + 4


def has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the head announces a body (a non-zero Content-Length, or any Transfer-Encoding)."""
    framing = (b"content-length", b"transfer-encoding")
    return any(n in framing and v.strip(b" 0") for n, v in headers)


def address(value: Any) -> tuple[str, int] | None:
    """A socket address as (host, port), or None for one that is not (a Unix socket)."""
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None
