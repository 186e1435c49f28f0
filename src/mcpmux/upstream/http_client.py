"""A lean HTTP/1.1 client for upstreams: keep-alive pool, httptools parsing, callbacks, same-origin redirects.

No task and no future per request: `HttpPool.request` writes the request on an idle keep-alive
connection (or one it opens) and returns; the response is parsed by httptools in the connection's
`data_received` and handed to the request's `ResponseHandler` as it arrives (head, body chunks, end),
so a JSON reply reaches the session from the socket callback. Redirects are followed within the
origin only; a request written on a reused connection that the server had already closed is sent
once more on a fresh one.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import httptools

from .http_connect import ConnectError, Route, open_transport, route_for
from .origin import cross_origin_refusal, same_origin

MAX_HEAD_BYTES = 64 * 1024
MAX_REDIRECTS = 5
MAX_CACHED_TARGETS = 16
KEEPALIVE_SECONDS = 25.0  # an idle connection older than this is not reused (servers close at ~30-75 s)
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

Spawn = Callable[..., Any]  # a task group's start_soon: the pool's rare background work (redirects, retries)


def _closed_spawn(*_args: Any) -> None:
    """What a closed pool spawns with: nothing (a late redirect or resend has nowhere to go)."""


class HttpError(Exception):
    """The exchange failed (connect, protocol, closed connection, refused redirect); the text says why."""


class ResponseHandler(Protocol):
    def on_head(self, status: int, headers: dict[bytes, bytes]) -> None: ...

    def on_data(self, data: bytes) -> None: ...

    def on_end(self) -> None: ...

    def on_error(self, exc: HttpError) -> None: ...


class Request:
    __slots__ = ("attempts", "body", "conn", "extra", "handler", "hops", "method", "url")

    def __init__(self, method: bytes, url: str, extra: bytes, body: bytes, handler: ResponseHandler) -> None:
        self.method, self.url, self.extra, self.body, self.handler = method, url, extra, body, handler
        self.hops = 0
        self.attempts = 0
        self.conn: HttpConnection | None = None  # the connection it was last written on


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection; at most one request at a time (no pipelining)."""

    def __init__(self, pool: HttpPool) -> None:
        self.pool = pool
        self.parser: Any = httptools.HttpResponseParser(self)  # None once closed: it holds us (a cycle)
        self.transport: asyncio.Transport | None = None
        self.request: Request | None = None
        self.headers: dict[bytes, bytes] = {}
        self.head_bytes = 0
        self.status = 0
        self.redirect: str | None = None
        self.done = False
        self.junk = False
        self.keep_alive = False
        self.got_bytes = False
        self.reused = False
        self.idle_since = 0.0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def start(self, request: Request, data: bytes) -> None:
        assert self.transport is not None
        self.request, self.headers, self.head_bytes, self.status = request, {}, 0, 0
        request.conn = self
        self.redirect, self.done, self.got_bytes, self.keep_alive = None, False, False, False
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if self.request is None:
            self.close()  # bytes nobody asked for
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(HttpError(f"invalid HTTP response from {self.pool.origin}: {exc}"))
            return
        if self.done:
            self.complete()

    def on_message_begin(self) -> None:
        if self.done:
            self.junk = True  # a second response to one request
        else:
            self.headers, self.head_bytes = {}, 0  # (after an interim 1xx: the final response's own)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > MAX_HEAD_BYTES:
            raise HttpError(f"response head larger than {MAX_HEAD_BYTES} bytes")
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self.status = status = self.parser.get_status_code()
        if status < 200:
            return  # an interim response (103 Early Hints): the final one follows
        self.keep_alive = self.parser.should_keep_alive()  # read now: the parser resets at the end
        request = self.request
        assert request is not None
        if status in REDIRECT_STATUSES and b"location" in self.headers:
            self.redirect = urljoin(request.url, self.headers[b"location"].decode("latin-1"))
            return
        request.handler.on_head(status, self.headers)

    def on_body(self, body: bytes) -> None:
        if self.redirect is None and self.request is not None:
            self.request.handler.on_data(body)

    def on_message_complete(self) -> None:
        self.done = self.status >= 200

    def complete(self) -> None:
        request, self.request = self.request, None
        assert request is not None
        if self.junk or not self.keep_alive:
            self.close()
        else:
            self.pool.release(self)
        if self.redirect is not None:
            self.pool.follow(request, self.redirect)
        else:
            request.handler.on_end()

    def fail(self, exc: HttpError) -> None:
        request, self.request = self.request, None
        self.close()
        if request is not None:
            request.handler.on_error(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = self.parser = None  # no cycles left: freed by reference counting
        self.pool.lost(self)
        request, self.request = self.request, None
        if request is None:
            return
        if self.status and b"content-length" not in self.headers and b"transfer-encoding" not in self.headers:
            request.handler.on_end()  # a body delimited by the connection's end
        elif self.reused and not self.got_bytes and request.attempts == 0:
            request.attempts += 1  # the server closed the idle connection as we wrote: once more, fresh
            self.pool.resend(request)
        else:
            request.handler.on_error(HttpError(f"{self.pool.origin} closed the connection"))


class HttpPool:
    """Keep-alive connections to one origin, at most `max_connections`; a waiter queue beyond."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        connect_timeout: float,
        spawn: Spawn,
        max_connections: int = 64,
        *,
        host_header: bool = True,
    ) -> None:
        self.url = url
        self.route: Route = route_for(url)
        self.origin = f"{self.route.scheme}://{self.route.authority}"
        self.connect_timeout = connect_timeout
        self.spawn = spawn
        self.max_connections = max_connections
        fixed = [f"host: {self.route.authority}"] if host_header else []  # else each request's `extra`
        if self.route.forward and self.route.proxy_auth:
            fixed.append(f"proxy-authorization: {self.route.proxy_auth}")
        fixed += [f"{name}: {value}" for name, value in headers.items()]
        self.fixed = "".join(f"{line}\r\n" for line in fixed).encode("latin-1")
        self.idle: list[HttpConnection] = []
        self.busy: set[HttpConnection] = set()
        self.opening = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self._targets: dict[str, bytes] = {}
        self.closed = False

    def target(self, url: str) -> bytes:
        """The request target for `url` (cached: a transport sends to one or two URLs)."""
        cached = self._targets.get(url)
        if cached is None:
            if self.route.forward:
                cached = url.encode("latin-1")
            else:
                parts = urlsplit(url)
                cached = ((parts.path or "/") + ("?" + parts.query if parts.query else "")).encode("latin-1")
            if len(self._targets) < MAX_CACHED_TARGETS:
                self._targets[url] = cached
        return cached

    async def request(
        self, method: bytes, url: str, extra: bytes, body: bytes, handler: ResponseHandler
    ) -> Request:
        """Send one request (raises HttpError when no connection can be had); the answer goes to `handler`.

        The returned request's `conn` may be paused (`transport.pause_reading`) or closed by the caller.
        """
        request = Request(method, url, extra, body, handler)
        await self._send(request)
        return request

    async def _send(self, request: Request) -> None:
        conn = self._take_idle() or await self._connection()
        head = b"%s %s HTTP/1.1\r\n" % (request.method, self.target(request.url))
        length = b"content-length: %d\r\n\r\n" % len(request.body) if request.body else b"\r\n"
        self.busy.add(conn)
        conn.start(request, b"".join((head, self.fixed, request.extra, length, request.body)))

    def _take_idle(self) -> HttpConnection | None:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE_SECONDS:
                conn.reused = True
                return conn
            conn.close()
        return None

    async def _connection(self) -> HttpConnection:
        while True:
            if self.closed:
                raise HttpError(f"the connection to {self.origin} is closed")
            conn = self._take_idle()
            if conn is not None:
                return conn
            if len(self.busy) + self.opening < self.max_connections:
                break
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            await waiter
        self.opening += 1
        try:
            _, protocol = await open_transport(self.route, lambda: HttpConnection(self), self.connect_timeout)
        except ConnectError as exc:
            raise HttpError(str(exc)) from None
        finally:
            self.opening -= 1
            self._wake()
        assert isinstance(protocol, HttpConnection)
        return protocol

    def _wake(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def release(self, conn: HttpConnection) -> None:
        self.busy.discard(conn)
        if self.closed:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self.idle.append(conn)
        self._wake()

    def lost(self, conn: HttpConnection) -> None:
        self.busy.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        self._wake()

    def follow(self, request: Request, location: str) -> None:
        """A redirect: sent again (same method, body and headers) only within the origin."""
        if not same_origin(self.url, location):
            request.handler.on_error(HttpError(cross_origin_refusal(self.url, location)))
        elif request.hops >= MAX_REDIRECTS:
            request.handler.on_error(HttpError(f"more than {MAX_REDIRECTS} redirects from {self.origin}"))
        else:
            request.hops += 1
            request.url = location
            self.resend(request)

    def resend(self, request: Request) -> None:
        self.spawn(self._resend, request)

    async def _resend(self, request: Request) -> None:
        try:
            await self._send(request)
        except HttpError as exc:
            request.handler.on_error(exc)

    def close(self) -> None:
        """Close every connection; requests still waiting for answers get an error."""
        self.closed = True
        for conn in [*self.idle, *self.busy]:
            conn.fail(HttpError(f"the connection to {self.origin} was closed"))
        self.idle.clear()
        self.busy.clear()
        self._wake()
        self.spawn = _closed_spawn  # drop the task group (and the cycle through it)
