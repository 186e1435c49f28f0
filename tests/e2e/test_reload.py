"""Hot reload: a changed config file (or SIGHUP) starts, stops and restarts only the servers that changed."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fault_kit import alive, faulty, send_signal, wait_until
from relay_kit import raw_http

from harness import ProxyProcess, running_proxy, wait_for_log

pytestmark = pytest.mark.anyio

BOUND_SECONDS = 30
RELOADED = r"Reloaded config from .*"


async def whoami(client: Any) -> dict[str, Any]:
    return (await client.result("tools/call", {"name": "whoami", "arguments": {}}))["structuredContent"]


def rewrite(proxy: ProxyProcess, servers: dict[str, Any]) -> None:
    config = json.loads(proxy.config_path.read_text())
    config["mcpServers"] = servers
    proxy.config_path.write_text(json.dumps(config))


def initialize_status(proxy: ProxyProcess, path: str) -> int:
    params = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    response = httpx2.post(
        proxy.url(path),
        json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params},
        headers={"accept": "application/json, text/event-stream"},
        timeout=10,
    )
    return response.status_code


async def tool_names(client: Any) -> set[str]:
    return {tool["name"] for tool in (await client.result("tools/list"))["tools"]}


async def test_reload_adds_changes_and_removes_servers_without_disturbing_a_client_of_an_untouched_one(
    tmp_path: Path,
) -> None:
    servers = {
        "keep": faulty("--tag", "keep"),
        "change": faulty("--tag", "before"),
        "drop": faulty("--tag", "drop"),
    }
    with running_proxy({"mcpServers": servers}, tmp_path) as proxy, anyio.fail_after(BOUND_SECONDS):
        async with (
            raw_http(proxy.url("/keep/mcp"), standalone=True) as kept,
            raw_http(proxy.url("/drop/mcp")) as gone,
            raw_http(proxy.url("/mcp"), standalone=True) as merged,
        ):
            kept_pid = (await whoami(kept))["pid"]
            dropped_pid = (await whoami(gone))["pid"]
            mark = len(proxy.lines)
            rewrite(
                proxy,
                {"keep": servers["keep"], "change": faulty("--tag", "after"), "add": faulty("--tag", "add")},
            )
            line = await wait_for_log(proxy, RELOADED, mark)
            assert line.endswith("added add; changed change; removed drop")

            assert await whoami(kept) == {"pid": kept_pid, "tag": "keep"}  # same session, same process
            async with raw_http(proxy.url("/change/mcp")) as changed:
                assert (await whoami(changed))["tag"] == "after"
            async with raw_http(proxy.url("/add/mcp")) as added:
                assert (await whoami(added))["tag"] == "add"
            assert initialize_status(proxy, "/drop/mcp") == 404
            wait_until(lambda: not alive(dropped_pid), "the removed server's process is gone")

            await merged.notification("notifications/tools/list_changed")  # same merged session, new lists
            names = await tool_names(merged)
            assert {"keep__whoami", "change__whoami", "add__whoami"} <= names
            assert not any(name.startswith("drop__") for name in names)
            assert "<drop> Stopped (removed from the config)" in proxy.log
            assert "<change> Stopped (its config changed)" in proxy.log
            assert "keep Stopped" not in proxy.log


async def test_an_invalid_new_config_is_rejected_and_the_running_one_stays(tmp_path: Path) -> None:
    with running_proxy({"mcpServers": {"fx": faulty()}}, tmp_path) as proxy, anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/fx/mcp")) as client:
            pid = (await whoami(client))["pid"]
            mark = len(proxy.lines)
            proxy.config_path.write_text('{"mcpProxy": {}, "mcpServers": {"fx": {"args": []}}}')
            line = await wait_for_log(proxy, r"Reload rejected, keeping the running config: ", mark)
            assert "mcpServers.fx" in line
            assert (await whoami(client))["pid"] == pid
            assert "<fx> Stopped" not in proxy.log


async def test_sighup_reloads_the_config_with_values_from_its_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("FX_TAG=one\n")
    servers = {"fx": faulty("--tag", "${FX_TAG}")}
    with running_proxy({"mcpServers": servers}, tmp_path) as proxy, anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/fx/mcp")) as client:
            assert (await whoami(client))["tag"] == "one"
        mark = len(proxy.lines)
        env_file.write_text("FX_TAG=two\n")  # the config file itself is unchanged
        send_signal(proxy, signal.SIGHUP)
        line = await wait_for_log(proxy, RELOADED, mark)
        assert line.endswith("changed fx")
        assert "Reloading config (SIGHUP)" in proxy.log
        async with raw_http(proxy.url("/fx/mcp")) as client:
            assert (await whoami(client))["tag"] == "two"
