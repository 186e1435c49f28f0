"""The response head the HTTP server writes: framing headers and refusal of header injection."""

from typing import Any

import pytest

from mcpmux.web.exchange import Exchange


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


class FakeConnection:
    disconnected = False
    write_paused = False

    def __init__(self) -> None:
        self.transport = FakeTransport()

    def response_complete(self, exchange: Exchange) -> None:
        pass


def exchange(method: str = "GET", version: str = "1.1") -> Exchange:
    scope: dict[str, Any] = {"method": method, "http_version": version}
    return Exchange(FakeConnection(), scope, keep_alive=version == "1.1", expect_continue=False)  # type: ignore[arg-type]


def test_a_content_length_response_is_held_for_its_body() -> None:
    ex = exchange()
    ex._start(200, [(b"Content-Length", b"2"), (b"x-a", b"b")])
    assert ex.head == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a: b\r\n\r\n"
    assert ex.conn.transport.written == []  # type: ignore[attr-defined]


def test_a_streamed_response_is_chunked_and_written_at_once() -> None:
    ex = exchange()
    ex._start(200, iter([(b"content-type", b"text/event-stream")]))
    assert ex.chunked
    assert ex.conn.transport.written == [  # type: ignore[attr-defined]
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    ]


def test_http10_streams_are_close_delimited() -> None:
    ex = exchange(version="1.0")
    ex._start(200, [])
    assert not ex.chunked
    assert not ex.keep_alive
    assert ex.conn.transport.written == [b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-a", b"b\r\nset-cookie: stolen=1")],
        [(b"x-a", b"b\nset-cookie: stolen=1")],
        [(b"x-a", b"b\rc")],
        [(b"x\r\nb", b"c")],
        [(b"x-a", b"b\0c")],
    ],
)
def test_header_injection_is_refused(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(RuntimeError, match="invalid character"):
        exchange()._start(200, headers)
