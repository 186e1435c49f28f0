"""The 2026-07-28 face of `…/mcp`: sessionless POSTs checked, carried on a handshake session, answered."""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

from ..config.model import TokenScope
from ..jsonrpc import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    Message,
    MessageError,
    check_fields,
    error_response,
    result_response,
)
from ..protocol.constants import (
    INITIALIZE,
    INPUT_REQUIRED_METHODS,
    LOG_MESSAGE,
    LOG_RANK,
    LOGGING_SET_LEVEL,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    PING,
    RESOURCES_SUBSCRIBE,
    RESOURCES_UNSUBSCRIBE,
    SERVER_DISCOVER,
    SUBSCRIPTIONS_LISTEN,
    TOOLS_CALL,
)
from ..protocol.era import Envelope, EnvelopeError, check_param_headers, param_headers, read_envelope
from ..protocol.translate import complete_result, drop_envelope, modern_response
from ..relay.modern import Carrier, discover, known_carrier, param_header_map, ready_carrier
from ..relay.mrtr import SUSPENSION_SECONDS, Suspension
from ..relay.route import Route
from ..relay.shares import caller_key
from .asgi import (
    JSON_TYPE,
    SSE_HEADERS,
    Receive,
    RecordingSend,
    RequestHeaders,
    Send,
    encode,
    respond_now,
    send_bytes,
    send_json,
)
from .closing import TaskCanceller, until_closed
from .exchange import Exchange
from .modern_listen import serve_listen
from .streamable import PostExchange, prefers_sse
from .telemetry import Telemetry

log = logging.getLogger("mcpmux.http")

# Handshake-era methods 2026-07-28 removed, and what this proxy does not serve to 2026 clients yet.
NOT_SERVED = {
    INITIALIZE: "2026-07-28 has no initialize: send server/discover, or initialize without the 2026 header",
    PING: "ping was removed in 2026-07-28",
    LOGGING_SET_LEVEL: "logging/setLevel was removed in 2026-07-28: send _meta logLevel per request",
    RESOURCES_SUBSCRIBE: "resources/subscribe was removed in 2026-07-28 (subscriptions/listen replaces it)",
    RESOURCES_UNSUBSCRIBE: "resources/unsubscribe was removed in 2026-07-28",
}
# How long requests for input are gathered after the first, so that those an upstream sends together
# (say from concurrent tasks) reach the client in one `input_required`; a person answers them anyway.
INPUT_GATHER_SECONDS = 0.02
ERROR_STATUS = {METHOD_NOT_FOUND: 404, MISSING_REQUIRED_CLIENT_CAPABILITY: 400}
NOT_CALLS = frozenset({SERVER_DISCOVER, SUBSCRIPTIONS_LISTEN})  # served without a `ModernExchange`


class ModernExchange(PostExchange):
    """A 2026 request's HTTP answer: no session header; the result in the 2026 envelope; log
    notifications only when the request opted in with `_meta` logLevel; -32601 as HTTP 404, -32021 as 400.

    Server-to-client requests on it end the answer with `input_required` (the call is suspended): those
    that arrive together go out in one answer; whatever the call produces after it goes to its
    `Suspension` for the client's retry.
    """

    __slots__ = (
        "answered",
        "canceller",
        "carrier",
        "collecting",
        "headers",
        "log_rank",
        "method",
        "params",
        "scope",
        "suspension",
    )

    def __init__(
        self, carrier: Carrier, msg: Message, send: Send, headers: RequestHeaders, log_level: str | None
    ) -> None:
        PostExchange.__init__(self, carrier.client, msg["id"], send, b"", prefers_sse(headers.accept))
        self.carrier = carrier
        self.scope: TokenScope | None = carrier.client.scope
        self.headers = headers  # its peer: whose share a suspension takes (relay/shares.py caller_key)
        self.method: str = msg["method"]
        self.params = msg["params"]  # (an object: the envelope is in it)
        self.log_rank = LOG_RANK[log_level] if log_level is not None else None
        self.suspension: Suspension | None = None
        self.collecting = False  # requests for input are being gathered for one `input_required`
        self.canceller: TaskCanceller | None = None  # cancels the call's task (also once suspended)
        self.answered = False  # its final answer went out from the upstream's reader (`finish_now`)

    def finish_now(self, msg: dict[str, Any]) -> bool:
        """`PostExchange.finish_now` with the 2026 result and no session header."""
        if "error" in msg or self.suspension is not None:
            return False  # its status may not be 200, or it belongs to a retry: the task answers
        result = msg.get("result")  # `modern_response` for a result, without its call
        if type(result) is dict:
            complete_result(self.method, result, self.scope is None)
        if (
            self.done
            or self.started
            or self.prefer_sse
            or not respond_now(self.send, 200, encode(msg), [JSON_TYPE])
        ):
            return False  # (see `PostExchange.finish_now`)
        self.done = self.early = self.answered = True
        return True

    async def emit(self, msg: dict[str, Any]) -> None:
        if "id" in msg and "method" in msg and (self.suspension is None or self.collecting):
            await self.ask_for_input(msg)
        elif self.suspension is not None:
            self.suspension.put(msg)
        elif msg.get("method") != LOG_MESSAGE or self._wants_log(msg):
            await super().emit(msg)

    async def ask_for_input(self, request: Message) -> None:
        """Gather a server-to-client request for the `input_required` answer; the call is suspended."""
        if self.method not in INPUT_REQUIRED_METHODS:
            why = f"a 2026-07-28 client cannot be asked for input during {self.method}"
            self.client.resolve(error_response(request["id"], INTERNAL_ERROR, why))
            return
        suspension = self.suspension or self._open_suspension()
        if suspension is None:
            self.client.resolve(error_response(request["id"], INTERNAL_ERROR, "too many suspended calls"))
            return
        self.suspension = suspension
        suspension.call = suspension.call or self.canceller
        suspension.asked[request["id"]] = request
        if self.started or self.prefer_sse:  # an event stream: no synchronous write, answer with this one now
            await self.answer_input_required(suspension)
        elif not self.collecting:
            self.collecting = True  # requests that come together (within a few ms) go out together
            asyncio.get_running_loop().call_later(INPUT_GATHER_SECONDS, self._answer_collected)

    def _open_suspension(self) -> Suspension | None:
        caller = caller_key(self.scope is None, self.headers.peer)
        return self.carrier.suspensions.open(self.method, self.params, caller)

    async def answer_input_required(self, suspension: Suspension) -> None:
        """End this answer with `input_required` for what `suspension` asks (a new round)."""
        self.suspension = suspension
        await super().finish(result_response(self.request_id, suspension.input_required(self.scope)))

    def _answer_collected(self) -> None:
        suspension = self.suspension
        if not self.collecting or suspension is None:
            return
        self.collecting = False
        result = encode(result_response(self.request_id, suspension.input_required(self.scope)))
        if not (self.done or self.started or self.prefer_sse) and respond_now(
            self.send, 200, result, [JSON_TYPE]
        ):
            self.done = self.early = True
            return
        # No synchronous write here: tell the upstream, which then finishes the call as usual.
        self.suspension = None
        self.carrier.suspensions.close(suspension)
        for rid in list(suspension.asked):
            self.client.resolve(error_response(rid, INTERNAL_ERROR, "the client could not be asked"))

    def _wants_log(self, msg: Message) -> bool:
        if self.log_rank is None:
            return False
        level = (msg.get("params") or {}).get("level")
        return LOG_RANK.get(str(level), len(LOG_RANK)) >= self.log_rank

    async def _start_stream(self) -> None:
        self.started = True
        await self.send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})

    def _json_headers(self) -> list[tuple[bytes, bytes]]:
        return [JSON_TYPE]

    async def finish(self, msg: dict[str, Any]) -> None:
        if self.suspension is not None:
            self.suspension.put(msg)
            return
        if self.early:
            return  # `finish_now` sent it already (from the upstream's reader): nothing to translate again
        error = msg.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        status = ERROR_STATUS.get(code) if type(code) is int else None
        if status is not None and not self.started:
            self.done = True
            await send_json(self.send, status, msg)
            return
        await super().finish(modern_response(self.method, msg, self.scope is None))


async def handle_modern(
    route: Route,
    msg: Message,
    receive: Receive,
    send: Send,
    headers: RequestHeaders,
    token: TokenScope | None,
    telemetry: Telemetry,
) -> None:
    """One 2026-07-28 POST: checked (envelope, routing headers), then discovered, listened, resumed or
    relayed. Contained: a failure anywhere below is logged and, when nothing was sent yet, answered with
    -32603 under the request's id (never an HTTP 500).

    A call is relayed from this frame (every frame of the await chain costs a call per resume)."""
    sending = _recording(send)  # tells whether the response started; keeps the early answer path (and
    # knows the task running the request, when the server does: `Exchange.task`, `RecordingSend.task`)
    try:
        envelope = _admit(route, msg, headers)
        if type(envelope) is not Envelope:  # (a NamedTuple: a refusal is a plain tuple)
            await _refuse(sending, envelope)  # type: ignore[arg-type]
            return
        if msg["method"] in NOT_CALLS:
            await _discover_or_listen(route, msg, receive, sending, headers, token, envelope)
            return
        carrier = known_carrier(route, token) or await ready_carrier(route, token, envelope, msg["id"])
        if type(carrier) is not Carrier:  # (no subclasses: no isinstance call per request)
            await send_json(sending, 503, carrier)
            return
        carrier.client.capabilities = envelope.capabilities
        exchange = ModernExchange(carrier, msg, sending, headers, envelope.log_level)
        if "requestState" in msg["params"]:  # the retry of one that answered `input_required`
            await resume(carrier, msg, exchange)
            return
        # a POST closed before its answer cancels the call (2026-07-28): the upstream is told (a
        # handshake-era one with notifications/cancelled, a 2026 one by closing mcpmux's POST); an
        # answered one goes on
        exchange.canceller = canceller = TaskCanceller(sending.task)  # type: ignore[attr-defined]
        work = telemetry.relay(route, carrier.client, drop_envelope(msg), exchange)
        relayed = await until_closed(exchange, canceller, work, failed=partial(_failed, route, msg))
        if relayed is not None and not exchange.answered:  # (a suspended call's goes to its retry)
            await exchange.finish(relayed)
    except Exception as exc:  # task boundary: one request's failure must not become an HTTP 500
        answer = _failed(route, msg, exc)
        if _unanswerable(sending, msg):
            raise
        await send_json(send, 200, answer)


def _failed(route: Route, msg: Message, exc: Exception) -> Message:
    """A failure below a 2026 request, logged (call it in the `except`): the request's answer (-32603)."""
    log.exception("%s: 2026-07-28 request %s failed", route.name or "mcp", msg.get("method"))
    return error_response(msg.get("id"), INTERNAL_ERROR, f"mcpmux internal error: {type(exc).__name__}")


def _recording(send: Send) -> Send:
    """`send`, such that `_started` can tell whether the response started: mcpmux's own server and its
    access log know it themselves; any other `send` is wrapped (no wrapper call per write on the first)."""
    kind = type(send)
    return send if kind is Exchange or kind is RecordingSend else RecordingSend(send)


def _unanswerable(send: Any, msg: Message) -> bool:
    """Whether a failed request gets no -32603: a notification, or its response (on a `_recording`
    send) started already."""
    return "id" not in msg or bool(send.response_started if type(send) is Exchange else send.status)


async def _discover_or_listen(
    route: Route,
    msg: Message,
    receive: Receive,
    send: Send,
    headers: RequestHeaders,
    token: TokenScope | None,
    envelope: Envelope,
) -> None:
    if msg["method"] == SERVER_DISCOVER:
        response = await discover(route, token, envelope, msg["id"])
        await send_json(send, 200 if "result" in response else 503, response)
        return
    carrier = await ready_carrier(route, token, envelope, msg["id"])
    if not isinstance(carrier, Carrier):
        await send_json(send, 503, carrier)
        return
    await serve_listen(route, carrier, msg, receive, send, caller_key(token is None, headers.peer))


# An answer a request gets instead of being served: HTTP status and JSON-RPC body (None: no body, 202).
Refusal = tuple[int, Message | None]


def _admit(route: Route, msg: Message, headers: RequestHeaders) -> Envelope | Refusal:
    """The request's envelope, or why it is refused (not a request, removed method, a listen stream
    without an event stream, bad envelope, routing headers, fields or `Mcp-Param-*`). Synchronous: the
    refusal is sent by the caller (no coroutine per check on every request)."""
    if "method" not in msg:
        return 400, error_response(msg.get("id"), INVALID_REQUEST, "2026-07-28 clients send no responses")
    if "id" not in msg:
        return 202, None  # no 2026 notification means anything over HTTP
    method = msg["method"]
    if method in NOT_SERVED:
        return 404, error_response(msg["id"], METHOD_NOT_FOUND, f"Method not found ({NOT_SERVED[method]})")
    if method == SUBSCRIPTIONS_LISTEN and b"text/event-stream" not in headers.accept:
        why = "Not Acceptable: subscriptions/listen answers with text/event-stream"
        return 406, error_response(None, INVALID_REQUEST, why)
    routing = (headers.protocol_version, headers.mcp_method, headers.mcp_name)  # RoutingHeaders' order
    try:
        envelope = read_envelope(msg, routing)
    except EnvelopeError as exc:
        return 400, error_response(msg["id"], exc.code, str(exc), exc.data)
    return _fields_refusal(route, msg, headers) or envelope


def _fields_refusal(route: Route, msg: Message, headers: RequestHeaders) -> Refusal | None:
    """The fields mcpmux reads (-32602, under the request's id, as on the handshake path); a
    `tools/call`'s `Mcp-Param-*` headers mirror the arguments its tool marks `x-mcp-header` (else
    400/-32020, as the spec says servers must check)."""
    try:
        check_fields(msg)
    except MessageError as exc:
        return 200, error_response(msg["id"], exc.code, str(exc))
    if msg["method"] != TOOLS_CALL:
        return None
    params = msg["params"]  # (an object: the envelope is in it; `name` a string: checked above)
    header_map = param_header_map(route, params["name"])
    if not header_map:
        return None
    try:
        check_param_headers(header_map, params.get("arguments"), param_headers(headers.raw))
    except EnvelopeError as exc:
        return 400, error_response(msg["id"], exc.code, str(exc))
    return None


async def _refuse(send: Send, refusal: Refusal) -> None:
    status, body = refusal
    if body is None:
        await send_bytes(send, status, b"", [])
    else:
        await send_json(send, status, body)


async def resume(carrier: Carrier, msg: Message, exchange: ModernExchange) -> None:
    """A retry with `inputResponses`: answer the suspended call's requests, then serve what it does next.

    If something asked is not answered, the same requests are asked again (a new round), as the spec
    suggests, rather than failing the call.
    """
    suspension = carrier.suspensions.resume(msg, exchange.scope)
    if not isinstance(suspension, Suspension):
        await exchange.finish(suspension)
        return
    try:
        answers, missing = suspension.take_answers((msg.get("params") or {}).get("inputResponses"))
        for answer in answers:
            carrier.client.resolve(answer)
        if missing:
            await exchange.answer_input_required(suspension)
            return

        def give_up() -> None:  # the retry's POST closed before its answer: that cancels the call too
            carrier.suspensions.close(suspension)
            if suspension.call is not None:
                suspension.call.cancel()

        serving = _serve_resumed(carrier, suspension, exchange)
        await until_closed(exchange, TaskCanceller(), serving, give_up)
    finally:
        suspension.busy = False


async def _serve_resumed(carrier: Carrier, suspension: Suspension, exchange: ModernExchange) -> None:
    while True:
        event = await suspension.next_event(SUSPENSION_SECONDS)
        if event is None:
            carrier.suspensions.close(suspension)
            timeout = error_response(exchange.request_id, INTERNAL_ERROR, "the suspended call did not go on")
            await exchange.finish(timeout)
            return
        if "method" not in event:  # the call's final response
            carrier.suspensions.close(suspension)
            await exchange.finish({**event, "id": exchange.request_id})
            return
        if "id" in event:  # more requests for input: a new round with all that came together
            suspension.asked[event["id"]] = event
            suspension.drain_requests()
            await exchange.answer_input_required(suspension)
            return
        await exchange.emit(event)
