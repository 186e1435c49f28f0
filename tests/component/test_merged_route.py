"""MergedRoute over fake upstreams: list fan-out, routing by namespaced name, scopes, members going away."""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio
import pytest
import relay_harness
from fake_upstream import Call, FakeServer
from relay_harness import FAST_RESTART, connect, names, request

from mcpmux.config.model import TokenScope, ToolFilter
from mcpmux.jsonrpc import INVALID_PARAMS

pytestmark = pytest.mark.anyio

Message = dict[str, Any]


# members restart at once when a test kills one
merged = partial(relay_harness.merged, restart=FAST_RESTART)


async def test_tools_list_fans_out_to_every_member_and_namespaces_the_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = FakeServer("a", ["echo", "only_a"]), FakeServer("b", ["echo"])
    async with merged(monkeypatch, a, b) as route:
        client = await connect(route)
        listed, _ = await request(route, client, "tools/list")
    assert names(listed) == ["a__echo", "a__only_a", "b__echo"]
    assert a.latest.methods().count("tools/list") == 2  # the catalog snapshot, then the client's list
    assert b.latest.methods().count("tools/list") == 2


async def test_a_call_by_namespaced_name_reaches_its_server_under_the_upstream_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = FakeServer("a", ["echo"]), FakeServer("b", ["echo"])
    async with merged(monkeypatch, a, b) as route:
        client = await connect(route)
        answer, _ = await request(
            route, client, "tools/call", {"name": "b__echo", "arguments": {"text": "x"}}
        )
        unknown, _ = await request(route, client, "tools/call", {"name": "c__echo"})
    assert answer["result"]["content"][0]["text"] == "echo: x"
    assert a.latest.methods().count("tools/call") == 0
    assert [m["params"]["name"] for m in b.latest.sent if m.get("method") == "tools/call"] == ["echo"]
    assert unknown["error"] == {"code": INVALID_PARAMS, "message": "Unknown tool: c__echo"}


async def test_a_token_scoped_to_one_server_lists_and_calls_only_that_servers_tools(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = FakeServer("a", ["echo"]), FakeServer("b", ["echo", "secret"])
    only_a = TokenScope("t-a", servers=("a",))
    some_of_b = TokenScope("t-b", tool_filter=ToolFilter("allow", ("b__echo",)))
    async with merged(monkeypatch, a, b, tokens=(only_a, some_of_b)) as route:
        client_a = await connect(route, only_a)
        client_b = await connect(route, some_of_b)
        listed_a, _ = await request(route, client_a, "tools/list")
        listed_b, _ = await request(route, client_b, "tools/list")
        refused, _ = await request(route, client_a, "tools/call", {"name": "b__echo"})
        hidden, _ = await request(route, client_b, "tools/call", {"name": "b__secret"})
    assert names(listed_a) == ["a__echo"]
    assert names(listed_b) == ["b__echo"]  # the allow list covers every published name
    assert refused["error"]["message"] == "Unknown tool: b__echo"
    assert hidden["error"]["message"] == "Unknown tool: b__secret"
    assert b.latest.methods().count("tools/call") == 0


async def test_a_member_that_fails_a_list_is_left_out_and_the_others_are_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = FakeServer("a", ["echo"]), FakeServer("b", ["echo"])
    async with merged(monkeypatch, a, b) as route:
        client = await connect(route)

        @b.on("tools/list")
        async def broken(c: Call) -> Message:
            return {"error": {"code": -32603, "message": "database down"}}

        listed, _ = await request(route, client, "tools/list")
    assert names(listed) == ["a__echo"]


async def test_paginated_members_are_followed_with_one_merged_cursor(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = FakeServer("a", ["one"]), FakeServer("b", ["echo"])

    @a.on("tools/list")
    async def two_pages(c: Call) -> Message:
        if c.params.get("cursor") == "p2":
            return {"tools": [{"name": "two", "inputSchema": {"type": "object"}}]}
        return {"tools": [{"name": "one", "inputSchema": {"type": "object"}}], "nextCursor": "p2"}

    async with merged(monkeypatch, a, b) as route:
        client = await connect(route)
        first, _ = await request(route, client, "tools/list")
        second, _ = await request(route, client, "tools/list", {"cursor": first["result"]["nextCursor"]})
    assert names(first) == ["a__one", "b__echo"]
    assert names(second) == ["a__two"] and "nextCursor" not in second["result"]
    assert b.latest.methods().count("tools/list") == 2  # b had no next page: not asked again


async def test_a_member_that_restarts_makes_its_clients_see_list_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a = FakeServer("a", ["echo"])
    async with merged(monkeypatch, a) as route:
        client = await connect(route)
        runtime = route.members[0].runtime
        reconnected = a.opened
        a.latest.die("crashed")
        with anyio.fail_after(5):
            await reconnected.wait()
        assert await runtime.wait_ready(5)
        batch = await client.outbox.take_all(1)
        listed, _ = await request(route, client, "tools/list")
    assert batch is not None
    assert {m["method"] for m in batch} == {
        "notifications/prompts/list_changed",
        "notifications/resources/list_changed",
        "notifications/tools/list_changed",
    }
    assert names(listed) == ["a__echo"]  # served by the new connection


async def test_calls_take_the_early_response_path_lists_which_the_route_rewrites_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a = FakeServer("a", ["echo"])
    async with merged(monkeypatch, a) as route:
        client = await connect(route)
        called, call_origin = await request(route, client, "tools/call", {"name": "a__echo"})
        _listed, list_origin = await request(route, client, "tools/list")
    assert call_origin.early == [called]  # written from the reader, under the client's id
    assert list_origin.early == []  # namespaced by the route first
