"""The merged endpoint's resources: URIs resolved to a member, reads relabelled, subscriptions held."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from ..jsonrpc import Message, error_response, result_response
from ..protocol.constants import RESOURCE_NOT_FOUND
from ..upstream.runtime import ServerRuntime
from . import subscriptions
from .client import ClientSession
from .dispatch import Dispatch

if TYPE_CHECKING:
    from .merged_route import Member, MergedRoute


def resolve_uri(route: MergedRoute, client: ClientSession, uri: Any) -> tuple[Member, str] | None:
    """The member serving `uri` and the URI it knows it by, if the client's token reaches it."""
    found = route.catalog.resolve_uri(uri) if type(uri) is str else None
    if found is None or not route._reaches(client, found[0].server):
        return None
    return found[0].member, found[1]


def _target(
    route: MergedRoute, client: ClientSession, msg: Message
) -> tuple[Member, str, dict[str, Any]] | Message:
    """The member, upstream URI and params of a request naming a `uri`, or the error to answer."""
    params = msg.get("params") or {}
    found = resolve_uri(route, client, params.get("uri"))
    if found is None:
        return error_response(msg["id"], RESOURCE_NOT_FOUND, "Resource not found", {"uri": params.get("uri")})
    return found[0], found[1], params


async def read(route: MergedRoute, client: ClientSession, msg: Message, exchange: Any) -> Message:
    """`resources/read`: relayed to the member, answered with the URI the client asked for."""
    target = _target(route, client, msg)
    if isinstance(target, dict):
        return target
    member, upstream_uri, params = target
    uri = params.get("uri")
    if upstream_uri == uri:
        return await route._forward(member, client, msg, exchange, early=True)
    response = await route._forward(
        member, client, {**msg, "params": {**params, "uri": upstream_uri}}, exchange
    )
    relabel_contents(response, upstream_uri, str(uri))
    return response


async def subscribe(route: MergedRoute, client: ClientSession, msg: Message, exchange: Any) -> Message:
    """`resources/subscribe`: upstream only for the first shared subscriber (or each isolated one)."""
    target = _target(route, client, msg)
    if isinstance(target, dict):
        return target
    member, upstream_uri, params = target
    uri = params.get("uri")
    runtime = member.runtime
    held = route._subscriptions.setdefault(client.id, {})
    if (member.name, upstream_uri) in held:
        return result_response(msg["id"], {})
    if runtime.isolated or not subscriptions.held(member.dispatch.subscribers, upstream_uri):
        sent = {**msg, "params": {**params, "uri": upstream_uri}}
        response = await route._forward(member, client, sent, exchange)
        if "error" in response:
            return response
    held[member.name, upstream_uri] = str(uri)
    client.subscriptions.add(upstream_uri)  # what the runtime checks before relaying resources/updated
    if not runtime.isolated:
        subscriptions.hold(member.dispatch.subscribers, upstream_uri)
    return result_response(msg["id"], {})


async def unsubscribe(route: MergedRoute, client: ClientSession, msg: Message, exchange: Any) -> Message:
    """`resources/unsubscribe`: upstream only when the last subscriber leaves."""
    found = resolve_uri(route, client, (msg.get("params") or {}).get("uri"))
    held = route._subscriptions.get(client.id, {})
    if found is not None and held.pop((found[0].name, found[1]), None) is not None:
        client.subscriptions = {upstream for _, upstream in held}
        await release_subscription(found[0].runtime, client, found[1])
    return result_response(msg["id"], {})


def shown_update(
    route: MergedRoute, client: ClientSession, runtime: ServerRuntime, msg: Message
) -> Message | None:
    """A `resources/updated` as the client subscribed to it; None if it did not (on this server)."""
    params = msg.get("params") or {}
    uri = params.get("uri")
    shown = route._subscriptions.get(client.id, {}).get((runtime.name, uri)) if type(uri) is str else None
    if shown is None:
        return None  # another server's resource with the same URI
    return msg if shown == uri else {**msg, "params": {**params, "uri": shown}}


async def release_all(route: MergedRoute, client: ClientSession) -> None:
    """A closed session gives back every subscription it held."""
    runtimes = {m.name: m.runtime for m in route.members}
    for server, upstream_uri in route._subscriptions.pop(client.id, {}):
        if server in runtimes:
            await release_subscription(runtimes[server], client, upstream_uri)
    client.subscriptions.clear()


async def release_subscription(runtime: ServerRuntime, client: ClientSession, uri: str) -> None:
    """Unsubscribe upstream when the last shared subscriber of `uri` leaves (or at once, if isolated)."""
    dispatch = Dispatch.of(runtime)
    if not runtime.isolated and not subscriptions.drop(dispatch.subscribers, uri):
        return  # other clients still hold it
    session = dispatch.open_session(client)
    if session is None:
        return
    with anyio.move_on_after(runtime.request_timeout_seconds):
        await session.request(
            {"jsonrpc": "2.0", "id": 0, "method": "resources/unsubscribe", "params": {"uri": uri}},
            None,
            runtime.request_timeout_seconds,
        )


def relabel_contents(response: Message, upstream_uri: str, shown_uri: str) -> None:
    """A read of a prefixed URI answers with the prefixed URI, as the client asked for it."""
    result = response.get("result")
    contents = result.get("contents") if isinstance(result, dict) else None
    if isinstance(contents, list):
        result["contents"] = [  # type: ignore[index]
            {**c, "uri": shown_uri} if isinstance(c, dict) and c.get("uri") == upstream_uri else c
            for c in contents
        ]
