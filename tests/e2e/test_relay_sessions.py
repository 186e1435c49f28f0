"""Session model: shared subscriptions are counted, isolated sessions are capped, idle sessions end."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import httpx2
import pytest
from relay_kit import RawHttp, raw_http, raw_sse, relay_proxy

from harness import ProxyProcess, count_lines, wait_for_log

pytestmark = pytest.mark.anyio

WATCHED = "test://watched-resource"
OTHER = "test://static-text"
IDLE_TIMEOUT = "1s"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    routes = {
        "shared": ("stdio", (), {}),
        "capped": ("streamable-http", (), {"maxSessions": 2}),
        "idle": ("streamable-http", (), {"idleTimeout": IDLE_TIMEOUT}),
        "idle_shared": ("stdio", (), {"idleTimeout": IDLE_TIMEOUT}),
    }
    with relay_proxy(tmp_path_factory.mktemp("sessions"), routes) as running:
        yield running


async def upstream_line(proxy: ProxyProcess, text: str, mark: int) -> int:
    """Wait for the shared upstream to print `text`; the index of the line after it."""
    line = await wait_for_log(proxy, f"stderr: {text}$", mark)
    return proxy.lines.index(line, mark) + 1


async def test_a_shared_upstream_sees_one_subscription_per_uri_and_only_subscribers_get_updates(
    proxy: ProxyProcess,
) -> None:
    url = proxy.url("/shared/mcp")
    mark = len(proxy.lines)
    with anyio.fail_after(20):
        async with (
            raw_http(url, standalone=True) as a,
            raw_sse(proxy.url("/shared/sse")) as b,
            raw_http(url, standalone=True) as bystander,
        ):
            assert await a.result("resources/subscribe", {"uri": WATCHED}) == {}
            assert await b.result("resources/subscribe", {"uri": WATCHED}) == {}
            assert await bystander.result("resources/subscribe", {"uri": OTHER}) == {}
            after = await upstream_line(proxy, f"subscribe {OTHER}", mark)  # the upstream is in order
            assert count_lines(proxy, f"stderr: subscribe {WATCHED}", mark) == 1

            touched = await a.result("tools/call", {"name": "touch_resource", "arguments": {"uri": WATCHED}})
            assert touched["content"][0]["text"] == "notified 1 subscriber(s)"
            for client in (a, b):
                updated = await client.notification("notifications/resources/updated")
                assert updated["params"] == {"uri": WATCHED}
            await a.result("tools/call", {"name": "notify_list_changed", "arguments": {"standalone": True}})
            await bystander.notification("notifications/tools/list_changed")  # after any update for it
            assert all(m.get("method") != "notifications/resources/updated" for m in bystander.seen)

            assert await a.result("resources/unsubscribe", {"uri": WATCHED}) == {}
            assert await bystander.result("resources/unsubscribe", {"uri": OTHER}) == {}
            after = await upstream_line(proxy, f"unsubscribe {OTHER}", after)
            assert count_lines(proxy, f"stderr: unsubscribe {WATCHED}", mark) == 0
            assert await b.result("resources/unsubscribe", {"uri": WATCHED}) == {}
            await upstream_line(proxy, f"unsubscribe {WATCHED}", after)
            touched = await a.result("tools/call", {"name": "touch_resource", "arguments": {"uri": WATCHED}})
            assert touched["content"][0]["text"] == "notified 0 subscriber(s)"


async def test_a_client_that_leaves_releases_its_shared_subscriptions(proxy: ProxyProcess) -> None:
    mark = len(proxy.lines)
    with anyio.fail_after(20):
        async with raw_http(proxy.url("/shared/mcp")) as client:
            assert await client.result("resources/subscribe", {"uri": WATCHED}) == {}
            await upstream_line(proxy, f"subscribe {WATCHED}", mark)
        await upstream_line(proxy, f"unsubscribe {WATCHED}", mark)


async def test_one_session_more_than_max_sessions_gets_a_503_json_rpc_error_until_one_ends(
    proxy: ProxyProcess,
) -> None:
    url = proxy.url("/capped/mcp")
    with anyio.fail_after(20):
        async with raw_http(url) as first, raw_http(url), httpx2.AsyncClient(timeout=10) as http:
            third = RawHttp(http, url)
            params = {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            }
            refused = await third.post({"jsonrpc": "2.0", "id": 9, "method": "initialize", "params": params})
            assert refused.status_code == 503
            assert refused.json() == {
                "jsonrpc": "2.0",
                "id": 9,
                "error": {
                    "code": -32603,
                    "message": "Too many open sessions: 'capped' allows 2 (maxSessions)",
                },
            }
            stream = await http.get(proxy.url("/capped/sse"), headers={"accept": "text/event-stream"})
            assert stream.status_code == 503
            assert stream.json()["error"]["code"] == -32603
            assert await first.delete() == 200
            first.session_id = None  # already ended
            await third.initialize()
            assert (await third.result("ping")) == {}
            assert await third.delete() == 200


@pytest.mark.parametrize("route", ["idle", "idle_shared"])
async def test_an_idle_session_is_ended_but_not_one_with_a_call_in_flight_or_a_stream_open(
    proxy: ProxyProcess, route: str
) -> None:
    url = proxy.url(f"/{route}/mcp")
    mark = len(proxy.lines)
    with anyio.fail_after(20):
        async with (
            raw_http(url, standalone=True) as listening,
            raw_http(url) as busy,
            raw_http(url) as idle,
            anyio.create_task_group() as tg,
        ):
            outcome: dict[str, object] = {}

            async def long_call() -> None:
                outcome["response"] = await busy.request(
                    "tools/call", {"name": "slow", "arguments": {"seconds": 2}}
                )

            tg.start_soon(long_call)
            await wait_for_log(proxy, f"ending session {idle.session_id}, idle for more than 1s", mark)
            gone = await idle.post({"jsonrpc": "2.0", "id": 1, "method": "ping"})
            assert gone.status_code == 404
            assert gone.json()["error"] == {"code": -32600, "message": "Session not found"}
            if route == "idle":  # its private upstream session ended with it
                await wait_for_log(
                    proxy, f"upstream session of client session {idle.session_id} closed", mark
                )
            assert await listening.result("ping") == {}  # older than `idle`, but its GET stream is open
            idle.session_id = None
        assert outcome["response"]["result"]["content"] == [{"type": "text", "text": "slept 2.0 s"}]  # type: ignore[index]
    assert count_lines(proxy, f"ending session {listening.session_id}", mark) == 0


async def test_http_upstreams_default_to_one_session_per_client_and_stdio_to_one_shared_session(
    proxy: ProxyProcess,
) -> None:
    identities: dict[str, list[dict[str, object]]] = {}
    with anyio.fail_after(20):
        for route in ("capped", "shared"):
            async with raw_http(proxy.url(f"/{route}/mcp")) as a, raw_http(proxy.url(f"/{route}/mcp")) as b:
                calls = [await c.result("tools/call", {"name": "whoami", "arguments": {}}) for c in (a, b)]
                identities[route] = [call["structuredContent"] for call in calls]
    first, second = identities["capped"]
    assert first["sessionId"] != second["sessionId"] and first["calls"] == second["calls"] == 1
    first, second = identities["shared"]
    assert (first["pid"], first["connection"]) == (second["pid"], second["connection"])
    assert second["calls"] == first["calls"] + 1


async def test_on_isolated_upstreams_each_client_subscribes_for_itself(proxy: ProxyProcess) -> None:
    url = proxy.url("/capped/mcp")
    with anyio.fail_after(20):
        async with raw_http(url, standalone=True) as subscriber, raw_http(url, standalone=True) as other:
            assert await subscriber.result("resources/subscribe", {"uri": WATCHED}) == {}
            touched = await other.result(
                "tools/call", {"name": "touch_resource", "arguments": {"uri": WATCHED}}
            )
            assert touched["content"][0]["text"] == "notified 1 subscriber(s)"  # one upstream session
            updated = await subscriber.notification("notifications/resources/updated")
            assert updated["params"] == {"uri": WATCHED}
            await other.result(
                "tools/call", {"name": "notify_list_changed", "arguments": {"standalone": True}}
            )
            await other.notification("notifications/tools/list_changed")  # after any update for it
            assert all(m.get("method") != "notifications/resources/updated" for m in other.seen)
            assert await subscriber.result("resources/unsubscribe", {"uri": WATCHED}) == {}
            touched = await other.result(
                "tools/call", {"name": "touch_resource", "arguments": {"uri": WATCHED}}
            )
            assert touched["content"][0]["text"] == "notified 0 subscriber(s)"


async def test_clients_subscribing_to_one_uri_at_the_same_moment_cause_one_upstream_subscription(
    proxy: ProxyProcess,
) -> None:
    url = proxy.url("/shared/mcp")
    uri = "test://template/7/data"
    mark = len(proxy.lines)
    with anyio.fail_after(20):
        async with raw_http(url) as a, raw_http(url) as b, raw_http(url) as c:
            async with anyio.create_task_group() as tg:
                for client in (a, b, c):
                    tg.start_soon(client.result, "resources/subscribe", {"uri": uri})
            assert await a.result("resources/subscribe", {"uri": OTHER}) == {}
            await upstream_line(proxy, f"subscribe {OTHER}", mark)  # the upstream is in order
            assert count_lines(proxy, f"stderr: subscribe {uri}", mark) == 1
            assert await a.result("resources/unsubscribe", {"uri": OTHER}) == {}


async def test_a_legacy_sse_post_is_accepted_while_its_slow_request_still_runs(proxy: ProxyProcess) -> None:
    """The 202 waits for a fast response (to leave with it) but not for a slow one."""
    with anyio.fail_after(20):
        async with raw_sse(proxy.url("/shared/sse")) as client:
            call = {
                "jsonrpc": "2.0",
                "id": "slow-1",
                "method": "tools/call",
                "params": {"name": "slow", "arguments": {"seconds": 1.5}},
            }
            await client.send(call)  # returns once the POST got its 202
            accepted_at = anyio.current_time()
            assert not client.seen and client.inbox.statistics().current_buffer_used == 0
            response = await client.receive(lambda m: m.get("id") == "slow-1")
            assert anyio.current_time() - accepted_at > 0.75  # the 202 did not wait for the 1.5 s call
            assert response["result"]["content"][0]["text"] == "slept 1.5 s"
            fast = await client.result("tools/call", {"name": "echo", "arguments": {"text": "quick"}})
            assert fast["content"][0]["text"] == "quick"
