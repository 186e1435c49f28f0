"""ServerRoute and ServerRuntime over a fake upstream: handshake, filters, scopes, relaying, isolation."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from fake_upstream import Call, FakeServer, fake_transport
from relay_harness import FAST_RESTART, connect, names, proxy_config, request, running, served, stdio

from mcpmux.config.model import TokenScope, ToolFilter
from mcpmux.jsonrpc import CONNECTION_CLOSED, INVALID_PARAMS
from mcpmux.relay.server_route import ServerRoute

pytestmark = pytest.mark.anyio

Message = dict[str, Any]


async def test_a_client_is_initialized_with_the_upstreams_answer_under_the_routes_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up", ["echo"], prompts={})
    async with served(monkeypatch, server) as route:
        client = route.new_session(None)
        answer, _ = await request(route, client, "initialize", {"protocolVersion": "2025-06-18"})
    result = answer["result"]
    assert result["protocolVersion"] == "2025-06-18"
    assert result["serverInfo"]["name"] == "up"
    assert result["capabilities"]["prompts"] == {"listChanged": True}  # restarts are announced
    # the proxy's own handshake went first, then the catalog: the client's initialize is answered locally
    assert server.latest.methods() == [
        "initialize",
        "notifications/initialized",
        "tools/list",
        "prompts/list",
    ]


async def test_a_tool_call_is_relayed_and_answered_under_the_clients_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up", ["echo"])
    async with served(monkeypatch, server) as route:
        client = await connect(route)
        answer, _ = await request(route, client, "tools/call", {"name": "echo", "arguments": {"text": "hi"}})
    assert answer["result"]["content"][0]["text"] == "echo: hi"
    upstream = next(m for m in server.latest.sent if m.get("method") == "tools/call")
    assert upstream["id"] != answer["id"] and upstream["params"]["name"] == "echo"


async def test_the_tool_filter_hides_tools_and_refuses_their_calls_without_asking_upstream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up", ["read", "write", "delete"])
    async with served(monkeypatch, server, toolFilter={"mode": "block", "list": ["delete"]}) as route:
        client = await connect(route)
        listed, _ = await request(route, client, "tools/list")
        refused, _ = await request(route, client, "tools/call", {"name": "delete"})
    assert names(listed) == ["read", "write"]
    assert refused["error"] == {"code": INVALID_PARAMS, "message": "Unknown tool: delete"}
    assert [m["params"]["name"] for m in server.latest.sent if m.get("method") == "tools/call"] == []


async def test_a_scoped_token_sees_and_calls_only_its_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeServer("up", ["read", "write"])
    scope = TokenScope("t", tool_filter=ToolFilter("allow", ("up__read",)))
    async with served(monkeypatch, server) as route:
        client = await connect(route, scope)
        listed, _ = await request(route, client, "tools/list")
        allowed, _ = await request(route, client, "tools/call", {"name": "read"})
        refused, _ = await request(route, client, "tools/call", {"name": "write"})
    assert names(listed) == ["read"]
    assert "result" in allowed
    assert refused["error"]["message"] == "Unknown tool: write"


async def test_a_server_request_during_a_call_goes_to_that_client_and_its_answer_back_upstream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up", ["think"])

    @server.on("tools/call")
    async def think(c: Call) -> Message:
        answer = await c.ask("sampling/createMessage", {"messages": [], "maxTokens": 5})
        return {"content": [{"type": "text", "text": answer["result"]["content"]["text"]}]}

    async with served(monkeypatch, server) as route:
        client = await connect(route, capabilities={"sampling": {}})
        sampled = {"role": "assistant", "content": {"type": "text", "text": "42"}, "model": "m"}
        answer, origin = await request(route, client, "tools/call", {"name": "think"}, lambda m: sampled)
    asked = [m for m in origin.emitted if m.get("method") == "sampling/createMessage"]
    assert len(asked) == 1 and str(asked[0]["id"]).startswith("mcpmux-")  # our id, not the server's
    assert answer["result"]["content"][0]["text"] == "42"


async def test_a_server_request_for_a_capability_the_client_lacks_is_refused_to_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up", ["think"])

    @server.on("tools/call")
    async def think(c: Call) -> Message:
        answer = await c.ask("sampling/createMessage", {"messages": [], "maxTokens": 5})
        return {"content": [], "asked": answer}

    async with served(monkeypatch, server) as route:
        client = await connect(route)  # no sampling capability
        answer, origin = await request(route, client, "tools/call", {"name": "think"})
    assert origin.emitted == []
    assert (
        answer["result"]["asked"]["error"]["message"] == "the client did not declare the sampling capability"
    )


async def test_an_unrelated_notification_goes_to_the_standalone_stream_of_attached_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up", ["echo"], logging={})
    async with served(monkeypatch, server) as route:
        first, second = await connect(route), await connect(route)
        server.latest.deliver(
            {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info"}}
        )
        batches = [await c.outbox.take_all(1) for c in (first, second)]
    for batch in batches:
        assert batch is not None and [m["method"] for m in batch] == ["notifications/message"]


async def test_a_dead_upstream_answers_the_waiting_call_with_an_error_naming_it_and_is_reconnected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up", ["hang"])

    @server.on("tools/call")
    async def hang(c: Call) -> None:
        c.conn.die("the process exited with status 1")

    with fake_transport(monkeypatch, server):
        config = proxy_config({"up": stdio(restart=FAST_RESTART)})
        async with running(config) as runtimes:
            runtime = runtimes["up"]
            route = ServerRoute(runtime, config)
            client = await connect(route)
            first = server.latest
            reconnected = server.opened
            answer, _ = await request(route, client, "tools/call", {"name": "hang"})
            with anyio.fail_after(5):
                await reconnected.wait()
                await runtime.wait_ready(5)
            assert server.latest is not first and runtime.restarts == 1
    assert answer["error"]["code"] == CONNECTION_CLOSED
    assert answer["error"]["message"] == "up: upstream unavailable (the process exited with status 1)"


async def test_isolated_mode_gives_each_client_its_own_upstream_session_with_its_own_handshake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up", ["echo"])
    async with served(monkeypatch, server, sessionMode="isolated") as route:
        a = await connect(route, capabilities={"roots": {}})
        b = await connect(route)
        await request(route, a, "tools/call", {"name": "echo"})
        await request(route, b, "tools/call", {"name": "echo"})
        opened = len(server.connections)
        await route.close_session(a)
        with anyio.fail_after(5):
            await server.connections[1].wait_closed()
    assert opened == 3  # the primary, then one per client
    handshakes = [c.sent[0]["params"]["capabilities"] for c in server.connections[1:]]
    assert handshakes == [{"roots": {}}, {}]  # each with its own client's capabilities
    assert [c.methods().count("tools/call") for c in server.connections] == [0, 1, 1]


async def test_a_call_takes_the_early_response_path_unless_the_route_presents_the_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up", ["echo", "hidden"])
    async with served(monkeypatch, server, toolFilter={"mode": "block", "list": ["hidden"]}) as route:
        client = await connect(route)
        called, call_origin = await request(route, client, "tools/call", {"name": "echo"})
        _listed, list_origin = await request(route, client, "tools/list")
    assert call_origin.early == [called]
    assert list_origin.early == []  # filtered by the route first
