"""A streamable-HTTP upstream spoken to in the 2026-07-28 era (`options.protocol`): stateless POSTs,
translated to look like a handshake-era session by `ModernTranslation`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson

from ..config.model import ServerConfig
from ..jsonrpc import CONNECTION_CLOSED, INTERNAL_ERROR, Message, error_response, request
from ..protocol.constants import MODERN_VERSION, SUBSCRIPTIONS_ACKNOWLEDGED, SUBSCRIPTIONS_LISTEN, TOOLS_LIST
from ..protocol.translate import with_envelope, without_subscription_id
from .connection import Connection, Receiver
from .era_memory import EraMemory
from .http_client import HttpError, Request
from .http_post import HttpTransport, Posted, abort, body_excerpt, event_message, hang_up, http_pool
from .modern_base import ModernTranslation, wire_ids
from .modern_headers import learn_param_headers, request_headers
from .origin import shown_origin
from .sse_events import SseParser
from .streamable_http import open_streamable_http_connection
from .tasks import released

log = logging.getLogger("mcpmux.upstream")

LISTEN_RETRY_SECONDS = (1.0, 30.0)  # first and longest wait before reopening a dropped listen stream


class ModernReply(Posted):
    """One POST's reply, fed by the HTTP client's callbacks: the answer, and what comes before it."""

    __slots__ = ("answer", "conn", "events", "msg", "related")

    def __init__(
        self, conn: ModernHttpConnection, msg: Message, related: Any, done: asyncio.Future[None]
    ) -> None:
        super().__init__(done)
        self.conn, self.msg, self.related = conn, msg, related
        self.events: SseParser | None = None
        self.answer: Message | None = None

    def on_head(self, status: int, headers: dict[bytes, bytes]) -> None:
        super().on_head(status, headers)
        if status == 200 and headers.get(b"content-type", b"").startswith(b"text/event-stream"):
            self.events = SseParser()

    def on_data(self, data: bytes) -> None:
        events = self.events
        if events is None:
            return super().on_data(data)  # a JSON reply: read whole at the end
        name = self.conn.name
        for item in [event_message(name, event, "reply stream") for event in events.feed(data)]:
            if item is not None:
                self._take(item)
        return None

    def _take(self, item: Message) -> None:
        if "method" not in item and item.get("id") == self.msg["id"]:
            self.answer = item
        else:
            self.conn.receiver(item, self.related)  # progress, logs the request opted in to

    def json_answer(self, origin: str) -> Message | None:
        """The answer of a plain JSON reply (or an error naming the status)."""
        ctype = self.headers.get(b"content-type", b"")
        body = self.body()
        if not ctype.startswith(b"application/json"):
            why = f"HTTP {self.status} from {origin}: {body_excerpt(body)}"
            return error_response(self.msg["id"], INTERNAL_ERROR, why)
        item = orjson.loads(body) if body else None
        return item if isinstance(item, dict) and "method" not in item else None


class ListenReply(ModernReply):
    """A `subscriptions/listen` stream held upstream: its notifications go to the session as the
    upstream's own (unrelated to any request), without the subscription id."""

    __slots__ = ("acknowledged", "sent", "stopped")

    def __init__(
        self, conn: ModernHttpConnection, msg: Message, done: asyncio.Future[None], acknowledged: anyio.Event
    ) -> None:
        super().__init__(conn, msg, None, done)
        self.stopped = False
        self.acknowledged = acknowledged
        self.sent: Request | None = None  # the POST, to hang up on when the stream is no longer wanted

    def _take(self, item: Message) -> None:
        if self.stopped:  # not wanted any more (and still here): the client closes the connection
            raise HttpError("a subscriptions/listen stream no longer wanted")
        method = item.get("method")
        if method is None:
            self.answer = item  # the server ended the stream
        elif method == SUBSCRIPTIONS_ACKNOWLEDGED:
            self.acknowledged.set()
        elif "id" not in item:
            self.conn.receiver(without_subscription_id(item), None)

    def stop(self) -> None:
        """Not wanted any more: closed now (closing its connection is how an HTTP client aborts)."""
        self.stopped = True
        hang_up(self.sent)


class ModernHttpConnection(HttpTransport, ModernTranslation):
    """One 2026-07-28 streamable-HTTP upstream, presented as a handshake-era session."""

    def __init__(self, *args: Any) -> None:
        HttpTransport.__init__(self, *args)
        ModernTranslation.__init__(self)
        self.origin = shown_origin(self.url)

    def closed_reason(self) -> str:
        return self._reason

    def _learn(self, method: str, result: dict[str, Any]) -> None:
        if method == TOOLS_LIST:
            learn_param_headers((self.name, self.url), result.get("tools"))

    def _listen(self, key: str | None, wanted: dict[str, Any]) -> anyio.Event:
        held: list[ListenReply] = []
        self.listens[key] = held
        acknowledged = anyio.Event()
        self.tg.start_soon(released, self._hold_listen, wanted, held, acknowledged)
        return acknowledged

    def _unlisten(self, key: str) -> None:
        for reply in self.listens.pop(key, []):
            reply.stop()

    async def _hold_listen(
        self, wanted: dict[str, Any], held: list[ListenReply], acknowledged: anyio.Event
    ) -> None:
        """Keep one listen stream open upstream (reopened after a drop, with backoff) until it is stopped."""
        delay = LISTEN_RETRY_SECONDS[0]
        while not self.closed:
            rid = f"mcpmux-listen-{next(wire_ids)}"
            msg = request(rid, SUBSCRIPTIONS_LISTEN, {"notifications": wanted})
            done = asyncio.get_running_loop().create_future()
            reply = ListenReply(self, msg, done, acknowledged)
            held[:] = [reply]
            enveloped = with_envelope(msg, self.capabilities, self.client_info, None)
            headers = request_headers((self.name, self.url), msg) or b""
            reply.sent = await self.post(self.url, headers, enveloped, reply)
            with contextlib.suppress(HttpError):
                await done
            acknowledged.set()  # ended before it was: nobody waits for it any more
            if reply.stopped:
                return
            await anyio.sleep(delay)
            delay = min(delay * 2, LISTEN_RETRY_SECONDS[1])

    async def _exchange(self, msg: Message, related: Any) -> Message:
        """POST one request with the 2026 envelope and headers; deliver what comes before its answer."""
        headers = request_headers((self.name, self.url), msg)
        if headers is None:
            return error_response(msg["id"], INTERNAL_ERROR, "a method name that cannot travel in a header")
        done = asyncio.get_running_loop().create_future()
        reply = ModernReply(self, msg, related, done)
        sent = await self.post(self.url, headers, self.enveloped(msg, related, self.log_level), reply)
        try:
            await done
            answer = reply.answer if reply.events is not None else reply.json_answer(self.origin)
        except HttpError as exc:
            raise self.unavailable(f"cannot reach {self.origin}: {exc}") from None
        except orjson.JSONDecodeError:
            raise self.unavailable(f"invalid JSON from {self.origin}") from None
        except anyio.get_cancelled_exc_class():  # the client cancelled: the 2026 way is to drop the POST
            abort(sent, done)
            raise
        return answer or error_response(msg["id"], CONNECTION_CLOSED, f"{self.name}: no answer in the reply")


@asynccontextmanager
async def open_modern_http_connection(
    server: ServerConfig, receiver: Receiver
) -> AsyncIterator[ModernHttpConnection]:
    async with http_pool(server) as (pool, tg):
        yield ModernHttpConnection(server, pool, receiver, tg)


@asynccontextmanager
async def open_auto_http_connection(
    server: ServerConfig, receiver: Receiver, era: EraMemory
) -> AsyncIterator[Connection]:
    """`protocol: auto`: a `server/discover` probe decides; 2026-07-28 if the upstream lists it, else the
    handshake era (as the spec's backward-compatibility rules say). Probed once per runtime (`era`)."""
    if await era.settle(lambda: probe(server)):
        async with open_modern_http_connection(server, receiver) as conn:
            yield conn
    else:
        async with open_streamable_http_connection(server, receiver) as legacy:
            yield legacy


async def probe(server: ServerConfig) -> bool:
    """Whether the upstream answers `server/discover` listing 2026-07-28 (unreachable: the error)."""
    async with open_modern_http_connection(server, lambda msg, related: None) as conn:
        with anyio.fail_after(server.options.connect_timeout_seconds):
            result = (await conn.discover("mcpmux-probe")).get("result")
    versions = result.get("supportedVersions") if isinstance(result, dict) else None
    return isinstance(versions, list) and MODERN_VERSION in versions
