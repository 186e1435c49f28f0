"""A small HTTP/1.1 server for ASGI apps, on httptools: the proxy's front door, built for its hot path.

Why not uvicorn: measured on this project's benchmark machine, uvicorn with a trivial ASGI app spends
~0.09 ms of CPU per request against ~0.03 ms for a bare asyncio protocol, which was most of the
proxy's own cost per call. This server keeps the ASGI interface and the HTTP/1.1 behaviour the proxy
needs, with less work per request:

- the scope is built once per request from what the parser hands over (headers lowercased);
- a request body that has fully arrived is handed to `receive()` without a wait;
- a response with a Content-Length leaves in one write (status line, headers and body together);
- one keep-alive sweep per server instead of a timer per response.

Behaviour: keep-alive and pipelining (requests on one connection are answered in order; the next one
starts once the previous response is complete, while its task may still run), chunked and
Content-Length request bodies with read flow control, `Expect: 100-continue`, chunked or
close-delimited streaming responses, write flow control, `http.disconnect` on a lost connection,
400 on a malformed request and 431 on oversized headers, 500 when the app fails before answering.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import httptools

log = logging.getLogger("mcpmux.http")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_HEAD_BYTES = 64 * 1024  # request line and headers
BODY_HIGH_WATER = 64 * 1024  # buffered request body before reading pauses
ASGI_INFO = {"version": "3.0", "spec_version": "2.3"}
_STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def status_line(status: int) -> bytes:
    return _STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status


def _plain_response(status: int, text: str) -> bytes:
    body = text.encode()
    return (
        status_line(status)
        + b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        % len(body)
        + body
    )


class HeadTooLargeError(Exception):
    pass


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
        "more_body",
        "response_complete",
        "response_started",
        "scope",
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
        self.length_left = -1  # bytes of a Content-Length body still to send (-1: no Content-Length)
        self.head = b""  # the status line and headers, held until the first body message

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self) -> Message:
        conn = self.conn
        if self.expect_continue:
            self.expect_continue = False
            if not conn.disconnected and not self.response_started:
                conn.transport.write(_CONTINUE)
        while True:
            if conn.disconnected or self.response_complete:
                return {"type": "http.disconnect"}
            if self.body or not (self.more_body or self.end_delivered):
                body = bytes(self.body)
                self.body.clear()
                if self.more_body:
                    conn.resume_reading()
                else:
                    self.end_delivered = True
                return {"type": "http.request", "body": body, "more_body": self.more_body}
            # more of the body is on its way, or all of it was delivered and only a disconnect is left
            if self.more_body:
                conn.resume_reading()
            waiter = self.waiter = conn.loop.create_future()
            try:
                await waiter
            finally:
                self.waiter = None

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
        head = self.head
        if self.is_head:
            payload = b""
        elif self.chunked:
            payload = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
            if not more:
                payload += b"0\r\n\r\n"
        else:
            if self.length_left >= 0:
                if len(body) > self.length_left:
                    raise RuntimeError("response body longer than its Content-Length")
                self.length_left -= len(body)
            payload = body
        if head:
            self.head = b""
            if len(payload) < 65536:
                conn.transport.write(head + payload)
            else:
                conn.transport.writelines((head, payload))  # no copy of a big body
        elif payload:
            conn.transport.write(payload)
        if not more:
            if self.length_left > 0 and not self.is_head:
                raise RuntimeError("response body shorter than its Content-Length")
            self.response_complete = True
            self.wake()
            conn.response_complete(self)

    def _start(self, status: int, headers: Any) -> None:
        if not isinstance(headers, (list, tuple)):
            headers = list(headers)
        self.response_started = True
        self.expect_continue = False
        parts = [status_line(status)]
        has_length = close_sent = False
        for name, value in headers:
            name = name.lower()
            if name == b"content-length":
                has_length = True
                self.length_left = int(value)
            elif name == b"connection" and b"close" in value.lower():
                self.keep_alive = False
                close_sent = True
            parts += (name, b": ", value, b"\r\n")
        streamed = not has_length and not self.is_head and status not in (204, 304) and status >= 200
        if streamed:
            if self.scope["http_version"] == "1.1":
                self.chunked = True
                parts.append(b"transfer-encoding: chunked\r\n")
            else:
                self.keep_alive = False  # HTTP/1.0: the body ends when the connection closes
        if not self.keep_alive and not close_sent:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        head = b"".join(parts)
        # No header injection: every CR and LF in the head must be one of the line ends written here
        # (one part per line apart from the four of each header line).
        lines = len(parts) - 3 * len(headers)
        if head.count(b"\n") != lines or head.count(b"\r") != lines or b"\0" in head:
            raise RuntimeError("invalid character in a response header")
        if streamed:
            self.conn.transport.write(head)  # a stream's first event may come much later
        else:
            self.head = head

    def abandon(self) -> None:
        """The app ended without completing its response: flush what is held and drop the connection."""
        if self.head and not self.conn.disconnected:
            self.conn.transport.write(self.head)
            self.head = b""
        self.conn.transport.close()


class Connection(asyncio.Protocol):
    """One client connection: parses requests and runs each as a task of the server."""

    def __init__(self, server: Http1Server) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self.disconnected = False
        self.write_paused = False
        self.read_paused = False
        self._drain: asyncio.Future[None] | None = None
        self.current: Exchange | None = None  # the request being answered
        self.queued: deque[Exchange] = deque()  # pipelined requests waiting for their turn
        self.reading: Exchange | None = None  # the request whose body the parser is reading
        self.idle_since: float | None = None  # when the last response completed (or the connection opened)
        self.head_started: float | None = None  # when a request began arriving, until its headers are in
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self.client: tuple[str, int] | None = None
        self.local: tuple[str, int] | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.client = _address(transport.get_extra_info("peername"))
        self.local = _address(transport.get_extra_info("sockname"))
        self.idle_since = self.loop.time()
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # not supported: the request was answered as plain HTTP and the connection closes after it
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HeadTooLargeError):
                self._refuse(431, "Request header fields too large")
            elif isinstance(exc.__context__, httptools.HttpParserError):  # e.g. a URL parse_url rejects
                self._refuse(400, "Invalid HTTP request")
            else:
                raise
        except httptools.HttpParserError:
            self._refuse(400, "Invalid HTTP request")

    def connection_lost(self, exc: Exception | None) -> None:
        self.disconnected = True
        self.server.connections.discard(self)
        for exchange in (self.current, self.reading, *self.queued):
            if exchange is not None:
                exchange.wake()
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    async def drain(self) -> None:
        if self._drain is None or self._drain.done():
            self._drain = self.loop.create_future()
        await self._drain

    def pause_reading(self) -> None:
        if not self.read_paused and not self.disconnected:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and not self.disconnected:
            self.read_paused = False
            self.transport.resume_reading()

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.head_started = self.loop.time()
        self._url = b""
        self._headers = []
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)
        if self._head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLargeError

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLargeError
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.head_started = None
        parser = self.parser
        version = parser.get_http_version()
        url = httptools.parse_url(self._url)
        raw_path: bytes = url.path
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        scope: Scope = {
            "type": "http",
            "asgi": ASGI_INFO,
            "http_version": version,
            "server": self.local,
            "client": self.client,
            "scheme": "http",
            "method": parser.get_method().decode("ascii"),
            "root_path": "",
            "path": path,
            "raw_path": raw_path,
            "query_string": url.query or b"",
            "headers": self._headers,
        }
        expect_continue = any(n == b"expect" and v.lower() == b"100-continue" for n, v in self._headers)
        keep_alive = version != "1.0" and parser.should_keep_alive()
        if parser.should_upgrade():
            # Upgrades (h2c, websocket) are not supported: the parser stops at the head, so the request
            # is answered as plain HTTP and the connection closes; one with a body is refused outright.
            framing = (b"content-length", b"transfer-encoding")
            if any(n in framing and v.strip(b" 0") for n, v in self._headers):
                self._refuse(400, "HTTP upgrade is not supported: send the request without Upgrade")
                return
            keep_alive = False
        exchange = Exchange(self, scope, keep_alive, expect_continue)
        self.reading = exchange
        if self.current is None:
            self._start(exchange)
        else:
            self.queued.append(exchange)
            self.pause_reading()  # one request ahead is enough

    def on_body(self, body: bytes) -> None:
        exchange = self.reading
        if exchange is None or exchange.response_complete:
            return  # answered already (e.g. 413): the rest of its body is read and dropped
        exchange.body += body
        if len(exchange.body) > BODY_HIGH_WATER:
            self.pause_reading()
        exchange.wake()

    def on_message_complete(self) -> None:
        exchange = self.reading
        if exchange is None:
            return
        self.reading = None
        exchange.more_body = False
        exchange.wake()
        if self.current is None and not self.queued:  # answered before its body was in: idle from now
            self.idle_since = self.loop.time()

    # -- requests ----------------------------------------------------------------------------

    def _start(self, exchange: Exchange) -> None:
        self.current = exchange
        self.server.run(exchange)

    def response_complete(self, exchange: Exchange) -> None:
        if exchange is not self.current:
            return
        self.current = None
        if not exchange.keep_alive or self.server.closing:
            self.transport.close()
            return
        if self.queued:
            self._start(self.queued.popleft())
            if not self.queued:
                self.resume_reading()
        else:
            self.resume_reading()
            if self.reading is None:
                self.idle_since = self.loop.time()

    def _refuse(self, status: int, text: str) -> None:
        log.warning("%s from %s: %s", status, self.client, text)
        if self.current is None or self.current.response_complete:
            self.transport.write(_plain_response(status, text))
        self.transport.close()

    @property
    def idle(self) -> bool:
        return self.current is None and self.reading is None and not self.queued and self.head_started is None


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None


class Http1Server:
    """The connections and request tasks of one listening socket."""

    def __init__(self, app: App, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.closing = False

    def run(self, exchange: Exchange) -> None:
        task = self.loop.create_task(self._run(exchange))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, exchange: Exchange) -> None:
        conn = exchange.conn
        try:
            await self.app(exchange.scope, exchange.receive, exchange.send)
        except asyncio.CancelledError:
            if not exchange.response_complete:
                exchange.abandon()
            raise
        except Exception:
            log.exception("%s %s failed", exchange.scope["method"], exchange.scope["path"])
        else:
            if conn.disconnected or exchange.response_complete:
                return
            problem = "response not completed" if exchange.response_started else "no response"
            log.error("%s %s: %s", exchange.scope["method"], exchange.scope["path"], problem)
        if exchange.response_complete or conn.disconnected:
            return
        if exchange.response_started:
            exchange.abandon()
        else:  # nothing sent yet: the client gets a 500 and the connection closes
            exchange.response_started = True
            conn.transport.write(_plain_response(500, "Internal Server Error"))
            conn.transport.close()

    def close_idle(self) -> None:
        """Close every connection with no request under way."""
        for conn in list(self.connections):
            if conn.idle:
                conn.transport.close()

    def sweep(self, cutoff: float) -> None:
        """Close connections idle since before `cutoff`, or still sending a request head begun before it."""
        for conn in list(self.connections):
            if conn.idle:
                if conn.idle_since is not None and conn.idle_since < cutoff:
                    conn.transport.close()
            elif conn.head_started is not None and conn.head_started < cutoff:
                conn.transport.close()

    def begin_shutdown(self) -> None:
        """No new requests: idle connections close now, busy ones after their current response."""
        self.closing = True
        self.close_idle()

    async def finish(self, grace_seconds: float) -> None:
        """Wait (up to the grace period) for the requests under way, then cancel the rest and close."""
        self.begin_shutdown()  # from here a connection closes as its response completes
        deadline = self.loop.time() + grace_seconds
        while self.tasks and (left := deadline - self.loop.time()) > 0:
            await asyncio.wait(list(self.tasks), timeout=left)  # tasks started meanwhile are waited for too
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=1.0)
        for conn in list(self.connections):
            conn.transport.close()
