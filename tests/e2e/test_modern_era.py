"""2026-07-28 clients against 2025 (handshake-era) upstreams, on per-server routes and the merged endpoint.

The fixture upstreams speak only the handshake era to mcpmux; the clients are the SDK's `Client` pinned
to (or negotiating) 2026-07-28, and raw HTTP for what the SDK hides (result envelope, error statuses).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx2
import orjson
import pytest
from mcp.client import Client
from relay_kit import ACCEPT_BOTH, BOUND_SECONDS, messages_of, raw_http, relay_proxy

from harness import ProxyProcess

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "raw-2026", "version": "1"},
}
ROUTES = ("stdio", "isolated", "sse")
PROTOCOL_VERSION = "io.modelcontextprotocol/protocolVersion"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    routes = {
        "stdio": ("stdio", (), {}),  # shared session
        "isolated": ("streamable-http", (), {"sessionMode": "isolated"}),
        "sse": ("sse", (), {}),
    }
    with relay_proxy(tmp_path_factory.mktemp("modern"), routes) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=BOUND_SECONDS) as client:
        yield client


def modern_headers(method: str, name: str | None = None, **extra: str) -> dict[str, str]:
    headers = {
        "accept": ACCEPT_BOTH,
        "content-type": "application/json",
        "mcp-protocol-version": MODERN,
        "mcp-method": method,
    }
    if name is not None:
        headers["mcp-name"] = name
    return {**headers, **extra}


async def post_modern(
    http: httpx2.AsyncClient,
    url: str,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    meta: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx2.Response:
    body_params = {**(params or {}), "_meta": {**ENVELOPE, **(meta or {})}}
    name = body_params.get("uri") if method == "resources/read" else body_params.get("name")
    msg = {"jsonrpc": "2.0", "id": 41, "method": method, "params": body_params}
    sent = headers if headers is not None else modern_headers(method, name)
    return await http.post(url, content=orjson.dumps(msg), headers=sent)


@pytest.mark.parametrize("route", ROUTES)
async def test_a_pinned_2026_sdk_client_uses_tools_resources_and_prompts_of_a_2025_upstream(
    proxy: ProxyProcess, route: str
) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with Client(proxy.url(f"/{route}/mcp"), mode=MODERN) as client:
            assert client.session.protocol_version == MODERN
            tools = await client.list_tools()
            assert "echo" in {t.name for t in tools.tools}
            echoed = await client.call_tool("echo", {"text": "stateless"})
            assert echoed.structured_content == {"text": "stateless"}
            resources = await client.list_resources()
            uri = resources.resources[0].uri
            read = await client.read_resource(uri)
            assert read.contents
            prompts = await client.list_prompts()
            got = await client.get_prompt(prompts.prompts[0].name)
            assert got.messages


async def test_an_auto_sdk_client_discovers_2026_and_stays_sessionless(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with Client(proxy.url("/stdio/mcp")) as client:
            assert client.session.discover_result is not None
            assert client.session.initialize_result is None
            assert client.session.protocol_version == MODERN
            assert client.session.server_capabilities.tools is not None
            echoed = await client.call_tool("echo", {"text": "auto"})
            assert echoed.structured_content == {"text": "auto"}


async def test_an_auto_sdk_client_uses_the_merged_endpoint_in_2026(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with Client(proxy.url("/mcp")) as client:
            assert client.session.protocol_version == MODERN
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"stdio__echo", "isolated__echo", "sse__echo"} <= names
            echoed = await client.call_tool("sse__echo", {"text": "merged"})
            assert echoed.structured_content == {"text": "merged"}


async def test_discover_on_a_route_is_the_upstreams_initialize_answer_in_2026_form(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    async with raw_http(proxy.url("/stdio/mcp")) as legacy:
        init = legacy.init_result
    reply = await post_modern(http, proxy.url("/stdio/mcp"), "server/discover")
    assert reply.status_code == 200, reply.text
    assert "mcp-session-id" not in reply.headers
    result = reply.json()["result"]
    assert result["resultType"] == "complete"
    assert result["supportedVersions"] == [MODERN]
    assert (result["ttlMs"], result["cacheScope"]) == (60000, "public")  # a handshake-era upstream: a minute
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"] == init["serverInfo"]
    assert set(result["capabilities"]) == set(init["capabilities"]) - {"tasks"}
    assert result["capabilities"]["tools"]["listChanged"] is True  # served by subscriptions/listen
    assert result["capabilities"]["resources"]["subscribe"] is True


async def test_discover_on_the_merged_endpoint_has_the_merged_capabilities(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    async with raw_http(proxy.url("/mcp")) as legacy:
        init = legacy.init_result
    reply = await post_modern(http, proxy.url("/mcp"), "server/discover")
    result = reply.json()["result"]
    assert set(result["capabilities"]) == set(init["capabilities"]) - {"tasks"}
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == init["serverInfo"]["name"]


@pytest.mark.parametrize(
    ("method", "params", "key"),
    [
        ("tools/list", {}, "tools"),
        ("resources/list", {}, "resources"),
        ("resources/templates/list", {}, "resourceTemplates"),
        ("prompts/list", {}, "prompts"),
    ],
)
async def test_lists_carry_result_type_and_cache_hints(
    proxy: ProxyProcess, http: httpx2.AsyncClient, method: str, params: dict[str, Any], key: str
) -> None:
    reply = await post_modern(http, proxy.url("/isolated/mcp"), method, params)
    assert reply.status_code == 200, reply.text
    result = reply.json()["result"]
    assert isinstance(result[key], list)
    assert (result["resultType"], result["ttlMs"], result["cacheScope"]) == ("complete", 0, "private")


async def test_a_call_result_is_complete_and_progress_rides_its_stream(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    reply = await post_modern(
        http,
        proxy.url("/stdio/mcp"),
        "tools/call",
        {"name": "test_tool_with_progress", "arguments": {}},
        meta={"progressToken": "p-1"},
    )
    assert reply.status_code == 200, reply.text
    *related, final = messages_of(reply)
    assert final["id"] == 41 and final["result"]["resultType"] == "complete"
    progress = [m for m in related if m.get("method") == "notifications/progress"]
    assert progress and {m["params"]["progressToken"] for m in progress} == {"p-1"}


async def test_log_notifications_reach_a_2026_client_only_when_it_asks_for_them(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    url = proxy.url("/stdio/mcp")
    call = {"name": "test_tool_with_logging", "arguments": {}}
    quiet = messages_of(await post_modern(http, url, "tools/call", call))
    assert [m for m in quiet if m.get("method") == "notifications/message"] == []
    asked = messages_of(
        await post_modern(http, url, "tools/call", call, meta={"io.modelcontextprotocol/logLevel": "info"})
    )
    assert [m for m in asked if m.get("method") == "notifications/message"]
    assert asked[-1]["result"]["resultType"] == "complete"


async def test_a_server_to_client_request_during_a_2026_call_is_refused_at_once(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        reply = await post_modern(
            http, proxy.url("/stdio/mcp"), "tools/call", {"name": "ask_sampling", "arguments": {}}
        )
    result = reply.json()["result"]
    assert result["isError"] is True
    assert "sampling" in result["content"][0]["text"]


async def test_a_missing_resource_is_invalid_params_in_2026(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    reply = await post_modern(http, proxy.url("/mcp"), "resources/read", {"uri": "nowhere://x"})
    assert reply.json()["error"]["code"] == -32602


@pytest.mark.parametrize(
    ("headers", "meta", "status", "code"),
    [
        (modern_headers("tools/list", **{"mcp-method": "prompts/list"}), None, 400, -32020),
        ({k: v for k, v in modern_headers("tools/list").items() if k != "mcp-method"}, None, 400, -32020),
        (modern_headers("tools/list"), {PROTOCOL_VERSION: "2025-06-18"}, 400, -32020),
        (
            modern_headers("tools/list", **{"mcp-protocol-version": "2099-01-01"}),
            {PROTOCOL_VERSION: "2099-01-01"},
            400,
            -32022,
        ),
        (modern_headers("tools/list"), {"io.modelcontextprotocol/clientCapabilities": None}, 400, -32602),
    ],
)
async def test_bad_2026_requests_get_the_spec_errors(
    proxy: ProxyProcess,
    http: httpx2.AsyncClient,
    headers: dict[str, str],
    meta: dict[str, Any] | None,
    status: int,
    code: int,
) -> None:
    if meta and meta.get("io.modelcontextprotocol/clientCapabilities", 0) is None:
        msg = {"jsonrpc": "2.0", "id": 41, "method": "tools/list", "params": {"_meta": {}}}
        reply = await http.post(proxy.url("/stdio/mcp"), content=orjson.dumps(msg), headers=headers)
    else:
        reply = await post_modern(http, proxy.url("/stdio/mcp"), "tools/list", meta=meta, headers=headers)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["code"] == code


async def test_mcp_name_must_match_the_tool_called(proxy: ProxyProcess, http: httpx2.AsyncClient) -> None:
    call = {"name": "echo", "arguments": {"text": "x"}}
    wrong = await post_modern(
        http, proxy.url("/stdio/mcp"), "tools/call", call, headers=modern_headers("tools/call", "fail")
    )
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (400, -32020)


@pytest.mark.parametrize("method", ["ping", "logging/setLevel", "resources/subscribe", "initialize"])
async def test_methods_2026_removed_or_not_served_get_404(
    proxy: ProxyProcess, http: httpx2.AsyncClient, method: str
) -> None:
    reply = await post_modern(http, proxy.url("/stdio/mcp"), method)
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == -32601


async def test_get_and_delete_without_a_session_are_405_for_2026_clients(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    for verb in ("GET", "DELETE"):
        reply = await http.request(verb, proxy.url("/stdio/mcp"), headers=modern_headers("x"))
        assert reply.status_code == 405


async def test_a_2025_session_beside_2026_requests_is_unchanged(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    async with raw_http(proxy.url("/stdio/mcp")) as legacy:
        call = {"name": "echo", "arguments": {}}
        modern = await post_modern(http, proxy.url("/stdio/mcp"), "tools/call", call)
        assert modern.status_code == 200
        assert "mcp-session-id" not in modern.headers  # a 2026 answer has no session (not even empty)
        result = await legacy.result("tools/call", {"name": "echo", "arguments": {"text": "old"}})
        assert "resultType" not in result
        assert result["structuredContent"] == {"text": "old"}
        refused = await legacy.post(
            {"jsonrpc": "2.0", "id": 9, "method": "tools/list"}, **{"mcp-protocol-version": MODERN}
        )
        assert refused.status_code == 400  # a session's requests stay in its era


async def test_an_unsupported_version_probe_lists_every_version(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    reply = await post_modern(
        http,
        proxy.url("/stdio/mcp"),
        "server/discover",
        meta={PROTOCOL_VERSION: "2099-01-01"},
        headers=modern_headers("server/discover", **{"mcp-protocol-version": "2099-01-01"}),
    )
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["code"] == -32022
    assert error["data"] == {
        "supported": [MODERN],
        "requested": "2099-01-01",
    }


async def test_sampling_from_a_2025_upstream_becomes_input_required_and_the_retry_completes_the_call(
    proxy: ProxyProcess,
) -> None:
    from mcp import types

    asked: list[str] = []

    async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked.append(params.messages[0].content.text)  # type: ignore[union-attr]
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="sampled!"), model="m"
        )

    with anyio.fail_after(BOUND_SECONDS):
        async with Client(proxy.url("/stdio/mcp"), mode=MODERN, sampling_callback=sample) as client:
            result = await client.call_tool("ask_sampling", {"prompt": "hi there"})
    assert asked == ["hi there"]
    assert not result.is_error
    assert "sampled!" in result.content[0].text  # type: ignore[union-attr]


async def test_elicitation_crosses_through_the_merged_endpoint_to_an_isolated_upstream(
    proxy: ProxyProcess,
) -> None:
    from mcp import types

    async def answer(context: Any, params: Any) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "Ada", "age": 36})

    with anyio.fail_after(BOUND_SECONDS):
        async with Client(proxy.url("/mcp"), mode=MODERN, elicitation_callback=answer) as client:
            result = await client.call_tool("isolated__ask_elicitation", {"message": "who?"})
    assert not result.is_error
    assert orjson.loads(result.content[0].text)["content"] == {"name": "Ada", "age": 36}  # type: ignore[union-attr]


async def test_the_input_required_wire_and_a_sealed_request_state(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    url = proxy.url("/sse/mcp")
    call = {"name": "ask_sampling", "arguments": {"prompt": "p"}}
    caps = {"io.modelcontextprotocol/clientCapabilities": {"sampling": {}}}
    asking = await post_modern(http, url, "tools/call", call, meta=caps)
    assert "mcp-session-id" not in asking.headers  # no session, not even an empty header
    first = asking.json()["result"]
    assert first["resultType"] == "input_required"
    assert "ttlMs" not in first and "cacheScope" not in first
    ((key, asked),) = first["inputRequests"].items()
    assert asked["method"] == "sampling/createMessage"
    assert asked["params"]["messages"][0]["content"]["text"] == "p"
    state = first["requestState"]
    sampled = {"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": "m"}

    async def retry(request_state: str, name: str = "ask_sampling") -> dict[str, Any]:
        params = {**call, "name": name, "inputResponses": {key: sampled}, "requestState": request_state}
        return (await post_modern(http, url, "tools/call", params, meta=caps)).json()

    tampered = state[:-2] + ("AA" if not state.endswith("AA") else "BB")
    assert (await retry(tampered))["error"]["code"] == -32602
    assert (await retry(state, name="echo"))["error"]["code"] == -32602  # bound to the request
    done = (await retry(state))["result"]
    assert done["resultType"] == "complete"
    assert orjson.loads(done["content"][0]["text"])["content"]["text"] == "ok"
    replayed = await retry(state)
    assert replayed["error"]["code"] == -32602 and "ended" in replayed["error"]["message"]


async def test_a_listen_stream_gets_list_changed_and_resource_updates_from_a_2025_upstream(
    proxy: ProxyProcess,
) -> None:
    from mcp.shared.subscriptions import PromptsListChanged, ResourceUpdated

    uri = "test://watched-resource"
    with anyio.fail_after(BOUND_SECONDS):
        async with (
            Client(proxy.url("/stdio/mcp"), mode=MODERN) as client,
            client.listen(prompts_list_changed=True, resource_subscriptions=[uri]) as subscription,
        ):
            assert subscription.honored.prompts_list_changed is True
            assert subscription.honored.tools_list_changed is None  # not asked: not sent
            assert subscription.honored.resource_subscriptions == [uri]
            events = aiter(subscription)
            await client.call_tool("notify_list_changed", {"kind": "prompts", "standalone": True})
            assert isinstance(await anext(events), PromptsListChanged)
            touched = await client.call_tool("touch_resource", {"uri": uri})
            assert "notified 1 subscriber" in touched.content[0].text  # type: ignore[union-attr]
            updated = await anext(events)
            assert isinstance(updated, ResourceUpdated) and updated.uri == uri
        async with Client(proxy.url("/stdio/mcp"), mode=MODERN) as client:  # closing it unsubscribed
            touched = await client.call_tool("touch_resource", {"uri": uri})
            assert "notified 0 subscriber" in touched.content[0].text  # type: ignore[union-attr]


WANTED = {"toolsListChanged": True, "promptsListChanged": True}
NOTIFY = {"name": "sse__notify_list_changed", "arguments": {"kind": "prompts", "standalone": True}}


async def test_a_listen_stream_on_the_merged_endpoint_names_its_subscription(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": "sub-1",
        "method": "subscriptions/listen",
        "params": {"notifications": WANTED, "_meta": ENVELOPE},
    }
    with anyio.fail_after(BOUND_SECONDS):
        sent = {"content": orjson.dumps(body), "headers": modern_headers("subscriptions/listen")}
        async with http.stream("POST", proxy.url("/mcp"), **sent) as stream:  # type: ignore[arg-type]
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            frames: list[dict[str, Any]] = []
            async for line in lines:
                if line.startswith("data:"):
                    frames.append(orjson.loads(line[5:]))
                    if len(frames) == 1:
                        reply = await post_modern(http, proxy.url("/mcp"), "tools/call", NOTIFY)
                        assert reply.status_code == 200, reply.text
                    if len(frames) == 2:
                        break
    ack, changed = frames
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    assert ack["params"]["notifications"] == {"promptsListChanged": True, "toolsListChanged": True}
    assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "sub-1"
    assert changed["method"] == "notifications/prompts/list_changed"
    assert changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "sub-1"


async def test_a_listen_stream_needs_a_filter_and_an_event_stream(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    url = proxy.url("/stdio/mcp")
    assert (await post_modern(http, url, "subscriptions/listen")).status_code == 400
    json_only = modern_headers("subscriptions/listen", accept="application/json")
    params = {"notifications": {"toolsListChanged": True}}
    reply = await post_modern(http, url, "subscriptions/listen", params, headers=json_only)
    assert reply.status_code == 406


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    """One stdio route that takes either of two tokens."""
    routes = {"guarded": ("stdio", (), {"authTokens": ["token-a", "token-b"]})}
    with relay_proxy(tmp_path_factory.mktemp("guarded"), routes) as running:
        yield running


async def test_a_request_state_is_useless_to_another_token(
    guarded: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    url = guarded.url("/guarded/mcp")
    call = {"name": "ask_sampling", "arguments": {"prompt": "p"}}
    caps = {"io.modelcontextprotocol/clientCapabilities": {"sampling": {}}}

    def as_token(token: str, method: str = "tools/call", name: str | None = "ask_sampling") -> dict[str, str]:
        return modern_headers(method, name, authorization=f"Bearer {token}")

    assert (await post_modern(http, url, "tools/call", call, meta=caps)).status_code == 401
    first = await post_modern(http, url, "tools/call", call, meta=caps, headers=as_token("token-a"))
    asked = first.json()["result"]
    ((key, _),) = asked["inputRequests"].items()
    sampled = {"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": "m"}
    retry = {**call, "inputResponses": {key: sampled}, "requestState": asked["requestState"]}
    stolen = await post_modern(http, url, "tools/call", retry, meta=caps, headers=as_token("token-b"))
    assert stolen.json()["error"]["code"] == -32602
    assert "another caller" in stolen.json()["error"]["message"]
    owned = await post_modern(http, url, "tools/call", retry, meta=caps, headers=as_token("token-a"))
    assert owned.json()["result"]["resultType"] == "complete"


@pytest.mark.parametrize(
    ("route", "tool"), [("stdio", "routed_echo"), ("isolated", "routed_echo"), ("", "sse__routed_echo")]
)
async def test_mcp_param_headers_must_mirror_x_mcp_header_arguments(
    proxy: ProxyProcess, http: httpx2.AsyncClient, route: str, tool: str
) -> None:
    url = proxy.url(f"/{route}/mcp" if route else "/mcp")
    call = {"name": tool, "arguments": {"region": "eu-wëst"}}
    good = modern_headers("tools/call", tool, **{"mcp-param-region": "=?base64?ZXUtd8Orc3Q=?="})
    reply = await post_modern(http, url, "tools/call", call, headers=good)
    assert reply.json()["result"]["content"][0]["text"] == "routed to eu-wëst", reply.text
    for sent in ({}, {"mcp-param-region": "us-east"}):
        wrong = modern_headers("tools/call", tool, **sent)
        bad = await post_modern(http, url, "tools/call", call, headers=wrong)
        assert (bad.status_code, bad.json()["error"]["code"]) == (400, -32020), bad.text


async def test_input_required_reaches_a_client_that_prefers_an_event_stream(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    call = {"name": "ask_sampling", "arguments": {"prompt": "p"}}
    caps = {"io.modelcontextprotocol/clientCapabilities": {"sampling": {}}}
    headers = modern_headers("tools/call", "ask_sampling", accept="text/event-stream, application/json")
    with anyio.fail_after(BOUND_SECONDS):
        url = proxy.url("/stdio/mcp")
        reply = await post_modern(http, url, "tools/call", call, meta=caps, headers=headers)
    assert reply.headers["content-type"].startswith("text/event-stream")
    (answer,) = messages_of(reply)
    assert answer["result"]["resultType"] == "input_required", answer
