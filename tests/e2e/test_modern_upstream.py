"""A 2026-07-28 upstream (`options.protocol: "2026-07-28"` or `auto`; streamable HTTP and stdio) behind
mcpmux, for clients of both eras: initialize answered from server/discover, stateless requests,
`input_required` turned into server-to-client requests for handshake-era clients and passed on to 2026
ones as questions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from mcp import types
from mcp.client import Client
from relay_kit import BOUND_SECONDS, raw_http, relay_proxy

from harness import ProxyProcess, mcp_client

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    routes = {
        "modern": ("streamable-http", (), {"protocol": MODERN, "sessionMode": "shared"}),
        "modern_isolated": ("streamable-http", (), {"protocol": MODERN}),
        "auto": ("streamable-http", (), {"protocol": "auto", "sessionMode": "shared"}),
        "stdio_modern": ("stdio", (), {"protocol": MODERN}),
        "stdio_auto": ("stdio", (), {"protocol": "auto"}),
    }
    with relay_proxy(tmp_path_factory.mktemp("modern-up"), routes) as running:
        yield running


async def answer_name(context: Any, params: Any) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": f"answer to {params.message}"})


@pytest.mark.parametrize("route", ["modern", "modern_isolated", "auto", "stdio_modern", "stdio_auto"])
async def test_a_2025_client_uses_a_2026_upstream(proxy: ProxyProcess, route: str) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with mcp_client(proxy.url(f"/{route}/mcp"), elicitation_callback=answer_name) as client:
            assert client.initialize_result is not None
            assert client.initialize_result.protocol_version == "2025-11-25"
            assert client.initialize_result.server_info.name == route
            tools = await client.list_tools()
            assert "echo" in {t.name for t in tools.tools}
            echoed = await client.call_tool("echo", {"text": "across eras"})
            assert echoed.structured_content == {"text": "across eras"}
            asked = await client.call_tool("native_ask", {"rounds": 2})
    assert not asked.is_error, asked
    answers = json.loads(asked.content[0].text.removeprefix("native answers: "))  # type: ignore[union-attr]
    assert answers["second"]["content"] == {"name": "answer to What is your quest?"}


@pytest.mark.parametrize("route", ["modern", "stdio_modern"])
async def test_a_2025_client_sees_the_upstreams_result_without_2026_fields(
    proxy: ProxyProcess, route: str
) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url(f"/{route}/mcp")) as client:
            listed = await client.result("tools/list")
            called = await client.result("tools/call", {"name": "echo", "arguments": {"text": "x"}})
            pong = await client.result("ping")
    for result in (listed, called):
        assert not {"resultType", "ttlMs", "cacheScope"} & set(result)
    assert pong == {}


@pytest.mark.parametrize("route", ["modern", "stdio_modern"])
async def test_a_2026_client_answers_a_2026_upstreams_questions_through_mcpmux(
    proxy: ProxyProcess, route: str
) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        url = proxy.url(f"/{route}/mcp")
        async with Client(url, mode=MODERN, elicitation_callback=answer_name) as client:
            asked = await client.call_tool("native_ask", {})
    assert not asked.is_error, asked
    answers = json.loads(asked.content[0].text.removeprefix("native answers: "))  # type: ignore[union-attr]
    assert answers["first"]["content"] == {"name": "answer to What is your name?"}


@pytest.mark.parametrize("route", ["auto", "stdio_auto"])
def test_auto_probed_the_upstream_once_and_chose_2026(proxy: ProxyProcess, route: str) -> None:
    chosen = [line for line in proxy.lines if f" {route}: the upstream speaks" in line]
    assert len(chosen) == 1 and MODERN in chosen[0], chosen


@pytest.mark.parametrize("route", ["modern", "stdio_modern"])
async def test_a_2025_client_gets_list_changed_and_resource_updates_from_a_2026_upstream(
    proxy: ProxyProcess, route: str
) -> None:
    uri = "test://watched-resource"
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url(f"/{route}/mcp"), standalone=True) as client:
            assert client.init_result["capabilities"]["resources"]["subscribe"] is True
            await client.result("resources/subscribe", {"uri": uri})
            call = {"name": "notify_list_changed", "arguments": {"kind": "prompts", "standalone": True}}
            await client.result("tools/call", call)
            changed = await client.notification("notifications/prompts/list_changed")
            meta = (changed.get("params") or {}).get("_meta", {})
            assert "io.modelcontextprotocol/subscriptionId" not in meta
            await client.result("tools/call", {"name": "touch_resource", "arguments": {"uri": uri}})
            updated = await client.notification("notifications/resources/updated")
            assert updated["params"]["uri"] == uri
            await client.result("resources/unsubscribe", {"uri": uri})


async def test_tool_arguments_marked_x_mcp_header_travel_as_mcp_param_headers(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/modern/mcp")) as client:
            await client.result("tools/list")
            routed = await client.result(
                "tools/call", {"name": "routed_echo", "arguments": {"region": "eu-wëst"}}
            )
    assert routed["content"][0]["text"] == "routed to eu-wëst", routed


@pytest.mark.parametrize("route", ["modern", "stdio_modern"])
async def test_a_2026_client_listens_to_a_2026_upstream_through_mcpmux(
    proxy: ProxyProcess, route: str
) -> None:
    from mcp.shared.subscriptions import PromptsListChanged, ResourceUpdated

    uri = "test://watched-resource"
    with anyio.fail_after(BOUND_SECONDS):
        async with (
            Client(proxy.url(f"/{route}/mcp"), mode=MODERN) as client,
            client.listen(prompts_list_changed=True, resource_subscriptions=[uri]) as subscription,
        ):
            assert subscription.honored.resource_subscriptions == [uri]
            events = aiter(subscription)
            await client.call_tool("notify_list_changed", {"kind": "prompts", "standalone": True})
            assert isinstance(await anext(events), PromptsListChanged)
            await client.call_tool("touch_resource", {"uri": uri})
            updated = await anext(events)
            assert isinstance(updated, ResourceUpdated) and updated.uri == uri


async def sample_answer(context: Any, params: Any) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="sampled"), model="test"
    )


@pytest.mark.parametrize("route", ["modern", "stdio_modern"])
async def test_a_2026_upstream_is_told_each_clients_own_capabilities(proxy: ProxyProcess, route: str) -> None:
    """The tool asks for an elicitation only when the request's client capabilities declare it, then
    samples: a client without elicitation is asked only to sample (SEP-2322), on a shared upstream."""
    url = proxy.url(f"/{route}/mcp")
    tool = "test_input_required_result_capabilities"
    with anyio.fail_after(BOUND_SECONDS):
        async with mcp_client(url, sampling_callback=sample_answer) as sampler:
            only_sampled = await sampler.call_tool(tool, {})
        async with mcp_client(url, sampling_callback=sample_answer, elicitation_callback=answer_name) as both:
            both_asked = await both.call_tool(tool, {})
        async with Client(url, mode=MODERN, sampling_callback=sample_answer) as modern:
            modern_sampled = await modern.call_tool(tool, {})
    for result in (only_sampled, modern_sampled):
        assert not result.is_error and result.content[0].text == "asked: ['sampling']", result  # type: ignore[union-attr]
    assert both_asked.content[0].text == "asked: ['elicitation', 'sampling']", both_asked  # type: ignore[union-attr]


async def test_the_merged_endpoint_tells_a_2026_stdio_member_each_clients_capabilities(
    proxy: ProxyProcess,
) -> None:
    tool = "stdio_modern__test_input_required_result_capabilities"
    with anyio.fail_after(BOUND_SECONDS):
        async with mcp_client(proxy.url("/mcp"), sampling_callback=sample_answer) as sampler:
            only_sampled = await sampler.call_tool(tool, {})
        async with Client(proxy.url("/mcp"), mode=MODERN, sampling_callback=sample_answer) as modern:
            modern_sampled = await modern.call_tool(tool, {})
    for result in (only_sampled, modern_sampled):
        assert not result.is_error and result.content[0].text == "asked: ['sampling']", result  # type: ignore[union-attr]
