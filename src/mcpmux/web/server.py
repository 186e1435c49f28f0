"""The HTTP server (web/http1.py) run as one task of our own task group, on a socket we bound ourselves."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import anyio
from anyio.abc import TaskStatus

from .http1 import Connection, Http1Server

KEEP_ALIVE_SECONDS = 30.0  # an idle keep-alive connection (or a request head still arriving) is closed after
SWEEP_SECONDS = 1.0


class HttpServer:
    def __init__(
        self,
        app: Any,
        sock: socket.socket,
        *,
        graceful_seconds: float,
        keep_alive_seconds: float = KEEP_ALIVE_SECONDS,
    ) -> None:
        self.app = app
        self.sock = sock
        self.graceful_seconds = graceful_seconds
        self.keep_alive_seconds = keep_alive_seconds
        self.http: Http1Server | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._stop = anyio.Event()
        self._stopped = anyio.Event()

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        loop = asyncio.get_running_loop()
        http = self.http = Http1Server(self.app, loop)
        self._listener = await loop.create_server(lambda: Connection(http), sock=self.sock, backlog=2048)
        task_status.started()
        try:
            while not self._stop.is_set():
                with anyio.move_on_after(SWEEP_SECONDS):
                    await self._stop.wait()
                http.sweep(loop.time() - self.keep_alive_seconds)
        finally:
            # Asked to stop: the grace period for requests under way. Cancelled: no grace.
            grace = self.graceful_seconds if self._stop.is_set() else 0.0
            with anyio.CancelScope(shield=True):
                self._listener.close()
                await http.finish(grace)
                self._stopped.set()

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
