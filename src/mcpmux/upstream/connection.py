"""The one seam every upstream transport implements: send a raw message, deliver received ones."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import anyio

from ..config.model import ServerConfig
from ..jsonrpc import Message
from .era_memory import EraMemory

# Called for every message the upstream sends, with the upstream request id whose HTTP response
# stream carried it (None when the transport cannot tell, as on stdio).
Receiver = Callable[[Message, Any], None]


class Connection(Protocol):
    """A live transport to one upstream MCP session."""

    name: str

    def send(self, msg: Message, related: Any = None) -> Awaitable[None]:
        """Send one message. HTTP transports may deliver the reply to the receiver before returning."""
        ...

    async def wait_closed(self) -> str:
        """Return (with a reason) once the transport is dead."""
        ...

    @property
    def closed(self) -> bool: ...


class Liveness:
    """`closed` / `wait_closed` / `die` for transports that die by event (HTTP), not by process exit."""

    def __init__(self) -> None:
        self._dead = anyio.Event()
        self._reason = ""

    @property
    def closed(self) -> bool:
        return self._dead.is_set()

    async def wait_closed(self) -> str:
        await self._dead.wait()
        return self._reason

    def die(self, reason: str) -> None:
        if not self._dead.is_set():
            self._reason = reason
            self._dead.set()


def open_connection(
    server: ServerConfig, receiver: Receiver, era: EraMemory | None = None
) -> AbstractAsyncContextManager[Connection]:
    """Open the transport `server.transport` names (`era`: the runtime's probe memory for `auto`)."""
    if server.transport == "stdio":
        return _open_stdio(server, receiver, era)
    if server.transport == "streamable-http":
        return _open_streamable_http(server, receiver, era)
    from .sse import open_sse_connection

    return open_sse_connection(server, receiver)


def _open_stdio(
    server: ServerConfig, receiver: Receiver, era: EraMemory | None
) -> AbstractAsyncContextManager[Connection]:
    protocol = server.options.protocol
    if protocol != "legacy":
        from .modern_stdio import open_modern_stdio_connection

        memory = (era or EraMemory()) if protocol == "auto" else None
        return open_modern_stdio_connection(server, receiver, memory)
    from .stdio import open_stdio_connection

    return open_stdio_connection(server, receiver)


def _open_streamable_http(
    server: ServerConfig, receiver: Receiver, era: EraMemory | None
) -> AbstractAsyncContextManager[Connection]:
    protocol = server.options.protocol
    if protocol == "2026-07-28":
        from .modern_http import open_modern_http_connection

        return open_modern_http_connection(server, receiver)
    if protocol == "auto":
        from .modern_http import open_auto_http_connection

        return open_auto_http_connection(server, receiver, era or EraMemory())
    from .streamable_http import open_streamable_http_connection

    return open_streamable_http_connection(server, receiver)


__all__ = ["Connection", "EraMemory", "Receiver", "open_connection"]
