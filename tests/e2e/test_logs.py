"""Logs: the seed's lines as text, JSON lines with `--log-format json`, an access line per request."""

from __future__ import annotations

import json
import re

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from harness import fixture_server, mcp_client, running_proxy

pytestmark = pytest.mark.anyio


def logged_config(log_enabled: bool = True) -> dict:
    return {
        "mcpProxy": {"name": "logs", "options": {"logEnabled": log_enabled}},
        "mcpServers": {"fx": fixture_server()},
    }


async def call_echo_and_fail(url: str) -> None:
    async with mcp_client(url) as session:
        await session.call_tool("echo", {"text": "hi"})
        with pytest.raises(MCPError):
            await session.call_tool("fail", {})


async def test_json_access_lines_carry_server_session_request_id_method_tool_status_and_duration(tmp_path):
    with running_proxy(logged_config(), tmp_path, extra_args=("--log-format", "json")) as proxy:
        with anyio.fail_after(30):
            await call_echo_and_fail(proxy.url("/fx/mcp"))
        proxy.wait_for_line(r'"msg":"fx tools/call fail ')
        # (stdio upstreams share the proxy's stderr: their own lines are theirs, not JSON)
        entries = [json.loads(line) for line in proxy.lines if line.startswith("{")]
    access_lines = [e for e in entries if e["logger"] == "mcpmux.access" and "method" in e]
    access = {(e["method"], e.get("tool")): e for e in access_lines}
    echo, fail = access["tools/call", "echo"], access["tools/call", "fail"]
    assert echo["server"] == "fx" and echo["route"] == "fx"
    assert echo["status"] == "ok" and "error_code" not in echo
    assert isinstance(echo["request_id"], int) and isinstance(echo["duration_ms"], float)
    assert re.fullmatch(r"[0-9a-f]{32}", echo["session"])
    assert fail["status"] == "error" and fail["error_code"] == -32099
    assert fail["session"] == echo["session"] and fail["request_id"] != echo["request_id"]
    assert access["initialize", None]["status"] == "ok"
    assert {"ts", "level", "logger", "msg"} <= echo.keys()
    connected = [e for e in entries if e["msg"] == "<fx> Connected"]
    assert connected and connected[0]["server"] == "fx" and connected[0]["level"] == "info"


async def test_text_logs_keep_the_seed_lines_and_add_one_access_line_per_request(tmp_path):
    with running_proxy(logged_config(), tmp_path) as proxy:
        with anyio.fail_after(30):
            await call_echo_and_fail(proxy.url("/fx/mcp"))
        proxy.wait_for_line(r" fx tools/call fail ")
        log = proxy.log
    seed_lines = ("<fx> Connecting", "<fx> Adding tool echo", "<fx> Connected", "All clients initialized")
    for seed_line in seed_lines:
        assert f"INFO  {seed_line}" in log
    assert re.search(r"Z INFO  <fx> Handling requests at http://127\.0\.0\.1:\d+/fx/", log)
    assert re.search(r"INFO  fx tools/call echo id=\d+ ok \d+\.\dms session=[0-9a-f]{32}", log)
    assert re.search(r"INFO  fx tools/call fail id=\d+ error -32099 \d+\.\dms session=", log)
    assert len(re.findall(r"fx tools/call echo id=", log)) == 1


async def test_requests_are_not_logged_unless_the_route_has_log_enabled(tmp_path):
    json_logs = ("--log-format", "json")
    with running_proxy(logged_config(log_enabled=False), tmp_path, extra_args=json_logs) as proxy:
        with anyio.fail_after(30):
            await call_echo_and_fail(proxy.url("/fx/mcp"))
        entries = [json.loads(line) for line in proxy.lines if line.startswith("{")]
    assert [entry for entry in entries if entry["msg"] == "<fx> Connected"]
    assert not [entry for entry in entries if entry["logger"] == "mcpmux.access"]


@pytest.mark.parametrize(
    ("tool_filter", "expected"),
    [
        ({"mode": "block", "list": ["fail"]}, "<fx> Ignoring tool fail as it is in block list"),
        ({"mode": "allow", "list": ["echo"]}, "<fx> Ignoring tool fail as it is not in allow list"),
    ],
)
async def test_tool_filter_lines_use_the_seed_wording(tmp_path, tool_filter, expected):
    server = {**fixture_server(), "options": {"toolFilter": tool_filter}}
    with running_proxy({"mcpServers": {"fx": server}}, tmp_path) as proxy:
        log = proxy.log
    assert f"INFO  {expected}" in log
    assert "INFO  <fx> Adding tool echo" in log
    assert "<fx> Adding tool fail" not in log
