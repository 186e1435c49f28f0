"""Downstream legacy HTTP+SSE (`…/sse` + `…/message`): one event stream per session, POSTs answered 202."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio

from ..config.model import TokenScope
from ..jsonrpc import INTERNAL_ERROR, INVALID_REQUEST, MessageError, check_fields, error_response
from ..relay.client import ClientSession
from ..relay.route import Route
from .asgi import (
    SSE_HEADERS,
    Receive,
    RequestHeaders,
    Scope,
    Send,
    query_param,
    read_posted,
    respond_now,
    send_bytes,
    send_error,
    sse_event,
)
from .closing import TaskCanceller
from .streamable import new_session_refusal, notify_contained, pump_outbox
from .telemetry import Telemetry

log = logging.getLogger("mcpmux.http")


ACK_DELAY_SECONDS = 0.002
ACCEPTED_HEADERS = [(b"content-type", b"text/plain")]


async def accept(send: Send) -> None:
    """The 202 a POSTed message gets on the legacy transport (its answer, if any, rides the stream)."""
    await send_bytes(send, 202, b"Accepted", ACCEPTED_HEADERS)


class Ack:
    """A POSTed request's 202, held back until its response is ready, for at most ACK_DELAY_SECONDS.

    A fast upstream's response then leaves together with the 202: the client wakes once for both,
    and the proxy's two writes cost less. A slow request gets its 202 after the delay, written by the
    timer itself through the early response path (`respond_now`: no task), and always before anything
    related to it is sent on the stream: a client that answers a server-to-client request needs its POST
    connection free. When the server cannot write it then, the request's task sends it at its next step.
    """

    __slots__ = ("send", "sent", "timer")

    def __init__(self, send: Send, loop: asyncio.AbstractEventLoop) -> None:
        self.send = send
        self.sent = False
        self.timer: asyncio.TimerHandle | None = loop.call_later(ACK_DELAY_SECONDS, self._fire)

    def _fire(self) -> None:
        self.timer = None
        if not self.sent and respond_now(self.send, 202, b"Accepted", ACCEPTED_HEADERS):
            self.sent = True

    async def now(self) -> None:
        """Send the 202 unless it was sent already; after this returns it has left."""
        if self.sent:
            return
        self.sent = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        await accept(self.send)


class StreamExchange:
    """A request on a legacy SSE session: everything, response included, rides the one stream."""

    __slots__ = ("ack", "client", "request_id")

    def __init__(self, client: ClientSession, request_id: Any, ack: Ack) -> None:
        self.client = client
        self.request_id = request_id
        self.ack = ack

    async def emit(self, msg: dict[str, Any]) -> None:
        await self.ack.now()
        await self.client.outbox.deliver(msg)


async def handle_sse_stream(
    route: Route, message_url: str, receive: Receive, send: Send, token: TokenScope | None
) -> None:
    """GET …/sse: open a session, announce where to POST, then stream until the client leaves."""
    refused = new_session_refusal(route)
    if refused is not None:
        status, reason = refused
        await send_error(send, status, reason, code=INTERNAL_ERROR if status == 503 else INVALID_REQUEST)
        return
    client = route.new_session(token)
    client.has_stream = True
    endpoint = f"{message_url}?sessionId={client.id}".encode()
    in_flight: set[TaskCanceller] = set()
    client.sse_requests = in_flight  # the POSTs of this session run here while the stream is open
    try:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await send(
            {"type": "http.response.body", "body": sse_event(endpoint, b"endpoint"), "more_body": True}
        )
        await pump_outbox(client, receive, send)
    finally:
        client.sse_requests = None
        for cancel in in_flight:  # the stream is gone: its requests are cancelled (and upstream told)
            cancel.cancel()
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
    msg = await read_posted(receive, send, limit)
    if msg is None:
        return
    client.touch()
    if "method" not in msg:
        await accept(send)
        route.handle_response(client, msg)
        return
    try:
        check_fields(msg)
    except MessageError as exc:  # a request is answered on the stream under its id; a notification here
        if "id" not in msg:
            await send_error(send, 400, str(exc), code=exc.code)
            return
        await accept(send)
        await client.outbox.deliver(error_response(msg["id"], exc.code, str(exc)))
        return
    await _run_message(route, client, msg, send, telemetry)


async def _run_message(
    route: Route, client: ClientSession, msg: dict[str, Any], send: Send, telemetry: Telemetry
) -> None:
    """A request or notification POSTed to a session whose stream is open."""
    # The rest runs in this request's own task (the HTTP server serves the connection's next request
    # once the 202 is out), registered with the session so that closing the stream cancels it: cheaper
    # than a task per message. The task is the HTTP server's and must live on, so the cancellation is
    # this request's alone (TaskCanceller, asyncio-native: an anyio cancel scope per message cost ~20
    # calls), and it is taken back here.
    in_flight: set[TaskCanceller] | None = client.sse_requests
    if in_flight is None:  # the stream closed while the body was read
        await send_error(send, 404, "Session not found")
        return
    ack = Ack(send, asyncio.get_running_loop()) if "id" in msg else None
    if ack is None:
        await accept(send)
    canceller = TaskCanceller()
    in_flight.add(canceller)
    try:
        if ack is None:
            await notify_contained(route, client, msg)
        else:
            response = await telemetry.relay(route, client, msg, StreamExchange(client, msg["id"], ack))
            await ack.now()
            await client.outbox.deliver(response)
    except asyncio.CancelledError:
        task = canceller.task
        if not canceller.fired or task is None or task.uncancel():
            raise  # not (only) the stream's closing: the server's shutdown
        if ack is not None:
            await ack.now()  # the stream closed under the request: the POST still gets its 202
    finally:
        canceller.task = None
        in_flight.discard(canceller)


__all__ = ["handle_sse_message", "handle_sse_stream"]
