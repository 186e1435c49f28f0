"""Tool overrides (`toolOverrides`): a new name, description or title, on the server's route and merged."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from merged_kit import colliding_server, raw_list_all
from relay_kit import raw_http

from harness import ProxyProcess, running_proxy

pytestmark = pytest.mark.anyio

BOUND_SECONDS = 20
OVERRIDES = {
    "echo": {"name": "say", "description": "Says it back", "title": "Say"},
    "whoami": {"description": "Tells which process answers"},
}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    config = {
        "mcpProxy": {"name": "mux"},
        "mcpServers": {"a": colliding_server(toolOverrides=OVERRIDES), "b": colliding_server()},
        "mcpGroups": {"talk": {"servers": {"a": {"toolFilter": {"mode": "allow", "list": ["say"]}}}}},
    }
    with running_proxy(config, tmp_path_factory.mktemp("overrides")) as running:
        yield running


async def tools_by_name(client: Any) -> dict[str, dict[str, Any]]:
    return {tool["name"]: tool for tool in await raw_list_all(client, "tools/list", "tools")}


async def test_an_override_renames_and_describes_a_tool_on_its_servers_route(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/a/mcp")) as client:
            tools = await tools_by_name(client)
            said = await client.result("tools/call", {"name": "say", "arguments": {"text": "hi"}})
            old = await client.request("tools/call", {"name": "echo", "arguments": {"text": "hi"}})
    assert "echo" not in tools
    assert tools["say"]["description"] == "Says it back"
    assert tools["say"]["title"] == "Say"
    assert tools["say"]["inputSchema"]["required"] == ["text"]  # everything else as the upstream gives it
    assert tools["whoami"]["description"] == "Tells which process answers"
    assert said["structuredContent"] == {"text": "hi"}
    assert old["error"] == {"code": -32602, "message": "Unknown tool: echo"}


async def test_overrides_apply_on_the_merged_endpoint_under_the_new_name(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/mcp")) as client:
            tools = await tools_by_name(client)
            said = await client.result("tools/call", {"name": "a__say", "arguments": {"text": "hi"}})
            old = await client.request("tools/call", {"name": "a__echo", "arguments": {"text": "hi"}})
    assert "a__echo" not in tools
    assert tools["a__say"]["description"] == "Says it back"
    assert tools["a__say"]["title"] == "Say"
    assert tools["a__whoami"]["description"] == "Tells which process answers"
    assert tools["b__echo"]["description"] == "Echoes `text` as text and as structured content"
    assert said["structuredContent"] == {"text": "hi"}
    assert old["error"] == {"code": -32602, "message": "Unknown tool: a__echo"}


async def test_a_group_filter_matches_the_name_the_override_gives(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/talk/mcp")) as client:
            tools = await tools_by_name(client)
            said = await client.result("tools/call", {"name": "a__say", "arguments": {"text": "in group"}})
    assert list(tools) == ["a__say"]
    assert said["structuredContent"] == {"text": "in group"}
