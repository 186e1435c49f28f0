"""One HTTP/1.1 request and its response as the ASGI `receive` and `send` (the server's per-request half)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .http1 import Connection

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

BODY_HIGH_WATER = 64 * 1024  # buffered request body before reading pauses
ASGI_INFO = {"version": "3.0", "spec_version": "2.3"}
_STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def status_line(status: int) -> bytes:
    return _STATUS_LINES[status] if status in _STATUS_LINES else b"HTTP/1.1 %d \r\n" % status


def plain_response(status: int, text: str) -> bytes:
    body = text.encode()
    return (
        status_line(status)
        + b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        % len(body)
        + body
    )


def header_block(headers: Iterable[Any]) -> tuple[bytes, int | None, bool]:
    """An app's response headers as one block of head lines (names lowercased), its Content-Length
    (None: none), and whether it sent `Connection: close`. Pure.

    No header injection: every CR and LF in the block must be one of its line ends (and no NUL).
    """
    parts: list[bytes] = []
    length: int | None = None
    close = False
    for name, value in headers:
        name = name.lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and b"close" in value.lower():
            close = True
        parts += (name, b": ", value, b"\r\n")
    block = b"".join(parts)
    lines = len(parts) >> 2
    if block.count(b"\n") != lines or block.count(b"\r") != lines or b"\0" in block:
        raise RuntimeError("invalid character in a response header")
    return block, length, close


def has_body(status: int) -> bool:
    """Whether a response with this status has a body (not 1xx, 204 or 304)."""
    return status >= 200 and status not in (204, 304)


class Exchange:
    """One request and its response: the ASGI `receive` and `send` of a request."""

    __slots__ = (
        "body",
        "chunked",
        "conn",
        "end_delivered",
        "expect_continue",
        "head",
        "is_head",
        "keep_alive",
        "length_left",
        "lost",
        "more_body",
        "response_complete",
        "response_started",
        "scope",
        "task",
        "waiter",
    )

    def __init__(self, conn: Connection, scope: Scope, keep_alive: bool, expect_continue: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.is_head = scope["method"] == "HEAD"
        self.body = bytearray()
        self.more_body = True
        self.end_delivered = False  # receive() has returned the last of the body
        self.waiter: asyncio.Future[None] | None = None
        self.response_started = False
        self.response_complete = False
        self.chunked = False
        self.length_left = -1  # bytes of a Content-Length body still to send (-1: none, or HEAD)
        self.head = b""  # the status line and headers, held until the first body message
        self.lost: Callable[[], None] | None = None  # see watch_disconnect
        self.task: asyncio.Task[Any] | None = None  # the worker task running the app for it (web/server.py)

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        lost = self.lost
        if lost is not None and self.conn.disconnected and not self.response_complete:
            self.lost = None
            lost()

    def watch_disconnect(self, callback: Callable[[], None] | None) -> bool:
        """Call `callback` (once) if the client's connection goes before the response is complete; None
        stops watching. No task waits for it: the connection tells its exchanges when it is lost."""
        if callback is not None and self.conn.disconnected and not self.response_complete:
            callback()  # gone already
            return True
        self.lost = callback
        return True

    async def receive(self) -> Message:
        conn = self.conn
        if self.expect_continue:
            self._continue()
        while True:
            if conn.disconnected or self.response_complete:
                return {"type": "http.disconnect"}
            body = self.body
            if body or not (self.more_body or self.end_delivered):  # what has arrived of the body
                taken = bytes(body)
                body.clear()
                if self.more_body:
                    conn.resume_reading()
                else:
                    self.end_delivered = True
                return {"type": "http.request", "body": taken, "more_body": self.more_body}
            # more of the body is on its way, or all of it was delivered and only a disconnect is left
            if self.more_body:
                conn.resume_reading()
            waiter = self.waiter = conn.loop.create_future()
            try:
                await waiter
            finally:
                self.waiter = None

    def _continue(self) -> None:
        """`Expect: 100-continue`: the app reads the body, so the client may send it."""
        self.expect_continue = False
        if not self.conn.disconnected and not self.response_started:
            self.conn.transport.write(_CONTINUE)

    async def send(self, message: Message) -> None:
        conn = self.conn
        if conn.write_paused and not conn.disconnected:
            await conn.drain()
        if conn.disconnected:
            return
        kind = message["type"]
        if not self.response_started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected 'http.response.start', got {kind!r}")
            self._start(message["status"], message.get("headers") or ())
            return
        if self.response_complete:
            raise RuntimeError(f"{kind!r} sent after the response was complete")
        if kind != "http.response.body":
            raise RuntimeError(f"expected 'http.response.body', got {kind!r}")
        self._body(message.get("body", b""), message.get("more_body", False))

    __call__ = send  # the exchange is the request's ASGI `send`, with `respond_now` (web/asgi.py EarlySend)

    def respond_now(self, status: int, headers: Any, body: bytes) -> bool:
        """A whole response written synchronously, outside the ASGI `send`: False if it cannot be now.

        For a caller that holds the answer in a callback and would otherwise wake a task just to write
        it (the proxy's early response path). Headers must include the Content-Length.
        """
        conn = self.conn
        if self.response_started or conn.write_paused or conn.disconnected:
            return False
        self._start(status, headers)
        self._body(body, False)
        return True

    def _body(self, body: bytes, more: bool) -> None:
        conn = self.conn
        left = self.length_left
        if left >= 0:  # counted against its Content-Length
            left -= len(body)
            if left < 0:
                raise RuntimeError("response body longer than its Content-Length")
            self.length_left = left
            payload = body
        else:
            payload = self._payload(body, more)
        head = self.head
        if head:
            self.head = b""
            if len(payload) < 65536:
                conn.transport.write(head + payload)
            else:
                conn.transport.writelines((head, payload))  # no copy of a big body
        elif payload:
            conn.transport.write(payload)
        if not more:
            if self.length_left > 0:
                raise RuntimeError("response body shorter than its Content-Length")
            self.response_complete = True
            if self.waiter is not None:  # (a disconnect watch ends with the response: `lost` is not called)
                self.wake()
            conn.response_complete(self)

    def _payload(self, body: bytes, more: bool) -> bytes:
        """The bytes that carry `body` without a Content-Length: framed when chunked, none for HEAD."""
        if self.is_head:
            return b""
        if self.chunked:
            payload = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
            return payload + b"0\r\n\r\n" if not more else payload
        return body

    def _start(self, status: int, headers: Any) -> None:
        self.response_started = True
        self.expect_continue = False
        block, length, close_sent = header_block(headers)
        if close_sent:
            self.keep_alive = False
        streamed = False
        extra = b""
        if length is not None:
            self.length_left = length if not self.is_head else -1  # HEAD: no body is sent, none counted
        elif not self.is_head and has_body(status):
            streamed = True
            extra = self._frame_stream()
        if not self.keep_alive and not close_sent:
            extra += b"connection: close\r\n"
        line = _STATUS_LINES[status] if status in _STATUS_LINES else status_line(status)
        head = b"".join((line, block, extra, b"\r\n"))
        if streamed:
            self.conn.transport.write(head)  # a stream's first event may come much later
        else:
            self.head = head

    def _frame_stream(self) -> bytes:
        """A body without a length: chunked on HTTP/1.1; on HTTP/1.0 it ends when the connection closes."""
        if self.scope["http_version"] == "1.1":
            self.chunked = True
            return b"transfer-encoding: chunked\r\n"
        self.keep_alive = False
        return b""

    def abandon(self) -> None:
        """The app ended without completing its response: flush what is held and drop the connection."""
        if self.head and not self.conn.disconnected:
            self.conn.transport.write(self.head)
            self.head = b""
        self.conn.close()
