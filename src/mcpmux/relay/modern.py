"""2026-07-28 (sessionless) clients on a route: the per-token carrier session and `server/discover`."""

from __future__ import annotations

import logging
from typing import Any

import anyio

from ..config.model import TokenScope
from ..jsonrpc import INTERNAL_ERROR, Message, error_response, request, result_response
from ..protocol.cache import carried_hint, for_client
from ..protocol.constants import INITIALIZE, LATEST_HANDSHAKE_VERSION
from ..protocol.era import Envelope, x_mcp_header_map
from ..protocol.translate import discover_from_initialize
from ..upstream.runtime import ServerRuntime
from .client import ClientSession
from .listen import FanOutbox
from .merged_route import MergedRoute
from .mrtr import Suspensions
from .route import Route
from .server_route import ServerRoute

log = logging.getLogger("mcpmux.relay")

ANONYMOUS_CLIENT = {"name": "mcp-2026-client", "version": "0"}


def initialize_request(envelope: Envelope) -> Message:
    """The `initialize` a 2026 client's session sends on a route (its envelope's capabilities)."""
    info = envelope.client_info or ANONYMOUS_CLIENT
    caps = envelope.capabilities
    params = {"protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": caps, "clientInfo": info}
    return request(0, INITIALIZE, params)


class Carrier:
    """The handshake-era client session that carries one token's 2026-07-28 requests on a route.

    2026 requests have no session, so the route serves all of a token's 2026 requests through this
    one session: on the server's shared upstream session (shared mode) or on one private upstream
    session for the token (isolated mode). Its client capabilities are those of the latest request's
    envelope; a server-to-client request during a call becomes `input_required` (relay/mrtr.py); what
    reaches its standalone stream goes to the token's `subscriptions/listen` streams (relay/listen.py).
    """

    __slots__ = ("client", "fan", "init_result", "lock", "suspensions")

    def __init__(self, client: ClientSession) -> None:
        self.fan = FanOutbox(client)  # its standalone stream feeds the token's listen streams
        client.outbox = self.fan
        client.modern = True
        self.client = client
        self.lock = anyio.Lock()
        self.init_result: dict[str, Any] | None = None
        self.suspensions = Suspensions(anonymous=client.scope is None)

    async def handshake(self, route: Route, envelope: Envelope) -> Message:
        """Initialize the carrier on the route (attach, start a lazy server, open a private session)."""
        async with self.lock:
            response = await route.handle_request(self.client, initialize_request(envelope), None)
            result = response.get("result")
            self.init_result = result if isinstance(result, dict) else None
            self.client.initialized = self.init_result is not None
            return response


def carrier_for(route: Route, scope: TokenScope | None) -> Carrier | str:
    """The token's carrier on this route (created on first use), or why none can be opened."""
    carrier: Carrier | None = route.modern.get(id(scope))
    if carrier is not None and not carrier.client.closed and carrier.client.scope is scope:
        return carrier
    reason = route.session_limit_reason()
    if reason is not None:
        return reason
    for key in [k for k, c in route.modern.items() if c.client.closed]:
        del route.modern[key]  # ended (idle, reload): forget it
    carrier = Carrier(route.new_session(scope))
    route.modern[id(scope)] = carrier
    log.debug("%s: new carrier session %s for 2026-07-28 requests", route.name, carrier.client.id)
    return carrier


def known_carrier(route: Route, scope: TokenScope | None) -> Carrier | None:
    """The token's carrier when it is open and initialized (the common case, without a coroutine), else
    None (`ready_carrier` opens or initializes it)."""
    carrier: Carrier | None = route.modern.get(id(scope))
    if carrier is None or carrier.init_result is None:
        return None
    client = carrier.client
    return carrier if not client.closed and client.scope is scope else None


async def ready_carrier(
    route: Route, scope: TokenScope | None, envelope: Envelope, request_id: Any
) -> Carrier | Message:
    """The token's carrier, initialized; an error response for `request_id` when it cannot be."""
    carrier = carrier_for(route, scope)
    if isinstance(carrier, str):
        return error_response(request_id, INTERNAL_ERROR, carrier)
    if carrier.init_result is None:
        response = await carrier.handshake(route, envelope)
        if "error" in response:
            return {**response, "id": request_id}
    return carrier


async def discover(route: Route, scope: TokenScope | None, envelope: Envelope, request_id: Any) -> Message:
    """`server/discover`: the route's initialize answer (merged capabilities on /mcp), translated.

    Asked afresh each time, so a server that restarted with other capabilities is described as it is now.
    Its cache hint is the one the route's initialize carried for the carrier (the upstream's own discover
    hint, or mcpmux's for a handshake-era upstream; on /mcp and groups the members' combined), `private`
    when the request came with a token (what a token reaches may differ from what another reaches).
    """
    carrier = carrier_for(route, scope)
    if isinstance(carrier, str):
        return error_response(request_id, INTERNAL_ERROR, carrier)
    response = await carrier.handshake(route, envelope)
    init = carrier.init_result
    if init is None:
        return {**response, "id": request_id}
    ttl_ms, cache_scope = for_client(carried_hint(init), shareable=scope is None)
    result = discover_from_initialize(init, listen=True, ttl_ms=ttl_ms, cache_scope=cache_scope)
    return result_response(request_id, result)


# id(runtime) -> (the tools list it was built from, tool name -> its x-mcp-header annotations); reloads
# make new runtimes: beyond MAX_HEADER_MAPS it starts afresh (an entry is rebuilt from the catalog)
_HEADER_MAPS: dict[int, tuple[Any, dict[str, dict[tuple[str, ...], str]]]] = {}
MAX_HEADER_MAPS = 1024


def param_header_map(route: Route, name: Any) -> dict[tuple[str, ...], str]:
    """The `x-mcp-header` annotations of the tool a 2026 `tools/call` on this route names ({}: none)."""
    kind = type(route)  # (neither class has subclasses: `is`, no isinstance call per request)
    if type(name) is not str:
        return {}
    if kind is ServerRoute:
        renamed = route.renamed  # type: ignore[attr-defined]
        runtime, tool = route.runtime, renamed.get(name, name) if renamed else name  # type: ignore[attr-defined]
    elif kind is MergedRoute and (target := route.catalog.tools.get(name)) is not None:  # type: ignore[attr-defined]
        runtime, tool = target.member.runtime, target.upstream
    else:
        return {}
    cached = _HEADER_MAPS.get(id(runtime))
    maps = cached[1] if cached is not None and cached[0] is runtime.tools else _header_maps(runtime)
    return maps.get(tool, {}) if maps else {}  # (most servers mark no argument)


def _header_maps(runtime: ServerRuntime) -> dict[str, dict[tuple[str, ...], str]]:
    """Tool name -> its x-mcp-header annotations, for the runtime's current tools list (cached)."""
    tools = runtime.tools
    cached = _HEADER_MAPS.get(id(runtime))
    if cached is None or cached[0] is not tools:  # the catalog was refreshed: read it again
        if cached is None and len(_HEADER_MAPS) >= MAX_HEADER_MAPS:
            _HEADER_MAPS.clear()
        maps = {str(t.get("name")): x_mcp_header_map(t.get("inputSchema")) for t in tools}
        cached = _HEADER_MAPS[id(runtime)] = (tools, {n: m for n, m in maps.items() if m})
    return cached[1]
