"""Notifications both ways: progress, logs, list changes, cancellation, roots changes, log levels."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import mcp_types as types
import pytest
from relay_kit import UPSTREAM_KINDS, both_faces, every_kind, raw_http, raw_sse, relay_proxy, through

from harness import ProxyProcess, mcp_client, wait_for_log

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    routes = {kind: (kind, (), {}) for kind in UPSTREAM_KINDS}
    with relay_proxy(tmp_path_factory.mktemp("notifications"), routes) as running:
        yield running


async def call_with_related(
    client: Any, method: str, params: dict[str, Any]
) -> tuple[dict[str, Any], list[Any]]:
    """A request's response and, in order, the messages its stream carried before it (either face)."""
    if hasattr(client, "exchange"):
        return await client.exchange(method, params)
    client.seen.clear()
    response = await client.request(method, params)
    return response, list(client.seen)


@every_kind
@both_faces
async def test_progress_reaches_the_client_before_the_result_under_the_clients_own_token(
    proxy: ProxyProcess, kind: str, face: str
) -> None:
    with anyio.fail_after(20):
        async with through(proxy, kind, face, standalone=True) as client:
            params = {
                "name": "slow",
                "arguments": {"seconds": 0.3},
                "_meta": {"progressToken": f"tok-{face}"},
            }
            response, related = await call_with_related(client, "tools/call", params)
    assert response["result"]["content"] == [{"type": "text", "text": "slept 0.3 s"}]
    progress = [m["params"] for m in related if m.get("method") == "notifications/progress"]
    assert progress == [
        {"progressToken": f"tok-{face}", "progress": step, "total": 3, "message": f"step {step} of 3"}
        for step in (1, 2, 3)
    ]


async def test_two_clients_using_the_same_progress_token_on_one_shared_upstream_each_get_their_own(
    proxy: ProxyProcess,
) -> None:
    results: dict[str, list[Any]] = {}

    async def call(name: str) -> None:
        async with raw_http(proxy.url("/stdio/mcp")) as client:
            params = {"name": "slow", "arguments": {"seconds": 0.5}, "_meta": {"progressToken": 1}}
            _response, related = await client.exchange("tools/call", params)
            results[name] = [m["params"] for m in related]

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "a")
            tg.start_soon(call, "b")
    for progress in results.values():
        assert [p["progress"] for p in progress] == [1, 2, 3, 4, 5]
        assert {p["progressToken"] for p in progress} == {1}


async def test_the_sdk_client_gets_progress_callbacks_through_the_proxy(proxy: ProxyProcess) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    with anyio.fail_after(20):
        async with mcp_client(proxy.url("/streamable-http/mcp")) as session:
            result = await session.call_tool("slow", {"seconds": 0.2}, progress_callback=on_progress)
    assert not result.is_error
    assert seen == [(1, 2, "step 1 of 2"), (2, 2, "step 2 of 2")]


@every_kind
@both_faces
async def test_log_messages_reach_the_client_that_caused_them_before_the_result(
    proxy: ProxyProcess, kind: str, face: str
) -> None:
    with anyio.fail_after(20):
        async with through(proxy, kind, face, standalone=True) as client:
            arguments = {"level": "warning", "data": {"k": [1, None]}, "logger": "lg"}
            response, related = await call_with_related(
                client, "tools/call", {"name": "log", "arguments": arguments}
            )
    assert "result" in response
    logs = [m["params"] for m in related if m.get("method") == "notifications/message"]
    assert logs == [{"level": "warning", "logger": "lg", "data": {"k": [1, None]}}]


@every_kind
async def test_set_level_filters_log_messages_for_each_client_separately(
    proxy: ProxyProcess, kind: str
) -> None:
    url = proxy.url(f"/{kind}/mcp")

    async def logs_seen(client: Any, level: str) -> list[str]:
        _response, related = await client.exchange(
            "tools/call", {"name": "log", "arguments": {"level": level}}
        )
        return [m["params"]["level"] for m in related if m.get("method") == "notifications/message"]

    with anyio.fail_after(20):
        async with raw_http(url) as quiet, raw_http(url) as chatty:
            assert await quiet.result("logging/setLevel", {"level": "error"}) == {}
            assert await chatty.result("logging/setLevel", {"level": "debug"}) == {}
            assert await logs_seen(quiet, "info") == []
            assert await logs_seen(quiet, "critical") == ["critical"]
            assert await logs_seen(chatty, "info") == ["info"]
            assert await logs_seen(chatty, "debug") == ["debug"]
            bad = await quiet.request("logging/setLevel", {"level": "loud"})
            assert bad["error"]["code"] == -32602


@every_kind
async def test_list_changed_of_tools_prompts_and_resources_reaches_the_client(
    proxy: ProxyProcess, kind: str
) -> None:
    url = proxy.url(f"/{kind}/mcp")
    with anyio.fail_after(20):
        async with raw_http(url, standalone=True) as caller:
            for listed in ("tools", "prompts", "resources"):
                for standalone in (True, False):
                    arguments = {"kind": listed, "standalone": standalone}
                    await caller.result("tools/call", {"name": "notify_list_changed", "arguments": arguments})
                    await caller.notification(f"notifications/{listed}/list_changed")
            tools = await caller.result("tools/list")
            assert "dynamic_tool" in {tool["name"] for tool in tools["tools"]}


async def test_list_changed_from_a_shared_upstream_reaches_every_attached_client(proxy: ProxyProcess) -> None:
    url = proxy.url("/stdio/mcp")
    with anyio.fail_after(20):
        async with raw_http(url, standalone=True) as caller, raw_sse(proxy.url("/stdio/sse")) as other:
            await caller.result(
                "tools/call", {"name": "notify_list_changed", "arguments": {"standalone": True}}
            )
            await caller.notification("notifications/tools/list_changed")
            await other.notification("notifications/tools/list_changed")


@every_kind
@both_faces
async def test_cancelling_a_call_stops_it_upstream(proxy: ProxyProcess, kind: str, face: str) -> None:
    transport = "streamable-http" if face == "mcp" else "sse"
    started = anyio.Event()
    mark = len(proxy.lines)

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    with anyio.fail_after(20):
        async with mcp_client(proxy.url(f"/{kind}/{face}"), transport=transport) as session:
            before = (await session.call_tool("cancellations", {"wait": 0})).structured_content["count"]
            async with anyio.create_task_group() as tg:

                async def call_slow() -> None:
                    await session.call_tool("slow", {"seconds": 30}, progress_callback=on_progress)

                tg.start_soon(call_slow)
                await started.wait()
                tg.cancel_scope.cancel()
            after = await session.call_tool("cancellations", {"above": before, "wait": 10})
            assert after.structured_content["count"] == before + 1
            assert (await session.call_tool("echo", {"text": "still here"})).content[0].text == "still here"
    if kind == "stdio":
        await wait_for_log(proxy, r"stderr: slow cancelled", mark)


async def test_roots_list_changed_from_a_client_reaches_the_upstream(proxy: ProxyProcess) -> None:
    mark = len(proxy.lines)

    async def list_roots(context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[])

    with anyio.fail_after(20):
        async with mcp_client(proxy.url("/stdio/mcp"), list_roots_callback=list_roots) as session:
            await session.send_roots_list_changed()
            await wait_for_log(proxy, r"stderr: roots list changed", mark)
