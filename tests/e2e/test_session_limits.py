"""`maxSessions` caps the client sessions of every route: shared servers, the merged endpoint (issue 12)."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx2
import pytest
from fault_kit import faulty
from relay_kit import raw_http

from harness import running_proxy

pytestmark = pytest.mark.anyio

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
ACCEPT = {"accept": "application/json, text/event-stream"}


@pytest.mark.parametrize("path", ["/fx/mcp", "/mcp"])
async def test_a_shared_route_and_the_merged_endpoint_refuse_sessions_beyond_max_sessions(
    tmp_path: Path, path: str
) -> None:
    config = {"mcpProxy": {"options": {"maxSessions": 2}}, "mcpServers": {"fx": faulty(sessionMode="shared")}}
    with running_proxy(config, tmp_path) as proxy, anyio.fail_after(30):
        async with raw_http(proxy.url(path)), raw_http(proxy.url(path)):
            refused = httpx2.post(proxy.url(path), json=INIT, headers=ACCEPT, timeout=10)
            assert refused.status_code == 503, refused.text
            assert "maxSessions" in refused.json()["error"]["message"]
            sse = httpx2.get(proxy.url(path.replace("/mcp", "/sse")), headers=ACCEPT, timeout=10)
            assert sse.status_code == 503
        # the two sessions were deleted: room again
        async with raw_http(proxy.url(path)) as client:
            assert (await client.request("ping"))["result"] == {}
