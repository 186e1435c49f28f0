"""A fake upstream behind the transport seam (`upstream/connection.py`): an MCP server scripted in
process, for component tests of sessions, runtimes and routes without sockets, processes or sleeps.

`FakeServer` is the far side. Each connection opened on it (`FakeServer.open`, which has the signature of
`open_connection`) gets a `FakeConnection` whose `send` hands requests to the server's handlers (each in
a task of the connection's task group, so a handler may wait), answers of server-to-client requests to
the handler that asked, and records everything else. Handlers talk back through a `Call`: `notify`,
`progress` and `ask` deliver to the session's receiver as a transport would, attributed to the request
(`related=True`, as HTTP transports do) or not (as stdio does).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from itertools import count
from typing import Any

import anyio
import pytest

from mcpmux.config.model import ServerConfig
from mcpmux.upstream import runtime, supervisor

Message = dict[str, Any]
Handler = Callable[["Call"], Awaitable[Any]]
WAIT_SECONDS = 5.0  # the bound of every wait in these tests (they never come near it)


def tool(name: str) -> dict[str, Any]:
    return {"name": name, "description": f"the {name} tool", "inputSchema": {"type": "object"}}


class Call:
    """One request the fake server is handling, and the way to talk back while it runs."""

    def __init__(self, conn: FakeConnection, msg: Message) -> None:
        self.conn = conn
        self.msg = msg
        self.params: dict[str, Any] = msg.get("params") or {}
        self.cancelled = anyio.Event()

    @property
    def arguments(self) -> dict[str, Any]:
        return dict(self.params.get("arguments") or {})

    def notify(self, method: str, params: dict[str, Any] | None = None, *, related: bool = True) -> None:
        msg: Message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self.conn.deliver(msg, self.msg["id"] if related else None)

    def progress(self, progress: float) -> None:
        token = self.params["_meta"]["progressToken"]
        self.notify("notifications/progress", {"progressToken": token, "progress": progress})

    async def ask(
        self, method: str, params: dict[str, Any] | None = None, *, related: bool = True
    ) -> Message:
        """A server-to-client request; returns the answer the session sends back."""
        return await self.conn.ask(method, params, self.msg["id"] if related else None)


class FakeServer:
    """A scripted MCP server: `handlers` by method, beside defaults for the handshake and the lists."""

    def __init__(self, name: str = "up", tools: list[str] = ("echo",), **capabilities: Any) -> None:  # type: ignore[assignment]
        self.name = name
        self.tools = [tool(t) for t in tools]
        self.capabilities: dict[str, Any] = {"tools": {}, **capabilities}
        self.handlers: dict[str, Handler] = {
            "initialize": self._initialize,
            "tools/list": self._list_tools,
            "ping": _empty,
            "tools/call": _echo,
        }
        self.connections: list[FakeConnection] = []
        self.opened = anyio.Event()  # set by every new connection (replaced after each)

    def on(self, method: str) -> Callable[[Handler], Handler]:
        """Decorator: handle `method` with the decorated coroutine function (its return is the result)."""

        def register(handler: Handler) -> Handler:
            self.handlers[method] = handler
            return handler

        return register

    def hang(self, method: str) -> None:
        """`method` is never answered: its handler waits until the proxy cancels the request."""

        async def until_cancelled(c: Call) -> None:
            await c.cancelled.wait()

        self.handlers[method] = until_cancelled

    async def _initialize(self, call: Call) -> dict[str, Any]:
        return {
            "protocolVersion": call.params.get("protocolVersion"),
            "capabilities": self.capabilities,
            "serverInfo": {"name": self.name, "version": "1"},
        }

    async def _list_tools(self, call: Call) -> dict[str, Any]:
        return {"tools": self.tools}

    @property
    def latest(self) -> FakeConnection:
        return self.connections[-1]

    @asynccontextmanager
    async def open(
        self, server: ServerConfig, receiver: Callable[[Message, Any], None]
    ) -> AsyncIterator[Any]:
        """What `open_connection` does for a real transport: a live connection until the block ends."""
        async with anyio.create_task_group() as tg:
            conn = FakeConnection(self, server.name, receiver, tg)
            self.connections.append(conn)
            self.opened.set()
            self.opened = anyio.Event()
            try:
                yield conn
            finally:
                conn.die("closed by the proxy")
                tg.cancel_scope.cancel()


async def _empty(call: Call) -> dict[str, Any]:
    return {}


async def _echo(call: Call) -> dict[str, Any]:
    text = str(call.arguments.get("text", ""))
    return {"content": [{"type": "text", "text": f"{call.params.get('name')}: {text}"}]}


class FakeConnection:
    """The proxy's side of one fake connection: implements `upstream.connection.Connection`."""

    def __init__(
        self, server: FakeServer, name: str, receiver: Callable[[Message, Any], None], tg: Any
    ) -> None:
        self.server = server
        self.name = name
        self.receiver = receiver
        self.tg = tg
        self.sent: list[Message] = []  # everything the proxy sent, in order
        self.calls: dict[Any, Call] = {}  # requests being handled, by upstream id
        self._asked: dict[Any, Any] = {}  # our server-to-client request id -> its answer's stream
        self._ids = count(1)
        self._dead = anyio.Event()
        self._reason = ""
        self._changed = anyio.Event()

    # -- the seam ------------------------------------------------------------------------------

    async def send(self, msg: Message, related: Any = None) -> None:
        if self.closed:
            from mcpmux.errors import UpstreamError

            raise UpstreamError(self.name, "connection closed")
        self.sent.append(msg)
        self._note_change()
        if "method" not in msg:
            answer = self._asked.pop(msg.get("id"), None)
            if answer is not None:
                answer.send_nowait(msg)
            return
        if "id" in msg:
            self.tg.start_soon(self._serve, msg)
        elif msg["method"] == "notifications/cancelled":
            call = self.calls.get((msg.get("params") or {}).get("requestId"))
            if call is not None:
                call.cancelled.set()

    async def wait_closed(self) -> str:
        await self._dead.wait()
        return self._reason

    @property
    def closed(self) -> bool:
        return self._dead.is_set()

    # -- the server's side ---------------------------------------------------------------------

    def die(self, reason: str) -> None:
        """The transport dies (a crashed process, a dropped stream)."""
        if not self._dead.is_set():
            self._reason = reason
            self._dead.set()

    def deliver(self, msg: Message, related: Any = None) -> None:
        """What the transport's reader does with one message from the server."""
        if not self.closed:
            self.receiver(msg, related)

    async def ask(self, method: str, params: dict[str, Any] | None, related: Any) -> Message:
        rid = f"s{next(self._ids)}"
        send, receive = anyio.create_memory_object_stream[Message](1)
        self._asked[rid] = send
        msg: Message = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self.deliver(msg, related)
        with anyio.fail_after(WAIT_SECONDS), receive:
            return await receive.receive()

    async def _serve(self, msg: Message) -> None:
        call = Call(self, msg)
        self.calls[msg["id"]] = call
        handler = self.server.handlers.get(msg["method"])
        try:
            if handler is None:
                reply: Message = {"error": {"code": -32601, "message": f"Method not found: {msg['method']}"}}
            else:
                result = await handler(call)
                if result is None:  # the handler answers nothing (it was cancelled, or it hangs up)
                    return
                reply = result if "error" in result else {"result": result}
        finally:
            self.calls.pop(msg["id"], None)
        self.deliver({"jsonrpc": "2.0", "id": msg["id"], **reply}, msg["id"])

    # -- what tests wait for ---------------------------------------------------------------------

    def _note_change(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_sent(self, predicate: Callable[[Message], bool]) -> Message:
        """The first message sent so far or later that matches (bounded wait, no polling)."""
        with anyio.fail_after(WAIT_SECONDS):
            while True:
                for msg in self.sent:
                    if predicate(msg):
                        return msg
                await self._changed.wait()

    def methods(self) -> list[str]:
        return [m.get("method", "<response>") for m in self.sent]


@contextmanager
def fake_transport(monkeypatch: pytest.MonkeyPatch, *servers: FakeServer) -> Iterator[dict[str, FakeServer]]:
    """Every upstream connection a runtime opens (primary and isolated) goes to the fake server of its
    name: the one place these tests replace a real transport."""
    by_name = {s.name: s for s in servers}

    def open_fake(server: ServerConfig, receiver: Callable[[Message, Any], None], era: Any = None) -> Any:
        return by_name[server.name].open(server, receiver)

    monkeypatch.setattr(supervisor, "open_connection", open_fake)
    monkeypatch.setattr(runtime, "open_connection", open_fake)
    yield by_name


async def wait_for(predicate: Callable[[], bool], changed: Callable[[], anyio.Event]) -> None:
    """Wait (bounded) until `predicate()` holds, re-checking each time `changed()` fires."""
    with anyio.fail_after(WAIT_SECONDS):
        while not predicate():
            await changed().wait()
