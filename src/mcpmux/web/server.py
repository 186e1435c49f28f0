"""uvicorn (httptools) run as one task of our own task group, on a socket we bound ourselves."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Generator
from typing import Any

import anyio
import uvicorn
from anyio.abc import TaskStatus

log = logging.getLogger("mcpmux.http")


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the proxy's root task decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpServer:
    def __init__(self, app: Any, sock: socket.socket, *, graceful_seconds: float) -> None:
        self.sock = sock
        config = uvicorn.Config(
            app,
            http="httptools",
            loop="none",
            lifespan="off",
            ws="none",
            access_log=False,
            proxy_headers=False,
            log_config=None,
            server_header=False,
            date_header=False,
            timeout_graceful_shutdown=int(graceful_seconds),
            timeout_keep_alive=30,
            backlog=2048,
        )
        config.load()
        self.server = _EmbeddedServer(config)
        self._stopped = anyio.Event()

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        server = self.server
        server.lifespan = server.config.lifespan_class(server.config)
        await server.startup(sockets=[self.sock])
        task_status.started()
        try:
            await server.main_loop()
        finally:
            with anyio.CancelScope(shield=True):
                await server.shutdown(sockets=[self.sock])
                self._stopped.set()

    def stop_accepting(self) -> None:
        """Close the listening socket soon (uvicorn checks every 0.1 s); open requests go on."""
        self.server.should_exit = True

    async def stop(self) -> None:
        """Stop accepting and wait (up to the grace period) for open requests to finish."""
        self.server.should_exit = True
        await self._stopped.wait()
