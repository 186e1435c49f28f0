"""Everything the proxy runs for one configured server: its supervised primary session and its state."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from ..config.model import ProxyConfig, ServerConfig
from ..core.backoff import Backoff
from ..core.counters import Traffic
from ..core.toolfilter import NameFilter
from ..errors import UpstreamError
from ..jsonrpc import INTERNAL_ERROR, METHOD_NOT_FOUND, Message, error_response, notification, result_response
from .connection import open_connection
from .session import InFlight, UpstreamSession

if TYPE_CHECKING:
    from ..relay.client import ClientSession

log = logging.getLogger("mcpmux.server")

HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_HANDSHAKE_VERSION = HANDSHAKE_VERSIONS[-1]
PROXY_CLIENT_CAPABILITIES: dict[str, Any] = {
    "roots": {"listChanged": True},
    "sampling": {},
    "elicitation": {"form": {}, "url": {}},
}
SERVER_REQUEST_TIMEOUT_SECONDS = 300.0
LIST_CHANGED = frozenset(
    {
        "notifications/tools/list_changed",
        "notifications/prompts/list_changed",
        "notifications/resources/list_changed",
    }
)
_CAPABILITY_OF = {
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
    "roots/list": "roots",
}


class ServerRuntime:
    """Keeps one server's primary upstream session alive and routes what the server initiates."""

    def __init__(self, config: ServerConfig, proxy: ProxyConfig) -> None:
        self.config = config
        self.proxy = proxy
        self.name = config.name
        self.options = config.options
        self.state = "stopped"
        self.last_error: str | None = None
        self.restarts = 0
        self.traffic = Traffic()  # messages over this server's connections, for /metrics
        self.connected_at: float | None = None
        self.session: UpstreamSession | None = None
        self.tools: list[dict[str, Any]] = []
        self.prompts: list[dict[str, Any]] = []
        self.resource_uris: set[str] = set()
        self.template_prefixes: set[str] = set()
        self.attached: set[ClientSession] = set()
        self.subscribers: dict[str, int] = {}  # resource uri -> shared-session subscriber count
        self.tool_filter = NameFilter(config.options.tool_filter)
        self.catalog_listeners: list[Callable[[ServerRuntime, str], None]] = []
        self._tg: TaskGroup | None = None
        self._server_requests: dict[tuple[int, Any], anyio.CancelScope] = {}

    # -- what routes read --------------------------------------------------------------------

    @property
    def request_timeout_seconds(self) -> float:
        return self.config.timeout_seconds or self.options.request_timeout_seconds

    @property
    def ready(self) -> bool:
        return self.session is not None and self.session.closed_reason is None

    def status(self) -> dict[str, Any]:
        uptime = time.monotonic() - self.connected_at if self.connected_at and self.ready else 0.0
        return {
            "state": self.state,
            "transport": self.config.transport,
            "restarts": self.restarts,
            "uptime_seconds": round(uptime, 3),
            "last_error": self.last_error,
            "tools": len(self.tools),
        }

    # -- supervision -------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[bool] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, and reconnect with backoff whenever the connection dies, until cancelled.

        Reports True through task_status once connected, or False after a failed first attempt.
        """
        backoff = Backoff(self.options.restart)
        first = True
        async with anyio.create_task_group() as tg:
            self._tg = tg
            while True:
                self.state = "connecting" if first else "restarting"
                connected_at = time.monotonic()
                ok = await self._run_once(task_status if first else None)
                if first and not ok:
                    task_status.started(False)
                first = False
                if ok:
                    backoff.mark_healthy(time.monotonic() - connected_at)
                self.restarts += 1
                delay = backoff.next_delay()
                self.state = "restarting"
                log.warning(
                    "%s restarting in %.1fs (attempt %d%s): %s",
                    self.name,
                    delay,
                    backoff.attempt,
                    ", crash loop" if backoff.in_crash_loop else "",
                    self.last_error,
                    extra={"server": self.name, "attempt": backoff.attempt, "state": "restarting"},
                )
                await anyio.sleep(delay)

    async def _run_once(self, task_status: TaskStatus[bool] | None) -> bool:
        """One connection's life; returns whether it got connected."""
        session = UpstreamSession(self.name, self)
        log.info("%s Connecting", self.name, extra={"server": self.name, "state": "connecting"})
        connected = False
        try:
            async with open_connection(self.config, self.traffic.receiver(session.receive)) as conn:
                session.connection = self.traffic.connection(conn)
                await self._handshake(session)
                await self._load_catalog(session)
                self.session = session
                self.state = "ready"
                self.connected_at = time.monotonic()
                self.last_error = None
                connected = True
                log.info("%s Connected", self.name, extra={"server": self.name, "state": "ready"})
                self._catalog_changed("connected")
                if task_status is not None:
                    task_status.started(True)
                reason = await conn.wait_closed()
                self.last_error = reason
                session.close(reason)
        except UpstreamError as exc:
            self.last_error = str(exc).removeprefix(f"{self.name}: ")
            session.close(self.last_error)
        except OSError as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            session.close(self.last_error)
        except Exception as exc:  # task boundary: one server's bug must never take the others down
            log.exception("%s: unexpected error", self.name, extra={"server": self.name})
            self.last_error = f"internal error: {type(exc).__name__}: {exc}"
        finally:
            session.close(self.last_error or "stopped")
            if self.session is session:
                self.session = None
                self._catalog_changed("disconnected")
        if not connected:
            log.error("%s failed to connect: %s", self.name, self.last_error, extra={"server": self.name})
        else:
            log.warning("%s disconnected: %s", self.name, self.last_error, extra={"server": self.name})
        return connected

    async def _handshake(self, session: UpstreamSession) -> None:
        params = {
            "protocolVersion": LATEST_HANDSHAKE_VERSION,
            "capabilities": PROXY_CLIENT_CAPABILITIES,
            "clientInfo": {"name": self.proxy.name, "version": self.proxy.version},
        }
        timeout = self.options.connect_timeout_seconds
        with anyio.fail_after(timeout + 1):  # the request itself times out first, with a clear message
            await session.initialize(params, timeout)

    async def _load_catalog(self, session: UpstreamSession) -> None:
        """Snapshot tools, prompts and resources (for the logs, the status page and merged naming)."""
        caps = (session.init_result or {}).get("capabilities") or {}
        self.tools = await self._list_all(session, "tools/list", "tools") if "tools" in caps else []
        self.prompts = await self._list_all(session, "prompts/list", "prompts") if "prompts" in caps else []
        if "resources" in caps:
            resources = await self._list_all(session, "resources/list", "resources")
            templates = await self._list_all(session, "resources/templates/list", "resourceTemplates")
            self.resource_uris = {str(r.get("uri")) for r in resources}
            self.template_prefixes = {template_prefix(t.get("uriTemplate")) for t in templates}
        self._log_tools()

    async def _list_all(self, session: UpstreamSession, method: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        for _page in range(100):
            params = {"cursor": cursor} if cursor else {}
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
        mode = self.options.tool_filter.mode if self.options.tool_filter else "block"
        for tool in self.tools:
            name = str(tool.get("name"))
            if self.tool_filter.allows(name):
                log.info("%s Adding tool %s", self.name, name, extra={"server": self.name, "tool": name})
            else:
                log.info("%s Ignoring tool %s as it is not in %s list", self.name, name, mode,
                         extra={"server": self.name, "tool": name})

    def note_resource(self, uri: Any, *, template: bool) -> None:
        """Remember a URI seen in a live listing, so reads of it route here."""
        if isinstance(uri, str):
            (self.template_prefixes if template else self.resource_uris).add(template_prefix(uri) if template else uri)

    def _catalog_changed(self, why: str) -> None:
        """Tell listeners (routes) that the catalog changed: "connected", "disconnected" or "refreshed"."""
        for listener in list(self.catalog_listeners):
            listener(self, why)

    # -- what the upstream initiates ------------------------------------------------------------

    def clients_of(self, session: UpstreamSession) -> list[ClientSession]:
        if session.owner is not None:
            return [session.owner]
        return list(self.attached)

    def on_notification(self, session: UpstreamSession, msg: Message, related: InFlight | None) -> None:
        method = msg["method"]
        if method == "notifications/cancelled":
            params = msg.get("params") or {}
            scope = self._server_requests.get((id(session), params.get("requestId")))
            if scope is not None:
                scope.cancel()
            return
        if method in LIST_CHANGED:
            if session is self.session and self._tg:
                self._tg.start_soon(self._refresh_catalog, session)
            for client in self.clients_of(session):
                client.route.on_upstream_notification(client, self, msg)
            return
        if method == "notifications/resources/updated":
            uri = (msg.get("params") or {}).get("uri")
            for client in self.clients_of(session):
                if uri in client.subscriptions:
                    client.route.on_upstream_notification(client, self, msg)
            return
        if related is not None:
            related.put(msg)
            return
        is_log = method == "notifications/message"
        level = (msg.get("params") or {}).get("level")
        for client in self.clients_of(session):
            if not is_log or client.wants_log(level):
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
        self._tg.start_soon(self._serve_server_request, session, msg, related)

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
        self, uid: Any, method: str, client: ClientSession | None, session: UpstreamSession
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
        capability = _CAPABILITY_OF.get(method)
        if capability is not None and not client.supports(capability):
            return error_response(
                uid, METHOD_NOT_FOUND, f"the client did not declare the {capability} capability"
            )
        return None

    async def _ask_client(
        self, session: UpstreamSession, client: ClientSession, msg: Message, related: InFlight | None
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

    def attach(self, client: ClientSession) -> None:
        self.attached.add(client)

    def detach(self, client: ClientSession) -> None:
        self.attached.discard(client)

    # -- the session a client's requests go to ---------------------------------------------------

    @property
    def isolated(self) -> bool:
        return self.options.session_mode == "isolated"

    async def session_for(self, client: ClientSession) -> UpstreamSession | None:
        """The shared session, or the client's private one (opened, or reopened after a restart)."""
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
            log.warning("%s: could not open an upstream session: %s", self.name, exc, extra={"server": self.name})
            return None
        client.upstreams[self.name] = session
        return session

    def _isolated_params(self, client: ClientSession) -> dict[str, Any]:
        requested = client.init_params.get("protocolVersion")
        return {
            "protocolVersion": requested if requested in HANDSHAKE_VERSIONS else LATEST_HANDSHAKE_VERSION,
            "capabilities": client.capabilities,
            "clientInfo": {"name": self.proxy.name, "version": self.proxy.version},
        }

    # -- isolated sessions -------------------------------------------------------------------

    async def open_isolated(self, client: ClientSession, params: dict[str, Any]) -> UpstreamSession:
        """Open an upstream session private to `client`, handshaking with the client's own params."""
        if self._tg is None:
            raise UpstreamError(self.name, "server is not running")
        return await self._tg.start(self._isolated_session, client, params)

    async def _isolated_session(
        self, client: ClientSession, params: dict[str, Any], *, task_status: TaskStatus[UpstreamSession]
    ) -> None:
        session = UpstreamSession(self.name, self, owner=client)
        with anyio.CancelScope() as scope:
            client.upstream_scopes[self.name] = scope
            try:
                async with open_connection(self.config, self.traffic.receiver(session.receive)) as conn:
                    session.connection = self.traffic.connection(conn)
                    with anyio.fail_after(self.options.connect_timeout_seconds + 1):
                        await session.initialize(params, self.options.connect_timeout_seconds)
                    task_status.started(session)
                    try:
                        session.close(await conn.wait_closed())
                    except Exception as exc:  # task boundary: never take the runtime down
                        session.close(str(exc))
            finally:
                session.close("client session ended")
                if client.upstream_scopes.get(self.name) is scope:
                    del client.upstream_scopes[self.name]


def template_prefix(uri_template: Any) -> str:
    """The literal start of a URI template (`file:///{path}` -> `file:///`)."""
    return str(uri_template or "").split("{", 1)[0]
