"""The HTTP server: web/http1.py connections on a socket we bound, every request run in our task group."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from ..config.model import HttpLimits
from .exchange import App, Exchange, plain_response
from .http1 import Connection
from .http1_timers import check_timers

log = logging.getLogger("mcpmux.http")


class LogBudget:
    """At most `per_second` log lines a second for refusals and cut-off clients; the rest are counted.

    Under attack every bad request would otherwise be a log line: the log would be the next thing to fill.
    """

    def __init__(self, per_second: int = 20) -> None:
        self.per_second = per_second
        self.window = float("-inf")
        self.used = self.left_out = 0

    def allow(self, now: float) -> bool:
        self.roll(now)
        if self.used < self.per_second:
            self.used += 1
            return True
        self.left_out += 1
        return False

    def roll(self, now: float) -> None:
        """Start a new second when one has passed, saying how many lines the last one left out."""
        if now - self.window < 1.0:
            return
        if self.left_out:
            log.warning("... and %d more refused or cut-off connections in the last second", self.left_out)
        self.window, self.used, self.left_out = now, 0, 0


MAX_IDLE_WORKERS = 64  # request workers kept waiting for the next request (more end when done)
SWEEP_MAX_SECONDS = 1.0  # the timer sweep runs at least this often, more often for shorter timeouts
SWEEP_MIN_SECONDS = 0.02


class Http1Server:
    """The connections of one listening socket, and the workers (tasks of one task group) running requests.

    A request is handed to an idle worker when there is one, else a new worker is started in the task
    group: no task outlives the server and, at steady load, no task is created per request.
    """

    def __init__(
        self, app: App, loop: asyncio.AbstractEventLoop, tasks: TaskGroup, limits: HttpLimits
    ) -> None:
        self.app = app
        self.loop = loop
        self.tasks = tasks
        self.limits = limits
        self.connections: set[Connection] = set()
        self.lingering: set[Connection] = (
            set()
        )  # refused connections reading what is left (not admitted ones too)
        self.closing = False
        self.running = 0  # requests whose app call has not returned
        self.refused = 0  # connections refused for maxConnections
        self._idle_workers: list[asyncio.Future[Exchange | None]] = []
        self._drained = asyncio.Event()  # set whenever `running` drops to 0
        self._refusal_logged = -1e9
        self.log_budget = LogBudget()

    def admit(self, conn: Connection) -> bool:
        """Take a new connection, or refuse it (503 and close) when `max_connections` are open."""
        if len(self.connections) < self.limits.max_connections:
            self.connections.add(conn)
            return True
        self.refused += 1
        now = self.loop.time()
        if now - self._refusal_logged >= 1.0:  # one line a second at most under a connection flood
            self._refusal_logged = now
            log.warning(
                "Refusing connections with 503: %d open (maxConnections %d); %d refused so far",
                len(self.connections),
                self.limits.max_connections,
                self.refused,
            )
        return False

    def linger(self, conn: Connection) -> bool:
        """Let a refused connection linger (see Connection._send_refusal), unless too many already do."""
        self.connections.discard(conn)
        if len(self.lingering) >= self.limits.max_connections:
            return False
        self.lingering.add(conn)
        return True

    def run(self, exchange: Exchange) -> None:
        self.running += 1
        idle = self._idle_workers
        while idle:
            waiter = idle.pop()
            if not waiter.done():  # a worker cancelled while waiting leaves a done future behind
                waiter.set_result(exchange)
                return
        self.tasks.start_soon(self._worker, exchange, name="mcpmux HTTP request")

    async def _worker(self, exchange: Exchange | None) -> None:
        """Run requests one after another, waiting in between; ends when enough other workers wait.

        The app is awaited right here (no coroutine per request in between: every resume of a request
        passes through each frame of its await chain).
        """
        task = asyncio.current_task()  # once per worker: known to the request (`Exchange.task`)
        while exchange is not None:
            exchange.task = task
            try:
                await self.app(exchange.scope, exchange.receive, exchange)  # an EarlySend (web/asgi.py)
            except asyncio.CancelledError:
                cancelled(exchange)
                raise
            except Exception:
                log.exception("%s %s failed", exchange.scope["method"], exchange.scope["path"])
                fail(exchange)
            else:
                if not (exchange.response_complete or exchange.conn.disconnected):
                    unfinished(exchange)
            finally:
                self.running -= 1
                if not self.running:
                    self._drained.set()
            exchange = None  # hold nothing of a finished request while waiting
            if self.closing or len(self._idle_workers) >= MAX_IDLE_WORKERS:
                return
            waiter: asyncio.Future[Exchange | None] = self.loop.create_future()
            self._idle_workers.append(waiter)
            exchange = await waiter

    def sweep(self, now: float) -> None:
        """Apply every connection's timeouts (head, body, write, keep-alive)."""
        for conn in [*self.connections, *self.lingering]:
            check_timers(conn, now)
        self.log_budget.roll(now)

    def begin_shutdown(self) -> None:
        """No new requests: idle connections close now, busy ones after their current response."""
        self.closing = True
        for conn in list(self.connections):
            if conn.idle:
                conn.close()
        for waiter in self._idle_workers:
            if not waiter.done():
                waiter.set_result(None)  # idle workers end
        self._idle_workers.clear()

    async def finish(self, grace_seconds: float) -> None:
        """Wait (up to the grace period) for the requests under way; the caller then cancels the rest."""
        self.begin_shutdown()  # from here a connection closes as its response completes
        with anyio.move_on_after(grace_seconds):
            while self.running:
                self._drained.clear()
                await self._drained.wait()


def sweep_interval(limits: HttpLimits) -> float:
    """Often enough that a timeout fires within about a quarter of itself late."""
    shortest = min(
        limits.head_timeout_seconds,
        limits.body_timeout_seconds,
        limits.write_timeout_seconds,
        limits.keep_alive_timeout_seconds,
    )
    return max(SWEEP_MIN_SECONDS, min(SWEEP_MAX_SECONDS, shortest / 4))


class HttpServer:
    def __init__(
        self, app: Any, sock: socket.socket, *, graceful_seconds: float, limits: HttpLimits | None = None
    ) -> None:
        self.app = app
        self.sock = sock
        self.graceful_seconds = graceful_seconds
        self.limits = limits or HttpLimits()
        self.http: Http1Server | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._stop = anyio.Event()
        self._stopped = anyio.Event()

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with anyio.create_task_group() as tasks:
                http = self.http = Http1Server(self.app, loop, tasks, self.limits)
                self._listener = await loop.create_server(
                    lambda: Connection(http), sock=self.sock, backlog=2048
                )
                task_status.started()
                try:
                    await self._sweep(http, loop)
                finally:
                    # Asked to stop: the grace period for requests under way. Cancelled: no grace.
                    grace = self.graceful_seconds if self._stop.is_set() else 0.0
                    with anyio.CancelScope(shield=True):
                        self._listener.close()
                        await http.finish(grace)
                    tasks.cancel_scope.cancel()  # what is still running is cancelled (and awaited here)
        finally:
            if self.http is not None:
                for conn in self.http.connections:
                    conn.close()
                for conn in self.http.lingering:
                    conn.transport.abort()
            self._stopped.set()

    async def _sweep(self, http: Http1Server, loop: asyncio.AbstractEventLoop) -> None:
        interval = sweep_interval(self.limits)
        while not self._stop.is_set():
            with anyio.move_on_after(interval):
                await self._stop.wait()
            http.sweep(loop.time())

    def stop_accepting(self) -> None:
        """Close the listening socket and idle connections; requests under way go on."""
        if self._listener is not None:
            self._listener.close()
        if self.http is not None:
            self.http.begin_shutdown()

    async def stop(self) -> None:
        """Stop accepting and wait (up to the grace period) for requests under way to finish."""
        self.stop_accepting()
        self._stop.set()
        await self._stopped.wait()


def cancelled(exchange: Exchange) -> None:
    """The request's worker is cancelled (shutdown past the grace period): drop an unfinished response."""
    if not exchange.response_complete:
        exchange.abandon()


def unfinished(exchange: Exchange) -> None:
    """The app returned without completing its response (and the client is still there)."""
    problem = "response not completed" if exchange.response_started else "no response"
    log.error("%s %s: %s", exchange.scope["method"], exchange.scope["path"], problem)
    fail(exchange)


def fail(exchange: Exchange) -> None:
    """The app failed or left its response unfinished: a 500 if nothing was sent yet (and the connection
    closes), else the response is abandoned."""
    conn = exchange.conn
    if exchange.response_complete or conn.disconnected:
        return
    if exchange.response_started:
        exchange.abandon()
    else:
        exchange.response_started = True
        conn.transport.write(plain_response(500, "Internal Server Error"))
        conn.close()
