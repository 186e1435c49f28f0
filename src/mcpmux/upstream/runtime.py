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
from ..errors import UpstreamError, UpstreamUnavailableError
from ..jsonrpc import (
    CONNECTION_CLOSED,
    INTERNAL_ERROR,
    METHOD_NOT_FOUND,
    Message,
    error_response,
    notification,
    request,
    result_response,
)
from ..relay.client import LOG_RANK
from .connection import Connection, open_connection
from .health import HealthTracker, watch_health
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
# Methods without side effects: replayed once on a fresh session when the upstream died under them.
SAFE_TO_REPLAY = frozenset(
    {
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "prompts/get",
        "completion/complete",
        "ping",
    }
)
REPLAY_WAIT_SECONDS = 10.0  # at most this long for the fresh session a replay needs
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
        self.last_error_at: float | None = None  # wall clock, for the status views
        self.restarts = 0
        self.traffic = Traffic()  # messages over this server's connections, for /metrics
        self.attempt = 0  # restarts since the upstream last stayed up long enough (the backoff step)
        self.crash_loop = False
        self.retry_at: float | None = None  # monotonic time of the next connection attempt
        self.health_failures = 0
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
        self.isolated_sessions: set[UpstreamSession] = set()
        self._tg: TaskGroup | None = None
        self._server_requests: dict[tuple[int, Any], anyio.CancelScope] = {}
        self._scope: anyio.CancelScope | None = None
        self._stopped: anyio.Event | None = None
        self._stop_reason: str | None = None
        self._wanted: anyio.Event | None = None  # lazyStart: set on first use
        self._changed: anyio.Event | None = None  # set (and replaced) when readiness may have changed

    # -- what routes read --------------------------------------------------------------------

    @property
    def request_timeout_seconds(self) -> float:
        return self.config.timeout_seconds or self.options.request_timeout_seconds

    @property
    def ready(self) -> bool:
        return self.session is not None and self.session.closed_reason is None

    @property
    def available(self) -> bool:
        """Ready, or waiting for its first use (lazyStart): either way new clients can be served."""
        return self.ready or self.state == "idle"

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
        pid = getattr(self.session.connection, "pid", None) if self.session is not None else None
        if pid is not None:
            status["pid"] = pid
        return status

    # -- supervision -------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[bool] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, and reconnect with backoff whenever the connection dies, until stopped or cancelled.

        Reports True through task_status once connected (or at once with lazyStart), or False after
        a failed first attempt; it then keeps retrying in the background.
        """
        self._stopped = anyio.Event()
        try:
            with anyio.CancelScope() as self._scope:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    if self.options.lazy_start and not self._want_event().is_set():
                        self._set_state("idle")
                        log.info(
                            "%s Waiting for first use (lazyStart)",
                            self.name,
                            extra={"server": self.name, "state": "idle"},
                        )
                        task_status.started(True)
                        task_status = anyio.TASK_STATUS_IGNORED
                        await self._want_event().wait()
                    await self._supervise(task_status)
        finally:
            self._tg = None
            self._set_state("stopped")

    def want(self) -> None:
        """First use of a lazyStart server: start connecting (no-op when already started)."""
        self._want_event().set()

    async def stop(self, reason: str) -> None:
        """Stop supervising and close every upstream session of this server; wait until done."""
        self._stop_reason = reason
        if self._scope is not None:
            self._scope.cancel()
        if self._stopped is not None:
            await self._stopped.wait()

    def in_flight(self) -> int:
        """Requests waiting for an upstream answer, on the primary and on every isolated session."""
        count = sum(len(s.pending) for s in self.isolated_sessions)
        return count + (len(self.session.pending) if self.session is not None else 0)

    async def drain(self, timeout_seconds: float, poll_seconds: float = 0.05) -> bool:
        """Wait (bounded) until no request is in flight; whether that happened. Shutdown and reload only."""
        with anyio.move_on_after(timeout_seconds):
            while self.in_flight():  # noqa: ASYNC110 (polled: the request path must not pay for a signal)
                await anyio.sleep(poll_seconds)
        return not self.in_flight()

    async def wait_ready(self, timeout_seconds: float) -> bool:
        """Wait until connected; False at once when an attempt fails or the server stops, or on timeout."""
        if self.state == "idle":
            self.want()
        with anyio.move_on_after(timeout_seconds):
            while not self.ready and self.state not in ("failed", "stopped"):
                await self._changed_event().wait()
        return self.ready

    async def _supervise(self, task_status: TaskStatus[bool]) -> None:
        backoff = Backoff(self.options.restart)
        reporter: TaskStatus[bool] | None = task_status
        while True:
            connected, uptime = await self._run_once(reporter)
            if reporter is not None and not connected:
                reporter.started(False)
            reporter = None
            if connected:
                backoff.mark_healthy(uptime)
            delay = backoff.next_delay()
            self._note_backoff(backoff, delay, connected)
            await anyio.sleep(delay)
            self.restarts += 1

    def _note_backoff(self, backoff: Backoff, delay: float, connected: bool) -> None:
        entering_crash_loop = backoff.in_crash_loop and not self.crash_loop
        self.attempt = backoff.attempt
        self.crash_loop = backoff.in_crash_loop
        self.retry_at = time.monotonic() + delay
        self._set_state("restarting" if connected else "failed")
        extra = {"server": self.name, "attempt": self.attempt, "state": self.state}
        verb = "restarting" if connected else "retrying"
        log.warning(
            "%s %s in %.2fs (attempt %d%s): %s",
            self.name,
            verb,
            delay,
            self.attempt,
            ", crash loop" if self.crash_loop else "",
            self.last_error,
            extra=extra,
        )
        if entering_crash_loop:
            log.error(
                "%s is in a crash loop: %d attempts in a row failed or did not stay up; "
                "backing off up to %gs between attempts",
                self.name,
                self.attempt,
                self.options.restart.max_seconds,
                extra=extra,
            )

    async def _run_once(self, reporter: TaskStatus[bool] | None) -> tuple[bool, float]:
        """One connection's life: (whether it got connected, how long it stayed up)."""
        session = UpstreamSession(self.name, self)
        self._set_state("connecting")
        log.info("%s Connecting", self.name, extra={"server": self.name, "state": "connecting"})
        connected_at: float | None = None
        error: str | None = None
        try:
            async with open_connection(self.config, self.traffic.receiver(session.receive)) as conn:
                session.connection = self.traffic.connection(conn)
                if hasattr(conn, "on_recovered"):
                    conn.on_recovered = lambda: self._on_recovered(session)  # type: ignore[attr-defined]
                async with anyio.create_task_group() as life:
                    life.start_soon(_close_when_dead, conn, session, life.cancel_scope)
                    error = await self._connect(session)
                    if error is not None:
                        life.cancel_scope.cancel()
                    else:
                        connected_at = time.monotonic()
                        self._become_ready(session)
                        if reporter is not None:
                            reporter.started(True)
                        if self.options.health_check.interval_seconds > 0:
                            life.start_soon(self._watch_health, session, life.cancel_scope)
                self._lose(session)  # before the transport's close, which may take a while
        except (UpstreamError, OSError) as exc:
            error = str(exc).removeprefix(f"{self.name}: ")
        except Exception as exc:  # task boundary: one server's bug must never take the others down
            log.exception("%s: unexpected error", self.name, extra={"server": self.name})
            error = f"internal error: {type(exc).__name__}: {exc}"
        finally:
            session.close(self._stop_reason or error or "connection closed")
            self._lose(session)
        self._record_error(error or session.closed_reason)
        if connected_at is None:
            log.error(
                "%s failed to connect: %s",
                self.name,
                self.last_error,
                extra={"server": self.name, "state": "failed"},
            )
            return False, 0.0
        log.warning("%s disconnected: %s", self.name, self.last_error, extra={"server": self.name})
        return True, time.monotonic() - connected_at

    async def _connect(self, session: UpstreamSession) -> str | None:
        """Handshake and catalog within the connect timeout; None when connected, else why not."""
        timeout = self.options.connect_timeout_seconds
        try:
            with anyio.fail_after(timeout + 1):  # each request times out first, with a clear message
                await self._handshake(session)
                await self._load_catalog(session)
        except UpstreamError as exc:
            return session.closed_reason or str(exc).removeprefix(f"{self.name}: ")
        except TimeoutError:
            return f"no answer within the connect timeout ({timeout:g}s)"
        return session.closed_reason

    def _lose(self, session: UpstreamSession) -> None:
        if self.session is session:
            self.session = None
            self._record_error(session.closed_reason)
            self._set_state("restarting")
            self._catalog_changed("disconnected")

    def _become_ready(self, session: UpstreamSession) -> None:
        self.session = session
        self.connected_at = time.monotonic()
        self.health_failures = 0
        self.retry_at = None
        self._set_state("ready")
        log.info("%s Connected", self.name, extra={"server": self.name, "state": "ready"})
        self._catalog_changed("connected")
        if self.subscribers or any(c.log_level for c in self.attached):
            assert self._tg is not None
            self._tg.start_soon(self._restore_shared_state, session)

    async def _restore_shared_state(self, session: UpstreamSession) -> None:
        """A fresh upstream knows nothing of the clients' subscriptions and log level: tell it again."""
        timeout = self.request_timeout_seconds
        levels = [c.log_level for c in self.attached if c.log_level]
        if levels:
            level = min(levels, key=LOG_RANK.__getitem__)
            await session.request(request(0, "logging/setLevel", {"level": level}), None, timeout)
        for uri in list(self.subscribers):
            await session.request(request(0, "resources/subscribe", {"uri": uri}), None, timeout)

    def _record_error(self, error: str | None) -> None:
        if error:
            self.last_error = error
            self.last_error_at = time.time()

    async def _watch_health(self, session: UpstreamSession, life: anyio.CancelScope) -> None:
        tracker = await watch_health(session, self.options.health_check, self._on_probe)
        reason = f"unhealthy: {tracker.failures} health checks in a row failed ({tracker.last_error})"
        log.warning(
            "%s is %s; reconnecting", self.name, reason, extra={"server": self.name, "state": "unhealthy"}
        )
        session.close(reason)
        life.cancel()

    def _on_probe(self, tracker: HealthTracker) -> None:
        was = self.health_failures
        self.health_failures = tracker.failures
        if tracker.failures and self.state == "ready":
            self._set_state("unhealthy")
        if tracker.failures:
            log.warning(
                "%s health check failed (%d of %d): %s",
                self.name,
                tracker.failures,
                tracker.failure_threshold,
                tracker.last_error,
                extra={"server": self.name, "state": "unhealthy"},
            )
        elif was and self.state == "unhealthy":
            self._set_state("ready")
            log.info("%s is healthy again", self.name, extra={"server": self.name, "state": "ready"})

    def _on_recovered(self, session: UpstreamSession) -> None:
        """The transport re-established the upstream session by itself (the upstream restarted)."""
        log.warning(
            "%s re-initialized its upstream session (the upstream had forgotten it)",
            self.name,
            extra={"server": self.name},
        )
        if session is self.session and self._tg is not None:
            self._tg.start_soon(self._refresh_catalog, session)
            if self.subscribers or any(c.log_level for c in self.attached):
                self._tg.start_soon(self._restore_shared_state, session)

    def _set_state(self, state: str) -> None:
        self.state = state
        if state == "stopped" and self._stopped is not None:
            self._stopped.set()
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    def _changed_event(self) -> anyio.Event:
        if self._changed is None:
            self._changed = anyio.Event()
        return self._changed

    def _want_event(self) -> anyio.Event:
        if self._wanted is None:
            self._wanted = anyio.Event()
        return self._wanted

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
                log.info(
                    "%s Ignoring tool %s as it is not in %s list",
                    self.name,
                    name,
                    mode,
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

    async def replay(self, client: ClientSession, msg: Message, exchange: Any, failed: Message) -> Message:
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
        """One private session's life, in the runtime's task group: ends with the client (closing
        it cancels `client.upstream_scopes`), with the connection, or with the runtime."""
        session = UpstreamSession(self.name, self, owner=client)
        error: str | None = "the client session ended"
        with anyio.CancelScope() as scope:
            client.upstream_scopes[self.name] = scope
            self.isolated_sessions.add(session)
            try:
                async with open_connection(self.config, self.traffic.receiver(session.receive)) as conn:
                    session.connection = self.traffic.connection(conn)
                    async with anyio.create_task_group() as life:
                        life.start_soon(_close_when_dead, conn, session, life.cancel_scope)
                        error = await self._initialize_isolated(session, params)
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
                if client.upstream_scopes.get(self.name) is scope:
                    del client.upstream_scopes[self.name]
        if error is not None:
            raise UpstreamUnavailableError(self.name, error)

    async def _initialize_isolated(self, session: UpstreamSession, params: dict[str, Any]) -> str | None:
        timeout = self.options.connect_timeout_seconds
        try:
            with anyio.fail_after(timeout + 1):
                await session.initialize(params, timeout)
        except UpstreamError as exc:
            return session.closed_reason or str(exc).removeprefix(f"{self.name}: ")
        except TimeoutError:
            return f"no answer within the connect timeout ({timeout:g}s)"
        return session.closed_reason


async def _close_when_dead(conn: Connection, session: UpstreamSession, life: anyio.CancelScope) -> None:
    """In-flight requests get their error the moment the transport dies, even during the handshake."""
    session.close(await conn.wait_closed())
    life.cancel()


def template_prefix(uri_template: Any) -> str:
    """The literal start of a URI template (`file:///{path}` -> `file:///`)."""
    return str(uri_template or "").split("{", 1)[0]
