"""Supervision of one server's primary upstream session: connect, watch, back off, reconnect, stop.

`Supervisor` is the base of `ServerRuntime`: it owns the connection's life and changes the state the
status views report (connecting, ready, unhealthy, restarting with the attempt count, failed, idle,
stopped; kept by its own base, `SupervisionState`); the runtime supplies the handshake, the catalog and
what to do with the clients.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from ..config.model import ProxyConfig, ServerConfig
from ..core.backoff import Backoff
from ..errors import UpstreamError
from ..jsonrpc import Message
from .connection import Connection, open_connection
from .era_memory import era_memory
from .health import watch_health
from .session import InFlight, Link, UpstreamSession
from .supervision_state import SupervisionState
from .tasks import release_frames

if TYPE_CHECKING:
    from ..core.counters import Traffic

log = logging.getLogger("mcpmux.server")


class Supervisor(SupervisionState):
    """Keeps the primary session of one server alive; subclasses say how to open and use it."""

    traffic: Traffic  # counts messages on every connection (set by the subclass)

    def __init__(self, config: ServerConfig, proxy: ProxyConfig) -> None:
        self.config = config
        self.proxy = proxy
        super().__init__(config.name, config.options)
        self.era = era_memory(config, proxy)  # `protocol: auto`: the probe's answer (and remembered one)
        self.session: UpstreamSession | None = None
        self.isolated_sessions: set[UpstreamSession] = set()
        self._tg: TaskGroup | None = None
        self._scope: anyio.CancelScope | None = None
        self._refreshing: bool | None = None  # None: no refresh running; True: another one is wanted
        self.oauth: Any = None  # UpstreamAuth when the server logs in with OAuth (`oauth`)
        if config.oauth is not None:
            from ..oauth.upstream import UpstreamAuth, register_auth

            self.oauth = UpstreamAuth(config, proxy)
            register_auth(self.oauth)

    @property
    def ready(self) -> bool:
        return self.session is not None and self.session.closed_reason is None

    @property
    def available(self) -> bool:
        """Ready, or waiting for its first use (lazyStart): either way new clients can be served."""
        return self.ready or self.state == "idle"

    # -- what the subclass provides --------------------------------------------------------------

    async def _handshake(self, session: UpstreamSession) -> None:
        raise NotImplementedError

    async def _load_catalog(self, session: UpstreamSession) -> None:
        raise NotImplementedError

    async def _refresh_catalog(self, session: UpstreamSession) -> None:
        raise NotImplementedError

    def _catalog_changed(self, why: str) -> None:
        """The session connected or disconnected ("connected", "disconnected")."""

    def on_notification(self, session: UpstreamSession, msg: Message, related: InFlight | None) -> None:
        raise NotImplementedError

    def on_server_request(self, session: UpstreamSession, msg: Message, related: InFlight | None) -> None:
        raise NotImplementedError

    def _resume(self, session: UpstreamSession) -> None:
        """A fresh upstream session is in place: give it back what the clients had set up."""

    # -- the supervision loop ------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[bool] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, and reconnect with backoff whenever the connection dies, until stopped or cancelled.

        Reports True through task_status once connected (or at once with lazyStart), or False after
        a failed first attempt (it then keeps retrying in the background) or when stopped before that.
        """
        report = _Report(task_status)
        self._stopped = anyio.Event()
        try:
            with anyio.CancelScope() as self._scope:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    if self.options.lazy_start and not self._want_event().is_set():
                        self._set_state("idle")
                        log.info(
                            "<%s> Waiting for first use (lazyStart)",
                            self.name,
                            extra={"server": self.name, "state": "idle"},
                        )
                        report(True)
                        await self._want_event().wait()
                    await self._supervise(report)
        finally:
            self._tg = None
            self._set_state("stopped")
            report(False)

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
        with self.clock.move_on_after(timeout_seconds):
            while self.in_flight():  # polled: the request path must not pay for a signal
                await self.clock.sleep(poll_seconds)
        return not self.in_flight()

    async def wait_ready(self, timeout_seconds: float) -> bool:
        """Wait until connected; False at once when an attempt fails or the server stops, or on timeout."""
        if self.state == "idle":
            self.want()
        with self.clock.move_on_after(timeout_seconds):
            while not self.ready and self.state != "failed" and not self._has_stopped():
                await self._changed_event().wait()
        return self.ready

    async def _supervise(self, report: _Report) -> None:
        backoff = Backoff(self.options.restart)
        while True:
            if self.oauth is not None:
                await self._wait_for_login(report)
            connected, uptime = await self._run_once(report)
            report(False)  # no-op once the first attempt has been reported
            if not connected and self.oauth is not None and self.oauth.needs_login:
                continue  # waiting for a person is no crash loop
            if connected:
                backoff.mark_healthy(uptime)
            delay = backoff.next_delay()
            self._note_backoff(backoff, delay, connected)
            await self.clock.sleep(delay)
            self.restarts += 1

    async def _wait_for_login(self, report: _Report) -> None:
        """With OAuth and no usable token: state "login required" until someone logs in."""
        self.oauth.check_ready()
        if self.oauth.needs_login is None:
            return
        self._set_state("login required")
        self._record_error(self.oauth.needs_login)
        self.retry_at = None
        log.warning(
            "<%s> Waiting for login: %s",
            self.name,
            self.oauth.needs_login,
            extra={"server": self.name, "state": "login required"},
        )
        report(False)
        await self.oauth.wait_for_login()
        log.info("<%s> Logged in", self.name, extra={"server": self.name})

    async def _run_once(self, report: _Report) -> tuple[bool, float]:
        """One connection's life: (whether it got connected, how long it stayed up)."""
        session = UpstreamSession(self.name, self, queue_limit=self.options.max_request_queue)
        self._set_state("connecting")
        log.info("<%s> Connecting", self.name, extra={"server": self.name, "state": "connecting"})
        connected_at: float | None = None
        error: str | None = None
        conn: Any = None
        link = Link(session.receive, self.traffic.received)
        try:
            async with open_connection(self.config, link, self.era) as conn:
                self._wire(conn, session)
                async with anyio.create_task_group() as life:
                    life.start_soon(close_when_dead, conn, session, life.cancel_scope)
                    error = await self._connect(session)
                    if error is not None:
                        life.cancel_scope.cancel()
                    else:
                        connected_at = self._up(session, report, life)
                self._lose(session)  # before the transport's close, which may take a while
        except (UpstreamError, OSError) as exc:
            error = str(exc).removeprefix(f"{self.name}: ")
        except Exception as exc:  # task boundary: one server's bug must never take the others down
            log.exception("%s: unexpected error", self.name, extra={"server": self.name})
            error = f"internal error: {type(exc).__name__}: {exc}"
        finally:
            self._end(session, link, conn, self._stop_reason or error or "connection closed")
        self._record_error(error or session.closed_reason)
        return self._outcome(connected_at)

    def _wire(self, conn: Any, session: UpstreamSession) -> None:
        """A new connection and its session: what each needs of the other."""
        session.connection, session.sent = conn, self.traffic.sent
        if hasattr(conn, "serve_callers"):  # 2026-07-28: each request carries its client's
            conn.serve_callers(session)
        if hasattr(conn, "on_recovered"):
            conn.on_recovered = lambda: self._on_recovered(session)

    def _up(self, session: UpstreamSession, report: _Report, life: TaskGroup) -> float:
        """Connected: serve from this session (health probes in its life's task group); when it was."""
        connected_at = self.clock.now()
        self.era.connected()
        self._become_ready(session)
        report(True)
        if self.options.health_check.interval_seconds > 0:
            life.start_soon(self._watch_health, session, life.cancel_scope)
        return connected_at

    def _end(self, session: UpstreamSession, link: Link, conn: Any, reason: str) -> None:
        """The connection is over: close its session (in-flight requests get `reason`), let go of it."""
        session.close(reason)
        self._lose(session)
        session.detach()
        link.cut()
        if hasattr(conn, "stderr_tail"):
            self.stderr_tail = conn.stderr_tail()

    def _outcome(self, connected_at: float | None) -> tuple[bool, float]:
        """How the attempt ended (logged): whether it got connected, and for how long."""
        if connected_at is None:
            self.era.forget_if_remembered()  # an upstream that changed its era is probed again
            log.error(
                "%s failed to connect: %s",
                self.name,
                self.last_error,
                extra={"server": self.name, "state": "failed"},
            )
            return False, 0.0
        log.warning("%s disconnected: %s", self.name, self.last_error, extra={"server": self.name})
        return True, self.clock.now() - connected_at

    async def _connect(self, session: UpstreamSession, params: dict[str, Any] | None = None) -> str | None:
        """The handshake within the connect timeout; None when connected, else why not.

        The primary session (no `params`) handshakes as the proxy and loads the catalog too; an
        isolated one handshakes with its client's `params`.
        """
        timeout = self.options.connect_timeout_seconds
        with self.clock.move_on_after(timeout) as deadline:
            try:
                if params is not None:
                    await session.initialize(params, timeout + 1)  # +1: the deadline comes first
                else:
                    await self._handshake(session)
                    await self._load_catalog(session)
            except UpstreamError as exc:
                return session.closed_reason or str(exc).removeprefix(f"{self.name}: ")
        if deadline.cancelled_caught:
            step = "initialize" if session.init_result is None else "the first listings"
            return session.closed_reason or f"did not answer {step} within the connect timeout ({timeout:g}s)"
        return session.closed_reason

    def _lose(self, session: UpstreamSession) -> None:
        if self.session is session:
            self.session = None
            self._record_error(session.closed_reason)
            self._set_state("restarting")
            self._catalog_changed("disconnected")

    def _become_ready(self, session: UpstreamSession) -> None:
        self.session = session
        self.connected_at = self.clock.now()
        self.health_failures = 0
        self.retry_at = None
        self._set_state("ready")
        log.info("<%s> Connected", self.name, extra={"server": self.name, "state": "ready"})
        self._catalog_changed("connected")
        self._resume(session)

    async def _watch_health(self, session: UpstreamSession, life: anyio.CancelScope) -> None:
        tracker = await watch_health(session, self.options.health_check, self._on_probe, self.clock)
        reason = f"unhealthy: {tracker.failures} health checks in a row failed ({tracker.last_error})"
        log.warning(
            "%s is %s; reconnecting", self.name, reason, extra={"server": self.name, "state": "unhealthy"}
        )
        session.close(reason)
        life.cancel()

    def _on_recovered(self, session: UpstreamSession) -> None:
        """The transport re-established the upstream session by itself (the upstream restarted)."""
        log.warning(
            "%s re-initialized its upstream session (the upstream had forgotten it)",
            self.name,
            extra={"server": self.name},
        )
        if session is self.session:
            self.refresh_soon(session)
            self._resume(session)

    def spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run `fn(*args)` in this server's task group; a failure is logged there, never spreads."""
        if self._tg is not None:
            self._tg.start_soon(self._contained, fn, args, name=f"{self.name}: {fn.__name__}")

    async def _contained(self, fn: Callable[..., Awaitable[None]], args: tuple[Any, ...]) -> None:
        try:
            await fn(*args)
        except Exception:  # task boundary: one message's handling must not end the server or the proxy
            log.exception("%s: %s failed", self.name, fn.__name__, extra={"server": self.name})

    def refresh_soon(self, session: UpstreamSession) -> None:
        """Reload the catalog in the background; list_changed floods coalesce into one more refresh."""
        if self._refreshing is None:
            self._refreshing = False
            self.spawn(self._refresh_coalesced, session)
        else:
            self._refreshing = True

    async def _refresh_coalesced(self, session: UpstreamSession) -> None:
        try:
            while True:
                self._refreshing = False
                await self._refresh_catalog(session)
                if not self._refreshing or session is not self.session:
                    break
        finally:
            self._refreshing = None


class _Report:
    """Reports the outcome of the first attempt through task_status, once."""

    __slots__ = ("done", "task_status")

    def __init__(self, task_status: TaskStatus[bool]) -> None:
        self.task_status = task_status
        self.done = False

    def __call__(self, ok: bool) -> None:
        if not self.done:
            self.done = True
            self.task_status.started(ok)


async def close_when_dead(conn: Connection, session: UpstreamSession, life: anyio.CancelScope) -> None:
    """In-flight requests get their error the moment the transport dies, even during the handshake."""
    try:
        reason = await conn.wait_closed()
    except BaseException as exc:
        # Cancelled: anyio keeps the exception in a reference cycle until the collector runs; its
        # traceback must not keep the connection and the session alive that long.
        release_frames(exc)
        del conn, session, life
        raise
    session.close(reason)
    life.cancel()
