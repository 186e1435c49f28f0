"""Downstream streamable HTTP (`…/mcp`): POST messages, GET the standalone stream, DELETE the session."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from ..config.model import TokenScope
from ..jsonrpc import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    Message,
    MessageError,
    check_fields,
    error_response,
)
from ..protocol.constants import HANDSHAKE_VERSIONS, MODERN_VERSIONS
from ..protocol.era import is_modern
from ..relay.client import ClientSession
from ..relay.route import Route
from .asgi import (
    JSON_TYPE,
    SSE_HEADERS,
    Receive,
    RequestHeaders,
    Scope,
    Send,
    encode,
    event_of,
    read_posted,
    respond_now,
    send_bytes,
    send_error,
    send_json,
    sse_event,
)
from .telemetry import Telemetry

log = logging.getLogger("mcpmux.http")

KEEPALIVE_SECONDS = 25.0
OVERFLOW_CLOSE_SECONDS = 1.0


class PostExchange:
    """One POSTed request: answered as JSON, or as an SSE stream once a related message must go first."""

    __slots__ = ("client", "done", "early", "prefer_sse", "request_id", "send", "session_header", "started")

    def __init__(
        self,
        client: ClientSession,
        request_id: Any,
        send: Send,
        session_header: bytes,
        prefer_sse: bool = False,
    ) -> None:
        self.client = client
        self.request_id = request_id
        self.send = send
        self.session_header = session_header
        self.prefer_sse = prefer_sse
        self.started = False
        self.done = False
        self.early = False  # answered by `finish_now` from the upstream's reader

    def finish_now(self, msg: dict[str, Any]) -> bool:
        """Write the final response at once, from the upstream's reader, if it can go as plain JSON.

        Saves the wake-up of the request's task before the answer leaves (the task then finds it sent).
        """
        if self.done or self.started or self.prefer_sse:
            return False
        if not respond_now(
            self.send, 200, encode(msg), [JSON_TYPE, (b"mcp-session-id", self.session_header)]
        ):
            return False
        self.done = self.early = True
        return True

    async def _start_stream(self) -> None:
        self.started = True
        headers = [*SSE_HEADERS, (b"mcp-session-id", self.session_header)]
        await self.send({"type": "http.response.start", "status": 200, "headers": headers})

    async def emit(self, msg: dict[str, Any]) -> None:
        if self.done:
            self.client.outbox.push(msg)
            return
        if not self.started:
            await self._start_stream()
        await self.send({"type": "http.response.body", "body": event_of(msg), "more_body": True})

    async def finish(self, msg: dict[str, Any]) -> None:
        if self.early:
            return
        self.done = True
        body = encode(msg)
        if self.prefer_sse and not self.started:
            await self._start_stream()
        if self.started:
            await self.send({"type": "http.response.body", "body": sse_event(body)})
        else:
            await send_bytes(self.send, 200, body, self._json_headers())

    def _json_headers(self) -> list[tuple[bytes, bytes]]:
        return [JSON_TYPE, (b"mcp-session-id", self.session_header)]


async def handle_streamable(
    route: Route,
    scope: Scope,
    receive: Receive,
    send: Send,
    headers: RequestHeaders,
    token: TokenScope | None,
) -> None:
    """Any method but POST (`handle_post`): GET (the standalone stream), DELETE (the session's end), 405."""
    method = scope["method"]
    if not headers.session_id and headers.protocol_version in MODERN_VERSIONS:
        await send_error(send, 405, "Method Not Allowed: 2026-07-28 clients only POST", [(b"allow", b"POST")])
    elif method == "GET":
        await _get(route, receive, send, headers, token)
    elif method == "DELETE":
        client = await _session(route, headers, token)
        if client is None:
            await send_error(send, 404, "Session not found")
            return
        await route.close_session(client)
        await send_bytes(send, 200, b"", [])
    else:
        await send_error(send, 405, "Method Not Allowed", [(b"allow", b"GET, POST, DELETE")])


async def _session(route: Route, headers: RequestHeaders, token: TokenScope | None) -> ClientSession | None:
    """The caller's live session; one whose stream overflowed (maxSessionQueue) is ended here (404)."""
    client = route.sessions.get(headers.session_id or "")
    if client is None or client.scope is not token or client.closed:
        return None
    if client.outbox.overflowed:
        await route.close_session(client)
        return None
    return client


async def handle_post(
    route: Route,
    receive: Receive,
    send: Send,
    headers: RequestHeaders,
    token: TokenScope | None,
    limit: int,
    telemetry: Telemetry,
) -> None:
    msg = await read_posted(receive, send, limit, headers)
    if msg is None:
        return
    if is_modern(headers.session_id, headers.protocol_version, msg):  # one check when in a session
        await _modern_handler()(route, msg, receive, send, headers, token, telemetry)  # checks fields too
        return
    if "method" in msg:
        answer = _answered_here(route, msg, send, headers, token, telemetry)
        if answer is not None:
            await answer
            return
    client = await _session(route, headers, token)
    if client is None or headers.protocol_version not in _IN_SESSION_VERSIONS:
        await _refuse(send, msg, client, headers)
        return
    client.touch()
    if "method" not in msg:
        route.handle_response(client, msg)
        await send_bytes(send, 202, b"", [])
    elif "id" not in msg:
        await send_bytes(send, 202, b"", [])
        await notify_contained(route, client, msg)
    else:
        exchange = PostExchange(client, msg["id"], send, client.id.encode(), prefers_sse(headers.accept))
        response = await telemetry.relay(route, client, msg, exchange)
        if not exchange.early:  # else the upstream's reader wrote it already (finish_now)
            await exchange.finish(response)


_IN_SESSION_VERSIONS = (*HANDSHAKE_VERSIONS, None)  # None: no MCP-Protocol-Version header


def _answered_here(
    route: Route,
    msg: Message,
    send: Send,
    headers: RequestHeaders,
    token: TokenScope | None,
    telemetry: Telemetry,
) -> Awaitable[None] | None:
    """For a message with a method: the answer to await for one whose fields are bad (-32602, or 400)
    or for `initialize`; None when it goes to its session. Not a coroutine (no frame per request)."""
    try:
        check_fields(msg)
    except MessageError as exc:
        return refuse_fields(msg, send, exc)
    if msg["method"] == "initialize" and "id" in msg:
        return _initialize(route, msg, send, headers, token, telemetry)
    return None


@functools.cache
def _modern_handler() -> Callable[..., Awaitable[None]]:
    """web/modern.py's handle_modern (it builds on this module), imported once: not ~0.5 us per request."""
    from .modern import handle_modern

    return handle_modern


async def _refuse(send: Send, msg: Message, client: ClientSession | None, headers: RequestHeaders) -> None:
    """A message the session its headers name cannot serve: none found, or a version it does not speak."""
    if client is None:
        status, text = (
            (404, "Session not found") if headers.session_id else (400, "Bad Request: Missing session ID")
        )
    else:
        status, text = 400, f"Unsupported protocol version: {headers.protocol_version}"
    await send_json(send, status, error_response(msg.get("id"), INVALID_REQUEST, text))


def new_session_refusal(route: Route) -> tuple[int, str] | None:
    """Why `route` opens no new session now: 404 (unavailable) or 503 (at its session limit, logged)."""
    reason = route.unavailable_reason()
    if reason is not None:
        return 404, reason
    reason = route.session_limit_reason()
    if reason is not None:
        log.warning("%s: refused a new session: %s", route.name, reason)
        return 503, reason
    return None


def relay_contained(
    telemetry: Telemetry, route: Route, client: ClientSession, msg: Message, exchange: Any
) -> Awaitable[Message]:
    """`telemetry.relay`, which turns a bug anywhere below into this request's JSON-RPC error itself.

    Not a coroutine: the caller awaits the one it returns (no frame in between on every resume).
    """
    return telemetry.relay(route, client, msg, exchange)


async def fields_ok(msg: Message, send: Send) -> bool:
    """Check the fields mcpmux reads; a bad request is answered under its id (-32602), else 400."""
    try:
        check_fields(msg)
    except MessageError as exc:
        await refuse_fields(msg, send, exc)
        return False
    return True


async def refuse_fields(msg: Message, send: Send, exc: MessageError) -> None:
    """A message whose fields mcpmux reads are bad: answered under its id (-32602), else 400."""
    answer = error_response(msg.get("id"), exc.code, str(exc))  # no id: null, and 400
    await send_json(send, 200 if "id" in msg else 400, answer)


async def notify_contained(route: Route, client: ClientSession, msg: Message) -> None:
    """`route.handle_notification` after the 202 went out: a failure is logged, never raised."""
    try:
        await route.handle_notification(client, msg)
    except Exception:  # task boundary: the answer (202) is out already
        log.exception("%s: notification %s failed", route.name or "mcp", msg.get("method"))


def prefers_sse(accept: bytes) -> bool:
    """Answer with an event stream when the client lists it before JSON (or accepts nothing else).

    Otherwise the response is JSON unless something must be sent before it, which is the fast path.
    """
    sse = accept.find(b"text/event-stream")
    if sse < 0:
        return False
    json_at = accept.find(b"application/json")
    return json_at < 0 or sse < json_at


async def _initialize(
    route: Route,
    msg: dict[str, Any],
    send: Send,
    headers: RequestHeaders,
    token: TokenScope | None,
    telemetry: Telemetry,
) -> None:
    refused = new_session_refusal(route)
    if refused is not None:
        status, reason = refused
        code = INTERNAL_ERROR if status == 503 else -32000
        await send_json(send, status, error_response(msg["id"], code, reason))
        return
    client = route.new_session(token)
    exchange = PostExchange(client, msg["id"], send, client.id.encode())
    response = await telemetry.relay(route, client, msg, exchange)
    if "error" in response:
        await route.close_session(client)
        await send_json(send, 200, response)
        return
    log.debug("%s: new session %s", route.name, client.id)
    await exchange.finish(response)


async def _get(
    route: Route, receive: Receive, send: Send, headers: RequestHeaders, token: TokenScope | None
) -> None:
    if b"text/event-stream" not in headers.accept and b"*/*" not in headers.accept:
        await send_error(send, 406, "Not Acceptable: the GET stream needs Accept: text/event-stream")
        return
    client = await _session(route, headers, token)
    if client is None:
        await send_error(send, 404 if headers.session_id else 400, "Session not found")
        return
    if client.has_stream:
        await send_error(send, 409, "Conflict: only one GET stream per session")
        return
    client.has_stream = True
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*SSE_HEADERS, (b"mcp-session-id", client.id.encode())],
            }
        )
        await pump_outbox(client, receive, send)
    finally:
        client.has_stream = False
        if client.outbox.overflowed:  # the client did not keep up: the session ends (logged by the outbox)
            with anyio.CancelScope(shield=True):
                await route.close_session(client)


async def pump_outbox(client: ClientSession, receive: Receive, send: Send) -> None:
    """Write the session's standalone messages to an open SSE response until either side ends."""

    async def watch_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        tg.cancel_scope.cancel()

    outbox = client.outbox

    async def pump() -> None:
        while True:
            batch = await outbox.take_all(KEEPALIVE_SECONDS)
            if batch is None:
                break  # the session ended
            body = b"".join([event_of(msg) for msg in batch]) if batch else b": keep-alive\n\n"
            outbox.writing = True
            try:
                await send({"type": "http.response.body", "body": body, "more_body": True})
            finally:
                outbox.writing = False
        tg.cancel_scope.cancel()

    async def write_now(msg: Message) -> None:
        await send({"type": "http.response.body", "body": event_of(msg), "more_body": True})

    outbox.direct = write_now
    try:
        async with anyio.create_task_group() as tg:
            outbox.stop = tg.cancel_scope.cancel
            tg.start_soon(watch_disconnect)
            tg.start_soon(pump)
    finally:
        outbox.direct = outbox.stop = None
    if not outbox.writing:  # else a `deliver` is stuck writing to a stream that is going away anyway
        # after an overflow the client may have stopped reading: the end of the stream gets a moment only
        with anyio.move_on_after(OVERFLOW_CLOSE_SECONDS if outbox.overflowed else math.inf):
            await send({"type": "http.response.body", "body": b""})
