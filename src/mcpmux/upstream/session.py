"""One MCP session with an upstream: the I/O shell around `protocol.idmap` (send, wait, emit, time out)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import orjson

from ..core.counters import NOTIFICATION, REQUEST, RESPONSE, kind_of
from ..errors import UpstreamError
from ..jsonrpc import CONNECTION_CLOSED, INVALID_PARAMS, Message, error_response, notification
from ..protocol.idmap import (
    DEFAULT_QUEUE_LIMIT,
    Answered,
    Event,
    IdMap,
    Invalid,
    Notification,
    Pending,
    Progress,
    ServerRequest,
    Unknown,
)

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger("mcpmux.upstream")

NO_DEADLINE = float("inf")
# A request is due when its deadline is at most this far ahead: the loop's clock resolution (asyncio fires
# timers that early too; uvloop counts milliseconds), so the timer never fires just before it and spins.
CLOCK_SLACK_SECONDS = 0.001


class Exchange(Protocol):
    """The downstream request an upstream request was made for: where related messages go."""

    client: Any  # relay.client.ClientSession
    request_id: Any  # the client's id for the request

    async def emit(self, msg: Message) -> None: ...


class SessionEvents(Protocol):
    """What an upstream session reports to its owner (the server runtime)."""

    def on_notification(self, session: UpstreamSession, msg: Message, related: InFlight | None) -> None: ...

    def on_server_request(self, session: UpstreamSession, msg: Message, related: InFlight | None) -> None: ...

    def spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run `fn(*args)` in the owner's task group: the session starts no task of its own."""
        ...


class InFlight(Pending):
    """A request in flight (see `Pending`) whose task waits on a future (`waiter`) for what comes next,
    and its `deadline` (loop time; `NO_DEADLINE` without a timeout) for the session's timer."""

    __slots__ = ("deadline", "timeout")

    deadline: float
    timeout: float

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def finish(self, msg: Message) -> None:
        """`Pending.finish` with `_wake` inline: it runs for every response."""
        if self.final is None:
            self.final = msg
            waiter = self.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)


def wanted_by(origin: Exchange | None, msg: Message) -> bool:
    """Whether a related message goes to the request's client (a log message: only at its own level)."""
    if origin is None:
        return False
    if msg.get("method") != "notifications/message":
        return True
    return bool(origin.client.wants_log((msg.get("params") or {}).get("level")))


def done(client: Any) -> None:
    """A request ended: its client is one request less busy and active from now."""
    if client is not None:
        client.busy -= 1
        client.touch()  # idleness counts from the end of the last request


class Link:
    """A connection's receiver, cut at close: what the transport still holds keeps no session alive.

    With `received` (a `Traffic.received`), it counts each message by kind before delivering it.
    """

    __slots__ = ("received", "target")

    def __init__(self, target: Callable[[Message, Any], None], received: list[int] | None = None) -> None:
        self.target = target
        self.received = received

    def __call__(self, msg: Message, related: Any) -> None:
        received = self.received
        if received is not None:  # `counters.kind_of`, inline: it runs for every message received
            if "method" in msg:
                received[REQUEST if "id" in msg else NOTIFICATION] += 1
            else:
                received[RESPONSE] += 1
        self.target(msg, related)

    def cut(self) -> None:
        self.target = _ignore


def _ignore(msg: Message, related: Any) -> None:
    log.debug("a message arrived after its connection was closed (ignored)")


class _NotConnected:
    name = "-"
    closed = True

    async def send(self, msg: Message, related: Any = None) -> None:
        raise UpstreamError("-", "not connected")

    async def wait_closed(self) -> str:
        return "not connected"


_NOT_CONNECTED: Any = _NotConnected()


class UpstreamSession:
    """Relays requests to one upstream session under ids of its own (`IdMap`), and routes what comes back."""

    def __init__(
        self, name: str, events: SessionEvents, owner: Any = None, queue_limit: int = DEFAULT_QUEUE_LIMIT
    ) -> None:
        self.name = name
        self.queue_limit = queue_limit  # related messages one request may have waiting (maxRequestQueue)
        self.connection: Connection = _NOT_CONNECTED
        self.events = events
        self.owner = owner  # the ClientSession this upstream session is private to (isolated mode)
        self.ids: IdMap[InFlight] = IdMap()
        self.closed_reason: str | None = None
        self.init_result: dict[str, Any] | None = None
        self.bad_messages = 0  # invalid messages from the upstream, dropped
        # Messages sent, by kind (REQUEST/NOTIFICATION/RESPONSE): the owner's `Traffic.sent` once connected.
        self.sent = [0, 0, 0]
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None  # fires at the nearest deadline (`_arm`)
        self._timer_at = NO_DEADLINE

    @property
    def pending(self) -> dict[int, InFlight]:
        """The requests in flight, by our id."""
        return self.ids.pending

    # -- receiving ---------------------------------------------------------------------------

    def receive(self, msg: Message, related: Any) -> None:
        """The connection's receiver, called inline by every transport; it survives any one message."""
        try:
            event = self.ids.receive(msg, related)
            if isinstance(event, Answered):
                if event.early:  # nothing else to relay first: answer from here
                    try:
                        event.pending.early(event.msg)
                    except Exception:  # the reader must survive; the request's task answers instead
                        log.exception("%s: writing a response early failed", self.name)
                event.pending.finish(event.msg)
            elif isinstance(event, Progress):
                event.pending.put(event.msg)
            else:
                self._initiated(event)
        except Exception:  # the transport's reader must survive, and the messages after this one
            log.exception("%s: handling a message from the server failed", self.name)

    def _initiated(self, event: Event[InFlight]) -> None:
        """What the upstream initiated goes to the owner; what fits nothing is counted or logged."""
        if isinstance(event, Notification):
            self.events.on_notification(self, event.msg, event.related)
        elif isinstance(event, ServerRequest):
            self.events.on_server_request(self, event.msg, event.related)
        elif isinstance(event, Invalid):
            self.bad_messages += 1
            log.warning(
                "%s sent an invalid message (dropped): %s: %.200r", self.name, event.reason, event.msg
            )
        elif isinstance(event, Unknown):
            log.debug("%s sent a message for no request in flight (late, repeated or unknown)", self.name)

    # -- sending -----------------------------------------------------------------------------

    async def request(
        self, msg: Message, origin: Exchange | None, timeout_seconds: float | None, early: bool = False
    ) -> Message:
        """Forward a request: related messages go to `origin` in order, then the caller's response."""
        request_id = msg["id"]
        if self.closed_reason is not None:
            return self._closed_error(request_id)
        pending, up = self._start(msg, origin, timeout_seconds, early)
        uid, client = pending.uid, pending.client
        try:
            try:
                self.sent[REQUEST] += 1  # `_write`, inline: once per request
                await self.connection.send(up, uid)
            except orjson.JSONEncodeError as exc:  # nested deeper than JSON can be written (254 levels)
                self.ids.forget(uid)
                return error_response(request_id, INVALID_PARAMS, f"Invalid params: cannot be sent ({exc})")
            while pending.final is None or pending.items:
                items = pending.items
                if items:  # related messages first, even those that arrived just before the response
                    related_msg = items.popleft()
                    if wanted_by(origin, related_msg):
                        await origin.emit(related_msg)  # type: ignore[union-attr]
                else:
                    pending.waiter = self._loop.create_future()
                    await pending.waiter
        except UpstreamError as exc:
            self.ids.forget(uid)
            return error_response(request_id, exc.code, str(exc))
        except BaseException:
            await self._send(self.ids.abandon(uid, "The client cancelled the request"))
            raise
        finally:
            done(client)
        if pending.overflowed:
            await self._abandon(pending)
        response: Message = pending.final
        response["id"] = request_id
        return response

    def client_capabilities(self, uid: Any) -> dict[str, Any] | None:
        """The capabilities of the client whose request is in flight under our id `uid` (None: none)."""
        pending = self.ids.pending.get(uid)
        caps = getattr(pending.client, "capabilities", None) if pending is not None else None
        return caps if isinstance(caps, dict) else None

    def client_caches(self, uid: Any) -> bool:
        """Whether the result of the request in flight under our id `uid` may carry cache hints: a 2026
        client's request, or mcpmux's own (no client: mcpmux makes what clients see of it itself)."""
        pending = self.ids.pending.get(uid)
        if pending is None:
            return False
        return pending.client is None or getattr(pending.client, "modern", False) is True

    def _start(
        self, msg: Message, origin: Exchange | None, timeout_seconds: float | None, early: bool
    ) -> tuple[InFlight, Message]:
        """Put a request in flight: what to send upstream; its deadline, the session's timer moved up to it
        when it is the nearest; its client counted busy until `done` (an idle session has no request
        waiting); with `early`, the origin's path for answering before the request's handler returns
        (`finish_now`) goes with it."""
        pending = InFlight(origin, self.queue_limit, getattr(origin, "finish_now", None) if early else None)
        up = self.ids.start(msg, pending)
        pending.timeout = timeout_seconds or 0.0
        if timeout_seconds:
            deadline = pending.deadline = self._loop.time() + timeout_seconds
            if deadline < self._timer_at:
                self._arm(deadline)
        else:
            pending.deadline = NO_DEADLINE
        client = pending.client
        if client is not None:
            client.busy += 1
        return pending, up

    def _arm(self, when: float) -> None:
        """Set the session's one timer for `when`, the nearest deadline of its requests in flight.

        One timer per session, not one per request: it fires at the nearest deadline, times out every
        request that is due and is set again for the nearest one left (requests that ended meanwhile are
        no longer in flight: nothing to cancel when a request ends).
        """
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._expire_due)

    def _expire_due(self) -> None:
        self._timer, self._timer_at = None, NO_DEADLINE
        due = self._loop.time() + CLOCK_SLACK_SECONDS
        in_flight = self.ids.pending.values()
        for pending in [p for p in in_flight if p.deadline <= due]:
            self._expire(pending.uid, pending.timeout)
        nearest = min((p.deadline for p in in_flight), default=NO_DEADLINE)
        if nearest != NO_DEADLINE:
            self._arm(nearest)

    async def _abandon(self, pending: InFlight) -> None:
        """Too many messages for the request waited for its client (maxRequestQueue): cancel it upstream."""
        log.warning(
            "client session %s: %d messages for one request are waiting for it (maxRequestQueue); "
            "the request is abandoned",
            getattr(pending.client, "id", "-"),
            pending.limit,
        )
        await self._send(self.ids.abandon(pending.uid, "The client is not reading the request's messages"))

    def _expire(self, uid: int, timeout_seconds: float) -> None:
        notice = self.ids.expire(uid, f"{self.name}: request timed out after {timeout_seconds:g}s")
        if notice is not None:
            self.events.spawn(self._send, notice)

    def cancel(self, uid: int, reason: str | None) -> bool:
        """The client cancelled: answer the waiter at once and tell the upstream."""
        notice = self.ids.cancel(uid, reason)
        if notice is None:
            return False
        self.events.spawn(self._send, notice)
        return True

    async def _send(self, notice: Message | None) -> None:
        """Send a cancellation, shielded and bounded: the upstream may be gone already (nothing to tell)."""
        if notice is None:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            try:
                await self._write(notice)
            except Exception as exc:
                log.debug("%s: could not send cancellation: %s", self.name, exc)

    def _write(self, msg: Message) -> Awaitable[None]:
        """Send a message on the connection, counted by kind in `sent` (the caller awaits the send)."""
        self.sent[kind_of(msg)] += 1
        return self.connection.send(msg)

    async def notify(self, msg: Message) -> None:
        if self.closed_reason is None:
            await self._write(msg)

    async def respond(self, msg: Message) -> None:
        """Send the answer to a server-to-client request back upstream (once; not after it was cancelled)."""
        if self.closed_reason is None and self.ids.answer(msg):
            await self._write(msg)

    # -- lifecycle ---------------------------------------------------------------------------

    async def initialize(self, params: dict[str, Any], timeout_seconds: float) -> dict[str, Any]:
        """Run the MCP handshake; raise UpstreamError when the upstream refuses or does not answer."""
        response = await self.request(
            {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}, None, timeout_seconds
        )
        if "error" in response:
            err = response["error"]
            raise UpstreamError(
                self.name, f"initialize failed: {err.get('message')} (code {err.get('code')})"
            )
        result = response.get("result")
        if not isinstance(result, dict):
            raise UpstreamError(self.name, "initialize returned no result object")
        self.init_result = result
        await self._write(notification("notifications/initialized"))
        return result

    def close(self, reason: str) -> None:
        """The connection died: every waiting request gets an error naming the server, at once."""
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        if self._timer is not None:  # no request is left in flight to time out
            self._timer.cancel()
            self._timer, self._timer_at = None, NO_DEADLINE
        owner = f" of client session {self.owner.id}" if self.owner is not None else ""
        log.debug("%s: upstream session%s closed: %s", self.name, owner, reason)
        self.ids.close(CONNECTION_CLOSED, f"{self.name}: upstream unavailable ({reason})")

    def detach(self) -> None:
        """Drop the connection once it is closed: it refers back to this session (its receiver)."""
        self.connection = _NOT_CONNECTED

    def _closed_error(self, request_id: Any) -> Message:
        return error_response(
            request_id, CONNECTION_CLOSED, f"{self.name}: upstream unavailable ({self.closed_reason})"
        )

    @property
    def protocol_version(self) -> str | None:
        return (self.init_result or {}).get("protocolVersion")
