"""A client of either era cancelling a call through mcpmux stops the upstream's tool, whatever its era.

The SDK's `Client` cancels the way its era says (handshake: `notifications/cancelled`; 2026-07-28: it
closes the call's POST stream); mcpmux then tells a handshake-era upstream with `notifications/cancelled`
and aborts its own POST to a 2026-07-28 streamable-HTTP upstream (a 2026-07-28 stdio one gets
`notifications/cancelled`, as that era keeps for stdio). The fixture's `slow` tool counts its cancellations.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import orjson
import pytest
from mcp.client import Client
from relay_kit import BOUND_SECONDS, messages_of, relay_proxy

from harness import ProxyProcess
from mcpmux.upstream.sse_events import iter_events

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
UPSTREAMS = {
    "old": ("streamable-http", ("--handshake-only",), {"protocol": "legacy"}),
    "new": ("streamable-http", (), {"protocol": MODERN}),
    "new_stdio": ("stdio", (), {"protocol": MODERN}),  # told with notifications/cancelled on its pipe
}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    with relay_proxy(tmp_path_factory.mktemp("era-cancel"), UPSTREAMS) as running:
        yield running


async def cancelled_so_far(client: Client, prefix: str, above: int = -1, wait: float = 0) -> int:
    result = await client.call_tool(f"{prefix}cancellations", {"above": above, "wait": wait})
    assert result.structured_content is not None, result
    count: int = result.structured_content["count"]
    return count


async def cancel_once_started(client: Client, prefix: str) -> None:
    """Call `slow` (a minute long) and cancel the call as soon as its first progress shows it runs."""
    started = anyio.Event()

    async def progress(*_args: Any) -> None:
        started.set()

    async def call() -> None:
        await client.call_tool(f"{prefix}slow", {"seconds": 60}, progress_callback=progress)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await started.wait()
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("merged", [False, True], ids=["route", "merged"])
@pytest.mark.parametrize("upstream", list(UPSTREAMS))
@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_a_cancelled_call_stops_the_upstream_tool(
    proxy: ProxyProcess, mode: str, upstream: str, merged: bool
) -> None:
    path, prefix = ("/mcp", f"{upstream}__") if merged else (f"/{upstream}/mcp", "")
    with anyio.fail_after(BOUND_SECONDS * 2):
        async with Client(proxy.url(path), mode=mode) as client:
            before = await cancelled_so_far(client, prefix)
            await cancel_once_started(client, prefix)
            after = await cancelled_so_far(client, prefix, above=before, wait=BOUND_SECONDS)
    assert after == before + 1, f"the upstream's slow tool was not cancelled ({before} -> {after})"


ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
    "io.modelcontextprotocol/clientInfo": {"name": "cancel-test", "version": "1"},
}


def modern_post(method: str, params: dict[str, Any], request_id: int) -> dict[str, Any]:
    """The keyword arguments of an httpx2 POST of one 2026-07-28 request."""
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": MODERN,
        "mcp-method": method,
    }
    if method == "tools/call":
        headers["mcp-name"] = params["name"]
    body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    return {"content": orjson.dumps(body), "headers": headers}


async def modern_count(http: httpx2.AsyncClient, url: str, above: int = -1, wait: float = 0) -> int:
    call = {"name": "cancellations", "arguments": {"above": above, "wait": wait}, "_meta": ENVELOPE}
    reply = await http.post(url, **modern_post("tools/call", call, 1))
    (answer,) = [m for m in messages_of(reply) if m.get("id") == 1]
    count: int = answer["result"]["structuredContent"]["count"]
    return count


@pytest.mark.parametrize("upstream", list(UPSTREAMS))
async def test_closing_a_retry_before_its_answer_cancels_the_suspended_call(
    proxy: ProxyProcess, upstream: str
) -> None:
    """A 2026 client answers what the call asked (multi round trip), then closes the retry's POST while
    the tool runs: that cancels the call, whose upstream tool sees it."""
    url = proxy.url(f"/{upstream}/mcp")
    meta = {**ENVELOPE, "progressToken": "p1"}
    call = {"name": "ask_then_slow", "arguments": {"seconds": 60}, "_meta": meta}
    with anyio.fail_after(BOUND_SECONDS * 2):
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(BOUND_SECONDS, read=None)) as http:
            before = await modern_count(http, url)
            first = await http.post(url, **modern_post("tools/call", call, 2))
            (asked,) = [m for m in messages_of(first) if m.get("id") == 2]
            result = asked["result"]
            assert result["resultType"] == "input_required", result
            answers = {key: {"action": "accept", "content": {"ok": True}} for key in result["inputRequests"]}
            retry = {**call, "inputResponses": answers, "requestState": result["requestState"]}
            async with http.stream("POST", url, **modern_post("tools/call", retry, 3)) as stream:
                async for event in iter_events(stream.aiter_bytes()):
                    if event.data and orjson.loads(event.data).get("method") == "notifications/progress":
                        break  # the tool runs: close the retry's POST
            after = await modern_count(http, url, above=before, wait=BOUND_SECONDS)
    assert after == before + 1, f"the upstream's tool was not cancelled ({before} -> {after})"
