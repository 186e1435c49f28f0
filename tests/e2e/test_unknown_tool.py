"""One unknown-tool error shape everywhere (issue 19): JSON-RPC -32602 on per-server routes (both faces)
and on the merged endpoint, also when the upstream answers an unknown tool with an `isError` result."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from relay_kit import raw_http, raw_sse

from harness import FIXTURE, ProxyProcess, running_proxy

pytestmark = pytest.mark.anyio

HOSTILE = Path(__file__).resolve().parent.parent / "fixtures" / "hostile_server.py"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    config = {
        "mcpServers": {
            "iserr": {"command": sys.executable, "args": [str(HOSTILE)]},
            "rpcerr": {"command": sys.executable, "args": [str(FIXTURE), "--transport", "stdio"]},
        }
    }
    with running_proxy(config, tmp_path_factory.mktemp("unknown_tool")) as running:
        yield running


def unknown(name: str) -> dict[str, object]:
    return {"code": -32602, "message": f"Unknown tool: {name}"}


@pytest.mark.parametrize(
    ("path", "tool"),
    [
        ("/iserr/mcp", "nope"),  # the upstream says isError: made a JSON-RPC error
        ("/rpcerr/mcp", "nope"),  # the upstream says -32602 itself
        ("/mcp", "iserr__nope"),  # the merged endpoint refuses it from its catalog
        ("/mcp", "nope"),
    ],
)
async def test_an_unknown_tool_is_json_rpc_error_32602_on_every_route(
    proxy: ProxyProcess, path: str, tool: str
) -> None:
    with anyio.fail_after(20):
        async with raw_http(proxy.url(path)) as client:
            response = await client.request("tools/call", {"name": tool, "arguments": {}})
    assert response["error"] == unknown(tool), response


async def test_an_unknown_tool_is_the_same_error_on_the_legacy_sse_face(proxy: ProxyProcess) -> None:
    with anyio.fail_after(20):
        async with raw_sse(proxy.url("/iserr/sse")) as client:
            response = await client.request("tools/call", {"name": "nope", "arguments": {}})
    assert response["error"] == unknown("nope"), response


@pytest.mark.parametrize("path", ["/iserr/mcp", "/mcp"])
async def test_a_listed_tool_that_fails_keeps_its_is_error_result(proxy: ProxyProcess, path: str) -> None:
    tool = "fail" if path != "/mcp" else "iserr__fail"
    with anyio.fail_after(20):
        async with raw_http(proxy.url(path)) as client:
            result = await client.result("tools/call", {"name": tool, "arguments": {}})
    assert result["isError"] is True
    assert result["content"][0]["text"] == "the tool failed"
