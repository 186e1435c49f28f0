"""`options.protocol: auto` on stdio upstreams: the probe on the serving process, the fallback to the
handshake on a server that only speaks it, and the answer remembered across restarts of mcpmux (in
`mcpmux-eras.json` beside the config), probed again when it no longer works."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from relay_kit import BOUND_SECONDS, raw_http

from harness import ROOT, fixture_server, running_proxy
from mcpmux.config.parse import parse_config
from mcpmux.upstream.era_memory import ERA_FILE, transport_identity

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
    """The tools/call response of a handshake-era client (without capabilities)."""
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(url) as client:
            response = await client.request("tools/call", {"name": tool, "arguments": arguments})
            return response.get("result") or response


async def test_auto_on_stdio_falls_back_to_the_handshake_and_picks_2026_where_offered(tmp_path: Path) -> None:
    with running_proxy(auto_config(), tmp_path) as proxy:
        old = await call(proxy.url("/old/mcp"), "lookup", {"q": "x"})
        new = await call(proxy.url("/new/mcp"), "echo", {"text": "y"})
        log = proxy.log
        async with httpx2.AsyncClient(timeout=BOUND_SECONDS) as http:  # loopback, no tokens: open to us
            status = (await http.get(proxy.url("/_status/api"))).json()
    eras = {server["name"]: server["era"] for server in status["servers"]}
    assert eras == {"old": "handshake", "new": MODERN}
    assert '"tool": "lookup"' in old["content"][0]["text"], old
    assert new["content"][0]["text"] == "y", new
    assert "old: the upstream speaks the handshake era" in log
    assert f"new: the upstream speaks {MODERN}" in log


def era_file(tmp_path: Path) -> dict[str, Any]:
    servers: dict[str, Any] = json.loads((tmp_path / ERA_FILE).read_text())["servers"]
    return servers


async def test_the_probed_era_is_remembered_across_a_restart_of_mcpmux(tmp_path: Path) -> None:
    with running_proxy(auto_config(), tmp_path) as first:
        await call(first.url("/old/mcp"), "lookup", {})
    remembered = era_file(tmp_path)
    assert {name: entry["era"] for name, entry in remembered.items()} == {"old": "handshake", "new": MODERN}
    assert str(NAMED_TOOLS) not in (tmp_path / ERA_FILE).read_text()  # a digest, not the command line
    with running_proxy(auto_config(), tmp_path) as second:
        old = await call(second.url("/old/mcp"), "lookup", {})
        new = await call(second.url("/new/mcp"), "native_ask", {})
        log = second.log
    assert '"tool": "lookup"' in old["content"][0]["text"], old
    # the upstream asked with input_required (2026-07-28 only), which this client cannot answer
    assert new["error"]["code"] == -32021 and "elicitation/create" in new["error"]["message"], new
    assert "old: the upstream speaks the handshake era (remembered)" in log
    assert f"new: the upstream speaks {MODERN} (remembered)" in log
    assert "probing again" not in log and "speaks the handshake era\n" not in log + "\n"


async def test_a_remembered_era_that_no_longer_works_is_probed_again(tmp_path: Path) -> None:
    document = auto_config()
    config, _ = parse_config(json.dumps(document), str(tmp_path / "config.json"), environ={}, expand_env=True)
    identity = transport_identity(config.servers["old"])
    stale = {"servers": {"old": {"identity": identity, "era": MODERN}}}  # as if it had been downgraded
    (tmp_path / ERA_FILE).write_text(json.dumps(stale))
    with running_proxy(document, tmp_path) as proxy:
        old = await call(proxy.url("/old/mcp"), "lookup", {})
        log = proxy.log
    assert '"tool": "lookup"' in old["content"][0]["text"], old
    assert f"old: the upstream speaks {MODERN} (remembered)" in log
    assert "old: the remembered era did not work; probing again" in log
    assert era_file(tmp_path)["old"] == {"identity": identity, "era": "handshake"}
