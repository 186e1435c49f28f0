"""An upstream that dies leaves the merged lists (list_changed), the others keep working, and it comes back.

Server `a` starts only while a gate file exists, so the test decides when its restart may succeed:
remove the gate, kill `a` (its pid from `whoami`), see it gone; restore the gate, see it return.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest
from merged_kit import colliding_server, raw_tool_names
from relay_kit import raw_http

from harness import running_proxy

pytestmark = pytest.mark.anyio

BOUND_SECONDS = 30
MAX_NOTIFICATIONS = 10
FAST_RESTART = {"initialDelay": "100ms", "maxDelay": "300ms"}


def gated(gate: Path) -> dict[str, Any]:
    """The fixture over stdio, started by `sh` only while `gate` exists (exec: same pid)."""
    entry = colliding_server(restart=FAST_RESTART)
    entry["args"] = ["-c", 'test -e "$0" && exec "$@"', str(gate), entry["command"], *entry["args"]]
    entry["command"] = "sh"
    return entry


async def names_after_list_changed(client: Any, done: Any) -> set[str]:
    """Wait for tools/list_changed until the listing satisfies `done` (bounded in count)."""
    for _ in range(MAX_NOTIFICATIONS):
        await client.notification("notifications/tools/list_changed")
        names = await raw_tool_names(client)
        if done(names):
            return names
    raise AssertionError(f"the listing never settled after {MAX_NOTIFICATIONS} list_changed")


async def test_a_dead_upstream_leaves_the_merged_lists_and_returns_when_it_restarts(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    config = {"mcpProxy": {"name": "mux"}, "mcpServers": {"a": gated(gate), "b": colliding_server()}}
    with running_proxy(config, tmp_path) as proxy, anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/mcp"), standalone=True) as client:
            before = await raw_tool_names(client)
            whoami = await client.result("tools/call", {"name": "a__whoami", "arguments": {}})
            pid = whoami["structuredContent"]["pid"]

            gate.unlink()
            os.kill(pid, signal.SIGKILL)
            while_down = await names_after_list_changed(client, lambda names: "a__whoami" not in names)
            echoed = await client.result("tools/call", {"name": "b__echo", "arguments": {"text": "still up"}})
            refused = await client.request("tools/call", {"name": "a__whoami", "arguments": {}})

            gate.touch()
            after = await names_after_list_changed(client, lambda names: "a__whoami" in names)
            again = await client.result("tools/call", {"name": "a__whoami", "arguments": {}})

    assert while_down == {name for name in before if name.startswith("b__")}
    assert echoed["structuredContent"] == {"text": "still up"}
    assert refused["error"]["code"] == -32000
    assert after == before  # the same names as before it went down
    assert again["structuredContent"]["pid"] != pid


async def test_a_lazy_member_starts_when_a_merged_client_connects_and_then_joins_the_lists(
    tmp_path: Path,
) -> None:
    config = {
        "mcpProxy": {"name": "mux"},
        "mcpServers": {"lazy": colliding_server(lazyStart=True), "eager": colliding_server()},
    }
    with running_proxy(config, tmp_path) as proxy, anyio.fail_after(BOUND_SECONDS):
        assert "<lazy> Connecting" not in proxy.log
        async with raw_http(proxy.url("/mcp"), standalone=True) as client:
            names = await raw_tool_names(client)
            if "lazy__whoami" not in names:
                names = await names_after_list_changed(client, lambda names: "lazy__whoami" in names)
            whoami = await client.result("tools/call", {"name": "lazy__whoami", "arguments": {}})
    assert "eager__whoami" in names
    assert whoami["structuredContent"]["pid"] > 0
