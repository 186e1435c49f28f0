"""A legacy HTTP+SSE upstream: one GET event stream carries every reply; messages are POSTed."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any
from urllib.parse import urljoin, urlsplit

import anyio
import httpx2
import orjson

from .. import tracing
from ..config.model import ServerConfig
from ..errors import UpstreamUnavailableError
from ..jsonrpc import Message
from .connection import Liveness, Receiver
from .sse_events import Event, iter_events
from .streamable_http import describe, http_client

log = logging.getLogger("mcpmux.upstream")


class SseConnection(Liveness):
    def __init__(self, server: ServerConfig, client: httpx2.AsyncClient) -> None:
        super().__init__()
        self.name = server.name
        self.url = server.url or ""
        self.client = client
        self.endpoint: str | None = None

    async def send(self, msg: Message, related: Any = None) -> None:
        if self.closed or self.endpoint is None:
            raise UpstreamUnavailableError(self.name, self._reason or "not connected")
        headers = {"content-type": "application/json"}
        if tracing.active:
            headers.update(tracing.http_headers(msg))
        try:
            resp = await self.client.post(self.endpoint, content=orjson.dumps(msg), headers=headers)
        except httpx2.HTTPError as exc:
            raise UpstreamUnavailableError(
                self.name, f"cannot reach {self.endpoint}: {describe(exc)}"
            ) from None
        if resp.status_code == 404:
            self.die("the upstream no longer knows our SSE session (HTTP 404)")
        if resp.status_code >= 400:
            raise UpstreamUnavailableError(
                self.name, f"HTTP {resp.status_code} from {self.endpoint}: {resp.text[:200]}"
            )

    def accept_endpoint(self, event: Event) -> None:
        endpoint = urljoin(self.url, event.data.strip())
        if urlsplit(endpoint)[:2] != urlsplit(self.url)[:2]:
            raise UpstreamUnavailableError(
                self.name, f"the endpoint event points to another origin: {endpoint}"
            )
        self.endpoint = endpoint


async def _read_stream(
    conn: SseConnection, resp: httpx2.Response, events: AsyncIterator[Event], receiver: Receiver
) -> None:
    try:
        async for event in events:
            if event.event != "message" or not event.data:
                continue
            try:
                msg = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                log.warning("%s: invalid JSON on the SSE stream (ignored)", conn.name)
                continue
            if isinstance(msg, dict):
                receiver(msg, None)
        conn.die("the SSE stream ended")
    except httpx2.HTTPError as exc:
        conn.die(f"the SSE stream failed: {describe(exc)}")


@asynccontextmanager
async def open_sse_connection(server: ServerConfig, receiver: Receiver) -> AsyncIterator[SseConnection]:
    async with http_client(server) as client, AsyncExitStack() as stack:
        conn = SseConnection(server, client)
        try:
            resp = await stack.enter_async_context(
                client.stream("GET", conn.url, headers={"accept": "text/event-stream"})
            )
            if resp.status_code != 200:
                raise UpstreamUnavailableError(server.name, f"HTTP {resp.status_code} from {conn.url}")
            events = iter_events(resp.aiter_bytes())
            with anyio.fail_after(server.options.connect_timeout_seconds):
                first = await anext(events)
        except httpx2.HTTPError as exc:
            raise UpstreamUnavailableError(server.name, f"cannot reach {conn.url}: {describe(exc)}") from None
        except (StopAsyncIteration, TimeoutError):
            raise UpstreamUnavailableError(server.name, f"no endpoint event from {conn.url}") from None
        if first.event != "endpoint":
            raise UpstreamUnavailableError(server.name, f"expected an endpoint event, got {first.event!r}")
        conn.accept_endpoint(first)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_read_stream, conn, resp, events, receiver)
            try:
                yield conn
            finally:
                tg.cancel_scope.cancel()
