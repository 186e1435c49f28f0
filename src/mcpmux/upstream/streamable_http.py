"""A streamable-HTTP upstream: POST per message, JSON or SSE replies, a GET stream for the rest."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson

from .. import tracing
from ..config.model import ServerConfig
from ..errors import UpstreamUnavailableError
from ..jsonrpc import CONNECTION_CLOSED, INTERNAL_ERROR, Message, error_response, notification
from .connection import Receiver
from .http_client import HttpError
from .http_post import HttpTransport, Posted, body_excerpt, event_message, header_text, http_pool, is_request
from .origin import shown_origin
from .sse_events import SseParser
from .tasks import released

log = logging.getLogger("mcpmux.upstream")

GET_STREAM_RETRIES = 3
GET_STREAM_BACKOFF_SECONDS = 0.5  # doubled after each drop of the standing stream
REINIT_REQUEST_ID = "mcpmux-reinitialize"
ACCEPT_BOTH = "application/json, text/event-stream"


class Reply(Posted):
    """What one POST brings back, fed by the HTTP client's callbacks as it arrives."""

    __slots__ = (
        "answered",
        "collected",
        "conn",
        "events",
        "expired",
        "msg",
        "related",
        "retried",
        "sent_with",
    )

    def __init__(
        self,
        conn: StreamableHttpConnection,
        msg: Message,
        related: Any,
        done: asyncio.Future[None] | None = None,
        collect: bool = False,
    ) -> None:
        super().__init__(done)
        self.conn, self.msg, self.related = conn, msg, related
        self.sent_with = conn.session_id
        self.events: SseParser | None = None
        self.answered = self.expired = self.retried = False
        self.collected: list[Message] | None = [] if collect else None

    def on_head(self, status: int, headers: dict[bytes, bytes]) -> None:
        self.status, self.headers = status, headers
        initialize = self.msg.get("method") == "initialize"
        if status == 404 and self.sent_with and not initialize:
            self.expired = True  # the upstream forgot our session (it restarted)
        elif status == 200:
            if initialize:
                self.conn.session_id = header_text(headers.get(b"mcp-session-id")) or self.conn.session_id
            if headers.get(b"content-type", b"").startswith(b"text/event-stream"):
                self.events = SseParser()

    def on_data(self, data: bytes) -> None:
        if self.events is None:
            super().on_data(data)
            return
        for event in self.events.feed(data):
            if (item := event_message(self.conn.name, event, "response stream")) is not None:
                self.item(item)

    def item(self, item: Any) -> None:
        if not isinstance(item, dict):
            return
        if self.collected is not None:
            self.collected.append(item)
        elif self.conn.deliver(item, self.msg, self.related):
            self.answered = True

    def on_end(self) -> None:
        self.conn.reply_done(self)

    def on_error(self, exc: HttpError) -> None:
        self.conn.reply_failed(self, self.conn.unavailable(f"cannot reach {self.conn.origin}: {exc}"))


class StandingStream(Posted):
    """The GET stream: 200 with events, or anything else meaning the upstream offers none."""

    __slots__ = ("conn", "events")

    def __init__(
        self, conn: StreamableHttpConnection, done: asyncio.Future[None], last_id: str | None
    ) -> None:
        super().__init__(done)
        self.conn = conn
        self.events = SseParser()
        self.events.last_id = last_id

    def on_data(self, data: bytes) -> None:
        if self.status != 200:
            return
        for event in self.events.feed(data):
            if (item := event_message(self.conn.name, event, "GET stream")) is not None:
                self.conn.receiver(item, None)

    def on_end(self) -> None:
        self.settle()

    def on_error(self, exc: HttpError) -> None:
        log.debug("%s: GET stream dropped: %s", self.conn.name, exc)
        self.settle()


class StreamableHttpConnection(HttpTransport):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.origin = shown_origin(self.url)
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self.on_recovered: Callable[[], None] | None = None  # told after a transparent re-initialize
        self._init_msg: Message | None = None
        self._reinit_lock = anyio.Lock()
        self._generation = 0  # bumped by each re-initialize; older GET streams then stop
        self._extra_key: tuple[str | None, str | None, str] | None = None
        self._extra = b""

    def headers(self, accept: str = ACCEPT_BOTH) -> bytes:
        """The per-session request headers, rebuilt only when the session or version changes."""
        key = (self.session_id, self.protocol_version, accept)
        if key != self._extra_key:
            lines = [f"accept: {accept}", "content-type: application/json"]
            if self.session_id:
                lines.append(f"mcp-session-id: {self.session_id}")
            if self.protocol_version:
                lines.append(f"mcp-protocol-version: {self.protocol_version}")
            self._extra_key, self._extra = key, ("\r\n".join(lines) + "\r\n").encode("latin-1")
        return self._extra

    def _post_headers(self, msg: Message) -> bytes:
        extra = self.headers()
        if tracing.active:
            trace = tracing.http_headers(msg)
            extra += "".join(f"{k}: {v}\r\n" for k, v in trace.items()).encode("latin-1")
        return extra

    async def send(self, msg: Message, related: Any = None) -> None:
        if self.closed:
            raise self.unavailable(self._reason)
        if is_request(msg):
            if msg["method"] == "initialize":
                self._init_msg = msg
            # the reply (JSON, or an SSE stream that may last) is handled by callbacks as it arrives
            await self.post(self.url, self._post_headers(msg), msg, Reply(self, msg, related))
            return
        done = asyncio.get_running_loop().create_future()
        await self.post(self.url, self._post_headers(msg), msg, Reply(self, msg, related, done))
        await done  # notifications and responses keep their order: the next one waits for this one
        if msg.get("method") == "notifications/initialized":
            self.tg.start_soon(released, self._get_stream, self._generation)

    def reply_done(self, reply: Reply) -> None:
        if reply.expired:
            if not reply.retried:
                self.tg.start_soon(released, self._recover, reply)
                return
            self.die("the upstream no longer knows our session (HTTP 404), even after re-initializing")
            self.reply_failed(reply, self.unavailable("session expired upstream (HTTP 404)"))
            return
        try:
            self._read_body(reply)
        except UpstreamUnavailableError as exc:
            self.reply_failed(reply, exc)
            return
        if not reply.answered and is_request(reply.msg) and reply.collected is None:
            text = f"{self.name}: the reply stream ended without a response"
            self.receiver(error_response(reply.msg["id"], CONNECTION_CLOSED, text), reply.related)
        reply.settle()

    def reply_failed(self, reply: Reply, error: UpstreamUnavailableError) -> None:
        if reply.done is not None:
            reply.settle(error)
        else:
            self.fail_message(reply.msg, reply.related, error)

    def _read_body(self, reply: Reply) -> None:
        status, msg = reply.status, reply.msg
        if status in (202, 204) or reply.events is not None:
            return
        data = self._json_body(reply)
        if data is None:
            return
        if isinstance(data, dict) and "jsonrpc" not in data and "id" in msg:
            data = error_response(msg["id"], INTERNAL_ERROR, f"HTTP {status}: {body_excerpt(reply.body())}")
        if isinstance(data, list):
            for item in data:
                reply.item(item)
        else:
            reply.item(data)

    def _json_body(self, reply: Reply) -> Any:
        """The parsed JSON body (None when empty); an error status without a JSON body is an error."""
        status = reply.status
        raw = reply.body()
        if status >= 400 and not reply.headers.get(b"content-type", b"").startswith(b"application/json"):
            raise self.unavailable(f"HTTP {status} from {self.origin}: {body_excerpt(raw)}")
        try:
            return orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            raise self.unavailable(f"invalid JSON from {self.origin} (HTTP {status})") from None

    def deliver(self, item: Message, sent: Message, related: Any) -> bool:
        is_answer = "method" not in item and item.get("id") == sent.get("id")
        if is_answer and sent.get("method") == "initialize":
            result = item.get("result")
            if isinstance(result, dict):
                self.protocol_version = result.get("protocolVersion")
        if "method" not in item and "id" in item and item.get("id") is None and "id" in sent:
            item = {**item, "id": sent["id"]}  # an error the server could not attribute: it is ours
            is_answer = True
        self.receiver(item, related if related is not None else sent.get("id"))
        return is_answer

    async def _recover(self, reply: Reply) -> None:
        """A 404 for our session: handshake again (once for all who saw it), send the message once more."""
        try:
            await self._reinitialize(reply.sent_with)
        except UpstreamUnavailableError as exc:
            self.reply_failed(reply, exc)
            return
        again = Reply(self, reply.msg, reply.related, reply.done)
        again.retried = True
        await self.post(self.url, self._post_headers(reply.msg), reply.msg, again)

    async def _exchange(self, msg: Message, collect: bool = True) -> Reply:
        """POST `msg` and wait for the whole reply; raise UpstreamUnavailableError when it fails."""
        reply = Reply(self, msg, None, asyncio.get_running_loop().create_future(), collect)
        await self.post(self.url, self.headers(), msg, reply)
        assert reply.done is not None
        await reply.done
        return reply

    async def _reinitialize(self, stale_session_id: str | None) -> None:
        """Handshake again with the original initialize params, once for all who saw the 404."""
        async with self._reinit_lock:
            if self.session_id != stale_session_id or self.closed:
                return  # another request already did it (or the connection is gone)
            try:
                if self._init_msg is None:
                    raise self.unavailable("no handshake to repeat")
                self.session_id = None
                await self._handshake_again(self._init_msg)
            except (UpstreamUnavailableError, orjson.JSONDecodeError) as exc:
                reason = f"could not re-initialize the upstream session: {exc}"
                self.die(reason)
                raise self.unavailable(reason) from None
            self._generation += 1
            log.info("%s: re-initialized the upstream session (HTTP 404: the upstream restarted)", self.name)
            self.tg.start_soon(released, self._get_stream, self._generation)
        if self.on_recovered is not None:
            self.on_recovered()

    async def _handshake_again(self, init_msg: Message) -> None:
        reply = await self._exchange({**init_msg, "id": REINIT_REQUEST_ID})
        if reply.status != 200:
            raise self.unavailable(f"HTTP {reply.status} to initialize")
        answers = [item for item in reply.collected or [] if item.get("id") == REINIT_REQUEST_ID]
        result = answers[0].get("result") if answers else None
        if not isinstance(result, dict):
            raise self.unavailable(f"initialize was refused: {answers[0] if answers else None}")
        self.protocol_version = result.get("protocolVersion")
        await self._exchange(notification("notifications/initialized"))

    async def _get_stream(self, generation: int) -> None:
        """The standalone stream for messages unrelated to a request; optional for servers (405)."""
        last_id: str | None = None
        for attempt in range(GET_STREAM_RETRIES):
            if generation != self._generation or self.closed:
                return  # the session was re-initialized; its own GET stream took over
            extra = self.headers("text/event-stream")
            if last_id:
                extra += f"last-event-id: {last_id}\r\n".encode("latin-1")
            stream = StandingStream(self, asyncio.get_running_loop().create_future(), last_id)
            try:
                await self.request(b"GET", self.url, extra, b"", stream)
                assert stream.done is not None
                await stream.done
            except HttpError as exc:
                log.debug("%s: GET stream failed: %s", self.name, exc)
            if stream.status and stream.status != 200:
                # 405 (or 404, as some servers say it): no standalone stream. Only a POST's 404
                # means the session is gone; re-initializing here would loop forever.
                log.debug("%s: no standing GET stream (HTTP %s)", self.name, stream.status)
                return
            last_id = stream.events.last_id
            await anyio.sleep(GET_STREAM_BACKOFF_SECONDS * 2**attempt)

    async def terminate(self) -> None:
        if not self.session_id:
            return
        done = asyncio.get_running_loop().create_future()
        with anyio.move_on_after(2), anyio.CancelScope(shield=True):
            try:
                await self.request(b"DELETE", self.url, self.headers(), b"", Posted(done))
                await done
            except HttpError:
                pass


@asynccontextmanager
async def open_streamable_http_connection(
    server: ServerConfig, receiver: Receiver
) -> AsyncIterator[StreamableHttpConnection]:
    async with http_pool(server) as (pool, tg):
        conn = StreamableHttpConnection(server, pool, receiver, tg)
        try:
            yield conn
        finally:
            await conn.terminate()
            conn.die("connection closed")  # closed like every transport once its block ends
