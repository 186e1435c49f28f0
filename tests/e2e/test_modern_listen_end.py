"""A `subscriptions/listen` stream that mcpmux ends (here: it shuts down) ends gracefully, as 2026-07-28
says: its last message is the listen request's result, so a client knows it was closed, not lost.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import orjson
import pytest
from mcp.client import Client
from relay_kit import ACCEPT_BOTH, BOUND_SECONDS, relay_proxy

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"
LISTEN = {
    "jsonrpc": "2.0",
    "id": "listen-1",
    "method": "subscriptions/listen",
    "params": {
        "notifications": {"toolsListChanged": True},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "listen-end", "version": "1"},
        },
    },
}
HEADERS = {
    "accept": ACCEPT_BOTH,
    "content-type": "application/json",
    "mcp-protocol-version": MODERN,
    "mcp-method": "subscriptions/listen",
}


async def raw_listen(url: str, acknowledged: anyio.Event) -> list[dict[str, Any]]:
    """Every frame of one listen stream, read until the server ends it."""
    frames: list[dict[str, Any]] = []
    async with (
        httpx2.AsyncClient(timeout=httpx2.Timeout(BOUND_SECONDS, read=None)) as http,
        http.stream("POST", url, content=orjson.dumps(LISTEN), headers=HEADERS) as stream,
    ):
        assert stream.status_code == 200
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                frames.append(orjson.loads(line[5:]))
                acknowledged.set()
    return frames


async def sdk_listen(url: str, acknowledged: anyio.Event) -> list[Any]:
    """The SDK's events of one listen stream; its iteration ends (no `SubscriptionLost`) on a graceful end."""
    async with (
        Client(url, mode=MODERN) as client,
        client.listen(tools_list_changed=True) as subscription,
    ):
        acknowledged.set()
        return [event async for event in subscription]


async def test_listen_streams_end_with_their_result_when_mcpmux_stops(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    routes = {"stdio": ("stdio", (), {}), "modern": ("stdio", (), {"protocol": MODERN})}
    with relay_proxy(tmp_path_factory.mktemp("listen-end"), routes) as proxy:
        results: dict[str, Any] = {}
        acks = [anyio.Event() for _ in range(3)]

        async def run(key: str, reader: Any, url: str, acknowledged: anyio.Event) -> None:
            results[key] = await reader(url, acknowledged)

        with anyio.fail_after(BOUND_SECONDS):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run, "route", raw_listen, proxy.url("/stdio/mcp"), acks[0])
                tg.start_soon(run, "merged", raw_listen, proxy.url("/mcp"), acks[1])
                tg.start_soon(run, "sdk", sdk_listen, proxy.url("/modern/mcp"), acks[2])
                for ack in acks:
                    await ack.wait()
                await anyio.to_thread.run_sync(proxy.stop)  # SIGTERM: a graceful shutdown
    # ended, not lost (the SDK raises SubscriptionLost on an abrupt end); list changes as servers stop
    assert all(type(event).__name__ == "ToolsListChanged" for event in results["sdk"]), results["sdk"]
    for key in ("route", "merged"):
        acked, *between, last = results[key]
        assert acked["method"] == "notifications/subscriptions/acknowledged"
        assert all(frame.get("method") == "notifications/tools/list_changed" for frame in between), between
        assert last == {
            "jsonrpc": "2.0",
            "id": "listen-1",
            "result": {"resultType": "complete", "_meta": {SUBSCRIPTION_ID: "listen-1"}},
        }, key
