"""The basic path end to end: the real CLI, a real stdio upstream, the SDK client on both transports."""

from __future__ import annotations

import anyio
import pytest

from harness import fixture_server, mcp_client, running_proxy

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_tool_call_through_a_per_server_route_returns_the_upstream_result(tmp_path, transport):
    config = {"mcpProxy": {"name": "smoke", "version": "9.9.9"}, "mcpServers": {"fx": fixture_server()}}
    with running_proxy(config, tmp_path) as proxy:
        path = "/fx/mcp" if transport == "streamable-http" else "/fx/sse"
        with anyio.fail_after(30):
            async with mcp_client(proxy.url(path), transport=transport) as session:
                assert session.server_info.name == "fx"
                assert session.server_info.version == "9.9.9"
                result = await session.call_tool("echo", {"text": "hello"})
                assert result.content[0].text == "hello"
                assert result.structured_content == {"text": "hello"}
