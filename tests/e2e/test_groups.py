"""Groups (`mcpGroups`): hand-picked servers, each narrowed by its own tool filter, served like a server."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import anyio
import httpx2
import pytest
from merged_kit import colliding_server, names_of, pid_of, raw_client
from relay_kit import raw_http

from harness import ROOT, ProxyProcess, mcp_client, running_proxy

pytestmark = pytest.mark.anyio

BOUND_SECONDS = 20
FACES = {"mcp": "streamable-http", "sse": "sse"}
DEV = {
    "a": {"toolFilter": {"mode": "allow", "list": ["echo", "who*"]}},
    "b": {"toolFilter": {"mode": "block", "list": ["test_*", "ask_*", "json_schema_2020_12_tool"]}},
}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    config = {
        "mcpProxy": {"name": "mux"},
        "mcpServers": {
            "a": colliding_server(),
            "b": colliding_server(),
            "c": colliding_server(toolFilter={"mode": "allow", "list": ["echo", "slow"]}),
        },
        "mcpGroups": {
            "dev": {"servers": DEV},
            "ops": {"servers": ["c"], "options": {"authTokens": ["ops-token"]}},
        },
    }
    with running_proxy(config, tmp_path_factory.mktemp("groups")) as running:
        yield running


async def test_a_group_lists_only_its_servers_each_narrowed_by_its_filter(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with mcp_client(proxy.url("/b/mcp")) as b:
            everything = await names_of(b)
        async with mcp_client(proxy.url("/dev/mcp")) as dev:
            assert dev.server_info.name == "dev"
            names = await names_of(dev)
    kept_of_b = [n for n in everything if not n.startswith(("test_", "ask_", "json_schema"))]
    assert sorted(names) == sorted(["a__echo", "a__whoami", *(f"b__{n}" for n in kept_of_b)])


async def test_a_tool_filtered_out_of_a_group_is_refused_like_an_unknown_tool(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/dev/mcp")) as dev:
            filtered = await dev.request("tools/call", {"name": "a__slow", "arguments": {}})
            other_server = await dev.request("tools/call", {"name": "c__echo", "arguments": {}})
            unknown = await dev.request("tools/call", {"name": "a__nope", "arguments": {}})
        async with raw_client(proxy.url("/ops/mcp"), "ops-token") as ops:
            by_server = await ops.request("tools/call", {"name": "c__whoami", "arguments": {}})
    for refused, name in ((filtered, "a__slow"), (by_server, "c__whoami"), (other_server, "c__echo")):
        assert refused["error"] == {**unknown["error"], "message": f"Unknown tool: {name}"}
    assert unknown["error"] == {"code": -32602, "message": "Unknown tool: a__nope"}


@pytest.mark.parametrize("face", FACES)
async def test_group_calls_reach_the_right_server_on_both_transports(proxy: ProxyProcess, face: str) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        direct = {}
        for name in ("a", "b"):
            async with mcp_client(proxy.url(f"/{name}/mcp")) as session:
                direct[name] = await pid_of(session)
        async with mcp_client(proxy.url(f"/dev/{face}"), transport=FACES[face]) as dev:
            assert await pid_of(dev, "a__whoami") == direct["a"]
            assert await pid_of(dev, "b__whoami") == direct["b"]
            echoed = await dev.call_tool("b__echo", {"text": "to b"})
    assert echoed.content[0].text == "to b"


async def test_a_group_with_its_own_tokens_refuses_others(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with httpx2.AsyncClient() as http:
            refused = await http.post(
                proxy.url("/ops/mcp"), json={}, headers={"authorization": "Bearer nope"}
            )
        async with mcp_client(proxy.url("/ops/mcp"), token="ops-token") as ops:
            names = await names_of(ops)
    assert refused.status_code == 401
    assert sorted(names) == ["c__echo", "c__slow"]  # c's own toolFilter applies in groups too


@pytest.mark.parametrize("face", FACES)
async def test_the_exported_client_config_reaches_the_merged_endpoint_and_each_group(
    proxy: ProxyProcess, face: str
) -> None:
    command = [sys.executable, "-m", "mcpmux", "client-config", "--config", str(proxy.config_path)]
    exported = await anyio.run_process([*command, "--type", FACES[face]], cwd=ROOT)
    entries = json.loads(exported.stdout)["mcpServers"]
    assert set(entries) == {"a", "b", "c", "mux", "dev", "ops"}
    with anyio.fail_after(BOUND_SECONDS):
        for name in ("mux", "dev", "ops"):
            token = entries[name].get("headers", {}).get("Authorization", "").removeprefix("Bearer ") or None
            async with mcp_client(entries[name]["url"], transport=FACES[face], token=token) as session:
                assert session.server_info.name == name
