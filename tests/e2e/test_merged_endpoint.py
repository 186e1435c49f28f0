"""The merged endpoint end to end: two fixture upstreams whose tool, prompt and resource names all collide.

Both upstreams paginate their lists two items at a time, so every listing here also crosses pages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError
from merged_kit import (
    PUBLISHED_NAME,
    colliding_server,
    list_all,
    list_pages,
    names_of,
    pid_of,
    raw_list_all,
)
from relay_kit import raw_http, raw_sse

from harness import ProxyProcess, mcp_client, running_proxy

pytestmark = pytest.mark.anyio

SERVERS = ("a", "b")
FACES = {"mcp": "streamable-http", "sse": "sse"}
BOUND_SECONDS = 20


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    config = {
        "mcpProxy": {"name": "mux", "version": "3.2.1"},
        "mcpServers": {name: colliding_server("--page-size", "2") for name in SERVERS},
    }
    with running_proxy(config, tmp_path_factory.mktemp("merged")) as running:
        yield running


async def test_every_tool_of_both_servers_is_listed_once_under_a_distinct_valid_name(
    proxy: ProxyProcess,
) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with mcp_client(proxy.url("/mcp")) as merged:
            published = await names_of(merged)
        per_server = {}
        for name in SERVERS:
            async with mcp_client(proxy.url(f"/{name}/mcp")) as session:
                per_server[name] = await names_of(session)
    assert per_server["a"] == per_server["b"]  # every name collides
    assert len(published) == len(set(published))
    assert set(published) == {f"{server}__{tool}" for server in SERVERS for tool in per_server[server]}
    assert all(PUBLISHED_NAME.fullmatch(name) for name in published)


async def test_each_namespaced_call_reaches_its_own_server(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        direct = {}
        for name in SERVERS:
            async with mcp_client(proxy.url(f"/{name}/mcp")) as session:
                direct[name] = await pid_of(session)
        async with mcp_client(proxy.url("/mcp")) as merged:
            assert await pid_of(merged, "a__whoami") == direct["a"]
            assert await pid_of(merged, "b__whoami") == direct["b"]
            echoed = await merged.call_tool("b__echo", {"text": "to b"})
    assert direct["a"] != direct["b"]
    assert echoed.structured_content == {"text": "to b"}


async def test_the_merged_endpoint_introduces_itself_with_the_proxy_name_and_list_changed_everywhere(
    proxy: ProxyProcess,
) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/mcp")) as client:
            init = client.init_result
    assert init["serverInfo"] == {"name": "mux", "version": "3.2.1"}
    for kind in ("tools", "prompts", "resources"):
        assert init["capabilities"][kind]["listChanged"] is True
    assert init["instructions"].startswith("## a\n")


async def test_an_unknown_tool_is_refused_with_invalid_params(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/mcp")) as client:
            unknown = await client.request("tools/call", {"name": "c__whoami", "arguments": {}})
            bare = await client.request("tools/call", {"name": "whoami", "arguments": {}})
    assert unknown["error"] == {"code": -32602, "message": "Unknown tool: c__whoami"}
    assert bare["error"] == {"code": -32602, "message": "Unknown tool: whoami"}


@pytest.mark.parametrize("kind", ["tools", "prompts", "resources"])
async def test_pages_across_servers_return_every_item_exactly_once(proxy: ProxyProcess, kind: str) -> None:
    key = "uri" if kind == "resources" else "name"
    with anyio.fail_after(BOUND_SECONDS):
        async with mcp_client(proxy.url("/mcp")) as merged:
            pages = await list_pages(merged, kind)
        expected: list[str] = []
        for name in SERVERS:
            async with mcp_client(proxy.url(f"/{name}/mcp")) as session:
                own = [getattr(item, key) for item in await list_all(session, kind)]
            expected += [f"{name}__{n}" if key == "name" else f"mcpmux://{name}/{n}" for n in own]
    seen = [str(getattr(item, key)) for page in pages for item in page]
    assert len(pages) > 1
    assert all(len(page) <= 2 * len(SERVERS) for page in pages)
    assert sorted(seen) == sorted(expected)


async def test_a_cursor_the_merged_endpoint_did_not_issue_for_that_list_is_invalid_params(
    proxy: ProxyProcess,
) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/mcp")) as client:
            prompts_cursor = (await client.result("prompts/list"))["nextCursor"]
            foreign = await client.request("tools/list", {"cursor": prompts_cursor})
            upstream_style = await client.request("tools/list", {"cursor": "page:2"})
    assert foreign["error"]["code"] == upstream_style["error"]["code"] == -32602


async def test_resources_both_servers_offer_are_published_per_server_and_read_from_it(
    proxy: ProxyProcess,
) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/mcp")) as client:
            uris = [r["uri"] for r in await raw_list_all(client, "resources/list", "resources")]
            templates = (await client.result("resources/templates/list"))["resourceTemplates"]
            text = await client.result("resources/read", {"uri": "mcpmux://b/test://static-text"})
            item = await client.result("resources/read", {"uri": "mcpmux://a/test://template/7/data"})
            bare = await client.result("resources/read", {"uri": "test://static-text"})
            missing = await client.request("resources/read", {"uri": "nowhere://x"})
    assert "mcpmux://a/test://static-text" in uris and "mcpmux://b/test://static-text" in uris
    assert {t["uriTemplate"] for t in templates} == {
        "mcpmux://a/test://template/{id}/data",
        "mcpmux://b/test://template/{id}/data",
    }
    assert text["contents"][0]["uri"] == "mcpmux://b/test://static-text"
    assert json.loads(item["contents"][0]["text"])["id"] == "7"
    assert bare["contents"][0]["uri"] == "test://static-text"  # the first server answers a bare shared URI
    assert missing["error"]["code"] == -32002


async def test_prompts_and_completions_are_namespaced_and_routed(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with mcp_client(proxy.url("/mcp")) as merged:
            prompts = await names_of(merged, "prompts")
            rendered = await merged.get_prompt("b__test_prompt_with_arguments", {"arg1": "x", "arg2": "y"})
            ref = types.PromptReference(type="ref/prompt", name="a__test_prompt_with_arguments")
            completion = await merged.complete(ref, {"name": "arg1", "value": "par"})
            with pytest.raises(MCPError) as unknown:
                await merged.get_prompt("test_simple_prompt")
    assert {"a__test_simple_prompt", "b__test_simple_prompt"} <= set(prompts)
    assert len(prompts) == len(set(prompts))
    assert rendered.messages[0].content.text == "Prompt with arguments: arg1='x', arg2='y'"
    assert completion.completion.values == ["paris", "park", "party"]
    assert unknown.value.error.code == -32602


@pytest.mark.parametrize("face", FACES)
async def test_the_merged_endpoint_serves_both_transports(proxy: ProxyProcess, face: str) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with mcp_client(proxy.url(f"/{face}"), transport=FACES[face]) as merged:
            names = await names_of(merged)
            echoed = await merged.call_tool("a__echo", {"text": f"over {face}"})
            pids = {await pid_of(merged, "a__whoami"), await pid_of(merged, "b__whoami")}
    assert {"a__echo", "b__echo"} <= set(names)
    assert echoed.content[0].text == f"over {face}"
    assert len(pids) == 2


@pytest.mark.parametrize("face", FACES)
async def test_progress_of_a_merged_call_reaches_the_caller(proxy: ProxyProcess, face: str) -> None:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    with anyio.fail_after(BOUND_SECONDS):
        async with mcp_client(proxy.url(f"/{face}"), transport=FACES[face]) as merged:
            result = await merged.call_tool("b__slow", {"seconds": 0.2}, progress_callback=on_progress)
    assert result.content[0].text == "slept 0.2 s"
    assert seen == [(1, 2), (2, 2)]


@pytest.mark.parametrize("face", FACES)
async def test_sampling_asked_by_an_upstream_reaches_the_merged_client_that_called(
    proxy: ProxyProcess, face: str
) -> None:
    asked: list[str] = []

    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked.append(params.messages[0].content.text)
        text = types.TextContent(type="text", text="sampled through the merged endpoint")
        return types.CreateMessageResult(role="assistant", content=text, model="merged-model")

    with anyio.fail_after(BOUND_SECONDS):
        async with mcp_client(
            proxy.url(f"/{face}"), transport=FACES[face], sampling_callback=sampling
        ) as merged:
            result = await merged.call_tool("b__ask_sampling", {"prompt": "hi from b"})
    assert asked == ["hi from b"]
    answer = json.loads(result.content[0].text)
    assert answer["model"] == "merged-model"
    assert answer["content"]["text"] == "sampled through the merged endpoint"


async def test_log_messages_of_a_merged_call_reach_the_caller_before_the_result(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/mcp")) as client:
            arguments = {"level": "warning", "data": "from a", "logger": "lg"}
            response, related = await client.exchange(
                "tools/call", {"name": "a__log", "arguments": arguments}
            )
    assert "result" in response
    logs = [m["params"] for m in related if m.get("method") == "notifications/message"]
    assert logs == [{"level": "warning", "logger": "lg", "data": "from a"}]


async def test_cancelling_a_merged_call_stops_it_on_its_server(proxy: ProxyProcess) -> None:
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    with anyio.fail_after(BOUND_SECONDS):
        async with mcp_client(proxy.url("/mcp")) as merged:
            before = (await merged.call_tool("b__cancellations", {"wait": 0})).structured_content["count"]
            async with anyio.create_task_group() as tg:

                async def call_slow() -> None:
                    await merged.call_tool("b__slow", {"seconds": 30}, progress_callback=on_progress)

                tg.start_soon(call_slow)
                await started.wait()
                tg.cancel_scope.cancel()
            after = await merged.call_tool("b__cancellations", {"above": before, "wait": 10})
    assert after.structured_content["count"] == before + 1


async def test_a_subscription_gets_updates_of_the_subscribed_server_only(proxy: ProxyProcess) -> None:
    watched = "test://watched-resource"
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_sse(proxy.url("/sse")) as merged, raw_sse(proxy.url("/b/sse")) as direct:
            assert await direct.result("resources/subscribe", {"uri": watched}) == {}
            assert await merged.result("resources/subscribe", {"uri": f"mcpmux://a/{watched}"}) == {}
            await merged.result("tools/call", {"name": "b__touch_resource", "arguments": {"uri": watched}})
            assert (await direct.notification("notifications/resources/updated"))["params"] == {
                "uri": watched
            }
            await merged.result("tools/call", {"name": "a__touch_resource", "arguments": {"uri": watched}})
            update = await merged.notification("notifications/resources/updated")
            assert await merged.result("resources/unsubscribe", {"uri": f"mcpmux://a/{watched}"}) == {}
    # b's update reached the merged session's stream first if it leaked: the first one must be a's
    assert update["params"] == {"uri": f"mcpmux://a/{watched}"}
