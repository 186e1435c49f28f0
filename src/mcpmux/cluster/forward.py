"""Relaying one HTTP request to the replica that owns its session (lean keep-alive client), streamed back."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2

from ..jsonrpc import INVALID_REQUEST, error_response
from ..upstream.http_client import HttpError, HttpPool, Request, Spawn
from ..upstream.http_connect import ConnectError
from ..web.asgi import Headers, Receive, Scope, Send, send_bytes, send_error, send_json

# Not relayed in either direction: connection-level headers, and the length (recomputed per hop).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-connection",
        b"content-length",
        b"x-mcpmux-forwarded",
    }
)
STREAM_TYPE = b"text/event-stream"
MAX_OWNERS = 64  # replicas with an open pool here (a restarted replica has a new URL or the same)
MAX_OWNER_CONNECTIONS = 256  # per owner: open forwarded requests, GET streams included
MAX_OWNER_STREAMS = MAX_OWNER_CONNECTIONS // 2  # relayed GETs (open for long): the rest stay for requests
HIGH_WATER = 1024 * 1024  # bytes of a relayed stream waiting for a slow caller before reading pauses
# A JSON answer is relayed in one piece: read whole (no pause), up to this size (an upstream's biggest
# message, 64 MiB by default, with room for the envelope); a bigger one is a 502, the replica lives on.
MAX_ANSWER_BYTES = 72 * 1024 * 1024


class OwnerUnreachableError(Exception):
    """The owner refused or dropped the connection before answering: it is gone."""


def relayed_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    return [(k.lower(), v) for k, v in headers if k.lower() not in HOP_BY_HOP]


class Relayed:
    """The owner's answer as the HTTP client's callbacks deliver it: head, body chunks, end or error.

    Reading from an event stream pauses while more than HIGH_WATER bytes wait for the caller; any
    other answer is read whole (nothing takes from it before its end), up to MAX_ANSWER_BYTES.
    """

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.waiting = 0  # bytes in `chunks`
        self.streaming = False  # an event stream: relayed as it comes
        self.too_big = False  # a whole answer above MAX_ANSWER_BYTES: its connection is closed
        self.ended = False
        self.error: HttpError | None = None
        self.request: Request | None = None
        self._wake = anyio.Event()

    def on_head(self, status: int, headers: dict[bytes, bytes]) -> None:
        self.status, self.headers = status, relayed_headers(headers.items())
        self.streaming = STREAM_TYPE in dict(self.headers).get(b"content-type", b"")
        self._wake.set()

    def on_data(self, data: bytes) -> None:
        self.chunks.append(data)
        self.waiting += len(data)
        if self.streaming and self.waiting > HIGH_WATER:
            self._pause(True)
        elif not self.streaming and self.waiting > MAX_ANSWER_BYTES:
            self.too_big, self.ended = True, True
            self.chunks.clear()
            self._close()
        self._wake.set()

    def on_end(self) -> None:
        self.ended = True
        self._wake.set()

    def on_error(self, exc: HttpError) -> None:
        self.error = exc
        self._wake.set()

    @property
    def over(self) -> bool:
        return self.ended or self.error is not None

    async def wait(self) -> None:
        """Until a callback delivers something more."""
        self._wake = anyio.Event()
        await self._wake.wait()

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        if self.waiting > HIGH_WATER:
            self._pause(False)
        self.waiting = 0
        return data

    def _pause(self, pause: bool) -> None:
        conn = self.request.conn if self.request is not None else None
        if conn is not None and conn.transport is not None and not conn.closed:
            conn.transport.pause_reading() if pause else conn.transport.resume_reading()

    def abandon(self) -> None:
        """The caller went before the end: the connection to the owner is closed (not reused)."""
        if not self.over:
            self._close()

    def _close(self) -> None:
        conn = self.request.conn if self.request is not None else None
        if conn is not None:
            conn.close()


class OwnerPools:
    """One keep-alive pool per owner replica URL (mcpmux's lean HTTP client), at most MAX_OWNERS."""

    def __init__(self, connect_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.spawn: Spawn = _no_spawn  # the cluster's task group, once it runs
        self._pools: dict[str, HttpPool] = {}
        self.streams: dict[str, int] = {}  # relayed GET streams open, per owner origin

    def to(self, url: str) -> HttpPool:
        """The pool to the replica at `url` (its origin); raises OwnerUnreachableError for a bad URL."""
        try:
            origin = origin_of(url)
        except ValueError as exc:
            raise OwnerUnreachableError(str(exc)) from None
        pool = self._pools.get(origin)
        if pool is None or pool.closed:
            if len(self._pools) >= MAX_OWNERS:
                self.drop(next(iter(self._pools)))
            try:
                pool = HttpPool(
                    origin, {}, self.connect_timeout, self.spawn, MAX_OWNER_CONNECTIONS, host_header=False
                )
            except ConnectError as exc:
                raise OwnerUnreachableError(str(exc)) from None
            self._pools[origin] = pool
        return pool

    async def relay(
        self, url: str, target: str, scope: Scope, body: bytes, receive: Receive, send: Send, extra: Headers
    ) -> None:
        """`forward` on the owner's pool. A GET (a stream, open for as long as its client listens) only
        while fewer than MAX_OWNER_STREAMS are open to that owner, else 503: streams must never hold
        every connection to it, or the requests relayed there would wait for ever."""
        pool = self.to(url)
        if scope["method"] != "GET":
            await forward(pool, target, scope, body, receive, send, extra)
            return
        origin = origin_of(url)
        if self.streams.get(origin, 0) >= MAX_OWNER_STREAMS:
            await send_error(send, 503, "Service Unavailable: too many streams relayed to one replica")
            return
        self.streams[origin] = self.streams.get(origin, 0) + 1
        try:
            await forward(pool, target, scope, body, receive, send, extra)
        finally:
            self.streams[origin] -= 1

    def drop(self, url: str) -> None:
        pool = self._pools.pop(origin_of(url), None)
        if pool is not None:
            pool.close()

    def close(self) -> None:
        for origin in list(self._pools):
            self.drop(origin)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _no_spawn(*_args: Any) -> None:
    """Before the cluster runs there is no background work to do (redirects, resends)."""


def request_head(scope: Scope, host: str, extra: list[tuple[bytes, bytes]]) -> bytes:
    """The caller's headers (its own `Host` included, for the owner's host check), then `extra`."""
    headers = [*relayed_headers(scope["headers"]), *extra]
    if not any(name == b"host" for name, _ in headers):
        headers.append((b"host", host.encode("latin-1")))
    return b"".join(b"%s: %s\r\n" % (name, value) for name, value in headers)


async def forward(
    pool: HttpPool,
    url: str,
    scope: Scope,
    body: bytes,
    receive: Receive,
    send: Send,
    extra: list[tuple[bytes, bytes]],
) -> None:
    """Send the request to `url` on the owner's keep-alive pool; answer with the owner's answer.

    A JSON answer goes back in one piece; an event stream is relayed chunk by chunk until either side
    ends it (the caller disconnecting closes the connection to the owner).
    """
    relayed = Relayed()
    head = request_head(scope, pool.route.authority, extra)
    try:
        relayed.request = await pool.request(scope["method"].encode(), url, head, body, relayed)
        while not relayed.status and relayed.error is None:
            await relayed.wait()
    except HttpError as exc:
        raise OwnerUnreachableError(str(exc)) from exc
    finally:
        if not relayed.status:
            relayed.abandon()
    if relayed.error is not None and not relayed.status:
        raise OwnerUnreachableError(str(relayed.error))
    try:
        if not relayed.streaming:
            await _whole_answer(relayed, send)
            return
        await send({"type": "http.response.start", "status": relayed.status, "headers": relayed.headers})
        await while_connected(receive, send, lambda: pump(relayed, send))
    finally:
        relayed.abandon()


async def _whole_answer(relayed: Relayed, send: Send) -> None:
    """A JSON (or any non-stream) answer: sent once it is whole, with its length."""
    while not relayed.over:
        await relayed.wait()
    if relayed.too_big:
        await send_error(
            send, 502, f"Bad Gateway: the owner replica's answer is above {MAX_ANSWER_BYTES} bytes"
        )
        return
    if relayed.error is not None:
        raise OwnerUnreachableError(str(relayed.error))
    await send_bytes(send, relayed.status, relayed.take(), relayed.headers)


async def pump(relayed: Relayed, send: Send) -> None:
    """The owner's stream to the caller as it comes; ends when the owner ends it or goes away."""
    while True:
        data = relayed.take()
        if data:
            await send({"type": "http.response.body", "body": data, "more_body": True})
        elif relayed.over:
            return
        else:
            await relayed.wait()


async def relay_stream(response: httpx2.Response, receive: Receive, send: Send) -> None:
    """Relay an open response's body as it comes, until either side ends it."""

    async def pump() -> None:
        try:
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx2.TransportError:
            pass  # the owner went away mid-stream: the client sees the stream end and reconnects

    await while_connected(receive, send, pump)


async def while_connected(receive: Receive, send: Send, work: Callable[[], Awaitable[None]]) -> None:
    """Run `work` (writing a streamed response) until it returns or the caller goes; then end the body."""

    async def watch_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        tg.cancel_scope.cancel()

    async def run() -> None:
        await work()
        tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_disconnect)
        tg.start_soon(run)
    with anyio.CancelScope(shield=True):
        await send({"type": "http.response.body", "body": b""})


def replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` for a request whose body was read already: the body once, then the connection's events."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Any:
        return pending.pop() if pending else await receive()

    return replay


async def session_gone(scope: Scope, send: Send) -> None:
    """404 per the spec: the client starts a new session (on whichever replica it lands)."""
    if scope["method"] == "POST":
        await send_json(send, 404, error_response(None, INVALID_REQUEST, "Session not found"))
    else:
        await send_error(send, 404, "Session not found")
