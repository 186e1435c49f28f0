"""`GET /metrics`: calls, errors, latency, sessions, upstream state and relayed messages."""

from __future__ import annotations

import os
import signal
from typing import Any

import anyio
import httpx2
import pytest
from mcp.shared.exceptions import MCPError
from prometheus_client.parser import text_string_to_metric_families

from harness import fixture_server, mcp_client, running_proxy

pytestmark = pytest.mark.anyio


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, keyed by (sample name, labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def value(scrape: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return scrape[name, frozenset(labels.items())]


async def scrape(url: str, **kwargs: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with httpx2.AsyncClient() as http:
        response = await http.get(url, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return samples(response.text)


async def test_metrics_count_calls_errors_and_latency_per_route_server_and_tool(tmp_path):
    config = {"mcpProxy": {"name": "metrics"}, "mcpServers": {"fx": fixture_server()}}
    with running_proxy(config, tmp_path) as proxy, anyio.fail_after(30):
        async with mcp_client(proxy.url("/fx/mcp")) as session:
            for _ in range(3):
                await session.call_tool("echo", {"text": "hi"})
            with pytest.raises(MCPError):
                await session.call_tool("fail", {})
            async with mcp_client(proxy.url("/mcp")) as merged:
                await merged.call_tool("fx__echo", {"text": "hi"})
                await merged.call_tool("fx__echo", {"text": "hi"})
                found = await scrape(proxy.url("/metrics"))

    echo = {"route": "fx", "server": "fx", "method": "tools/call", "tool": "echo"}
    fail = {**echo, "tool": "fail"}
    merged_echo = {"route": "_merged", "server": "fx", "method": "tools/call", "tool": "fx__echo"}
    assert value(found, "mcpmux_requests_total", **echo) == 3
    assert value(found, "mcpmux_request_errors_total", **echo) == 0
    assert value(found, "mcpmux_requests_total", **fail) == 1
    assert value(found, "mcpmux_request_errors_total", **fail) == 1
    assert value(found, "mcpmux_requests_total", **merged_echo) == 2
    assert value(found, "mcpmux_request_duration_seconds_count", **echo) == 3
    assert value(found, "mcpmux_request_duration_seconds_bucket", **echo, le="+Inf") == 3
    assert 0 < value(found, "mcpmux_request_duration_seconds_sum", **echo) < 30
    initialize = {"route": "fx", "server": "fx", "method": "initialize", "tool": ""}
    assert value(found, "mcpmux_requests_total", **initialize) == 1

    assert value(found, "mcpmux_sessions_active", route="fx") == 1
    assert value(found, "mcpmux_sessions_active", route="_merged") == 1
    assert value(found, "mcpmux_requests_in_flight", route="fx") == 0
    assert value(found, "mcpmux_upstream_up", server="fx") == 1
    assert value(found, "mcpmux_upstream_state", server="fx", state="ready") == 1
    assert value(found, "mcpmux_upstream_state", server="fx", state="restarting") == 0
    assert value(found, "mcpmux_upstream_restarts_total", server="fx") == 0
    assert value(found, "mcpmux_upstream_uptime_seconds", server="fx") > 0
    assert value(found, "mcpmux_upstream_tools", server="fx") > 10
    assert value(found, "mcpmux_upstream_requests_in_flight", server="fx") == 0

    # 6 calls, plus the proxy's own initialize and catalog listing
    sent = value(found, "mcpmux_messages_total", server="fx", direction="to_upstream", kind="request")
    answered = value(found, "mcpmux_messages_total", server="fx", direction="from_upstream", kind="response")
    assert sent >= 6 + 1
    assert answered == sent
    notified = value(
        found, "mcpmux_messages_total", server="fx", direction="to_upstream", kind="notification"
    )
    assert notified >= 1  # notifications/initialized


async def test_metrics_count_notifications_and_server_to_client_requests_from_the_upstream(tmp_path):
    config = {"mcpProxy": {"name": "metrics"}, "mcpServers": {"fx": fixture_server()}}

    async def sample(context: Any, params: Any) -> Any:
        from mcp_types import CreateMessageResult, TextContent

        return CreateMessageResult(role="assistant", content=TextContent(type="text", text="ok"), model="m")

    with running_proxy(config, tmp_path) as proxy, anyio.fail_after(30):
        before = await scrape(proxy.url("/metrics"))
        async with mcp_client(proxy.url("/fx/mcp"), sampling_callback=sample) as session:
            await session.call_tool("log", {"level": "info", "data": "hello"})
            await session.call_tool("ask_sampling", {"prompt": "hi"})
        after = await scrape(proxy.url("/metrics"))

    def received(scrape: Any, kind: str) -> float:
        return value(scrape, "mcpmux_messages_total", server="fx", direction="from_upstream", kind=kind)

    assert received(after, "notification") - received(before, "notification") >= 1
    assert received(after, "server_request") - received(before, "server_request") == 1
    answers = value(after, "mcpmux_messages_total", server="fx", direction="to_upstream", kind="response")
    assert answers == 1  # the client's answer to sampling/createMessage


async def test_metrics_show_an_upstream_restart_and_its_state(tmp_path):
    server = {**fixture_server(), "options": {"restart": {"initialDelay": "0.2s"}}}
    config = {"mcpProxy": {"name": "metrics"}, "mcpServers": {"fx": server}}
    with running_proxy(config, tmp_path) as proxy, anyio.fail_after(30):
        async with mcp_client(proxy.url("/fx/mcp")) as session:
            pid = (await session.call_tool("whoami", {})).structured_content["pid"]
        mark = len(proxy.lines)
        os.kill(pid, signal.SIGKILL)
        await anyio.to_thread.run_sync(lambda: proxy.wait_for_line(r"<fx> Connected", start=mark))
        found = await scrape(proxy.url("/metrics"))
    assert value(found, "mcpmux_upstream_restarts_total", server="fx") == 1
    assert value(found, "mcpmux_upstream_up", server="fx") == 1


async def test_metrics_need_a_default_token_when_tokens_are_set(tmp_path):
    config = {
        "mcpProxy": {"name": "metrics", "options": {"authTokens": ["admin-token"]}},
        "mcpServers": {"fx": fixture_server()},
    }
    with running_proxy(config, tmp_path) as proxy, anyio.fail_after(30):
        async with httpx2.AsyncClient() as http:
            refused = await http.get(proxy.url("/metrics"))
            wrong = await http.get(proxy.url("/metrics"), headers={"Authorization": "Bearer nope"})
        found = await scrape(proxy.url("/metrics"), headers={"Authorization": "Bearer admin-token"})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 401
    assert value(found, "mcpmux_upstream_up", server="fx") == 1
