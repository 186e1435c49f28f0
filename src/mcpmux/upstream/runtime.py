"""One configured server: its supervised primary session, its catalog, private sessions, its events."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskStatus

from ..config.model import ProxyConfig, ServerConfig
from ..core.counters import Traffic
from ..core.pins import ServerVerdict
from ..core.toolfilter import NameFilter
from ..errors import UpstreamError, UpstreamUnavailableError
from ..jsonrpc import INTERNAL_ERROR, Message, error_response, result_response
from ..protocol.constants import LATEST_HANDSHAKE_VERSION, LIST_CHANGED
from .connection import open_connection
from .era_memory import spoken_era
from .events import NO_CLIENTS, Asked, EventSink, Notified, Resumed
from .session import InFlight, Link, UpstreamSession
from .supervisor import Supervisor, close_when_dead

log = logging.getLogger("mcpmux.server")

PROXY_CLIENT_CAPABILITIES: dict[str, Any] = {
    "roots": {"listChanged": True},
    "sampling": {},
    "elicitation": {"form": {}, "url": {}},
}
SERVER_REQUESTS_LIMIT = 256  # requests from one server waiting for clients' answers at once
REPLAY_WAIT_SECONDS = 10.0  # at most this long for the fresh session a replay needs


class ServerRuntime(Supervisor):
    """One configured server: its supervised primary session (see `Supervisor`), its catalog, and the
    private sessions opened on request. What the server initiates is reported to `sink` as events
    (`upstream/events.py`); who gets it is the layer above's business."""

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
        self.sink: EventSink = NO_CLIENTS  # set by the layer above (relay.dispatch.Dispatch.of)
        self.tool_filter = NameFilter(config.options.tool_filter)
        self.isolated = config.options.session_mode == "isolated"  # each client gets a private session
        self.request_timeout_seconds: float = config.timeout_seconds or config.options.request_timeout_seconds
        self.catalog_listeners: list[Callable[[ServerRuntime, str], None]] = []
        self._serving = 0  # requests from the server being served (waiting for a client's answer)
        self._refused = 0  # refused because SERVER_REQUESTS_LIMIT were being served

    # -- what routes read --------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        now = self.clock.now()  # the clock retry_at and connected_at were read from
        uptime = now - self.connected_at if self.connected_at and self.ready else 0.0
        status: dict[str, Any] = {
            "state": self.state,
            "transport": self.config.transport,
            "era": spoken_era(self.config, self.era),
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
        if self._tg is not None:
            self.spawn(self.sink.resumed, Resumed(session))

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

    # -- what the upstream initiates: reported to the sink ---------------------------------------

    def on_notification(self, session: UpstreamSession, msg: Message, related: InFlight | None) -> None:
        """A notification from the server: list_changed reloads the catalog; the sink gets them all."""
        if session is self.session and msg["method"] in LIST_CHANGED:
            self.refresh_soon(session)
        self.sink.notified(Notified(session, msg, related))

    async def _refresh_catalog(self, session: UpstreamSession) -> None:
        try:
            await self._load_catalog(session)
        except UpstreamError as exc:
            log.debug("%s: catalog refresh failed: %s", self.name, exc)
        self._catalog_changed("refreshed")

    def on_server_request(self, session: UpstreamSession, msg: Message, related: InFlight | None) -> None:
        """A request from the server: served in a task of this runtime, at most SERVER_REQUESTS_LIMIT
        at once (a flood is refused at once: no task waits for clients)."""
        if self._tg is None:
            return
        if self._serving >= SERVER_REQUESTS_LIMIT:
            self._refuse(session, msg)
            return
        self._serving += 1
        self.spawn(self._serve, session, msg, related)

    def _refuse(self, session: UpstreamSession, msg: Message) -> None:
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

    async def _serve(self, session: UpstreamSession, msg: Message, related: InFlight | None) -> None:
        """Answer a ping here; anything else as the sink answers it (under the server's id)."""
        try:
            if msg["method"] == "ping":
                answer: Message | None = result_response(msg["id"], {})
            else:
                answer = await self.sink.asked(Asked(session, msg, related))
            if answer is not None:
                answer["id"] = msg["id"]
                await session.respond(answer)
        finally:
            self._serving -= 1

    # -- the sessions requests go to -----------------------------------------------------------

    async def primary(self) -> UpstreamSession | None:
        """The live primary session; a lazyStart server is started and waited for, and a server between
        two attempts of a restart (not a crash loop) is waited for briefly."""
        if not self.ready:
            await self._wait_if_coming(self.options.connect_timeout_seconds + 1)
        return self.session if self.ready else None

    async def _wait_if_coming(self, lazy_start_seconds: float) -> None:
        if self.state == "idle":
            await self.wait_ready(lazy_start_seconds)
        elif self.state in ("connecting", "restarting") and not self.crash_loop:
            await self.wait_ready(min(self.options.connect_timeout_seconds, REPLAY_WAIT_SECONDS))

    async def open_isolated(
        self, owner: Any, params: dict[str, Any], scope: anyio.CancelScope
    ) -> UpstreamSession:
        """Open an upstream session private to `owner` (opaque here: the layer above's client session),
        handshaking with `params`; it ends when `scope` is cancelled (even before it is open), when its
        connection dies or when the runtime stops."""
        if self._tg is None:
            raise UpstreamError(self.name, "server is not running")
        session: UpstreamSession = await self._tg.start(self._isolated_session, owner, params, scope)
        return session

    async def _isolated_session(
        self,
        owner: Any,
        params: dict[str, Any],
        scope: anyio.CancelScope,
        *,
        task_status: TaskStatus[UpstreamSession],
    ) -> None:
        """One private session's life, in the runtime's task group."""
        session = UpstreamSession(self.name, self, owner=owner, queue_limit=self.options.max_request_queue)
        error: str | None = "the client session ended"
        link = Link(session.receive, self.traffic.received)
        with scope:
            self.isolated_sessions.add(session)
            try:
                async with open_connection(self.config, link, self.era) as conn:
                    session.connection, session.sent = conn, self.traffic.sent
                    if hasattr(conn, "serve_callers"):  # 2026-07-28: each request carries its client's
                        conn.serve_callers(session)
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
        if error is not None:
            raise UpstreamUnavailableError(self.name, error)


def template_prefix(uri_template: Any) -> str:
    """The literal start of a URI template (`file:///{path}` -> `file:///`)."""
    return str(uri_template or "").split("{", 1)[0]
