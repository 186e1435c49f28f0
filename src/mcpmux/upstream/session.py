"""One MCP session with an upstream: id remapping, pending requests, progress tokens, origins."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import orjson

from ..errors import UpstreamError
from ..jsonrpc import (
    CONNECTION_CLOSED,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    REQUEST_TIMEOUT,
    Message,
    MessageError,
    check_shape,
    error_response,
    notification,
    progress_token,
)
from ..protocol.constants import REQUEST_CANCELLED

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger("mcpmux.upstream")


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


DEFAULT_QUEUE_LIMIT = 1000


class InFlight:
    """Messages for one in-flight request, in order; the final response ends it.

    At most `limit` related messages wait for the client: one more (a client that does not read its
    stream while the upstream keeps talking) abandons the request with an error instead of growing.
    """

    __slots__ = (
        "client_id",
        "client_token",
        "early",
        "final",
        "items",
        "limit",
        "origin",
        "overflowed",
        "waiter",
    )

    def __init__(self, origin: Exchange | None, limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        self.origin = origin
        self.limit = limit
        self.overflowed = False
        self.client_id: Any = None
        # The origin's `finish_now`, when the response may be written from the reader as it arrives
        self.early: Callable[[Message], bool] | None = None
        self.client_token: Any = None
        self.final: Message | None = None
        self.items: deque[Message] | None = None
        self.waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def put(self, msg: Message) -> None:
        if self.final is not None:
            return
        items = self.items
        if items is None:
            items = self.items = deque()
        elif len(items) >= self.limit:
            self._overflow()
            return
        items.append(msg)
        self._wake()

    def _overflow(self) -> None:
        self.overflowed = True
        if self.items is not None:
            self.items.clear()
        client = getattr(self.origin, "client", None)
        log.warning(
            "client session %s: %d messages for one request are waiting for it (maxRequestQueue); "
            "the request is abandoned",
            getattr(client, "id", "-"),
            self.limit,
        )
        self.finish(
            error_response(
                None,
                INTERNAL_ERROR,
                f"mcpmux: more than {self.limit} messages for this request were waiting for the client "
                "(maxRequestQueue); the request was cancelled",
            )
        )

    def finish(self, msg: Message) -> None:
        if self.final is None:
            self.final = msg
            self._wake()


def wanted_by(origin: Exchange | None, msg: Message) -> bool:
    """Whether a related message goes to the request's client: there is one, and the message passes its
    own filter (its logging/setLevel threshold; a shared upstream logs at the most verbose level asked)."""
    if origin is None:
        return False
    if msg.get("method") != "notifications/message":
        return True
    return bool(origin.client.wants_log((msg.get("params") or {}).get("level")))


def busy(origin: Exchange | None) -> Any:
    """The client a request is for, counted busy until `done` (an idle session has no request waiting)."""
    if origin is None:
        return None
    client = origin.client
    client.busy += 1
    return client


def done(timer: asyncio.TimerHandle | None, client: Any) -> None:
    """A request ended: its timer stops, its client is one request less busy and active from now."""
    if timer is not None:
        timer.cancel()
    if client is not None:
        client.busy -= 1
        client.touch()  # idleness counts from the end of the last request


class Link:
    """The receiver a connection is given: cut once the connection is closed, so that whatever the
    transport still holds afterwards (until the collector finds it) no longer keeps the session alive,
    nor through it the client session and everything it queued."""

    __slots__ = ("target",)

    def __init__(self, target: Callable[[Message, Any], None]) -> None:
        self.target = target

    def __call__(self, msg: Message, related: Any) -> None:
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
    """Relays requests to one upstream session under ids of its own, and routes what comes back."""

    def __init__(
        self, name: str, events: SessionEvents, owner: Any = None, queue_limit: int = DEFAULT_QUEUE_LIMIT
    ) -> None:
        self.name = name
        self.queue_limit = queue_limit  # related messages one request may have waiting (maxRequestQueue)
        self.connection: Connection = _NOT_CONNECTED
        self.events = events
        self.owner = owner  # the ClientSession this upstream session is private to (isolated mode)
        self.pending: dict[int, InFlight] = {}
        self._next_id = 0
        self.closed_reason: str | None = None
        self.init_result: dict[str, Any] | None = None
        self.bad_messages = 0  # invalid messages from the upstream, dropped
        self._loop = asyncio.get_running_loop()

    # -- receiving ---------------------------------------------------------------------------

    def receive(self, msg: Message, related: Any) -> None:
        """The connection's receiver: called inline for every upstream message, by every transport.

        A message whose envelope mcpmux cannot rely on (not an object, an id that is not a string or an
        integer, params that are not an object, ...) is logged and dropped here: it never reaches the
        runtime. Whatever else goes wrong handling one message is logged and stays with that message.
        """
        try:
            if type(msg) is not dict:
                raise MessageError(INVALID_REQUEST, "not a JSON object")
            check_shape(msg)
        except MessageError as exc:
            self.bad_messages += 1
            log.warning("%s sent an invalid message (dropped): %s: %.200r", self.name, exc, msg)
            return
        try:
            self._dispatch(msg, related)
        except Exception:  # the transport's reader must survive, and the messages after this one
            log.exception("%s: handling a message from the server failed", self.name)

    def _dispatch(self, msg: Message, related: Any) -> None:
        if "method" not in msg:
            self._answered(msg)
            return
        if msg["method"] == "notifications/progress" and "id" not in msg:
            self._route_progress(msg)
            return
        in_flight = self.related_request(related)
        if "id" in msg:
            self.events.on_server_request(self, msg, in_flight)
        else:
            self.events.on_notification(self, msg, in_flight)

    def _answered(self, msg: Message) -> None:
        pending = self.pending.pop(msg.get("id"), None)  # type: ignore[arg-type]
        if pending is None:
            log.debug("%s answered an unknown request id %r", self.name, msg.get("id"))
            return
        if pending.early is not None and not pending.items and pending.final is None:
            msg["id"] = pending.client_id  # nothing else to relay first: answer from here
            try:
                pending.early(msg)
            except Exception:  # the reader must survive; the request's task answers instead
                log.exception("%s: writing a response early failed", self.name)
        pending.finish(msg)

    def _route_progress(self, msg: Message) -> None:
        params = msg.get("params") or {}
        token = params.get("progressToken")
        pending = self.pending.get(token) if type(token) is int else None
        if pending is None or pending.client_token is None:
            log.debug("%s sent progress for an unknown token", self.name)
            return
        pending.put(notification("notifications/progress", {**params, "progressToken": pending.client_token}))

    def related_request(self, related: Any) -> InFlight | None:
        """The in-flight request a server-initiated message belongs to, when it can be known.

        HTTP upstreams tell which request's stream carried the message. Otherwise it is known only
        when every in-flight request comes from the same downstream client session (the latest wins).
        """
        if type(related) is int:
            pending = self.pending.get(related)
            if pending is not None and pending.origin is not None:
                return pending
        found: InFlight | None = None
        for pending in self.pending.values():
            if pending.origin is None:
                continue
            if found is not None and pending.origin.client is not found.origin.client:  # type: ignore[union-attr]
                return None
            found = pending
        return found

    # -- sending -----------------------------------------------------------------------------

    async def request(
        self, msg: Message, origin: Exchange | None, timeout_seconds: float | None, early: bool = False
    ) -> Message:
        """Forward a request; return the upstream's response carrying the caller's id.

        Messages related to the request (progress, server-to-client requests and notifications the
        transport attributes to it) are emitted to `origin` in order before the response returns.
        With `early` (the caller will not change the response), an origin that can (`finish_now`) is
        given the upstream's response as soon as it arrives, when nothing related is still queued.
        """
        request_id = msg["id"]
        if self.closed_reason is not None:
            return self._closed_error(request_id)
        uid, pending, up = self._in_flight(msg, origin, early)
        timer = self._timer(uid, timeout_seconds)
        client = busy(origin)
        try:
            try:
                await self.connection.send(up, uid)
            except orjson.JSONEncodeError as exc:  # nested deeper than JSON can be written (254 levels)
                self.pending.pop(uid, None)
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
            self.pending.pop(uid, None)
            return error_response(request_id, exc.code, str(exc))
        except BaseException:
            if self.pending.pop(uid, None) is not None:
                await self._send_cancel(uid, "The client cancelled the request")
            raise
        finally:
            done(timer, client)
        if pending.overflowed:
            await self._abandon(uid)
        response = pending.final
        response["id"] = request_id
        return response

    def _in_flight(self, msg: Message, origin: Exchange | None, early: bool) -> tuple[int, InFlight, Message]:
        """Register a request under our next id: (that id, its InFlight, the message to send upstream)."""
        self._next_id += 1
        uid = self._next_id
        pending = InFlight(origin, self.queue_limit)
        if early:
            pending.early = getattr(origin, "finish_now", None)
            pending.client_id = msg["id"]
        up = {**msg, "id": uid}
        token = progress_token(msg)
        if token is not None:
            pending.client_token = token
            params = msg["params"]
            up["params"] = {**params, "_meta": {**params["_meta"], "progressToken": uid}}
        self.pending[uid] = pending
        return uid, pending, up

    def _timer(self, uid: int, timeout_seconds: float | None) -> asyncio.TimerHandle | None:
        if not timeout_seconds:
            return None
        return self._loop.call_later(timeout_seconds, self._expire, uid, timeout_seconds)

    async def _abandon(self, uid: int) -> None:
        """Too many messages for the request waited for its client (maxRequestQueue): cancel it upstream."""
        if self.pending.pop(uid, None) is not None:
            await self._send_cancel(uid, "The client is not reading the request's messages")

    def _expire(self, uid: int, timeout_seconds: float) -> None:
        pending = self.pending.pop(uid, None)
        if pending is None:
            return
        pending.finish(
            error_response(
                None, REQUEST_TIMEOUT, f"{self.name}: request timed out after {timeout_seconds:g}s"
            )
        )
        self.events.spawn(self._send_cancel, uid, "Request timed out")

    def cancel(self, uid: int, reason: str | None) -> bool:
        """The client cancelled: answer the waiter at once and tell the upstream."""
        pending = self.pending.pop(uid, None)
        if pending is None:
            return False
        pending.finish(error_response(None, REQUEST_CANCELLED, "Request cancelled"))
        self.events.spawn(self._send_cancel, uid, reason)
        return True

    async def _send_cancel(self, uid: int, reason: str | None) -> None:
        params: dict[str, Any] = {"requestId": uid}
        if reason:
            params["reason"] = reason
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            try:
                await self.connection.send(notification("notifications/cancelled", params))
            except Exception as exc:  # the upstream may be gone already; nothing to tell then
                log.debug("%s: could not send cancellation: %s", self.name, exc)

    async def notify(self, msg: Message) -> None:
        if self.closed_reason is None:
            await self.connection.send(msg)

    async def respond(self, msg: Message) -> None:
        """Send the answer to a server-to-client request back upstream."""
        if self.closed_reason is None:
            await self.connection.send(msg)

    def in_flight_for(self, client: Any) -> list[int]:
        return [uid for uid, p in self.pending.items() if p.origin is not None and p.origin.client is client]

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
        await self.connection.send(notification("notifications/initialized"))
        return result

    def close(self, reason: str) -> None:
        """The connection died: every waiting request gets an error naming the server, at once."""
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        owner = f" of client session {self.owner.id}" if self.owner is not None else ""
        log.debug("%s: upstream session%s closed: %s", self.name, owner, reason)
        pending, self.pending = self.pending, {}
        for p in pending.values():
            p.finish(self._closed_error(None))

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
