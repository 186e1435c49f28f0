"""What the upstream layer needs of a downstream client session, as an interface it owns.

The runtime hands what a server initiates (notifications, server-to-client requests) to client sessions
and opens private upstream sessions for them; it sees them only through `Downstream`, which the relay's
`ClientSession` provides, so that upstream/ imports nothing from relay/ (the dependency points down).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..jsonrpc import Message

if TYPE_CHECKING:
    from .session import UpstreamSession


class DownstreamRoute(Protocol):
    """The endpoint a client session is on: where notifications for its standalone stream go."""

    def on_upstream_notification(self, client: Any, runtime: Any, msg: Message) -> None: ...


class Queue(Protocol):
    """A client session's standalone stream (its outbox)."""

    def push(self, msg: Message) -> None: ...


class Downstream(Protocol):
    """One downstream client session, as far as the runtime looks at it."""

    @property
    def route(self) -> DownstreamRoute: ...

    @property
    def outbox(self) -> Queue: ...

    @property
    def capabilities(self) -> dict[str, Any]: ...

    @property
    def init_params(self) -> dict[str, Any]: ...

    @property
    def subscriptions(self) -> set[str]: ...

    @property
    def log_level(self) -> str | None: ...

    @property
    def closed(self) -> bool: ...

    @property
    def upstreams(self) -> dict[str, UpstreamSession]:
        """Its private (isolated) upstream sessions, by server."""
        ...

    @property
    def upstream_scopes(self) -> dict[str, Any]:
        """The cancel scopes that end those sessions, by server."""
        ...

    def wants_log(self, level: Any) -> bool: ...

    def supports(self, capability: str, sub: str | None = None) -> bool: ...

    def new_request_id(self) -> str: ...

    async def request_client(
        self,
        rid: str,
        method: str,
        params: Any,
        deliver: Callable[[Message], None] | None,
        timeout_seconds: float,
    ) -> Message:
        """Ask the client (under our id `rid`) and wait for its answer."""
        ...


__all__ = ["Downstream", "DownstreamRoute", "Queue"]
