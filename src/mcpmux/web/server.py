"""uvicorn (httptools) run as one task of our own task group, on a socket we bound ourselves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from typing import Any

import anyio
import uvicorn
from anyio.abc import TaskStatus
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("mcpmux.http")


class _CoalescingTransport:
    """Holds a response's header block until its first body write, so that both leave in one send().

    uvicorn writes the status line and headers, then the body, as two writes: two syscalls and often two
    wake-ups of the client per response. A held header block is flushed at the latest on the next loop
    iteration (a streamed response whose first event comes later) or before the transport closes.
    """

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if len(data) < 65536:
                self._transport.write(held + data)
            else:
                self._transport.writelines((held, data))  # no copy of a big body
        elif data.startswith(b"HTTP/1.1 ") and data.endswith(b"\r\n\r\n"):
            self._held = data
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def _flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (its public `http=` option), writing through _CoalescingTransport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]


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
            http=_Protocol,
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
