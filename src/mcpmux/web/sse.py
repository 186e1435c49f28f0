"""Downstream legacy HTTP+SSE (`…/sse` + `…/message`): one event stream per session, POSTs answered 202."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio

from ..config.model import TokenScope
from ..jsonrpc import INTERNAL_ERROR, MessageError, error_response, parse_message
from ..relay.client import ClientSession
from ..relay.route import Route
from .asgi import (
    SSE_HEADERS,
    BodyTooLargeError,
    ClientDisconnectedError,
    Receive,
    RequestHeaders,
    Scope,
    Send,
    query_param,
    read_body,
    send_bytes,
    send_error,
    sse_event,
)
from .streamable import pump_outbox
from .telemetry import Telemetry

log = logging.getLogger("mcpmux.http")


class StreamExchange:
    """A request on a legacy SSE session: everything, response included, rides the one stream."""

    __slots__ = ("client", "request_id")

    def __init__(self, client: ClientSession, request_id: Any) -> None:
        self.client = client
        self.request_id = request_id

    async def emit(self, msg: dict[str, Any]) -> None:
        await self.client.outbox.deliver(msg)


async def handle_sse_stream(
    route: Route, message_url: str, receive: Receive, send: Send, token: TokenScope | None
) -> None:
    """GET …/sse: open a session, announce where to POST, then stream until the client leaves."""
    reason = route.unavailable_reason()
    if reason is not None:
        await send_error(send, 404, reason)
        return
    reason = route.session_limit_reason()
    if reason is not None:
        log.warning("%s: refused a new session: %s", route.name, reason)
        await send_error(send, 503, reason, code=INTERNAL_ERROR)
        return
    client = route.new_session(token)
    client.has_stream = True
    endpoint = f"{message_url}?sessionId={client.id}".encode()
    in_flight: set[asyncio.Task[Any]] = set()
    client.sse_requests = in_flight  # the POSTs of this session run here while the stream is open
    try:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await send(
            {"type": "http.response.body", "body": sse_event(endpoint, b"endpoint"), "more_body": True}
        )
        await pump_outbox(client, receive, send)
    finally:
        client.sse_requests = None
        for task in in_flight:  # the stream is gone: its requests are cancelled (and upstream told)
            task.cancel()
        with anyio.CancelScope(shield=True):
            await route.close_session(client)


async def handle_sse_message(
    route: Route,
    scope: Scope,
    receive: Receive,
    send: Send,
    headers: RequestHeaders,
    token: TokenScope | None,
    limit: int,
    telemetry: Telemetry,
) -> None:
    """POST …/message?sessionId=…: accept a message for a session's stream."""
    if scope["method"] != "POST":
        await send_error(send, 405, "Method Not Allowed", [(b"allow", b"POST")])
        return
    session_id = query_param(scope.get("query_string", b""), "sessionId", "session_id")
    client = route.sessions.get(session_id)
    if client is None or client.sse_requests is None or client.scope is not token:
        await send_error(send, 404, "Session not found")
        return
    try:
        body = await read_body(receive, limit)
        msg = parse_message(body)
    except BodyTooLargeError:
        await send_error(send, 413, f"Request body larger than {limit} bytes")
        return
    except ClientDisconnectedError:
        return
    except MessageError as exc:
        await send_error(send, 400, str(exc), code=exc.code)
        return
    client.touch()
    await send_bytes(send, 202, b"Accepted", [(b"content-type", b"text/plain")])
    if "method" not in msg:
        route.handle_response(client, msg)
        return
    # The 202 is sent: the rest runs in this request's own task (uvicorn serves the connection's
    # next request meanwhile), registered with the session so that closing the stream cancels it.
    # Cheaper than spawning a task per message, which is what the legacy transport would otherwise cost.
    in_flight: set[asyncio.Task[Any]] = client.sse_requests
    task = asyncio.current_task()
    assert task is not None
    in_flight.add(task)
    try:
        if "id" not in msg:
            await route.handle_notification(client, msg)
        else:
            await _serve_request(route, client, msg, telemetry)
    finally:
        in_flight.discard(task)


async def _serve_request(
    route: Route, client: ClientSession, msg: dict[str, Any], telemetry: Telemetry
) -> None:
    try:
        response = await telemetry.relay(route, client, msg, StreamExchange(client, msg["id"]))
    except Exception as exc:  # task boundary: the session's stream must survive one bad request
        log.exception("%s: request %s failed", route.name, msg.get("method"))
        response = error_response(msg["id"], INTERNAL_ERROR, f"mcpmux internal error: {type(exc).__name__}")
    await client.outbox.deliver(response)


__all__ = ["handle_sse_message", "handle_sse_stream"]
