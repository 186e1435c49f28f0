"""One HTTP/1.1 connection for ASGI apps, on httptools: the proxy's front door, built for its hot path.

Why not uvicorn: measured on this project's benchmark machine, uvicorn with a trivial ASGI app spends
~0.09 ms of CPU per request against ~0.03 ms for a bare asyncio protocol, which was most of the
proxy's own cost per call. This server keeps the ASGI interface and the HTTP/1.1 behaviour the proxy
needs, with less work per request:

- the scope is built once per request from what the parser hands over (headers lowercased);
- a request body that has fully arrived is handed to `receive()` without a wait (web/exchange.py);
- a response with a Content-Length leaves in one write (status line, headers and body together);
- one timer sweep per server (web/server.py) instead of a timer per request or response.

Behaviour: keep-alive and pipelining (requests on one connection are answered in order; the next one
starts once the previous response is complete, while its task may still run), chunked and
Content-Length request bodies with read flow control, `Expect: 100-continue`, chunked or
close-delimited streaming responses, write flow control, `http.disconnect` on a lost connection,
500 when the app fails before answering.

Limits (`HttpLimits`, `mcpProxy.http`), so that no client holds more than its share: the head size is
checked while it arrives (431), a head or body that stops arriving gets 408, a client that reads nothing
of its response is disconnected (write timeout, logged), at most `max_pipelined` requests are parsed
ahead of the one being answered (reading stops meanwhile), idle keep-alive connections close. A bad
request gets 400 (431, 408) and the connection closes, but only after the requests before it on the
connection were answered: a valid request followed by junk gets its answer, then the 400.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING
from urllib.parse import unquote

import httptools

from ..config.model import HttpLimits
from .exchange import ASGI_INFO, BODY_HIGH_WATER, Exchange, plain_response
from .http1_head import HEAD_END, HeadTooLargeError, address, feed_end, has_body

if TYPE_CHECKING:
    from .server import Http1Server

log = logging.getLogger("mcpmux.http")

LINGER_BYTES = 1 << 20  # read and dropped after a refusal at most, so the client sees the refusal


class Connection(asyncio.Protocol):
    """One client connection: parses requests, hands each to the server, and enforces the limits."""

    def __init__(self, server: Http1Server) -> None:
        self.server = server
        self.limits: HttpLimits = server.limits
        self.loop = server.loop
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self.disconnected = False  # lost, or closed by us (what was written still goes out)
        self.write_paused = False
        self.read_paused = False
        self._drain: asyncio.Future[None] | None = None
        self.current: Exchange | None = None  # the request being answered
        self.queued: deque[Exchange] = deque()  # pipelined requests waiting for their turn
        self.reading: Exchange | None = None  # the request whose body the parser is reading
        now = self.loop.time()
        self.idle_since: float | None = now  # when the last response completed (or the connection opened)
        self.head_started: float | None = None  # when a request began arriving, until its headers are in
        self.body_since = now  # the last progress of the body being read
        self.write_paused_since: float | None = None
        self.closed_at: float | None = None
        self.refusal: bytes | None = None  # the error response owed once the requests before it are answered
        self.lingering = False  # refused and half-closed: what the client still sends is read and dropped
        self._dropped = 0
        self._unparsed = b""  # read but not parsed: held while `max_pipelined` requests wait
        self._carry = b""  # the last bytes fed to the parser (a head end split across reads)
        self._head_fed = 0  # bytes fed while the current head was incomplete (the parser buffers them)
        self._messages = 0  # requests begun on this connection
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._expect_continue = False  # the head being read has `Expect: 100-continue`
        self._head_bytes = 0
        self.client: tuple[str, int] | None = None
        self.local: tuple[str, int] | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.client = address(transport.get_extra_info("peername"))
        self.local = address(transport.get_extra_info("sockname"))
        if not self.server.admit(self):
            self.refusal = plain_response(503, "Too many connections: try again later")
            self._send_refusal()

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            self._dropped += len(data)
            if self._dropped > LINGER_BYTES:
                self.transport.abort()
            return
        self.body_since = self.loop.time()  # bytes arrived: a body being read made progress
        if self._unparsed:  # only when reading was resumed before the held bytes were parsed: keep order
            data = self._unparsed + data
            self._unparsed = b""
        elif data.count(HEAD_END) < self.limits.max_pipelined - len(self.queued) and len(data) > 3:
            # the common case: all of it fits the pipeline (+1 for a head end split across reads)
            self._carry = data[-3:]
            self._parse(data)
            return
        self._feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.disconnected = True
        self.server.connections.discard(self)
        self.server.lingering.discard(self)
        self._wake_all()

    def pause_writing(self) -> None:
        self.write_paused = True
        self.write_paused_since = self.loop.time()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.write_paused_since = None
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
        """Read again, unless something still holds reading back (held bytes, a full pipeline, a big body)."""
        if self.read_paused and not self.disconnected:
            if self._unparsed or self.refusal is not None or len(self.queued) >= self.limits.max_pipelined:
                return
            reading = self.reading
            if reading is not None and len(reading.body) > BODY_HIGH_WATER:
                return
            self.read_paused = False
            self.body_since = now = self.loop.time()  # the client was not late while we did not read
            if self.head_started is not None:
                self.head_started = now
            self.transport.resume_reading()

    def close(self) -> None:
        """Close now; what was written still goes out (write timeout). Requests see a disconnect."""
        if self.closed_at is None:
            self.closed_at = self.loop.time()
            self.disconnected = True
            self.transport.close()
            self._wake_all()

    def abort(self, reason: str) -> None:
        if self.server.log_budget.allow(self.loop.time()):
            log.warning("Closing the connection from %s: %s", self.client, reason)
        self.disconnected = True
        self.transport.abort()
        self._wake_all()

    def _wake_all(self) -> None:
        for exchange in (self.current, self.reading, *self.queued):
            if exchange is not None:
                exchange.wake()
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    # -- feeding the parser ------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        """Parse `data`, in pieces that never complete more heads than the pipeline has room for."""
        pos, size, cap = 0, len(data), self.limits.max_pipelined
        while pos < size and self.refusal is None and not self.disconnected:
            room = cap - len(self.queued)
            if room <= 0:
                self._unparsed = data[pos:]
                self.pause_reading()
                return
            end = feed_end(data, pos, room, self._carry)
            piece = data if pos == 0 and end == size else data[pos:end]
            self._carry = piece[-3:] if len(piece) >= 3 else (self._carry + piece)[-3:]
            if not self._parse(piece):
                return
            pos = end

    def _parse(self, piece: bytes) -> bool:
        """Feed one piece; False when the connection stops parsing (refused, or upgraded and closing)."""
        in_head = self.head_started is not None
        between = not in_head and self.reading is None  # the piece starts with a new request
        begun = self._messages
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserUpgrade:
            return False  # not supported: the request was answered as plain HTTP and the connection closes
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HeadTooLargeError):
                self._refuse(431, "Request header fields too large")
            elif isinstance(exc.__context__, httptools.HttpParserError):  # e.g. a URL parse_url rejects
                self._refuse(400, "Invalid HTTP request")
            else:
                raise
            return False
        except httptools.HttpParserError:
            self._refuse(400, "Invalid HTTP request")
            return False
        if self.head_started is not None:  # a head is still arriving: the parser holds what came of it
            self._head_fed = self._head_so_far(len(piece), in_head, between, self._messages - begun)
            if self._head_fed > self.limits.max_head_bytes:
                self._refuse(431, "Request header fields too large")
                return False
        return True

    def _head_so_far(self, fed: int, in_head: bool, between: bool, begun: int) -> int:
        """A lower bound of the incomplete head's size after a feed of `fed` bytes."""
        if in_head and not begun:
            return self._head_fed + fed  # all of the piece went to the same head
        if between and begun == 1:
            return fed  # the piece is that head (but for blank lines before it)
        return 0  # it began after other requests in the piece: unknown, counted from the next piece on

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._messages += 1
        self.head_started = self.loop.time()
        self._url = b""
        self._headers = []
        self._expect_continue = False
        self._head_bytes = 0
        self._head_fed = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)
        if self._head_bytes > self.limits.max_head_bytes:
            raise HeadTooLargeError

    def on_header(self, name: bytes, value: bytes) -> None:
        # (lower() and len() are cheaper than a table lookup: hashing a fresh name costs more, measured
        # with callcount --instructions)
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self.limits.max_head_bytes:
            raise HeadTooLargeError
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self._expect_continue = True  # noted here: no second pass over the headers per request
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        """The request whose head just completed starts now, or waits for its turn (or is refused)."""
        self.head_started = None
        if self.refusal is not None:
            return  # the connection is refusing: nothing more is started
        parser, headers = self.parser, self._headers
        url = httptools.parse_url(self._url)
        raw_path: bytes = url.path
        path = raw_path.decode("latin-1")
        scope = {  # the ASGI HTTP scope of the head (headers as read, names lowercased)
            "type": "http",
            "asgi": ASGI_INFO,
            "http_version": parser.get_http_version(),
            "server": self.local,
            "client": self.client,
            "scheme": "http",
            "method": parser.get_method().decode("ascii"),
            "root_path": "",
            "path": unquote(path) if "%" in path else path,
            "raw_path": raw_path,
            "query_string": url.query or b"",
            "headers": headers,
        }
        keep_alive = scope["http_version"] != "1.0" and parser.should_keep_alive()
        if parser.should_upgrade():
            # Upgrades (h2c, websocket) are not supported: the parser stops at the head, so the request
            # is answered as plain HTTP and the connection closes; one with a body is refused outright.
            if has_body(headers):
                self._refuse(400, "HTTP upgrade is not supported: send the request without Upgrade")
                return
            keep_alive = False
        exchange = self.reading = Exchange(self, scope, keep_alive, self._expect_continue)
        if self.current is None:
            self.current = exchange
            self.server.run(exchange)
        else:
            self.queued.append(exchange)
            if len(self.queued) >= self.limits.max_pipelined:
                self.pause_reading()

    def on_body(self, body: bytes) -> None:
        exchange = self.reading
        if exchange is None or exchange.response_complete:
            return  # answered already (e.g. 413): the rest of its body is read and dropped
        exchange.body += body
        if len(exchange.body) > BODY_HIGH_WATER:
            self.pause_reading()
        if exchange.waiter is not None or exchange.lost is not None:  # else wake() has nothing to do
            exchange.wake()

    def on_message_complete(self) -> None:
        exchange = self.reading
        if exchange is None:
            return
        self.reading = None
        exchange.more_body = False
        if exchange.waiter is not None or exchange.lost is not None:
            exchange.wake()
        if self.current is None and not self.queued:  # answered before its body was in: idle from now
            self.idle_since = self.loop.time()

    # -- requests ----------------------------------------------------------------------------

    def response_complete(self, exchange: Exchange) -> None:
        if exchange is not self.current:
            return
        self.current = None
        if not exchange.keep_alive or self.server.closing:
            self.close()
            return
        if self.queued:
            self.current = self.queued.popleft()
            self.server.run(self.current)
        elif self.refusal is not None:
            self._send_refusal()
            return
        elif self.reading is None:
            self.idle_since = self.loop.time()
        if self._unparsed:  # room in the pipeline again: parse what was held back
            held, self._unparsed = self._unparsed, b""
            self._feed(held)
        if self.read_paused:  # (else resume_reading has nothing to do)
            self.resume_reading()

    def _refuse(self, status: int, text: str) -> None:
        """Answer a bad request with `status` and close, after the requests before it were answered."""
        if self.refusal is not None or self.disconnected:
            return
        if self.server.log_budget.allow(self.loop.time()):
            log.warning("%s from %s: %s", status, self.client, text)
        self.refusal = plain_response(status, text)
        self._unparsed = b""
        self.pause_reading()
        bad, self.reading, self.head_started = self.reading, None, None
        if bad is not None and not bad.response_complete:
            if bad is not self.current:
                self.queued.remove(bad)  # its turn never came: the refusal answers it
            elif bad.response_started:
                bad.abandon()  # it cannot be answered any more
                return
            else:
                bad.response_started = bad.response_complete = True  # the refusal is its answer
                bad.wake()  # its receive() returns a disconnect
                self.current = None
        if self.current is None:
            self._send_refusal()

    def _send_refusal(self) -> None:
        """Write the refusal and close our side, then read and drop what the client still sends for a while.

        Closing outright while its bytes keep arriving would make the kernel reset the connection, and a
        reset can destroy the refusal before the client read it (a lingering close, bounded in bytes,
        in time by the write timeout, and in number by `max_connections`).
        """
        if self.refusal is not None:
            self.transport.write(self.refusal)
        if self.closed_at is not None or not self.transport.can_write_eof() or not self.server.linger(self):
            self.close()
            return
        self.closed_at = self.loop.time()
        self.disconnected = self.lingering = True
        self._wake_all()
        self.transport.write_eof()
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    @property
    def idle(self) -> bool:
        return self.current is None and self.reading is None and not self.queued and self.head_started is None
