"""The 2026-07-28 face of `…/mcp`: sessionless POSTs checked, carried on a handshake session, answered."""

from __future__ import annotations

from typing import Any

from ..config.model import TokenScope
from ..jsonrpc import INVALID_REQUEST, METHOD_NOT_FOUND, Message, error_response
from ..protocol.constants import (
    LOG_MESSAGE,
    LOG_RANK,
    LOGGING_SET_LEVEL,
    PING,
    RESOURCES_SUBSCRIBE,
    RESOURCES_UNSUBSCRIBE,
    SERVER_DISCOVER,
    SUBSCRIPTIONS_LISTEN,
)
from ..protocol.era import EnvelopeError, RoutingHeaders, read_envelope
from ..protocol.translate import modern_response, strip_envelope
from ..relay.modern import Carrier, discover, ready_carrier
from ..relay.route import Route
from .asgi import JSON_TYPE, SSE_HEADERS, RequestHeaders, Send, send_bytes, send_json
from .streamable import PostExchange, prefers_sse
from .telemetry import Telemetry

# Handshake-era methods 2026-07-28 removed, and what this proxy does not serve to 2026 clients yet.
NOT_SERVED = {
    PING: "ping was removed in 2026-07-28",
    LOGGING_SET_LEVEL: "logging/setLevel was removed in 2026-07-28: send _meta logLevel per request",
    RESOURCES_SUBSCRIBE: "resources/subscribe was removed in 2026-07-28 (subscriptions/listen replaces it)",
    RESOURCES_UNSUBSCRIBE: "resources/unsubscribe was removed in 2026-07-28",
    SUBSCRIPTIONS_LISTEN: "mcpmux does not serve subscriptions/listen yet",
}


class ModernExchange(PostExchange):
    """A 2026 request's HTTP answer: no session header; the result in the 2026 envelope; log
    notifications only when the request opted in with `_meta` logLevel; -32601 as HTTP 404."""

    __slots__ = ("log_rank", "method")

    def __init__(
        self, client: Any, msg: Message, send: Send, prefer_sse: bool, log_level: str | None
    ) -> None:
        super().__init__(client, msg["id"], send, b"", prefer_sse)
        self.method: str = msg["method"]
        self.log_rank = LOG_RANK[log_level] if log_level is not None else None

    def finish_now(self, msg: dict[str, Any]) -> bool:
        if "error" in msg:
            return False  # its status may not be 200: the request's task answers
        return super().finish_now(modern_response(self.method, msg))

    async def emit(self, msg: dict[str, Any]) -> None:
        if msg.get("method") == LOG_MESSAGE and not self._wants_log(msg):
            return
        await super().emit(msg)

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
        error = msg.get("error")
        if not self.started and isinstance(error, dict) and error.get("code") == METHOD_NOT_FOUND:
            self.done = True
            await send_json(self.send, 404, msg)
            return
        await super().finish(modern_response(self.method, msg))


async def handle_modern(
    route: Route,
    msg: Message,
    send: Send,
    headers: RequestHeaders,
    token: TokenScope | None,
    telemetry: Telemetry,
) -> None:
    """One 2026-07-28 POST: checked (envelope, routing headers), then discovered or relayed."""
    if "method" not in msg:
        refused = error_response(msg.get("id"), INVALID_REQUEST, "2026-07-28 clients send no responses")
        await send_json(send, 400, refused)
        return
    if "id" not in msg:
        await send_bytes(send, 202, b"", [])  # no 2026 notification means anything over HTTP
        return
    routing = RoutingHeaders(headers.protocol_version, headers.mcp_method, headers.mcp_name)
    try:
        envelope = read_envelope(msg, routing)
    except EnvelopeError as exc:
        await send_json(send, 400, error_response(msg["id"], exc.code, str(exc), exc.data))
        return
    method = msg["method"]
    refusal = NOT_SERVED.get(method)
    if refusal is not None:
        refused = error_response(msg["id"], METHOD_NOT_FOUND, f"Method not found ({refusal})")
        await send_json(send, 404, refused)
        return
    if method == SERVER_DISCOVER:
        response = await discover(route, token, envelope, msg["id"])
        await send_json(send, 200 if "result" in response else 503, response)
        return
    carrier = await ready_carrier(route, token, envelope, msg["id"])
    if not isinstance(carrier, Carrier):
        await send_json(send, 503, carrier)
        return
    exchange = ModernExchange(carrier.client, msg, send, prefers_sse(headers.accept), envelope.log_level)
    response = await telemetry.relay(route, carrier.client, strip_envelope(msg), exchange)
    await exchange.finish(response)
