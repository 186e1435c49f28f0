"""`subscriptions/listen` for 2026 clients: streams fed by the token's carrier session, each carrying only
the notifications its client opted in to, each naming its subscription."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, Message, error_response, request
from ..protocol.constants import (
    PROMPTS_LIST_CHANGED,
    RESOURCE_UPDATED,
    RESOURCES_LIST_CHANGED,
    RESOURCES_SUBSCRIBE,
    RESOURCES_UNSUBSCRIBE,
    TOOLS_LIST_CHANGED,
)
from ..protocol.translate import listen_ended, with_subscription_id
from .client import ClientSession, Outbox
from .route import Route
from .shares import share_refusal

if TYPE_CHECKING:
    from .modern import Carrier

MAX_LISTENERS = (
    64  # listen streams per token and route (without a token: per client address, relay/shares.py)
)
MAX_RESOURCE_SUBSCRIPTIONS = 100  # URIs one listen stream may follow
# notification -> (its filter key, the server capability it needs)
LIST_FLAGS = {
    TOOLS_LIST_CHANGED: ("toolsListChanged", "tools"),
    PROMPTS_LIST_CHANGED: ("promptsListChanged", "prompts"),
    RESOURCES_LIST_CHANGED: ("resourcesListChanged", "resources"),
}


def refuse_request(client: ClientSession, msg: Message) -> bool:
    """Refuse a server-to-client request sent outside any 2026 call (it could only wait for a stream
    that never comes); False when `msg` is not a request."""
    if "id" not in msg or "method" not in msg:
        return False
    why = f"a 2026-07-28 client can answer {msg['method']} only during one of its own requests"
    client.resolve(error_response(msg["id"], INTERNAL_ERROR, why))
    return True


class ListenOutbox(Outbox):
    """One listen stream: the honored notifications, stamped with the subscription id."""

    def __init__(self, subscription_id: Any, flags: set[str], uris: set[str], caller: str = "") -> None:
        super().__init__()
        self.caller = caller  # whose place it takes (relay/shares.py)
        self.subscription_id = subscription_id
        self.flags = flags
        self.uris = uris

    def offer(self, msg: Message) -> None:
        method = msg.get("method")
        flag = LIST_FLAGS.get(method)  # type: ignore[arg-type]
        if flag is not None:
            wanted = flag[0] in self.flags
        else:  # logs, progress, custom notifications: not on a 2026 listen stream
            wanted = method == RESOURCE_UPDATED and (msg.get("params") or {}).get("uri") in self.uris
        if wanted:
            self.push(with_subscription_id(msg, self.subscription_id))

    def end(self) -> None:
        """mcpmux ends the stream (its carrier ended: reload, shutdown): the listen request's result goes
        out after what is queued, then the stream closes."""
        if not self.closed:
            self.push(listen_ended(self.subscription_id))
        self.close()

    def honored(self, wanted: dict[str, Any]) -> dict[str, Any]:
        honored: dict[str, Any] = {key: True for key in sorted(self.flags)}
        if "resourceSubscriptions" in wanted:
            honored["resourceSubscriptions"] = sorted(self.uris)
        return honored


class FanOutbox(Outbox):
    """A carrier's standalone stream: what reaches it goes to the token's open listen streams (none:
    dropped); server-to-client requests are refused."""

    def __init__(self, client: ClientSession) -> None:
        super().__init__()
        self.client = client
        self.listeners: set[ListenOutbox] = set()
        self.uri_counts: dict[str, int] = {}  # resource subscriptions held upstream for the listeners

    def push(self, msg: Message) -> None:
        if not refuse_request(self.client, msg):
            for listener in list(self.listeners):
                listener.offer(msg)

    async def deliver(self, msg: Message) -> None:
        self.push(msg)

    def close(self) -> None:
        """The carrier ended (reload, shutdown): so do its listen streams, gracefully."""
        super().close()
        for listener in list(self.listeners):
            listener.end()


async def open_listen(
    route: Route, carrier: Carrier, msg: Message, caller: str = ""
) -> ListenOutbox | Message:
    """A new listen stream of `caller` (relay/shares.py) on the carrier, subscribed upstream as asked;
    or the error response."""
    wanted = (msg.get("params") or {}).get("notifications")
    if not isinstance(wanted, dict):
        return error_response(msg["id"], INVALID_PARAMS, "subscriptions/listen needs params.notifications")
    fan = carrier.fan
    holders = (listener.caller for listener in fan.listeners)
    refusal = share_refusal(holders, caller, MAX_LISTENERS, carrier.client.scope is None, "listen streams")
    if refusal is not None:
        return error_response(msg["id"], INTERNAL_ERROR, refusal)
    caps = (carrier.init_result or {}).get("capabilities") or {}
    flags = {key for key, kind in LIST_FLAGS.values() if wanted.get(key) is True and kind in caps}
    listener = ListenOutbox(msg["id"], flags, set(), caller)
    fan.listeners.add(listener)
    carrier.client.has_stream = True  # the carrier is not idle while a stream is open
    await _subscribe(route, carrier, listener, wanted.get("resourceSubscriptions"), caps)
    return listener


async def _subscribe(route: Route, carrier: Carrier, listener: ListenOutbox, uris: Any, caps: Any) -> None:
    """Subscribe upstream to each URI it can (once per carrier, counted); remember those that took."""
    resources = caps.get("resources")
    if not isinstance(uris, list) or not (isinstance(resources, dict) and resources.get("subscribe")):
        return
    counts = carrier.fan.uri_counts
    for uri in [u for u in uris if isinstance(u, str)][:MAX_RESOURCE_SUBSCRIPTIONS]:
        if uri in listener.uris:
            continue
        if not counts.get(uri):
            subscribe = request(f"mcpmux-listen-{carrier.client.id}", RESOURCES_SUBSCRIBE, {"uri": uri})
            if "result" not in await route.handle_request(carrier.client, subscribe, None):
                continue
        counts[uri] = counts.get(uri, 0) + 1
        listener.uris.add(uri)


async def close_listen(route: Route, carrier: Carrier, listener: ListenOutbox) -> None:
    """The stream ended: forget it, and release the subscriptions no other stream of the carrier holds."""
    fan = carrier.fan
    fan.listeners.discard(listener)
    carrier.client.has_stream = bool(fan.listeners)
    listener.close()
    for uri in listener.uris:
        left = fan.uri_counts.get(uri, 1) - 1
        if left > 0:
            fan.uri_counts[uri] = left
            continue
        fan.uri_counts.pop(uri, None)
        if not carrier.client.closed:
            unsubscribe = request(f"mcpmux-unlisten-{carrier.client.id}", RESOURCES_UNSUBSCRIBE, {"uri": uri})
            await route.handle_request(carrier.client, unsubscribe, None)
