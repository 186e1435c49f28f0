"""`options.protocol: auto` on stdio upstreams: the probe on the serving process, the fallback to the
handshake on a server that only speaks it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from relay_kit import BOUND_SECONDS, raw_http

from harness import ROOT, fixture_server, running_proxy

pytestmark = pytest.mark.anyio

NAMED_TOOLS = ROOT / "tests" / "fixtures" / "named_tools_server.py"
MODERN = "2026-07-28"


def auto_config() -> dict[str, Any]:
    """A handshake-only stdio server and a dual-era one (SDK 2.x), both `protocol: auto`."""
    auto = {"protocol": "auto"}
    legacy = {"command": sys.executable, "args": [str(NAMED_TOOLS), "lookup"], "options": auto}
    modern = {**fixture_server(), "options": auto}
    return {"mcpProxy": {"name": "eras"}, "mcpServers": {"old": legacy, "new": modern}}


async def call(url: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(url) as client:
            result: dict[str, Any] = await client.result("tools/call", {"name": tool, "arguments": arguments})
            return result


async def test_auto_on_stdio_falls_back_to_the_handshake_and_picks_2026_where_offered(tmp_path: Path) -> None:
    with running_proxy(auto_config(), tmp_path) as proxy:
        old = await call(proxy.url("/old/mcp"), "lookup", {"q": "x"})
        new = await call(proxy.url("/new/mcp"), "echo", {"text": "y"})
        log = proxy.log
    assert '"tool": "lookup"' in old["content"][0]["text"], old
    assert new["content"][0]["text"] == "y", new
    assert "old: the upstream speaks the handshake era" in log
    assert f"new: the upstream speaks {MODERN}" in log
