"""The 2026-07-28 `subscriptions/listen` stream over HTTP: acknowledged, then the honored notifications."""

from __future__ import annotations

from ..jsonrpc import Message, dumps
from ..protocol.translate import acknowledged
from ..relay.client import ClientSession
from ..relay.listen import ListenOutbox, close_listen, open_listen
from ..relay.modern import Carrier
from ..relay.route import Route
from .asgi import SSE_HEADERS, Receive, Send, send_json, sse_event
from .streamable import pump_outbox


async def serve_listen(
    route: Route, carrier: Carrier, msg: Message, receive: Receive, send: Send, caller: str
) -> None:
    """A `subscriptions/listen` stream of `caller` (relay/shares.py): acknowledged, then the honored
    notifications until the client closes it (which releases its upstream subscriptions)."""
    listener = await open_listen(route, carrier, msg, caller)
    if not isinstance(listener, ListenOutbox):
        await send_json(send, 400, listener)
        return
    stream = ClientSession(f"{carrier.client.id}/{msg['id']}", route, carrier.client.scope)  # for pump_outbox
    stream.outbox = listener
    try:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        honored = listener.honored((msg.get("params") or {}).get("notifications") or {})
        first = sse_event(dumps(acknowledged(honored, msg["id"])))
        await send({"type": "http.response.body", "body": first, "more_body": True})
        await pump_outbox(stream, receive, send)
    finally:
        await close_listen(route, carrier, listener)
