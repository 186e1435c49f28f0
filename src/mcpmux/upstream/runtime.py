"""Everything the proxy runs for one configured server: its supervised primary session and its state."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskStatus

from ..config.model import ProxyConfig, ServerConfig
from ..core.counters import Traffic
from ..core.pins import ServerVerdict
from ..core.toolfilter import NameFilter
from ..errors import UpstreamError, UpstreamUnavailableError
from ..jsonrpc import (
    CONNECTION_CLOSED,
    INTERNAL_ERROR,
    METHOD_NOT_FOUND,
    Message,
    error_response,
    is_key,
    notification,
    request,
    result_response,
)
from ..protocol.constants import (
    HANDSHAKE_VERSIONS,
    LATEST_HANDSHAKE_VERSION,
    LIST_CHANGED,
    LOG_RANK,
    SAFE_TO_REPLAY,
    SERVER_REQUEST_CAPABILITY,
)
from .connection import open_connection
from .downstream import Downstream
from .session import InFlight, Link, UpstreamSession
from .supervisor import Supervisor, close_when_dead

log = logging.getLogger("mcpmux.server")

PROXY_CLIENT_CAPABILITIES: dict[str, Any] = {
    "roots": {"listChanged": True},
    "sampling": {},
    "elicitation": {"form": {}, "url": {}},
}
SERVER_REQUEST_TIMEOUT_SECONDS = 300.0
SERVER_REQUESTS_LIMIT = 256  # requests from one server waiting for clients' answers at once
REPLAY_WAIT_SECONDS = 10.0  # at most this long for the fresh session a replay needs


class ServerRuntime(Supervisor):
    """One configured server: its supervised primary session (see `Supervisor`), its catalog, what the
    server initiates, and the sessions clients' requests go to."""

    def __init__(self, config: ServerConfig, proxy: ProxyConfig) -> None:
        super().__init__(config, proxy)
        self.traffic = Traffic()  # messages over this server's connections, for /metrics
        self.tools: list[dict[str, Any]] = []
        self.prompts: list[dict[str, Any]] = []
        self.resource_uris: set[str] = set()
        self.template_prefixes: set[str] = set()
        self.templates: list[dict[str, Any]] = []  # the full listings, for pinning
        self.instructions: str | None = None
        self.pin_verdict: ServerVerdict | None = None  # set by pinning (None: pinning is off)
        self.attached: set[Downstream] = set()
        self.subscribers: dict[str, int] = {}  # resource uri -> shared-session subscriber count
        self.tool_filter = NameFilter(config.options.tool_filter)
        self.catalog_listeners: list[Callable[[ServerRuntime, str], None]] = []
        self._server_requests: dict[tuple[int, Any], anyio.CancelScope] = {}
        self._serving = 0  # requests from the server being served (waiting for a client's answer)
        self._refused = 0  # refused because SERVER_REQUESTS_LIMIT were being served

    # -- what routes read --------------------------------------------------------------------

    @property
    def request_timeout_seconds(self) -> float:
        return self.config.timeout_seconds or self.options.request_timeout_seconds

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        uptime = now - self.connected_at if self.connected_at and self.ready else 0.0
        status: dict[str, Any] = {
            "state": self.state,
            "transport": self.config.transport,
            "restarts": self.restarts,
            "attempt": self.attempt,
            "crash_loop": self.crash_loop,
            "uptime_seconds": round(uptime, 3),
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "tools": len(self.tools),
        }
        if self.retry_at is not None and self.state in ("restarting", "failed"):
            status["retry_in_seconds"] = round(max(0.0, self.retry_at - now), 3)
        if self.health_failures:
            status["health_failures"] = self.health_failures
        if self.pin_verdict is not None:
            status["pinning"] = self.pin_verdict.as_json()
        pid = getattr(self.session.connection, "pid", None) if self.session is not None else None
        if pid is not None:
            status["pid"] = pid
        if self.stderr_tail:
            status["last_stderr"] = self.stderr_tail
        return status

    def _resume(self, session: UpstreamSession) -> None:
        if (self.subscribers or any(c.log_level for c in self.attached)) and self._tg is not None:
            self.spawn(self._restore_shared_state, session)

    async def _restore_shared_state(self, session: UpstreamSession) -> None:
        """A fresh upstream knows nothing of the clients' subscriptions and log level: tell it again."""
        timeout = self.request_timeout_seconds
        level = self.shared_log_level(None)
        if level is not None:
            await session.request(request(0, "logging/setLevel", {"level": level}), None, timeout)
        for uri in list(self.subscribers):
            await session.request(request(0, "resources/subscribe", {"uri": uri}), None, timeout)

    async def _handshake(self, session: UpstreamSession) -> None:
        params = {
            "protocolVersion": LATEST_HANDSHAKE_VERSION,
            "capabilities": PROXY_CLIENT_CAPABILITIES,
            "clientInfo": {"name": self.proxy.name, "version": self.proxy.version},
        }
        # The caller's deadline (the connect timeout) comes first; this one is only a backstop.
        await session.initialize(params, self.options.connect_timeout_seconds + 1)

    async def _load_catalog(self, session: UpstreamSession) -> None:
        """Snapshot tools, prompts and resources (for the logs, the status page and merged naming)."""
        caps = (session.init_result or {}).get("capabilities") or {}
        instructions = (session.init_result or {}).get("instructions")
        self.instructions = instructions if isinstance(instructions, str) else None
        self.tools = await self._list_all(session, "tools/list", "tools") if "tools" in caps else []
        self.prompts = await self._list_all(session, "prompts/list", "prompts") if "prompts" in caps else []
        if "resources" in caps:
            resources = await self._list_all(session, "resources/list", "resources")
            templates = await self._list_all(session, "resources/templates/list", "resourceTemplates")
            self.resource_uris = {str(r.get("uri")) for r in resources}
            self.template_prefixes = {template_prefix(t.get("uriTemplate")) for t in templates}
            self.templates = templates
        self._log_tools()

    async def _list_all(self, session: UpstreamSession, method: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        for _page in range(100):
            params: dict[str, Any] = {"cursor": cursor} if cursor else {}
            resp = await session.request(
                {"jsonrpc": "2.0", "id": 0, "method": method, "params": params},
                None,
                self.options.connect_timeout_seconds,
            )
            result = resp.get("result")
            if not isinstance(result, dict):
                break
            items.extend(t for t in result.get(key, []) if isinstance(t, dict))
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return items

    def _log_tools(self) -> None:
        # The original's wording, which users grep for: "not in allow list" / "in block list".
        allow = self.options.tool_filter is not None and self.options.tool_filter.mode == "allow"
        reason = "not in allow list" if allow else "in block list"
        for tool in self.tools:
            name = str(tool.get("name"))
            if self.tool_filter.allows(name):
                log.info("<%s> Adding tool %s", self.name, name, extra={"server": self.name, "tool": name})
            else:
                log.info(
                    "<%s> Ignoring tool %s as it is %s",
                    self.name,
                    name,
                    reason,
                    extra={"server": self.name, "tool": name},
                )

    def note_resource(self, uri: Any, *, template: bool) -> None:
        """Remember a URI seen in a live listing, so reads of it route here."""
        if isinstance(uri, str):
            (self.template_prefixes if template else self.resource_uris).add(
                template_prefix(uri) if template else uri
            )

    def _catalog_changed(self, why: str) -> None:
        """Tell listeners (routes) that the catalog changed: "connected", "disconnected" or "refreshed"."""
        for listener in list(self.catalog_listeners):
            listener(self, why)

    # -- what the upstream initiates ------------------------------------------------------------

    def clients_of(self, session: UpstreamSession) -> list[Downstream]:
        if session.owner is not None:
            return [session.owner]
        return list(self.attached)

    def on_notification(self, session: UpstreamSession, msg: Message, related: InFlight | None) -> None:
        """Route a notification from the server: to the request it belongs to, or to the clients."""
        method = msg["method"]
        if method == "notifications/cancelled":
            self._server_cancelled(session, msg)
        elif method in LIST_CHANGED:
            if session is self.session:
                self.refresh_soon(session)
            self._tell_clients(session, msg)
        elif method == "notifications/resources/updated":
            self._resource_updated(session, msg)
        elif related is not None:
            related.put(msg)
        elif method == "notifications/message":
            level = (msg.get("params") or {}).get("level")
            self._tell_clients(session, msg, lambda client: client.wants_log(level))
        else:
            self._tell_clients(session, msg)

    def _server_cancelled(self, session: UpstreamSession, msg: Message) -> None:
        """The server gave up one of its requests to a client: stop waiting for the client's answer."""
        request_id = (msg.get("params") or {}).get("requestId")
        scope = self._server_requests.get((id(session), request_id)) if is_key(request_id) else None
        if scope is not None:
            scope.cancel()

    def _resource_updated(self, session: UpstreamSession, msg: Message) -> None:
        uri = (msg.get("params") or {}).get("uri")
        if type(uri) is str:
            self._tell_clients(session, msg, lambda client: uri in client.subscriptions)

    def _tell_clients(
        self,
        session: UpstreamSession,
        msg: Message,
        wanted: Callable[[Downstream], bool] | None = None,
    ) -> None:
        """Hand a notification to the session's clients (those `wanted`) through their routes."""
        for client in self.clients_of(session):
            if wanted is None or wanted(client):
                client.route.on_upstream_notification(client, self, msg)

    async def _refresh_catalog(self, session: UpstreamSession) -> None:
        try:
            await self._load_catalog(session)
        except UpstreamError as exc:
            log.debug("%s: catalog refresh failed: %s", self.name, exc)
        self._catalog_changed("refreshed")

    def on_server_request(self, session: UpstreamSession, msg: Message, related: InFlight | None) -> None:
        if self._tg is None:
            return
        if self._serving >= SERVER_REQUESTS_LIMIT:  # a flood: answered at once, no task waits for clients
            self._refused += 1
            if self._refused in (1, 100, 10000):
                log.warning(
                    "%s has %d requests to clients waiting; refused %d more",
                    self.name,
                    self._serving,
                    self._refused,
                    extra={"server": self.name},
                )
            refusal = error_response(
                msg["id"],
                INTERNAL_ERROR,
                f"mcpmux: {SERVER_REQUESTS_LIMIT} requests to clients are waiting already",
            )
            self.spawn(session.respond, refusal)
            return
        self._serving += 1
        self.spawn(self._serve_counted, session, msg, related)

    async def _serve_counted(self, session: UpstreamSession, msg: Message, related: InFlight | None) -> None:
        try:
            await self._serve_server_request(session, msg, related)
        finally:
            self._serving -= 1

    async def _serve_server_request(
        self, session: UpstreamSession, msg: Message, related: InFlight | None
    ) -> None:
        uid, method = msg["id"], msg["method"]
        if method == "ping":
            await session.respond(result_response(uid, {}))
            return
        client = related.origin.client if related is not None and related.origin is not None else None
        if client is None and session.owner is not None:
            client = session.owner
        answer = self._refusal(uid, method, client, session)
        if answer is None and client is not None:
            answer = await self._ask_client(session, client, msg, related)
        if answer is not None:
            answer["id"] = uid
            await session.respond(answer)

    def _refusal(
        self, uid: Any, method: str, client: Downstream | None, session: UpstreamSession
    ) -> Message | None:
        if client is None:
            waiting = len({id(p.origin.client) for p in session.pending.values() if p.origin is not None})
            why = (
                "no client request is in flight"
                if not waiting
                else f"{waiting} clients have requests in flight"
            )
            return error_response(
                uid, INTERNAL_ERROR, f"mcpmux: cannot tell which client {method} is for ({why})"
            )
        capability = SERVER_REQUEST_CAPABILITY.get(method)
        if capability is not None and not client.supports(capability):
            return error_response(
                uid, METHOD_NOT_FOUND, f"the client did not declare the {capability} capability"
            )
        return None

    async def _ask_client(
        self, session: UpstreamSession, client: Downstream, msg: Message, related: InFlight | None
    ) -> Message | None:
        key = (id(session), msg["id"])
        rid = client.new_request_id()
        with anyio.CancelScope() as scope:
            self._server_requests[key] = scope
            try:
                deliver = related.put if related is not None and related.final is None else None
                return await client.request_client(
                    rid, msg["method"], msg.get("params"), deliver, SERVER_REQUEST_TIMEOUT_SECONDS
                )
            finally:
                self._server_requests.pop(key, None)
        client.outbox.push(
            notification("notifications/cancelled", {"requestId": rid, "reason": "cancelled by the server"})
        )
        return None

    # -- client sessions ---------------------------------------------------------------------

    def attach(self, client: Downstream) -> None:
        self.attached.add(client)

    def detach(self, client: Downstream) -> None:
        self.attached.discard(client)

    # -- the session a client's requests go to ---------------------------------------------------

    def shared_log_level(self, fallback: str | None) -> str | None:
        """The level a shared upstream must log at: the most verbose any attached client asked for."""
        levels = [c.log_level for c in self.attached if c.log_level]
        return min(levels, key=LOG_RANK.__getitem__) if levels else fallback

    @property
    def isolated(self) -> bool:
        return self.options.session_mode == "isolated"

    async def session_for(self, client: Downstream) -> UpstreamSession | None:
        """The shared session, or the client's private one (opened, or reopened after a restart).

        A lazyStart server is started here, on first use; a server between two attempts of a restart
        (not a crash loop) is waited for, briefly: either way the request goes out once it is ready.
        """
        if not self.ready:
            await self._wait_if_coming(self.options.connect_timeout_seconds + 1)
        if not self.isolated:
            session = self.session
            return session if session is not None and session.closed_reason is None else None
        session = client.upstreams.get(self.name)
        if session is not None and session.closed_reason is None:
            return session
        if not self.ready or client.closed:
            return None
        try:
            session = await self.open_isolated(client, self._isolated_params(client))
        except (UpstreamError, OSError, TimeoutError) as exc:
            log.warning(
                "%s: could not open an upstream session: %s", self.name, exc, extra={"server": self.name}
            )
            return None
        client.upstreams[self.name] = session
        return session

    async def primary(self) -> UpstreamSession | None:
        """The live primary session; a lazyStart server is started and waited for."""
        if not self.ready:
            await self._wait_if_coming(self.options.connect_timeout_seconds + 1)
        return self.session if self.ready else None

    async def _wait_if_coming(self, lazy_start_seconds: float) -> None:
        if self.state == "idle":
            await self.wait_ready(lazy_start_seconds)
        elif self.state in ("connecting", "restarting") and not self.crash_loop:
            await self.wait_ready(min(self.options.connect_timeout_seconds, REPLAY_WAIT_SECONDS))

    async def replay(self, client: Downstream, msg: Message, exchange: Any, failed: Message) -> Message:
        """The upstream session died under `msg`: send it once more on a fresh session if that is safe.

        Only methods without side effects are replayed (lists, reads, prompts/get, completion, ping);
        a tool call whose upstream died may have run, so the client gets the error instead.
        """
        error = failed.get("error")
        if msg.get("method") not in SAFE_TO_REPLAY or not isinstance(error, dict):
            return failed
        if error.get("code") != CONNECTION_CLOSED:
            return failed
        if not await self.wait_ready(min(self.options.connect_timeout_seconds, REPLAY_WAIT_SECONDS)):
            return failed
        session = await self.session_for(client)
        if session is None:
            return failed
        log.info(
            "%s: replaying %s on the fresh upstream session",
            self.name,
            msg.get("method"),
            extra={"server": self.name},
        )
        return await session.request(msg, exchange, self.request_timeout_seconds)

    def _isolated_params(self, client: Downstream) -> dict[str, Any]:
        requested = client.init_params.get("protocolVersion")
        return {
            "protocolVersion": requested if requested in HANDSHAKE_VERSIONS else LATEST_HANDSHAKE_VERSION,
            "capabilities": client.capabilities,
            "clientInfo": {"name": self.proxy.name, "version": self.proxy.version},
        }

    # -- isolated sessions -------------------------------------------------------------------

    async def open_isolated(self, client: Downstream, params: dict[str, Any]) -> UpstreamSession:
        """Open an upstream session private to `client`, handshaking with the client's own params."""
        if self._tg is None:
            raise UpstreamError(self.name, "server is not running")
        session: UpstreamSession = await self._tg.start(self._isolated_session, client, params)
        return session

    async def _isolated_session(
        self, client: Downstream, params: dict[str, Any], *, task_status: TaskStatus[UpstreamSession]
    ) -> None:
        """One private session's life, in the runtime's task group: ends with the client (closing
        it cancels `client.upstream_scopes`), with the connection, or with the runtime."""
        session = UpstreamSession(self.name, self, owner=client, queue_limit=self.options.max_request_queue)
        error: str | None = "the client session ended"
        link = Link(self.traffic.receiver(session.receive))
        with anyio.CancelScope() as scope:
            client.upstream_scopes[self.name] = scope
            self.isolated_sessions.add(session)
            try:
                async with open_connection(self.config, link, self.era) as conn:
                    session.connection = self.traffic.connection(conn)
                    async with anyio.create_task_group() as life:
                        life.start_soon(close_when_dead, conn, session, life.cancel_scope)
                        error = await self._connect(session, params)
                        if error is not None:
                            life.cancel_scope.cancel()
                        else:
                            task_status.started(session)
            except Exception as exc:  # task boundary: one client's upstream must never take the runtime down
                if error is not None:
                    raise
                log.exception(
                    "%s: an isolated upstream session failed", self.name, extra={"server": self.name}
                )
                session.close(f"internal error: {type(exc).__name__}")
            finally:
                self.isolated_sessions.discard(session)
                session.close(self._stop_reason or "the client session ended")
                session.detach()
                link.cut()
                if client.upstream_scopes.get(self.name) is scope:
                    del client.upstream_scopes[self.name]
        if error is not None:
            raise UpstreamUnavailableError(self.name, error)


def template_prefix(uri_template: Any) -> str:
    """The literal start of a URI template (`file:///{path}` -> `file:///`)."""
    return str(uri_template or "").split("{", 1)[0]
