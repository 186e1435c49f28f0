"""Pinning at run time with a real proxy and the SDK client: enforce withholds and refuses drifted tools
until approved (command line or operator endpoint), warn serves and reports, off does nothing."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.shared.exceptions import MCPError
from merged_kit import names_of
from pins_kit import V1, V2, config, drifted, pins, record, write_catalog

from harness import ProxyProcess, mcp_client, running_proxy

pytestmark = pytest.mark.anyio

TOKEN = "operator-token"
BOUND_SECONDS = 15.0


async def eventually_names(session: Any, expected: set[str]) -> None:
    """Poll the listing (bounded) until it is `expected`: approvals and restarts are seen asynchronously."""
    names: set[str] = set()
    with anyio.move_on_after(BOUND_SECONDS):
        while names != expected:
            names = set(await names_of(session))
            if names != expected:
                await anyio.sleep(0.05)
    assert names == expected


async def refused(session: Any, tool: str) -> str:
    with pytest.raises(MCPError) as error:
        await session.call_tool(tool, {})
    return str(error.value)


async def test_enforce_withholds_drifted_tools_until_approved_on_the_command_line_and_by_an_operator(
    tmp_path: Path,
) -> None:
    # V2 drifts in every way: a description, a schema, a rename and a new tool
    document = drifted(tmp_path, "enforce", options={"authTokens": [TOKEN]})
    document["mcpGroups"] = {"g": {"servers": ["docs"]}}
    with running_proxy(document, tmp_path) as proxy:
        async with (
            mcp_client(proxy.url("/docs/mcp"), token=TOKEN) as own,
            mcp_client(proxy.url("/mcp"), token=TOKEN) as merged,
        ):
            assert set(await names_of(own)) == {"count"}
            assert set(await names_of(merged)) == {"docs__count"}
            async with mcp_client(proxy.url("/g/mcp"), token=TOKEN) as group:
                assert set(await names_of(group)) == {"docs__count"}
                assert "is new" in await refused(group, "docs__upload")
            assert (await own.call_tool("count", {})).is_error is not True
            message = await refused(own, "search")
            assert "Tool withheld by pinning: tool 'search' of server 'docs' changed (description)" in message
            assert "mcpmux pins approve docs search" in message
            assert "changed (inputSchema)" in await refused(merged, "docs__fetch")
            assert "'remove' of server 'docs' is new" in await refused(own, "remove")  # renamed = new
            status = httpx2.get(
                proxy.url("/_status/api"), headers={"authorization": f"Bearer {TOKEN}"}
            ).json()
            pinning = status["servers"][0]["pinning"]
            assert pinning["withheld"] == ["fetch", "remove", "search", "upload"]
            assert {c["name"]: c["change"] for c in pinning["changes"]}["delete"] == "removed"

            approved = pins(
                proxy.config_path, "approve", "docs", "search", "-lock", str(tmp_path / "mcpmux.lock.json")
            )
            assert approved.returncode == 0, approved.stderr
            await eventually_names(own, {"count", "search"})  # the proxy watched the lock file
            await eventually_names(merged, {"docs__count", "docs__search"})
            assert (await own.call_tool("search", {"query": "x"})).is_error is not True

            url = proxy.url("/_pins/approve")
            assert httpx2.post(url, json={"server": "docs", "tool": "upload"}).status_code == 401
            bad = httpx2.post(url, content=b"[]", headers={"authorization": f"Bearer {TOKEN}"})
            assert bad.status_code == 400
            ok = httpx2.post(
                url, json={"server": "docs", "tool": "upload"}, headers={"authorization": f"Bearer {TOKEN}"}
            )
            assert ok.status_code == 200, ok.text
            assert [c["name"] for c in ok.json()["approved"]] == ["upload"]
            await eventually_names(merged, {"docs__count", "docs__search", "docs__upload"})
        metrics = httpx2.get(proxy.url("/metrics"), headers={"authorization": f"Bearer {TOKEN}"}).text
        assert 'mcpmux_pin_changes_total{change="changed",server="docs"} 2.0' in metrics
        assert 'mcpmux_pin_changes_total{change="added",server="docs"} 2.0' in metrics
        assert 'mcpmux_pin_withheld_tools{server="docs"} 2.0' in metrics
    verified = pins(proxy.config_path, "diff", "-lock", str(tmp_path / "mcpmux.lock.json"))
    assert "search" not in verified.stdout and "upload" not in verified.stdout


async def test_enforce_catches_drift_across_an_upstream_restart(tmp_path: Path) -> None:
    document = config(tmp_path, "enforce")
    record(tmp_path, document)
    with running_proxy(document, tmp_path) as proxy:
        async with mcp_client(proxy.url("/docs/mcp")) as own:
            assert set(await names_of(own)) == {"search", "fetch", "delete", "count"}
            write_catalog(tmp_path / "docs.json", V2)
            restart(proxy, tmp_path)
            await eventually_names(own, {"count"})
            assert "changed (description)" in await refused(own, "search")
        assert "Pinning: tool 'search' of server 'docs' changed (description) (withheld)" in proxy.log


async def test_enforce_catches_drift_announced_with_list_changed_and_warn_reports_it(tmp_path: Path) -> None:
    for mode, expected in [
        ("enforce", {"count"}),
        ("warn", {"search", "fetch", "remove", "upload", "count"}),
    ]:
        write_catalog(tmp_path / "docs.json", V1)
        document = config(tmp_path, mode)
        record(tmp_path, document)
        with running_proxy(document, tmp_path) as proxy:
            async with mcp_client(proxy.url("/docs/mcp")) as own:
                assert set(await names_of(own)) == {"search", "fetch", "delete", "count"}
                write_catalog(tmp_path / "docs.json", V2)
                os.kill(int((tmp_path / "docs.json.pid").read_text()), signal.SIGHUP)  # no restart
                await eventually_names(own, expected)
                if mode == "enforce":  # calls are checked against the refreshed snapshot's verdict
                    assert "changed (description)" in await refused(own, "search")
        assert "Pinning: tool 'upload' of server 'docs' is new (not in the lock file) (" in proxy.log


async def test_warn_serves_everything_and_logs_and_counts_each_change_once(tmp_path: Path) -> None:
    document = drifted(tmp_path, "warn")
    with running_proxy(document, tmp_path) as proxy:
        async with mcp_client(proxy.url("/mcp")) as merged:
            names = set(await names_of(merged))
            assert names == {f"docs__{n}" for n in ("search", "fetch", "remove", "upload", "count")}
            assert (await merged.call_tool("docs__upload", {})).is_error is not True
        metrics = httpx2.get(proxy.url("/metrics")).text
        assert 'mcpmux_pin_changes_total{change="removed",server="docs"} 1.0' in metrics, (
            metrics[-1500:] + proxy.log
        )
        assert 'mcpmux_pin_withheld_tools{server="docs"} 0.0' in metrics
    lines = [line for line in proxy.log.splitlines() if "Pinning: tool 'upload'" in line]
    assert len(lines) == 1 and lines[0].endswith("(served)")


async def test_off_ignores_the_lock_and_enforce_without_a_lock_serves_nothing(tmp_path: Path) -> None:
    document = drifted(tmp_path, "off")
    with running_proxy(document, tmp_path) as proxy:
        async with mcp_client(proxy.url("/docs/mcp")) as own:
            assert len(await names_of(own)) == 5
    assert "Pinning" not in proxy.log
    (tmp_path / "mcpmux.lock.json").unlink()
    with running_proxy(config(tmp_path, "enforce"), tmp_path) as proxy:
        async with mcp_client(proxy.url("/docs/mcp")) as own:
            assert await names_of(own) == []
            assert "is new (not in the lock file)" in await refused(own, "count")
        approve = httpx2.post(proxy.url("/_pins/approve"), json={"server": "docs"})
        assert approve.status_code == 403  # no operator token configured: approving over HTTP is off
        assert "needs an operator token" in approve.json()["error"]["message"]
    assert "Pinning is enforce but there is no lock file" in proxy.log


def restart(proxy: ProxyProcess, tmp_path: Path) -> None:
    """Kill the upstream process; the proxy restarts it (and it reads its catalog file again)."""
    pid_file = tmp_path / "docs.json.pid"
    old = int(pid_file.read_text())
    start = len(proxy.lines)
    os.kill(old, signal.SIGKILL)
    proxy.wait_for_line(r"docs.* Connected", start=start)
    deadline = time.monotonic() + BOUND_SECONDS
    while int(pid_file.read_text() or old) == old:  # the new process wrote its pid before answering
        assert time.monotonic() < deadline


def test_under_a_baseurl_path_the_status_pages_approve_endpoint_is_prefixed_too(tmp_path: Path) -> None:
    operator = {"authTokens": [TOKEN]}
    document = drifted(tmp_path, "enforce", baseURL="http://127.0.0.1:9/base", options=operator)
    auth = {"authorization": f"Bearer {TOKEN}"}
    with running_proxy(document, tmp_path) as proxy:
        page = httpx2.get(proxy.url("/base/_status"), headers=auth).text
        found = re.search(r'data-approve="([^"]*)"', page)
        assert found is not None and found.group(1) == "/base/_pins/approve"  # where the page's script posts
        deadline = time.monotonic() + BOUND_SECONDS
        while '"upload"' not in httpx2.get(proxy.url("/base/_pins"), headers=auth).text:
            assert time.monotonic() < deadline, "pinning never reported the drifted catalog"
            time.sleep(0.05)  # polling pace, bounded by the deadline
        url = proxy.url(found.group(1))
        assert httpx2.post(url, json={"server": "docs", "tool": "upload"}).status_code == 401
        ok = httpx2.post(url, json={"server": "docs", "tool": "upload"}, headers=auth)
        assert ok.status_code == 200, ok.text
        assert [c["name"] for c in ok.json()["approved"]] == ["upload"]
        assert httpx2.get(proxy.url("/_pins"), headers=auth).status_code == 200  # the root path stays
