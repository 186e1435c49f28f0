"""Who gets what a server initiates, and which upstream session each client session of a server uses.

One `Dispatch` per `ServerRuntime` (`Dispatch.of`), shared by every route the server is on (its own
route, the merged endpoint, groups): it is the runtime's event sink (`upstream/events.py`). It holds the
client sessions attached to the shared upstream session, the resource subscription counts on it
(changed through `relay/subscriptions.py`) and the clients' private sessions in isolated mode, and it
routes notifications and server-to-client requests to client sessions; each route presents what its
clients get (`Route.on_upstream_notification`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio

from ..config.model import ProxyConfig
from ..errors import UpstreamError
from ..jsonrpc import (
    CONNECTION_CLOSED,
    INTERNAL_ERROR,
    METHOD_NOT_FOUND,
    Message,
    error_response,
    is_key,
    notification,
    request,
)
from ..protocol.constants import (
    CANCELLED,
    HANDSHAKE_VERSIONS,
    LATEST_HANDSHAKE_VERSION,
    LIST_CHANGED,
    LOG_MESSAGE,
    LOG_RANK,
    RESOURCE_UPDATED,
    SAFE_TO_REPLAY,
    SERVER_REQUEST_CAPABILITY,
)
from ..upstream.events import Asked, Notified, Resumed
from ..upstream.runtime import REPLAY_WAIT_SECONDS, ServerRuntime
from ..upstream.session import InFlight, UpstreamSession
from .client import ClientSession

log = logging.getLogger("mcpmux.relay")

SERVER_REQUEST_TIMEOUT_SECONDS = 300.0  # how long a server's request waits for the client's answer


class Dispatch:
    """The relay's side of one server runtime: its client sessions and what reaches them from it."""

    def __init__(self, runtime: ServerRuntime) -> None:
        self.runtime = runtime
        self.attached: set[ClientSession] = set()  # the clients of the shared session
        self.subscribers: dict[str, int] = {}  # resource uri -> shared-session subscriber count
        self._asking: dict[tuple[int, Any], anyio.CancelScope] = {}  # (session, server's id) -> its wait

    @staticmethod
    def of(runtime: ServerRuntime) -> Dispatch:
        """The runtime's dispatch, made its event sink on first use (by whichever route comes first)."""
        sink = runtime.sink
        if type(sink) is Dispatch:
            return sink
        dispatch = Dispatch(runtime)
        runtime.sink = dispatch
        return dispatch

    # -- client sessions of the shared session -------------------------------------------------

    def attach(self, client: ClientSession) -> None:
        self.attached.add(client)

    def detach(self, client: ClientSession) -> None:
        self.attached.discard(client)

    def shared_log_level(self, fallback: str | None) -> str | None:
        """The level a shared upstream must log at: the most verbose any attached client asked for."""
        levels = [c.log_level for c in self.attached if c.log_level]
        return min(levels, key=LOG_RANK.__getitem__) if levels else fallback

    def clients_of(self, session: UpstreamSession) -> list[ClientSession]:
        """Who hears what `session` says unasked: its owner (isolated), else every attached client."""
        if session.owner is not None:
            return [session.owner]
        return list(self.attached)

    # -- the upstream session a client's requests go to -----------------------------------------

    async def session_for(self, client: ClientSession) -> UpstreamSession | None:
        """The shared session, or the client's private one (opened, or reopened after a restart).

        A lazyStart server is started here, on first use; a server between two attempts of a restart
        (not a crash loop) is waited for, briefly: either way the request goes out once it is ready.
        """
        primary = await self.runtime.primary()
        if not self.runtime.isolated:
            return primary
        session = client.upstreams.get(self.runtime.name)
        if session is not None and session.closed_reason is None:
            return session
        if primary is None or client.closed:
            return None
        return await self._open_private(client)

    def direct(self, method: str) -> UpstreamSession | None:
        """The ready shared session when a `method` request can go straight to it, for the caller to await
        that session's request itself: no session to open or wait for (`session_for`) and nothing to
        replay should it die under the request (`replay`); else None (go through `session_for`)."""
        runtime = self.runtime
        if runtime.isolated or method in SAFE_TO_REPLAY:
            return None
        session = runtime.session
        return session if session is not None and session.closed_reason is None else None

    def open_session(self, client: ClientSession) -> UpstreamSession | None:
        """The upstream session the client already uses on this server (never opens one)."""
        runtime = self.runtime
        session = client.upstreams.get(runtime.name) if runtime.isolated else runtime.session
        return session if session is not None and session.closed_reason is None else None

    async def _open_private(self, client: ClientSession) -> UpstreamSession | None:
        """A session private to `client`; closing the client cancels its scope, which ends it."""
        runtime, name = self.runtime, self.runtime.name
        scope = anyio.CancelScope()
        client.upstream_scopes[name] = scope
        try:
            session = await runtime.open_isolated(client, isolated_params(client, runtime.proxy), scope)
        except (UpstreamError, OSError, TimeoutError) as exc:
            if client.upstream_scopes.get(name) is scope:
                del client.upstream_scopes[name]
            log.warning("%s: could not open an upstream session: %s", name, exc, extra={"server": name})
            return None
        client.upstreams[name] = session
        return session

    async def replay(self, client: ClientSession, msg: Message, exchange: Any, failed: Message) -> Message:
        """The upstream session died under `msg`: send it once more on a fresh session if that is safe.

        Only methods without side effects are replayed (lists, reads, prompts/get, completion, ping);
        a tool call whose upstream died may have run, so the client gets the error instead.
        """
        error = failed.get("error")
        if msg.get("method") not in SAFE_TO_REPLAY or not isinstance(error, dict):
            return failed
        runtime = self.runtime
        if error.get("code") != CONNECTION_CLOSED:
            return failed
        if not await runtime.wait_ready(min(runtime.options.connect_timeout_seconds, REPLAY_WAIT_SECONDS)):
            return failed
        session = await self.session_for(client)
        if session is None:
            return failed
        log.info(
            "%s: replaying %s on the fresh upstream session",
            runtime.name,
            msg.get("method"),
            extra={"server": runtime.name},
        )
        return await session.request(msg, exchange, runtime.request_timeout_seconds)

    # -- the runtime's events (its sink) ----------------------------------------------------------

    def notified(self, event: Notified) -> None:
        """A notification from the server: to the request it belongs to, or to the clients that want it."""
        session, msg = event.session, event.msg
        method = msg["method"]
        if method == CANCELLED:
            self._server_cancelled(session, msg)
        elif method in LIST_CHANGED:
            self._tell(session, msg)
        elif method == RESOURCE_UPDATED:
            self._resource_updated(session, msg)
        elif event.related is not None:
            event.related.put(msg)
        elif method == LOG_MESSAGE:
            level = (msg.get("params") or {}).get("level")
            self._tell(session, msg, lambda client: client.wants_log(level))
        else:
            self._tell(session, msg)

    def _resource_updated(self, session: UpstreamSession, msg: Message) -> None:
        uri = (msg.get("params") or {}).get("uri")
        if type(uri) is str:
            self._tell(session, msg, lambda client: uri in client.subscriptions)

    def _tell(
        self, session: UpstreamSession, msg: Message, wanted: Callable[[ClientSession], bool] | None = None
    ) -> None:
        """Hand a notification to the session's clients (those `wanted`) through their routes."""
        for client in self.clients_of(session):
            if wanted is None or wanted(client):
                client.route.on_upstream_notification(client, self.runtime, msg)

    def _server_cancelled(self, session: UpstreamSession, msg: Message) -> None:
        """The server gave up one of its requests to a client: stop waiting for the client's answer."""
        request_id = (msg.get("params") or {}).get("requestId")
        scope = self._asking.get((id(session), request_id)) if is_key(request_id) else None
        if scope is not None:
            scope.cancel()

    async def asked(self, event: Asked) -> Message | None:
        """A request from the server, for the client whose request it came with (or the session's owner)."""
        related = event.related
        client = related.origin.client if related is not None and related.origin is not None else None
        if client is None:
            client = event.session.owner
        if client is None:
            return no_client(event)
        refused = capability_refusal(client, event.msg["method"])
        if refused is not None:
            return refused
        return await self._ask_client(client, event.session, event.msg, related)

    async def _ask_client(
        self, client: ClientSession, session: UpstreamSession, msg: Message, related: InFlight | None
    ) -> Message | None:
        key = (id(session), msg["id"])
        rid = client.new_request_id()
        with anyio.CancelScope() as scope:
            self._asking[key] = scope
            try:
                deliver = related.put if related is not None and related.final is None else None
                return await client.request_client(
                    rid, msg["method"], msg.get("params"), deliver, SERVER_REQUEST_TIMEOUT_SECONDS
                )
            finally:
                self._asking.pop(key, None)
        client.outbox.push(notification(CANCELLED, {"requestId": rid, "reason": "cancelled by the server"}))
        return None

    async def resumed(self, event: Resumed) -> None:
        """A fresh upstream knows nothing of the clients' subscriptions and log level: tell it again."""
        session, timeout = event.session, self.runtime.request_timeout_seconds
        level = self.shared_log_level(None)
        if level is not None:
            await session.request(request(0, "logging/setLevel", {"level": level}), None, timeout)
        for uri in list(self.subscribers):
            await session.request(request(0, "resources/subscribe", {"uri": uri}), None, timeout)


def isolated_params(client: ClientSession, proxy: ProxyConfig) -> dict[str, Any]:
    """The initialize params of a client's private session: its version (if a handshake one) and
    capabilities, under the proxy's name."""
    requested = client.init_params.get("protocolVersion")
    return {
        "protocolVersion": requested if requested in HANDSHAKE_VERSIONS else LATEST_HANDSHAKE_VERSION,
        "capabilities": client.capabilities,
        "clientInfo": {"name": proxy.name, "version": proxy.version},
    }


def no_client(event: Asked) -> Message:
    """The answer to a server's request that no client request came with (on a shared session)."""
    pending = event.session.pending.values()
    waiting = len({id(p.origin.client) for p in pending if p.origin is not None})
    why = "no client request is in flight" if not waiting else f"{waiting} clients have requests in flight"
    method = event.msg["method"]
    return error_response(None, INTERNAL_ERROR, f"mcpmux: cannot tell which client {method} is for ({why})")


def capability_refusal(client: ClientSession, method: str) -> Message | None:
    """The answer to a server's request the client did not declare the capability for (None: it did)."""
    capability = SERVER_REQUEST_CAPABILITY.get(method)
    if capability is not None and not client.supports(capability):
        return error_response(
            None, METHOD_NOT_FOUND, f"the client did not declare the {capability} capability"
        )
    return None


__all__ = ["SERVER_REQUEST_TIMEOUT_SECONDS", "Dispatch", "capability_refusal", "isolated_params", "no_client"]
