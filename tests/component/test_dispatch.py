"""relay.dispatch over a fake upstream: which client sessions get what a server initiates, on both routes."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from fake_upstream import WAIT_SECONDS, Call, FakeServer, fake_transport
from relay_harness import FAST_RESTART, connect, proxy_config, request, running, served, stdio

from mcpmux.relay.client import ClientSession
from mcpmux.relay.dispatch import Dispatch
from mcpmux.relay.merged_route import MergedRoute
from mcpmux.relay.server_route import ServerRoute

pytestmark = pytest.mark.anyio

Message = dict[str, Any]


def log_message(level: str) -> Message:
    return {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": level, "data": level}}


async def standalone(client: ClientSession) -> list[Message]:
    """What waits on the client's standalone stream (bounded wait for at least one message)."""
    batch = await client.outbox.take_all(WAIT_SECONDS)
    assert batch, "nothing arrived on the standalone stream"
    return batch


def resource_server() -> FakeServer:
    server = FakeServer("up", ["echo"], logging={}, resources={"subscribe": True})

    @server.on("logging/setLevel")
    @server.on("resources/subscribe")
    @server.on("resources/unsubscribe")
    async def accept(c: Call) -> Message:
        return {}

    return server


async def test_one_dispatch_per_server_is_shared_by_its_route_and_the_merged_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up", ["echo"], logging={})
    with fake_transport(monkeypatch, server):
        config = proxy_config({"up": stdio()})
        async with running(config) as runtimes:
            runtime = runtimes["up"]
            own = ServerRoute(runtime, config)
            merged = MergedRoute("", [(runtime, None)], config, (), False, "mcpmux")
            on_own, on_merged = await connect(own), await connect(merged)
            server.latest.deliver(log_message("info"))
            batches = [await standalone(c) for c in (on_own, on_merged)]
            merged.detach_listeners()
    assert own.dispatch is Dispatch.of(runtime) is runtime.sink
    assert Dispatch.of(runtime).attached == {on_own, on_merged}
    assert [[m["params"]["data"] for m in batch] for batch in batches] == [["info"], ["info"]]


async def test_log_messages_reach_each_client_by_its_own_level_and_the_upstream_logs_at_the_lowest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = resource_server()
    async with served(monkeypatch, server) as route:
        quiet, chatty = await connect(route), await connect(route)
        await request(route, quiet, "logging/setLevel", {"level": "error"})
        await request(route, chatty, "logging/setLevel", {"level": "debug"})
        for level in ("debug", "error"):
            server.latest.deliver(log_message(level))
        got = {name: await standalone(c) for name, c in (("quiet", quiet), ("chatty", chatty))}
    asked = [m["params"]["level"] for m in server.latest.sent if m.get("method") == "logging/setLevel"]
    assert asked == ["error", "debug"]  # the most verbose any attached client wants
    assert {k: [m["params"]["data"] for m in v] for k, v in got.items()} == {
        "quiet": ["error"],
        "chatty": ["debug", "error"],
    }


async def test_resource_updates_reach_only_subscribers_and_the_upstream_sees_one_subscribe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = resource_server()
    async with served(monkeypatch, server) as route:
        a, b, c = await connect(route), await connect(route), await connect(route)
        for client in (a, b):
            await request(route, client, "resources/subscribe", {"uri": "file:///x"})
        for uri in ("file:///y", "file:///x"):
            params = {"uri": uri}
            server.latest.deliver(
                {"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": params}
            )
        got = [await standalone(client) for client in (a, b)]
        server.latest.deliver(log_message("info"))  # c's first message is this one
        first_of_c = (await standalone(c))[0]
        counts = dict(route.dispatch.subscribers)
    assert [m.get("method") for m in server.latest.sent].count("resources/subscribe") == 1
    assert counts == {"file:///x": 2}  # two holders, one upstream subscription
    assert [[m["params"]["uri"] for m in batch] for batch in got] == [["file:///x"], ["file:///x"]]
    assert first_of_c["method"] == "notifications/message"


async def test_a_notification_that_belongs_to_a_request_rides_its_stream_not_the_standalone_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up", ["work"], logging={})

    @server.on("tools/call")
    async def work(c: Call) -> Message:
        c.notify("notifications/message", {"level": "info", "data": "working"})
        return {"content": []}

    async with served(monkeypatch, server) as route:
        client = await connect(route)
        _answer, origin = await request(route, client, "tools/call", {"name": "work"})
        queued = list(client.outbox.items)
    assert [m["params"]["data"] for m in origin.emitted] == ["working"]
    assert queued == []


async def test_a_server_request_no_client_request_came_with_is_refused_on_a_shared_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up")
    async with served(monkeypatch, server) as route:
        await connect(route, capabilities={"roots": {}})
        answer = await server.latest.ask("roots/list", None, None)
    assert answer["error"]["message"] == (
        "mcpmux: cannot tell which client roots/list is for (no client request is in flight)"
    )


async def test_on_an_isolated_session_the_owner_alone_is_asked_and_told_and_its_answer_goes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up", ["echo"], logging={})
    async with served(monkeypatch, server, sessionMode="isolated") as route:
        owner = await connect(route, capabilities={"roots": {}})
        other = await connect(route, capabilities={"roots": {}})
        private = server.connections[1]  # the owner's (0 is the primary)
        got: list[Message] = []
        async with anyio.create_task_group() as tg:

            async def ask() -> None:
                got.append(await private.ask("roots/list", None, None))

            tg.start_soon(ask)
            asked = (await standalone(owner))[0]
            route.handle_response(owner, {"jsonrpc": "2.0", "id": asked["id"], "result": {"roots": []}})
        private.deliver(log_message("info"))
        told = await standalone(owner)
        other_queue = list(other.outbox.items)
    assert asked["method"] == "roots/list" and str(asked["id"]).startswith("mcpmux-")
    assert got[0]["result"] == {"roots": []}
    assert [m["method"] for m in told] == ["notifications/message"]
    assert other_queue == []


async def test_a_request_the_server_cancels_is_cancelled_at_the_client_and_never_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up", ["echo"])
    async with served(monkeypatch, server, sessionMode="isolated") as route:
        client = await connect(route, capabilities={"sampling": {}})
        private = server.connections[1]
        private.deliver({"jsonrpc": "2.0", "id": "s9", "method": "sampling/createMessage", "params": {}})
        asked = (await standalone(client))[0]
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "s9"}}
        private.deliver(cancel)
        cancelled = (await standalone(client))[0]
        answered = [m for m in private.sent if m.get("id") == "s9"]
    assert cancelled["method"] == "notifications/cancelled"
    assert cancelled["params"] == {"requestId": asked["id"], "reason": "cancelled by the server"}
    assert answered == []


async def test_a_fresh_shared_session_gets_the_clients_log_level_and_subscriptions_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = resource_server()
    async with served(monkeypatch, server, restart=FAST_RESTART) as route:
        client = await connect(route)
        await request(route, client, "logging/setLevel", {"level": "warning"})
        await request(route, client, "resources/subscribe", {"uri": "file:///x"})
        first, reconnected = server.latest, server.opened
        first.die("the process exited")
        with anyio.fail_after(WAIT_SECONDS):
            await reconnected.wait()
        level = await server.latest.wait_sent(lambda m: m.get("method") == "logging/setLevel")
        subscribed = await server.latest.wait_sent(lambda m: m.get("method") == "resources/subscribe")
    assert level["params"] == {"level": "warning"}
    assert subscribed["params"] == {"uri": "file:///x"}


async def test_a_safe_request_whose_upstream_died_is_replayed_once_on_the_fresh_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up", ["echo"], prompts={})
    calls = 0

    @server.on("prompts/list")
    async def prompts(c: Call) -> Message | None:
        nonlocal calls
        calls += 1
        if calls == 2:  # the client's first try (1 is the catalog snapshot)
            c.conn.die("the process exited")
            return None
        return {"prompts": [{"name": "p"}]}

    async with served(monkeypatch, server, restart=FAST_RESTART) as route:
        client = await connect(route)
        answer, _ = await request(route, client, "prompts/list")
    assert answer["result"] == {"prompts": [{"name": "p"}]}
    assert len(server.connections) == 2
