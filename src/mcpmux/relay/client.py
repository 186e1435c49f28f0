"""One downstream client session: its identity, state, standalone outbox and requests to the client."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..config.model import TokenScope
from ..jsonrpc import INTERNAL_ERROR, METHOD_NOT_FOUND, Message, error_response, request
from ..protocol.constants import LOG_LEVELS, LOG_RANK
from ..protocol.translate import take_input_key

if TYPE_CHECKING:
    from ..upstream.session import UpstreamSession
    from .route import Route

log = logging.getLogger("mcpmux.relay")

OUTBOX_LIMIT = 1000
_client_request_ids = itertools.count(1)


def elicitation_mode(method: str, params: Any) -> str | None:
    """The mode of an elicitation/create request ("form" when it names none), else None."""
    if method != "elicitation/create":
        return None
    mode = params.get("mode") if isinstance(params, dict) else None
    return mode if isinstance(mode, str) else "form"


class Outbox:
    """Messages for the session's standalone stream (GET stream or legacy SSE stream), bounded.

    When `limit` messages wait, the oldest notification makes room (counted, logged); when none of them
    is a notification (responses and requests, which must not be lost silently), the outbox overflows:
    it closes with `overflowed` saying why, which ends the stream and the session.
    """

    def __init__(self, limit: int = OUTBOX_LIMIT) -> None:
        self.items: deque[Message] = deque()
        self.limit = limit
        self.waiter: asyncio.Future[None] | None = None
        self.dropped = 0
        self.closed = False
        self.overflowed: str | None = None
        self._deadline = 0.0  # when the current wait times out (loop time)
        self._timer: asyncio.TimerHandle | None = None
        # The open stream's writer, set by the web layer while a stream reads this outbox: `deliver`
        # writes through it at once when nothing is queued, instead of waking the stream's task.
        self.direct: Callable[[Message], Awaitable[None]] | None = None
        self.writing = False  # a write to the stream is under way (by `deliver` or by the reader)
        # Ends the open stream at once (set by the web layer while a stream reads this outbox): on
        # overflow the stream closes even when a write to a client that stopped reading is stuck.
        self.stop: Callable[[], Any] | None = None

    def push(self, msg: Message) -> None:
        if self.closed:
            return
        if len(self.items) >= self.limit and not self._make_room():
            return
        self.items.append(msg)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _make_room(self) -> bool:
        """Drop the oldest queued notification; overflow (and False) when every queued message matters."""
        items = self.items
        for index, queued in enumerate(items):
            if "id" not in queued:
                del items[index]
                self.dropped += 1
                if self.dropped in (1, 100, 10000):
                    log.warning(
                        "a client's stream is not being read; dropped %d notification(s)", self.dropped
                    )
                return True
        self.overflowed = (
            f"more than {self.limit} responses and requests were waiting for the client's stream "
            "(maxSessionQueue)"
        )
        log.warning("a client session's stream is closed: %s", self.overflowed)
        items.clear()
        self.close()
        if self.stop is not None:
            self.stop()
        return False

    async def deliver(self, msg: Message) -> None:
        """`push`, or, when the stream is open, idle and nothing is queued, write `msg` to it now.

        Order is kept: a message goes direct only when no other is queued or being written.
        """
        direct = self.direct
        if direct is None or self.writing or self.items:
            self.push(msg)
            return
        self.writing = True
        try:
            await direct(msg)
        except Exception:  # the stream broke under the write: queue it like any other message
            self.items.append(msg)
        finally:
            self.writing = False
            waiter = self.waiter
            if self.items and waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def take_all(self, timeout_seconds: float) -> list[Message] | None:
        """Everything queued, waiting up to `timeout_seconds` for something to arrive.

        Returns [] when the wait timed out, None once the session has ended; never returns while a
        `deliver` is writing (the caller writes what it gets). A busy stream drains many messages per
        wake-up, and its waits share one timer: a wait only moves the deadline forward, and the timer,
        when it fires early, re-arms itself for the current deadline.
        """
        while not self.items or self.writing:
            if self.closed and not self.items:
                return None
            loop = asyncio.get_running_loop()
            self._deadline = loop.time() + timeout_seconds
            if self._timer is None:
                self._timer = loop.call_at(self._deadline, self._on_timer, loop)
            waiter = self.waiter = loop.create_future()
            try:
                await waiter
            finally:
                self.waiter = None
            if not self.items and not self.writing:
                return None if self.closed else []
        items = list(self.items)
        self.items.clear()
        return items

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        waiter = self.waiter
        if waiter is None or waiter.done() or self.closed:
            return  # nobody waiting: the next wait arms a new timer
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._on_timer, loop)
        else:
            waiter.set_result(None)

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class ClientSession:
    """A downstream MCP session on one route, with everything the proxy keeps per client."""

    # a 2026 client's carrier (relay/modern.py): asked under a 2026 upstream's keys, told cache hints
    modern = False

    def __init__(
        self, session_id: str, route: Route, scope: TokenScope | None, queue_limit: int = OUTBOX_LIMIT
    ) -> None:
        self.id = session_id
        self.route = route
        self.scope = scope
        self.protocol_version: str | None = None
        self.capabilities: dict[str, Any] = {}
        self.client_info: dict[str, Any] = {}
        self.initialized = False
        self.log_level: str | None = None
        self.subscriptions: set[str] = set()
        self.upstreams: dict[str, UpstreamSession] = {}  # isolated upstream sessions, by server
        self.upstream_scopes: dict[str, Any] = {}  # cancel scopes that end those sessions
        self.outbox = Outbox(queue_limit)
        self.has_stream = False  # a standalone stream is currently reading the outbox
        self.sse_requests: Any = (
            None  # legacy SSE: tasks running this session's POSTed messages (None: stream closed)
        )
        self.init_params: dict[str, Any] = {}
        self._client_requests: dict[str, asyncio.Future[Message]] = {}
        self.last_active = route.clock.now()
        self.listened_until = 0.0  # cluster mode: a stream on another replica keeps it active until then
        self.busy = 0  # requests of this session waiting for an upstream (an idle session has none)
        self.closed = False

    def touch(self) -> None:
        self.last_active = self.route.clock.now()

    def wants_log(self, level: Any) -> bool:
        if self.log_level is None:
            return True
        return LOG_RANK.get(str(level), len(LOG_LEVELS)) >= LOG_RANK.get(self.log_level, 0)

    def supports(self, capability: str, sub: str | None = None) -> bool:
        cap = self.capabilities.get(capability)
        if cap is None:
            return False
        if sub is None:
            return True
        if capability == "elicitation" and isinstance(cap, dict) and not cap:
            return sub == "form"  # an empty elicitation capability means form mode
        return isinstance(cap, dict) and cap.get(sub) is not None

    async def request_client(
        self,
        rid: str,
        method: str,
        params: Any,
        deliver: Callable[[Message], None] | None,
        timeout_seconds: float,
    ) -> Message:
        """Send a server-to-client request (under our id `rid`) to this client and wait for its answer.

        `deliver` puts it on the originating request's stream; None means the standalone stream.
        The returned message is the client's response, still carrying `rid`.
        """
        if not self.modern:  # a 2026 upstream's key for it is for 2026 clients only
            params = take_input_key(params)[0]
        mode = elicitation_mode(method, params)
        if mode is not None and not self.supports("elicitation", mode):
            return error_response(
                rid, METHOD_NOT_FOUND, f"the client did not declare the elicitation.{mode} capability"
            )
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._client_requests[rid] = future
        msg = request(rid, method, params)
        try:
            (deliver or self.outbox.push)(msg)
            async with asyncio.timeout(timeout_seconds):
                return await future
        except TimeoutError:
            return error_response(
                rid, INTERNAL_ERROR, f"the client did not answer {method} in {timeout_seconds:g}s"
            )
        finally:
            self._client_requests.pop(rid, None)

    @staticmethod
    def new_request_id() -> str:
        return f"mcpmux-{next(_client_request_ids)}"

    def resolve(self, msg: Message) -> bool:
        """A response from the client to one of our requests."""
        future = self._client_requests.get(msg.get("id"))  # type: ignore[arg-type]
        if future is None or future.done():
            return False
        future.set_result(msg)
        return True

    def close(self) -> None:
        self.closed = True
        for scope in list(self.upstream_scopes.values()):
            scope.cancel()
        self.upstreams.clear()  # they refer back to this session (their owner): no cycle left behind
        for rid, future in list(self._client_requests.items()):
            if not future.done():
                future.set_result(error_response(rid, INTERNAL_ERROR, "the client session ended"))
        self.outbox.close()
