"""UpstreamSession over a fake transport: ids, progress, related messages, cancel, timeout, handshake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from fake_upstream import Call, FakeConnection, FakeServer
from relay_harness import proxy_config, stdio

from mcpmux.errors import UpstreamError
from mcpmux.jsonrpc import CONNECTION_CLOSED, REQUEST_TIMEOUT
from mcpmux.protocol.constants import REQUEST_CANCELLED
from mcpmux.upstream.session import InFlight, UpstreamSession

pytestmark = pytest.mark.anyio

Message = dict[str, Any]


class Events:
    """The session's owner, as the runtime is: related messages go to their request, the rest is kept."""

    def __init__(self, tg: Any) -> None:
        self.tg = tg
        self.notifications: list[tuple[Message, InFlight | None]] = []
        self.server_requests: list[tuple[Message, InFlight | None]] = []
        self.asked = anyio.Event()

    def on_notification(self, session: UpstreamSession, msg: Message, related: InFlight | None) -> None:
        if related is not None:
            related.put(msg)
        self.notifications.append((msg, related))

    def on_server_request(self, session: UpstreamSession, msg: Message, related: InFlight | None) -> None:
        self.server_requests.append((msg, related))
        self.asked.set()

    def spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        self.tg.start_soon(fn, *args)


class Client:
    """A downstream client session as far as the upstream session looks at one."""

    def __init__(self, name: str) -> None:
        self.id = name
        self.busy = 0

    def touch(self) -> None:
        pass

    def wants_log(self, level: Any) -> bool:
        return True


class Origin:
    """The downstream request: what the session emits on its stream, in order."""

    def __init__(self, client: Client, request_id: Any) -> None:
        self.client = client
        self.request_id = request_id
        self.emitted: list[Message] = []

    async def emit(self, msg: Message) -> None:
        self.emitted.append(msg)


@asynccontextmanager
async def session_on(server: FakeServer) -> AsyncIterator[tuple[UpstreamSession, FakeConnection, Events]]:
    config = proxy_config({"up": stdio()}).servers["up"]
    async with anyio.create_task_group() as tg:
        events = Events(tg)
        session = UpstreamSession("up", events)
        async with server.open(config, session.receive) as conn:
            session.connection = conn
            yield session, conn, events


def call(request_id: Any, name: str = "echo", **params: Any) -> Message:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": name, **params}}


async def test_requests_go_upstream_under_the_sessions_own_ids_and_come_back_under_the_clients() -> None:
    server = FakeServer()
    release = anyio.Event()

    @server.on("tools/call")
    async def held(c: Call) -> Message:
        await release.wait()
        return {"content": [], "echo": c.arguments}

    async with session_on(server) as (session, conn, _), anyio.create_task_group() as tg:
        answers: dict[str, Message] = {}

        async def send(who: str) -> None:
            origin = Origin(Client(who), 41)
            answers[who] = await session.request(call(41, arguments={"who": who}), origin, 5)

        tg.start_soon(send, "a")
        tg.start_soon(send, "b")
        await conn.wait_sent(lambda m: len([s for s in conn.sent if s.get("method") == "tools/call"]) == 2)
        upstream_ids = [m["id"] for m in conn.sent if m.get("method") == "tools/call"]
        release.set()
    assert len(set(upstream_ids)) == 2 and 41 not in upstream_ids  # both clients said 41
    assert answers["a"]["id"] == 41 and answers["a"]["result"]["echo"] == {"who": "a"}
    assert answers["b"]["id"] == 41 and answers["b"]["result"]["echo"] == {"who": "b"}
    assert not session.pending


async def test_progress_goes_out_under_a_token_of_ours_and_reaches_the_client_under_its_own() -> None:
    server = FakeServer()

    @server.on("tools/call")
    async def with_progress(c: Call) -> Message:
        c.progress(1)
        c.progress(2)
        return {"content": []}

    async with session_on(server) as (session, conn, _):
        origin = Origin(Client("a"), "r1")
        answer = await session.request(call("r1", _meta={"progressToken": "client-token"}), origin, 5)
    upstream = next(m for m in conn.sent if m.get("method") == "tools/call")
    assert upstream["params"]["_meta"]["progressToken"] == upstream["id"]  # ours, not the client's
    assert [m["params"]["progressToken"] for m in origin.emitted] == ["client-token", "client-token"]
    assert [m["params"]["progress"] for m in origin.emitted] == [1, 2]
    assert answer == {"jsonrpc": "2.0", "id": "r1", "result": {"content": []}}


async def test_a_related_message_reaches_its_request_first_an_unattributed_one_only_if_clear() -> None:
    server = FakeServer()

    @server.on("tools/call")
    async def chatty(c: Call) -> Message | None:
        if c.arguments.get("who") == "b":  # stays in flight: a second client
            await c.cancelled.wait()
            return None
        c.notify("notifications/message", {"level": "info", "data": "on the request"})
        c.notify("notifications/message", {"level": "info", "data": "unattributed"}, related=False)
        return {"content": []}

    async with session_on(server) as (session, conn, events), anyio.create_task_group() as tg:
        a, b = Origin(Client("a"), 7), Origin(Client("b"), 8)
        tg.start_soon(session.request, call(8, arguments={"who": "b"}), b, 5)
        await conn.wait_sent(lambda m: m.get("method") == "tools/call")
        answer = await session.request(call(7, arguments={"who": "a"}), a, 5)
        tg.cancel_scope.cancel()
    assert "result" in answer
    assert [m["params"]["data"] for m in a.emitted] == ["on the request"]
    assert b.emitted == []
    # with two clients' requests in flight, a message the transport does not attribute belongs to none
    assert [(m["params"]["data"], r is not None) for m, r in events.notifications] == [
        ("on the request", True),
        ("unattributed", False),
    ]


async def test_an_unattributed_message_goes_to_the_request_of_the_only_client_in_flight() -> None:
    server = FakeServer()

    @server.on("tools/call")
    async def stdio_like(c: Call) -> Message:
        c.notify("notifications/message", {"level": "info", "data": "from stdio"}, related=False)
        return {"content": []}

    async with session_on(server) as (session, _, _events):
        origin = Origin(Client("a"), 7)
        await session.request(call(7), origin, 5)
    assert [m["params"]["data"] for m in origin.emitted] == ["from stdio"]


async def test_a_server_request_is_reported_with_the_request_it_belongs_to_and_its_answer_goes_back() -> None:
    server = FakeServer()

    @server.on("tools/call")
    async def asks(c: Call) -> Message:
        answer = await c.ask("roots/list")
        return {"content": [], "roots": answer["result"]}

    async with session_on(server) as (session, conn, events), anyio.create_task_group() as tg:
        origin = Origin(Client("a"), 3)
        answers: list[Message] = []

        async def ask() -> None:
            answers.append(await session.request(call(3), origin, 5))

        tg.start_soon(ask)
        await conn.wait_sent(lambda m: m.get("method") == "tools/call")
        with anyio.fail_after(5):
            await events.asked.wait()
        msg, related = events.server_requests[0]
        assert msg["method"] == "roots/list" and related is not None and related.origin is origin
        await session.respond({"jsonrpc": "2.0", "id": msg["id"], "result": {"roots": ["r"]}})
    assert answers[0]["result"]["roots"] == {"roots": ["r"]}


async def test_a_client_that_gives_up_tells_the_upstream_with_notifications_cancelled() -> None:
    server = FakeServer()
    seen = anyio.Event()

    @server.on("tools/call")
    async def forever(c: Call) -> None:
        await c.cancelled.wait()
        seen.set()

    async with session_on(server) as (session, conn, _):
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(session.request, call(9), Origin(Client("a"), 9), 5)
                await conn.wait_sent(lambda m: m.get("method") == "tools/call")
                scope.cancel()
        with anyio.fail_after(5):
            await seen.wait()
    uid = next(m["id"] for m in conn.sent if m.get("method") == "tools/call")
    cancel = next(m for m in conn.sent if m.get("method") == "notifications/cancelled")
    assert cancel["params"] == {"requestId": uid, "reason": "The client cancelled the request"}
    assert not session.pending


async def test_cancel_answers_the_waiting_request_at_once_and_forwards_the_reason() -> None:
    server = FakeServer()
    server.hang("tools/call")

    async with session_on(server) as (session, conn, _), anyio.create_task_group() as tg:
        answers: list[Message] = []

        async def ask() -> None:
            answers.append(await session.request(call("x"), Origin(Client("a"), "x"), 5))

        tg.start_soon(ask)
        sent = await conn.wait_sent(lambda m: m.get("method") == "tools/call")
        assert session.cancel(sent["id"], "user pressed stop")
        cancel = await conn.wait_sent(lambda m: m.get("method") == "notifications/cancelled")
    assert answers[0]["id"] == "x" and answers[0]["error"]["code"] == REQUEST_CANCELLED
    assert cancel["params"] == {"requestId": sent["id"], "reason": "user pressed stop"}
    assert not session.cancel(sent["id"], None)  # once only


async def test_a_request_past_its_timeout_gets_an_error_naming_the_server_and_is_cancelled_upstream() -> None:
    # No clock can be injected into the session's timer (loop.call_later): the timeout is short and the
    # server never answers, so the outcome does not depend on timing, only the wait does.
    server = FakeServer()
    server.hang("tools/call")

    async with session_on(server) as (session, conn, _):
        answer = await session.request(call(5), Origin(Client("a"), 5), 0.05)
        cancel = await conn.wait_sent(lambda m: m.get("method") == "notifications/cancelled")
    assert answer["id"] == 5 and answer["error"]["code"] == REQUEST_TIMEOUT
    assert answer["error"]["message"] == "up: request timed out after 0.05s"
    assert cancel["params"]["reason"] == "Request timed out"


async def test_each_request_times_out_at_its_own_deadline_under_the_sessions_one_timer() -> None:
    # One timer per session, set for the nearest deadline: a later request with a shorter timeout moves
    # it up, and after it fires it is set again for the next one; a request still within its own
    # timeout is not touched. Outcomes do not depend on timing (the long timeout is far away).
    server = FakeServer()
    server.hang("tools/call")

    async with session_on(server) as (session, conn, _), anyio.create_task_group() as tg:
        answers: dict[str, Message] = {}

        async def ask(request_id: str, seconds: float) -> None:
            answers[request_id] = await session.request(
                call(request_id), Origin(Client("a"), request_id), seconds
            )

        tg.start_soon(ask, "long", 600.0)
        await conn.wait_sent(lambda m: m.get("params", {}).get("name") == "echo")
        for short in ("short1", "short2"):  # the second one starts after the first one's timer fired
            await ask(short, 0.05)
            assert answers[short]["error"]["message"] == "up: request timed out after 0.05s"
        assert "long" not in answers and len(session.pending) == 1  # still in flight, its timer set
        tg.cancel_scope.cancel()
    cancels = [m for m in conn.sent if m.get("method") == "notifications/cancelled"]
    assert [m["params"]["reason"] for m in cancels].count("Request timed out") == 2


async def test_the_handshake_sends_initialize_then_initialized_and_keeps_the_result() -> None:
    server = FakeServer(prompts={})
    async with session_on(server) as (session, conn, _):
        result = await session.initialize({"protocolVersion": "2025-06-18", "capabilities": {}}, 5)
        await conn.wait_sent(lambda m: m.get("method") == "notifications/initialized")
    assert conn.methods() == ["initialize", "notifications/initialized"]
    assert result["capabilities"] == {"tools": {}, "prompts": {}}
    assert session.protocol_version == "2025-06-18" and session.init_result == result


async def test_a_refused_handshake_raises_an_error_naming_the_server_and_the_reason() -> None:
    server = FakeServer()

    @server.on("initialize")
    async def refuse(c: Call) -> Message:
        return {"error": {"code": -32602, "message": "unsupported version"}}

    async with session_on(server) as (session, conn, _):
        with pytest.raises(UpstreamError, match="up: initialize failed: unsupported version"):
            await session.initialize({"protocolVersion": "1999-01-01"}, 5)
    assert "notifications/initialized" not in conn.methods()


async def test_closing_answers_every_waiting_request_with_an_error_naming_the_server() -> None:
    server = FakeServer()
    server.hang("tools/call")

    async with session_on(server) as (session, conn, _), anyio.create_task_group() as tg:
        answers: list[Message] = []

        async def ask(n: int) -> None:
            answers.append(await session.request(call(n), Origin(Client("a"), n), 5))

        tg.start_soon(ask, 1)
        tg.start_soon(ask, 2)
        await conn.wait_sent(lambda m: len(session.pending) == 2)
        session.close("the process exited")
    assert sorted(a["id"] for a in answers) == [1, 2]
    for answer in answers:
        assert answer["error"]["code"] == CONNECTION_CLOSED
        assert answer["error"]["message"] == "up: upstream unavailable (the process exited)"
    closed = await session.request(call(3), Origin(Client("a"), 3), 5)
    assert closed["error"]["code"] == CONNECTION_CLOSED  # later requests too, without sending


async def test_an_answer_to_a_server_request_goes_upstream_once_and_not_after_the_server_cancelled_it() -> (
    None
):
    async with session_on(FakeServer()) as (session, conn, events):
        conn.deliver({"jsonrpc": "2.0", "id": "s1", "method": "roots/list"})
        conn.deliver({"jsonrpc": "2.0", "id": "s2", "method": "roots/list"})
        conn.deliver({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "s2"}})
        for rid in ("s1", "s1", "s2", "never-asked"):
            await session.respond({"jsonrpc": "2.0", "id": rid, "result": {"roots": []}})
    assert [m["id"] for m in conn.sent] == ["s1"]  # one answer, to s1 only
    assert [m["id"] for m, _ in events.server_requests] == ["s1", "s2"]


async def test_a_server_request_reusing_an_id_still_in_flight_is_dropped_and_counted() -> None:
    async with session_on(FakeServer()) as (session, conn, events):
        conn.deliver({"jsonrpc": "2.0", "id": 7, "method": "roots/list"})
        conn.deliver({"jsonrpc": "2.0", "id": 7, "method": "sampling/createMessage", "params": {}})
        await session.respond({"jsonrpc": "2.0", "id": 7, "result": {"roots": []}})
        conn.deliver({"jsonrpc": "2.0", "id": 7, "method": "roots/list"})  # answered: the id is free again
    assert [m["method"] for m, _ in events.server_requests] == ["roots/list", "roots/list"]
    assert session.bad_messages == 1


async def test_a_late_answer_after_a_cancel_and_a_repeated_answer_are_dropped_quietly() -> None:
    server = FakeServer()

    @server.on("tools/call")
    async def twice(c: Call) -> Message:
        c.conn.deliver({"jsonrpc": "2.0", "id": c.msg["id"], "result": {"n": 1}}, c.msg["id"])
        return {"n": 2}  # the fake server answers again: a second response for the same id

    async with session_on(server) as (session, conn, events):
        answer = await session.request(call(1), Origin(Client("a"), 1), 5)
        await conn.wait_sent(lambda m: m.get("method") == "tools/call")
        assert answer == {"jsonrpc": "2.0", "id": 1, "result": {"n": 1}}
        conn.deliver({"jsonrpc": "2.0", "id": 999, "result": {}})  # never asked
        follow = await session.request(call(2), Origin(Client("a"), 2), 5)
    assert follow["id"] == 2 and follow["result"] == {"n": 1}
    assert session.bad_messages == 0 and not events.notifications and not session.pending
