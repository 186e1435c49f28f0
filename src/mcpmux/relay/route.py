"""What every endpoint (one server, the merged endpoint, a group) does the same way for its clients."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from ..config.model import TokenScope
from ..core.auth import TokenSet
from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.toolfilter import scope_allows
from ..jsonrpc import INVALID_PARAMS, Message, error_response, notification, result_response
from ..protocol.constants import HANDSHAKE_VERSIONS, LATEST_HANDSHAKE_VERSION, LOG_RANK
from ..upstream.session import UpstreamSession
from .client import OUTBOX_LIMIT, ClientSession

log = logging.getLogger("mcpmux.relay")


def negotiate_version(requested: Any, upstream: str | None = None) -> str:
    """The protocol version to answer a client's initialize with.

    A known handshake version is honoured (capped at the upstream's, which the proxy cannot exceed);
    anything else (2026-07-28, unknown strings) gets the newest handshake version the path supports.
    """
    ceiling = upstream if upstream in HANDSHAKE_VERSIONS else LATEST_HANDSHAKE_VERSION
    if requested in HANDSHAKE_VERSIONS:
        return min(str(requested), ceiling)
    return ceiling


def admitted_tokens(tokens: Sequence[TokenScope], servers: Sequence[str]) -> TokenSet:
    """The tokens a route accepts: those whose scope reaches at least one of its servers.

    A token scoped away from every server of a route gets 401 there, like a wrong token, so that it
    never reaches an upstream it may not use; auth stays on even if no token is left.
    """
    admitted = [t for t in tokens if any(scope_allows(t, server, None) for server in servers)]
    return TokenSet(admitted, required=bool(tokens))


def _random_session_id() -> str:
    return secrets.token_hex(16)


_session_ids: Callable[[], str] = _random_session_id


def set_session_ids(mint: Callable[[], str] | None) -> None:
    """How new session ids are made: cluster mode seals its replica into them; None: random again."""
    global _session_ids
    _session_ids = mint or _random_session_id


IDLE_CHECKS_PER_TIMEOUT = 4  # a session ends between 1 and 1.25 idle timeouts after its last activity
IDLE_CHECK_SECONDS_RANGE = (0.05, 30.0)


class Route:
    """Base of the endpoints a client can connect to: sessions, initialize bookkeeping, local methods."""

    name: str
    log_enabled: bool = False
    max_sessions: int | None = None  # concurrent client sessions allowed (None: no cap)
    max_session_queue: int = OUTBOX_LIMIT  # messages waiting for one session's standalone stream
    idle_timeout_seconds: float | None = None  # a session idle this long is ended (None: never)
    clock: Clock = SYSTEM_CLOCK  # what its sessions' activity is timed by (tests put a ManualClock)

    def __init__(self, name: str, tokens: tuple[TokenScope, ...]) -> None:
        self.name = name
        self.tokens = TokenSet(tokens)
        self.sessions: dict[str, ClientSession] = {}
        self.modern: dict[int, Any] = {}  # id(token scope) -> its 2026-07-28 `Carrier` (relay/modern.py)

    # -- overridden by endpoints ---------------------------------------------------------------

    def unavailable_reason(self) -> str | None:
        """Why new sessions cannot be served right now (None when they can)."""
        return None

    def handle_request(self, client: ClientSession, msg: Message, exchange: Any) -> Awaitable[Message]:
        """The answer to a request, for the caller to await (a route may return the upstream's request
        itself rather than being a coroutine around it)."""
        raise NotImplementedError

    async def handle_notification(self, client: ClientSession, msg: Message) -> None:
        raise NotImplementedError

    def on_upstream_notification(self, client: ClientSession, runtime: Any, msg: Message) -> None:
        """A notification from an upstream for this client's standalone stream."""
        client.outbox.push(msg)

    async def on_session_closed(self, client: ClientSession) -> None:
        """Release what the session held upstream."""

    # -- shared behaviour ----------------------------------------------------------------------

    def session_limit_reason(self) -> str | None:
        """Why one more client session would exceed `max_sessions` (None when it would not)."""
        if self.max_sessions is not None and len(self.sessions) >= self.max_sessions:
            return f"Too many open sessions: {self.name!r} allows {self.max_sessions} (maxSessions)"
        return None

    def is_idle(self, client: ClientSession, now: float) -> bool:
        """No stream open (here or, in cluster mode, on another replica), no request in flight, and no
        activity for `idle_timeout_seconds`."""
        timeout = self.idle_timeout_seconds
        return (
            timeout is not None
            and not client.has_stream
            and not client.busy
            and now - max(client.last_active, client.listened_until) >= timeout
        )

    async def end_idle_sessions(self, now: float) -> None:
        """End every idle session (closing a session also ends its isolated upstream sessions)."""
        for client in [c for c in self.sessions.values() if self.is_idle(c, now)]:
            log.info(
                "%s: ending session %s, idle for more than %gs",
                self.name or "mcp",
                client.id,
                self.idle_timeout_seconds,
                extra={"route": self.name, "session": client.id},
            )
            await self.close_session(client)

    def new_session(self, scope: TokenScope | None) -> ClientSession:
        client = ClientSession(_session_ids(), self, scope, self.max_session_queue)
        self.sessions[client.id] = client
        return client

    async def close_session(self, client: ClientSession) -> None:
        if client.closed:
            return
        self.sessions.pop(client.id, None)
        client.close()
        await self.on_session_closed(client)

    def handle_response(self, client: ClientSession, msg: Message) -> None:
        if not client.resolve(msg):
            log.debug("%s: a client answered an unknown request %r", self.name, msg.get("id"))

    @staticmethod
    def remember_initialize(client: ClientSession, params: dict[str, Any]) -> None:
        caps = params.get("capabilities")
        client.capabilities = caps if isinstance(caps, dict) else {}
        info = params.get("clientInfo")
        client.client_info = info if isinstance(info, dict) else {}

    async def answer_ping(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        return result_response(msg["id"], {})

    @staticmethod
    def set_log_level(client: ClientSession, msg: Message) -> Message | None:
        """Record a client's logging/setLevel; returns an error response for a bad level."""
        level = (msg.get("params") or {}).get("level")
        if level not in LOG_RANK:
            return error_response(msg["id"], INVALID_PARAMS, f"Invalid log level: {level!r}")
        client.log_level = level
        return None


def idle_check_seconds(routes: Iterable[Route]) -> float:
    """How often to look for idle sessions: a fraction of the shortest idle timeout, within bounds."""
    low, high = IDLE_CHECK_SECONDS_RANGE
    timeouts = [r.idle_timeout_seconds for r in routes if r.idle_timeout_seconds]
    if not timeouts:
        return high
    return min(high, max(low, min(timeouts) / IDLE_CHECKS_PER_TIMEOUT))


async def reap_idle_sessions(routes: Callable[[], Iterable[Route]], clock: Clock = SYSTEM_CLOCK) -> None:
    """Until cancelled: end the sessions of `routes()` (re-read each time: reloads change them) that idle.

    `clock` must be the routes' own (`Route.clock`): it times both the checks and the sessions' activity.
    """
    while True:
        await clock.sleep(idle_check_seconds(routes()))
        now = clock.now()
        for route in list(routes()):
            try:
                await route.end_idle_sessions(now)
            except Exception:  # task boundary: one route's failure must not stop the reaping
                log.exception("%s: ending idle sessions failed", route.name or "mcp")


async def answered(msg: Message) -> Message:
    """An answer known at once, as the awaitable a route's handler returns."""
    return msg


def unknown_tool(request_id: Any, name: Any) -> Message:
    """The one answer to a call of a tool that does not exist, on every route (as the MCP spec says)."""
    return error_response(request_id, INVALID_PARAMS, f"Unknown tool: {name}")


def as_unknown_tool(response: Message, name: Any) -> Message:
    """An upstream's `isError` result for a tool it does not list, as the JSON-RPC error -32602."""
    result = response.get("result")
    if isinstance(result, dict) and result.get("isError") is True:
        return unknown_tool(response.get("id"), name)
    return response


def list_changed(kind: str) -> Message:
    return notification(f"notifications/{kind}/list_changed")


def find_in_flight(upstream: UpstreamSession, client: ClientSession, request_id: Any) -> int | None:
    """The upstream id of the client's in-flight request `request_id`."""
    return upstream.ids.find(client, request_id)
