"""A legacy HTTP+SSE upstream: one GET event stream carries every reply; messages are POSTed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urljoin

import anyio

from .. import tracing
from ..config.model import ServerConfig
from ..errors import UpstreamUnavailableError
from ..jsonrpc import Message
from .connection import Receiver
from .http_client import HttpError
from .http_post import HttpTransport, Posted, body_excerpt, event_message, http_pool, is_request
from .origin import same_origin, shown_origin
from .sse_events import Event, SseParser

log = logging.getLogger("mcpmux.upstream")

POST_HEADERS = b"content-type: application/json\r\n"


class EventStream(Posted):
    """The GET stream: the `endpoint` event first (it settles `done`), then every message."""

    __slots__ = ("conn", "events")

    def __init__(self, conn: SseConnection, done: asyncio.Future[None]) -> None:
        super().__init__(done)
        self.conn = conn
        self.events = SseParser()

    def on_head(self, status: int, headers: dict[bytes, bytes]) -> None:
        self.status, self.headers = status, headers
        if status != 200:
            self.settle(self.conn.unavailable(f"HTTP {status} from {self.conn.origin}"))

    def on_data(self, data: bytes) -> None:
        if self.status != 200:
            return
        for event in self.events.feed(data):
            if self.conn.endpoint is None:
                self.conn.accept_endpoint(event, self)
            elif (msg := event_message(self.conn.name, event, "SSE stream")) is not None:
                self.conn.receiver(msg, None)

    def on_end(self) -> None:
        self.ended("the SSE stream ended")

    def on_error(self, exc: HttpError) -> None:
        self.ended(f"the SSE stream failed: {exc}")

    def ended(self, reason: str) -> None:
        self.settle(self.conn.unavailable(f"no endpoint event from {self.conn.origin} ({reason})"))
        self.conn.die(reason)


class Ack(Posted):
    """The answer to a POSTed message (202); an error status fails the message by name."""

    __slots__ = ("conn", "msg", "related")

    def __init__(
        self, conn: SseConnection, msg: Message, related: Any, done: asyncio.Future[None] | None
    ) -> None:
        super().__init__(done)
        self.conn, self.msg, self.related = conn, msg, related

    def on_end(self) -> None:
        status = self.status
        if status < 400:
            self.settle()
            return
        if status == 404:
            self.conn.die("the upstream no longer knows our SSE session (HTTP 404)")
        self.failed(
            self.conn.unavailable(f"HTTP {status} from {self.conn.origin}: {body_excerpt(self.body())}")
        )

    def on_error(self, exc: HttpError) -> None:
        self.failed(self.conn.unavailable(f"cannot reach {self.conn.origin}: {exc}"))

    def failed(self, error: UpstreamUnavailableError) -> None:
        if self.done is not None:
            self.settle(error)
        else:
            self.conn.fail_message(self.msg, self.related, error)


class SseConnection(HttpTransport):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.origin = shown_origin(self.url)
        self.endpoint: str | None = None

    async def send(self, msg: Message, related: Any = None) -> None:
        if self.closed or self.endpoint is None:
            raise self.unavailable(self._reason or "not connected")
        extra = POST_HEADERS
        if tracing.active:
            trace = tracing.http_headers(msg)
            extra += "".join(f"{k}: {v}\r\n" for k, v in trace.items()).encode("latin-1")
        if is_request(msg):  # its reply comes on the stream; a failed POST answers it with an error
            await self.post(self.endpoint, extra, msg, Ack(self, msg, related, None))
            return
        done = asyncio.get_running_loop().create_future()
        await self.post(self.endpoint, extra, msg, Ack(self, msg, related, done))
        await done  # notifications and responses keep their order

    def accept_endpoint(self, event: Event, stream: EventStream) -> None:
        if event.event != "endpoint":
            stream.settle(self.unavailable(f"expected an endpoint event, got {event.event!r}"))
            return
        endpoint = urljoin(self.url, event.data.strip())
        if not same_origin(endpoint, self.url):
            error = f"the endpoint event points to another origin: {shown_origin(endpoint)}"
            stream.settle(self.unavailable(error))
            return
        self.endpoint = endpoint
        stream.settle()


@asynccontextmanager
async def open_sse_connection(server: ServerConfig, receiver: Receiver) -> AsyncIterator[SseConnection]:
    async with http_pool(server) as (pool, tg):
        conn = SseConnection(server, pool, receiver, tg)
        stream = EventStream(conn, asyncio.get_running_loop().create_future())
        try:
            await conn.request(b"GET", conn.url, b"accept: text/event-stream\r\n", b"", stream)
            with anyio.fail_after(server.options.connect_timeout_seconds):
                assert stream.done is not None
                await stream.done
        except HttpError as exc:
            raise conn.unavailable(f"cannot reach {conn.origin}: {exc}") from None
        except TimeoutError:
            raise conn.unavailable(f"no endpoint event from {conn.origin}") from None
        if conn.endpoint is None:
            raise conn.unavailable(f"no endpoint event from {conn.origin}")
        yield conn
