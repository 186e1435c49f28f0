"""Sans-IO id mapping of one upstream session: our ids, in-flight requests, progress tokens, cancels."""

from __future__ import annotations

from collections import deque
from typing import Any, Generic, TypeAlias, TypeVar

from ..jsonrpc import (
    INTERNAL_ERROR,
    REQUEST_TIMEOUT,
    Message,
    MessageError,
    check_initiated,
    check_response,
    error_response,
    is_key,
    notification,
)
from .constants import CANCELLED, PROGRESS, REQUEST_CANCELLED

DEFAULT_QUEUE_LIMIT = 1000  # related messages one request may have waiting for its client
SERVER_REQUESTS_TRACKED = 4096  # upstream-initiated requests remembered until answered (oldest forgotten)


class Pending:
    """One request in flight upstream: its related messages in order, then its final response.

    At most `limit` related messages wait for the client: one more (a client that does not read while the
    upstream keeps talking) abandons the request (`overflowed`) with an error instead of growing. `_wake`
    is the shell's hook, called when there is something new to take; here it does nothing.
    """

    __slots__ = (
        "client",
        "client_id",
        "client_token",
        "early",
        "final",
        "items",
        "limit",
        "origin",
        "overflowed",
        "uid",
        "waiter",
    )

    def __init__(self, origin: Any, limit: int = DEFAULT_QUEUE_LIMIT, early: Any = None) -> None:
        self.origin = origin  # the downstream request (opaque here), None for the proxy's own requests
        self.client: Any = origin.client if origin is not None else None  # compared by identity only
        self.limit = limit
        self.early = early  # opaque: set when the response may be written as soon as it arrives
        self.overflowed = False
        self.uid = 0
        self.client_id: Any = None
        self.client_token: Any = None
        self.final: Message | None = None
        self.items: deque[Message] | None = None
        self.waiter: Any = None  # the shell's, for `_wake` (a future its task waits on): opaque here

    def _wake(self) -> None:
        """Something new to take (a related message, or the final response): the shell overrides this."""

    def put(self, msg: Message) -> None:
        """Queue a related message for the client (dropped once the request has ended)."""
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
        self.finish(
            error_response(
                None,
                INTERNAL_ERROR,
                f"mcpmux: more than {self.limit} messages for this request were waiting for the client "
                "(maxRequestQueue); the request was cancelled",
            )
        )

    def finish(self, msg: Message) -> None:
        """The final response (the first one counts)."""
        if self.final is None:
            self.final = msg
            self._wake()


P = TypeVar("P", bound=Pending)


class Answered(Generic[P]):
    """The upstream answered `pending`; with `early`, `msg` already carries the client's id."""

    __slots__ = ("early", "msg", "pending")

    def __init__(self, pending: P, msg: Message, early: bool) -> None:
        self.pending = pending
        self.msg = msg
        self.early = early


class Progress(Generic[P]):
    """Progress for `pending`, rewritten to the client's token: queue it there."""

    __slots__ = ("msg", "pending")

    def __init__(self, pending: P, msg: Message) -> None:
        self.pending = pending
        self.msg = msg


class Notification(Generic[P]):
    """Any other notification from the upstream, with the request it belongs to when that is known."""

    __slots__ = ("msg", "related")

    def __init__(self, msg: Message, related: P | None) -> None:
        self.msg = msg
        self.related = related


class ServerRequest(Generic[P]):
    """A request from the upstream (sampling, elicitation, roots, ping), with its related request."""

    __slots__ = ("msg", "related")

    def __init__(self, msg: Message, related: P | None) -> None:
        self.msg = msg
        self.related = related


class Unknown:
    """A response or progress for no request in flight: late (after a cancel or timeout), twice, or never
    asked for. Dropped."""

    __slots__ = ("msg",)

    def __init__(self, msg: Message) -> None:
        self.msg = msg


class Invalid:
    """A message whose envelope cannot be relied on (or a request id the upstream already uses). Dropped."""

    __slots__ = ("msg", "reason")

    def __init__(self, msg: Any, reason: str) -> None:
        self.msg = msg
        self.reason = reason


Event: TypeAlias = Answered[P] | Progress[P] | Notification[P] | ServerRequest[P] | Unknown | Invalid


def cancelled(uid: int, reason: str | None) -> Message:
    """The `notifications/cancelled` that tells the upstream to stop working on our request `uid`."""
    params: dict[str, Any] = {"requestId": uid}
    if reason:
        params["reason"] = reason
    return notification(CANCELLED, params)


class IdMap(Generic[P]):
    """The id state of one upstream session: requests go out under ids of ours (unique whichever clients
    sent them), progress tokens likewise, and whatever comes back is matched to its request or dropped.

    A state machine in the manner of h11: its methods take parsed messages and return the message to send
    upstream (the transport serializes it once) and events for the I/O shell (`upstream/session.py`) to act
    on. Nothing here awaits, sleeps, reads a clock or touches a socket: timeouts are the shell's timers
    calling `expire`. Only what must change is touched: a request goes upstream as a shallow copy with our
    id (and our progress token when it has one); a response comes back as the same dict.
    """

    __slots__ = ("_next_id", "pending", "server_requests")

    def __init__(self) -> None:
        self.pending: dict[int, P] = {}  # our id -> the request in flight under it
        self.server_requests: dict[Any, None] = {}  # ids of upstream requests not answered yet, in order
        self._next_id = 0

    # -- client -> upstream ---------------------------------------------------------------------------

    def start(self, msg: Message, pending: P) -> Message:
        """Register `pending` for the request `msg` (fields checked) under our next id; returns what to send.

        The client's id and progress token stay with `pending`; the copy sent upstream carries ours (the
        same number for both, so a progress token of ours names its request).
        """
        self._next_id += 1
        uid = pending.uid = self._next_id
        pending.client_id = msg["id"]
        up = {**msg, "id": uid}
        params: Any = msg.get("params")
        meta: Any = params.get("_meta") if params else None  # `progress_token`, inline: once per request
        token = meta.get("progressToken") if meta else None
        if token is not None:
            pending.client_token = token
            up["params"] = {**params, "_meta": {**meta, "progressToken": uid}}
        self.pending[uid] = pending
        return up

    def find(self, client: Any, request_id: Any) -> int | None:
        """Our id for the request `request_id` of `client` in flight (ids of different clients may clash)."""
        if client is None:
            return None
        kind = type(request_id)  # 1 is not "1" (nor True)
        for uid, pending in self.pending.items():
            if (
                pending.client is client
                and pending.client_id == request_id
                and type(pending.client_id) is kind
            ):
                return uid
        return None

    def forget(self, uid: int) -> P | None:
        """Stop tracking `uid` without telling the upstream (it never got the request, or is gone)."""
        return self.pending.pop(uid, None)

    def cancel(self, uid: int, reason: str | None) -> Message | None:
        """The client cancelled: its request ends with -32800 now; returns the notification for the upstream
        (None when the request is no longer in flight: answered, timed out or cancelled already)."""
        pending = self.pending.pop(uid, None)
        if pending is None:
            return None
        pending.finish(error_response(None, REQUEST_CANCELLED, "Request cancelled"))
        return cancelled(uid, reason)

    def expire(self, uid: int, message: str) -> Message | None:
        """The request's time is up: it ends with a timeout error; returns the notification to send."""
        pending = self.pending.pop(uid, None)
        if pending is None:
            return None
        pending.finish(error_response(None, REQUEST_TIMEOUT, message))
        return cancelled(uid, "Request timed out")

    def abandon(self, uid: int, reason: str) -> Message | None:
        """The request's waiter is gone (its client left or stopped reading): only the upstream is told."""
        if self.pending.pop(uid, None) is None:
            return None
        return cancelled(uid, reason)

    def close(self, code: int, message: str) -> None:
        """The upstream session ended: every request in flight ends with this error, at once."""
        pending, self.pending = self.pending, {}
        self.server_requests.clear()
        for p in pending.values():
            p.finish(error_response(None, code, message))

    # -- upstream -> client ---------------------------------------------------------------------------

    def receive(self, msg: Any, related: Any) -> Event[P]:
        """Classify one message from the upstream (`related`: our id of the request whose HTTP response
        stream carried it, when the transport knows) and update the table."""
        if type(msg) is not dict:
            return Invalid(msg, "not a JSON object")
        initiated = "method" in msg
        try:
            (check_initiated if initiated else check_response)(msg)  # `check_shape`, its branch known
        except MessageError as exc:
            return Invalid(msg, str(exc))
        if initiated:
            return self._initiated(msg, related)
        rid = msg["id"]
        pending = self.pending.pop(rid, None) if type(rid) is int else None
        if pending is None:  # late (after a cancel or timeout), repeated, or never asked for
            return Unknown(msg)
        early = pending.early is not None and not pending.items and pending.final is None
        if early:  # nothing related waits before it: the shell may write it out at once
            msg["id"] = pending.client_id
        return Answered(pending, msg, early)

    def _initiated(self, msg: Message, related: Any) -> Event[P]:
        """A request or notification from the upstream; progress comes back under the client's token."""
        if "id" in msg:
            return self._server_request(msg, related)
        method = msg["method"]
        if method == PROGRESS:
            params = msg.get("params") or {}
            token = params.get("progressToken")
            pending = self.pending.get(token) if type(token) is int else None
            if pending is None or pending.client_token is None:  # never asked for, or the request ended
                return Unknown(msg)
            return Progress(
                pending, notification(PROGRESS, {**params, "progressToken": pending.client_token})
            )
        if method == CANCELLED:  # the upstream gave up one of its own requests: its answer is not wanted
            rid = (msg.get("params") or {}).get("requestId")
            if is_key(rid):
                self.server_requests.pop(rid, None)
        return Notification(msg, self.related(related))

    def _server_request(self, msg: Message, related: Any) -> ServerRequest[P] | Invalid:
        rid = msg["id"]
        known = self.server_requests
        if rid in known:
            return Invalid(msg, f"request id {rid!r} is still in use by an earlier request of the server")
        known[rid] = None
        if len(known) > SERVER_REQUESTS_TRACKED:
            del known[next(iter(known))]
        return ServerRequest(msg, self.related(related))

    def answer(self, msg: Message) -> bool:
        """Whether the answer `msg` to a request of the upstream goes out: once per request, never after
        the upstream cancelled it."""
        rid = msg.get("id")
        if not is_key(rid) or rid not in self.server_requests:
            return False
        del self.server_requests[rid]
        return True

    def related(self, related: Any) -> P | None:
        """The in-flight request an upstream-initiated message belongs to, when it can be known.

        HTTP upstreams tell which request's stream carried the message. Otherwise it is known only when
        every in-flight request comes from the same downstream client (the latest wins).
        """
        if type(related) is int:
            pending = self.pending.get(related)
            if pending is not None and pending.client is not None:
                return pending
        found: P | None = None
        for pending in self.pending.values():
            if pending.client is None:
                continue
            if found is not None and pending.client is not found.client:
                return None
            found = pending
        return found
