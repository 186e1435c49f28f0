"""What a server runtime reports about what its server initiates, and the sink interface that takes it.

The upstream layer knows nothing of downstream clients: a `ServerRuntime` turns what its sessions
receive unasked into these events and hands them to its `sink`, which the layer above provides
(`relay.dispatch.Dispatch` decides which client sessions get what). Until one is set, `NO_CLIENTS`
takes them: notifications go nowhere and the server's requests get an error (`mcpmux pins`, tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..jsonrpc import INTERNAL_ERROR, Message, error_response

if TYPE_CHECKING:
    from .session import InFlight, UpstreamSession


@dataclass(frozen=True, slots=True)
class Notified:
    """A notification from the server on `session` (not progress, which the session maps itself).

    `related` is the in-flight request it belongs to when the transport or the session can tell.
    """

    session: UpstreamSession
    msg: Message
    related: InFlight | None


@dataclass(frozen=True, slots=True)
class Asked:
    """A request from the server on `session` that a client must answer (sampling, elicitation, roots)."""

    session: UpstreamSession
    msg: Message
    related: InFlight | None


@dataclass(frozen=True, slots=True)
class Resumed:
    """A fresh shared session replaced a lost one (or the transport re-initialized it): it knows nothing
    of what the clients had set up (log level, resource subscriptions)."""

    session: UpstreamSession


class EventSink(Protocol):
    """Where a runtime's events go; the runtime runs `asked` and `resumed` in its own task group."""

    def notified(self, event: Notified) -> None:
        """Called inline from the transport's reader: must not block."""
        ...

    async def asked(self, event: Asked) -> Message | None:
        """The answer to send the server (its id is set by the runtime); None to send none."""
        ...

    async def resumed(self, event: Resumed) -> None: ...


class NoClients:
    """The sink of a runtime nothing downstream listens to."""

    def notified(self, event: Notified) -> None:
        return None

    async def asked(self, event: Asked) -> Message | None:
        method = event.msg.get("method")
        return error_response(None, INTERNAL_ERROR, f"mcpmux: no client can answer {method}")

    async def resumed(self, event: Resumed) -> None:
        return None


NO_CLIENTS = NoClients()

__all__ = ["NO_CLIENTS", "Asked", "EventSink", "NoClients", "Notified", "Resumed"]
