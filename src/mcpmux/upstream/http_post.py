"""What both HTTP upstream transports share: the pool's life, POSTing a message, failing it by name."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson
from anyio.abc import TaskGroup

from ..config.model import ServerConfig
from ..core.redact import redact_running
from ..errors import UpstreamUnavailableError
from ..jsonrpc import CONNECTION_CLOSED, Message, error_response
from .connection import Liveness, Receiver
from .http_auth import authorizer_for
from .http_client import HttpError, HttpPool, Request
from .http_connect import ConnectError
from .sse_events import Event
from .tasks import released

log = logging.getLogger("mcpmux.upstream")

MAX_BODY_BYTES = 64 * 1024 * 1024  # one JSON reply: as the stdio line limit
MAX_POOL_CONNECTIONS = 64


EXCERPT_CHARS = 200  # of an upstream's error body, quoted in the error a client gets
EXCERPT_SCAN_BYTES = 4096  # what is read of it (redacted whole, then cut: a secret is never cut in two)


def body_excerpt(raw: bytes) -> str:
    """The start of an upstream's error body for an error message: redacted first, then cut (cut
    first, a configured secret straddling the cut kept its first part, which no redaction matches)."""
    return redact_running(raw[:EXCERPT_SCAN_BYTES].decode("utf-8", "replace"))[:EXCERPT_CHARS]


def is_request(msg: Message) -> bool:
    return "method" in msg and "id" in msg


class Posted:
    """The base of a response handler: status, a bounded body, and a future for those who wait."""

    __slots__ = ("chunks", "done", "headers", "size", "status")

    def __init__(self, done: asyncio.Future[None] | None = None) -> None:
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.chunks: list[bytes] = []
        self.size = 0
        self.done = done

    def on_head(self, status: int, headers: dict[bytes, bytes]) -> None:
        self.status, self.headers = status, headers

    def on_data(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > MAX_BODY_BYTES:
            raise HttpError(f"a response body larger than {MAX_BODY_BYTES} bytes")
        self.chunks.append(data)

    def on_end(self) -> None:
        self.settle()

    def on_error(self, exc: HttpError) -> None:
        self.settle(exc)

    def body(self) -> bytes:
        return b"".join(self.chunks)

    def settle(self, error: BaseException | None = None) -> None:
        done = self.done
        if done is not None and not done.done():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)


class HttpTransport(Liveness):
    """An upstream reached over HTTP: a pool to its origin, the receiver, and a task group."""

    def __init__(self, server: ServerConfig, pool: HttpPool, receiver: Receiver, tg: TaskGroup) -> None:
        super().__init__()
        self.name = server.name
        self.url = server.url or ""
        self.pool = pool
        self.receiver = receiver
        self.tg = tg
        authorizer = authorizer_for(server, pool, pool.spawn)
        # every request of this transport: the pool's, or through the server's OAuth login
        self.request = authorizer.request if authorizer is not None else pool.request

    def unavailable(self, text: str) -> UpstreamUnavailableError:
        return UpstreamUnavailableError(self.name, text)

    def fail_message(self, msg: Message, related: Any, error: BaseException) -> None:
        """A request gets its error as a response; a waiting sender gets the exception."""
        if is_request(msg):
            self.receiver(error_response(msg["id"], CONNECTION_CLOSED, str(error)), related)

    async def post(self, url: str, extra: bytes, msg: Message, handler: Any) -> Request | None:
        """POST `msg`; when no connection can be had, the handler is told as if the exchange failed.

        The request sent (for `abort`), when the pool says which it is."""
        try:
            return await self.request(b"POST", url, extra, orjson.dumps(msg), handler)
        except HttpError as exc:
            handler.on_error(exc)
            return None


def abort(sent: Request | None, done: asyncio.Future[None]) -> None:
    """Give up an exchange nobody waits for any more: its future is cancelled (so whatever the handler
    is told later is dropped) and, while it is still on its connection, that connection is closed, which
    is how an HTTP client cancels a request (2026-07-28 upstreams stop the call when its POST goes)."""
    done.cancel()
    hang_up(sent)


def hang_up(sent: Request | None) -> None:
    """Close the connection `sent` is on while it still is (its handler is then told the exchange ended)."""
    conn = sent.conn if sent is not None else None
    if conn is not None and conn.request is sent:
        conn.close()


def spawner(tg: TaskGroup) -> Callable[..., None]:
    """`spawn(fn, *args)`: a task in `tg` whose frames let go of their locals when it is cancelled."""

    def spawn(fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        tg.start_soon(released, fn, *args)

    return spawn


@asynccontextmanager
async def http_pool(server: ServerConfig) -> AsyncIterator[tuple[HttpPool, TaskGroup]]:
    """The pool to `server.url` and a task group for its rare background work (redirects, retries)."""
    async with anyio.create_task_group() as tg:
        try:
            pool = HttpPool(
                server.url or "",
                server.headers,
                server.options.connect_timeout_seconds,
                spawner(tg),
                MAX_POOL_CONNECTIONS,
            )
        except ConnectError as exc:
            raise UpstreamUnavailableError(server.name, str(exc)) from None
        try:
            yield pool, tg
        finally:
            pool.close()
            tg.cancel_scope.cancel()


def event_message(name: str, event: Event, where: str) -> Message | None:
    """The JSON-RPC object an SSE `message` event carries; None (logged if invalid) for anything else."""
    if event.event != "message" or not event.data:
        return None
    try:
        item = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        log.warning("%s: invalid JSON on the %s (ignored)", name, where)
        return None
    return item if isinstance(item, dict) else None


def header_text(raw: bytes | None) -> str | None:
    """A header value an upstream sent, if it is visible ASCII (as session ids must be); else None."""
    if not raw or any(byte < 0x21 or byte > 0x7E for byte in raw):
        return None
    return raw.decode("ascii")
