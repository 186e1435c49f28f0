"""Per-token scopes: what a token may not use is absent from its lists and refused like an unknown tool."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import httpx2
import pytest
from merged_kit import colliding_server, raw_client, raw_tool_names

from harness import ProxyProcess, running_proxy

pytestmark = pytest.mark.anyio

BOUND_SECONDS = 20
TOKENS = [
    "full",
    {"token": "only-a", "servers": ["a"]},
    {
        "token": "picked",
        "servers": ["a", "b"],
        "toolFilter": {"mode": "allow", "list": ["a__echo", "b__who*"]},
    },
    {"token": "no-slow", "toolFilter": {"mode": "block", "list": ["*__slow"]}},
    {"token": "elsewhere", "servers": ["zzz"]},
]


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    config = {
        "mcpProxy": {"name": "mux", "options": {"authTokens": TOKENS}},
        "mcpServers": {"a": colliding_server(), "b": colliding_server()},
    }
    with running_proxy(config, tmp_path_factory.mktemp("scopes")) as running:
        yield running


async def tool_names(url: str, token: str) -> set[str]:
    async with raw_client(url, token) as client:
        return await raw_tool_names(client)


async def refusal_and_unknown(url: str, token: str, name: str) -> tuple[dict[str, object], dict[str, object]]:
    """The error for calling `name`, and the one for a name that exists nowhere, message unnamed."""
    async with raw_client(url, token) as client:
        refused = await client.request("tools/call", {"name": name, "arguments": {}})
        unknown = await client.request("tools/call", {"name": "a__no_such_tool", "arguments": {}})
    refused["error"]["message"] = refused["error"]["message"].replace(name, "<name>")
    unknown["error"]["message"] = unknown["error"]["message"].replace("a__no_such_tool", "<name>")
    return refused["error"], unknown["error"]


async def test_an_unscoped_token_sees_every_server(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        names = await tool_names(proxy.url("/mcp"), "full")
    assert {"a__echo", "b__echo", "a__slow", "b__slow"} <= names


async def test_a_token_scoped_to_one_server_sees_and_calls_only_that_server(proxy: ProxyProcess) -> None:
    url = proxy.url("/mcp")
    with anyio.fail_after(BOUND_SECONDS):
        names = await tool_names(url, "only-a")
        async with raw_client(url, "only-a") as client:
            prompts = (await client.result("prompts/list"))["prompts"]
            resources = (await client.result("resources/list"))["resources"]
            echoed = await client.result("tools/call", {"name": "a__echo", "arguments": {"text": "hi"}})
            prompt = await client.request("prompts/get", {"name": "b__test_simple_prompt"})
            read = await client.request("resources/read", {"uri": "mcpmux://b/test://static-text"})
        refused, unknown = await refusal_and_unknown(url, "only-a", "b__echo")
    assert names and all(name.startswith("a__") for name in names)
    assert prompts and all(p["name"].startswith("a__") for p in prompts)
    assert resources and all(r["uri"].startswith("mcpmux://a/") for r in resources)
    assert echoed["structuredContent"] == {"text": "hi"}
    assert prompt["error"] == {"code": -32602, "message": "Unknown prompt: b__test_simple_prompt"}
    assert read["error"]["code"] == -32002
    assert refused == unknown == {"code": -32602, "message": "Unknown tool: <name>"}


async def test_a_token_tool_filter_allows_only_the_listed_namespaced_tools(proxy: ProxyProcess) -> None:
    url = proxy.url("/mcp")
    with anyio.fail_after(BOUND_SECONDS):
        names = await tool_names(url, "picked")
        refused, unknown = await refusal_and_unknown(url, "picked", "a__whoami")
    assert names == {"a__echo", "b__whoami"}
    assert refused == unknown


async def test_a_token_block_list_hides_and_refuses_the_blocked_tools(proxy: ProxyProcess) -> None:
    url = proxy.url("/mcp")
    with anyio.fail_after(BOUND_SECONDS):
        names = await tool_names(url, "no-slow")
        refused, unknown = await refusal_and_unknown(url, "no-slow", "b__slow")
    assert "a__echo" in names and "b__echo" in names
    assert not {"a__slow", "b__slow"} & names
    assert refused == unknown


async def test_a_token_scoped_away_from_a_route_gets_401_there_and_never_reaches_its_upstream(
    proxy: ProxyProcess,
) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    with anyio.fail_after(BOUND_SECONDS):
        async with httpx2.AsyncClient() as http:
            statuses = {
                path: (
                    await http.post(proxy.url(path), json=body, headers={"authorization": f"Bearer {token}"})
                )
                for path, token in (("/b/mcp", "only-a"), ("/b/sse", "only-a"), ("/mcp", "elsewhere"))
            }
        names = await tool_names(proxy.url("/a/mcp"), "only-a")
    assert {path: response.status_code for path, response in statuses.items()} == dict.fromkeys(statuses, 401)
    assert "echo" in names


async def test_a_token_tool_filter_applies_on_per_server_routes_with_namespaced_names(
    proxy: ProxyProcess,
) -> None:
    url = proxy.url("/a/mcp")
    with anyio.fail_after(BOUND_SECONDS):
        names = await tool_names(url, "picked")
        refused, unknown = await refusal_and_unknown(url, "picked", "whoami")
        async with raw_client(url, "picked") as client:
            echoed = await client.result("tools/call", {"name": "echo", "arguments": {"text": "ok"}})
    assert names == {"echo"}
    assert refused == unknown == {"code": -32602, "message": "Unknown tool: <name>"}
    assert echoed["structuredContent"] == {"text": "ok"}


async def test_notifications_of_a_server_a_token_may_not_use_never_reach_it(proxy: ProxyProcess) -> None:
    """`x/ping` makes the fixture answer `x/pong` unrelated to any request: every attached client gets it."""
    pong = "x/pong"
    with anyio.fail_after(BOUND_SECONDS):
        async with (
            raw_client(proxy.url("/mcp"), "full", standalone=True) as full,
            raw_client(proxy.url("/mcp"), "only-a", standalone=True) as only_a,
            raw_client(proxy.url("/b/mcp"), "full") as direct_b,
            raw_client(proxy.url("/a/mcp"), "full") as direct_a,
        ):
            await direct_b.notify("x/ping", {"from": "b"})
            assert (await full.notification(pong))["params"] == {"from": "b"}  # b's pong went out to all
            await direct_a.notify("x/ping", {"from": "a"})
            first = await only_a.notification(pong)
    assert first["params"] == {"from": "a"}
