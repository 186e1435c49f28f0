"""Every result, error and unknown field of every upstream kind reaches clients on both faces untouched.

The reference is the same fixture spoken to directly over streamable HTTP: whatever it answers,
mcpmux must answer the same, byte for byte after JSON parsing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx2
import pytest
from relay_kit import (
    UPSTREAM_KINDS,
    VENDOR_PAGE_FIELD,
    VENDOR_RESULT_FIELD,
    VENDOR_TOOL_FIELD,
    VENDOR_TOOL_VALUE,
    RawHttp,
    both_faces,
    every_kind,
    raw_http,
    relay_proxy,
    through,
)

from harness import ProxyProcess

pytestmark = pytest.mark.anyio

PAGE_SIZE = "4"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    routes = {kind: (kind, ("--page-size", PAGE_SIZE), {}) for kind in UPSTREAM_KINDS}
    routes["tools_only"] = ("stdio", ("--tools-only",), {})
    with relay_proxy(tmp_path_factory.mktemp("fidelity"), routes) as running:
        yield running


@pytest.fixture
async def reference(proxy: ProxyProcess) -> AsyncIterator[RawHttp]:
    """The streamable-HTTP upstream itself, spoken to without mcpmux."""
    with anyio.fail_after(20):
        async with raw_http(proxy.upstream_urls["streamable-http"]) as client:  # type: ignore[attr-defined]
            yield client


VERBATIM_CALLS: list[tuple[str, dict[str, Any] | None]] = [
    ("ping", None),
    ("tools/list", None),
    ("tools/list", {"cursor": "page:4"}),
    ("prompts/list", None),
    ("resources/list", None),
    ("resources/templates/list", None),
    ("tools/call", {"name": "rich", "arguments": {"count": 3}}),
    ("tools/call", {"name": "test_image_content", "arguments": {}}),
    ("tools/call", {"name": "test_embedded_resource", "arguments": {}}),
    ("tools/call", {"name": "json_schema_2020_12_tool", "arguments": {"name": "x"}}),
    ("tools/call", {"name": "echo", "arguments": {"text": "über ✓"}, "_meta": {"com.example/k": [1]}}),
    ("prompts/get", {"name": "test_prompt_with_arguments", "arguments": {"arg1": "a", "arg2": "b"}}),
    ("prompts/get", {"name": "test_prompt_with_image"}),
    ("resources/read", {"uri": "test://static-binary"}),
    ("resources/read", {"uri": "test://template/42/data"}),
    (
        "completion/complete",
        {
            "ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"},
            "argument": {"name": "arg1", "value": "pa"},
        },
    ),
    ("x/custom", {"any": [1, {"nested": None}], "_meta": {"com.example/trace": "t-1"}}),
]

ERROR_CALLS: list[tuple[str, dict[str, Any] | None]] = [
    ("tools/call", {"name": "fail", "arguments": {}}),
    ("tools/call", {"name": "no_such_tool", "arguments": {}}),
    ("tools/list", {"cursor": "not-a-cursor"}),
    ("resources/read", {"uri": "test://missing"}),
    ("prompts/get", {"name": "test_prompt_with_arguments", "arguments": {}}),
]


@every_kind
@both_faces
async def test_initialize_carries_the_upstream_capabilities_instructions_and_version(
    proxy: ProxyProcess, reference: RawHttp, kind: str, face: str
) -> None:
    upstream = reference.init_result
    with anyio.fail_after(20):
        async with through(proxy, kind, face) as client:
            answer = client.init_result
    assert answer["capabilities"] == upstream["capabilities"]
    assert answer["instructions"] == upstream["instructions"]
    assert answer["_meta"] == upstream["_meta"] == {"com.example/init": "v1"}
    assert answer["x-vendor-init"] == upstream["x-vendor-init"] == {"init": True}
    assert answer.keys() == upstream.keys()
    assert answer["protocolVersion"] == "2025-11-25"
    assert answer["serverInfo"]["name"] == kind
    assert answer["serverInfo"]["version"] == "7.7.7"


async def test_capabilities_the_upstream_lacks_are_not_advertised_and_their_methods_fail_upstream(
    proxy: ProxyProcess,
) -> None:
    with anyio.fail_after(20):
        async with raw_http(proxy.url("/tools_only/mcp")) as client:
            assert client.init_result["capabilities"] == {"tools": {"listChanged": True}}
            assert "instructions" not in client.init_result
            refused = await client.request("prompts/list")
            assert refused["error"]["code"] == -32601


@every_kind
async def test_an_older_protocol_version_offered_by_the_client_is_the_one_negotiated(
    proxy: ProxyProcess, kind: str
) -> None:
    async with httpx2.AsyncClient(timeout=20) as http:
        client = RawHttp(http, proxy.url(f"/{kind}/mcp"))
        result = await client.initialize(version="2025-03-26")
        assert result["protocolVersion"] == "2025-03-26"
        assert (await client.request("tools/call", {"name": "echo", "arguments": {"text": "old"}}))["result"][
            "content"
        ] == [{"type": "text", "text": "old"}]
        assert await client.delete() == 200


@every_kind
@both_faces
async def test_every_result_is_the_upstream_result_verbatim(
    proxy: ProxyProcess, reference: RawHttp, kind: str, face: str
) -> None:
    with anyio.fail_after(30):
        async with through(proxy, kind, face) as client:
            for method, params in VERBATIM_CALLS:
                expected = await reference.request(method, params)
                got = await client.request(method, params)
                assert "result" in got, (method, got)
                assert got["result"] == expected["result"], method


@every_kind
@both_faces
async def test_rich_listings_and_results_keep_every_field_including_unknown_ones(
    proxy: ProxyProcess, kind: str, face: str
) -> None:
    with anyio.fail_after(30):
        async with through(proxy, kind, face) as client:
            tools: list[dict[str, Any]] = []
            cursor = None
            for _page in range(10):
                page = await client.result("tools/list", {"cursor": cursor} if cursor else None)
                assert page[VENDOR_PAGE_FIELD] == {"page": True}
                tools += page["tools"]
                cursor = page.get("nextCursor")
                if cursor is None:
                    break
            (rich,) = [tool for tool in tools if tool["name"] == "rich"]
            assert rich[VENDOR_TOOL_FIELD] == VENDOR_TOOL_VALUE
            assert rich["_meta"] == {"com.example/vendor": {"tier": "gold"}}
            assert rich["annotations"]["readOnlyHint"] is True
            assert rich["icons"][0]["sizes"] == ["1x1"]
            assert rich["outputSchema"]["$defs"]["item"]["required"] == ["id", "label"]
            assert rich["title"] == "Rich tool"
            called = await client.result("tools/call", {"name": "rich", "arguments": {"count": 2}})
            assert called[VENDOR_RESULT_FIELD] == [{"nested": {"deep": None}}]
            assert called["structuredContent"] == {
                "items": [{"id": 0, "label": "item 0"}, {"id": 1, "label": "item 1"}]
            }
            assert called["_meta"] == {"com.example/trace": "rich-1"}
            assert called["content"][1]["type"] == "resource_link"


@every_kind
async def test_list_cursors_of_the_upstream_page_through_every_list_unchanged(
    proxy: ProxyProcess, reference: RawHttp, kind: str
) -> None:
    async with raw_http(proxy.url(f"/{kind}/mcp")) as client:
        for method, key in (
            ("tools/list", "tools"),
            ("prompts/list", "prompts"),
            ("resources/list", "resources"),
        ):
            cursors: list[str] = []
            names: list[str] = []
            expected: list[str] = []
            cursor = None
            for _page in range(20):
                page = await client.result(method, {"cursor": cursor} if cursor else {})
                names += [item["name"] for item in page[key]]
                cursor = page.get("nextCursor")
                if cursor is None:
                    break
                cursors.append(cursor)
            assert cursor is None, f"{method} never ended"
            cursor = None
            for _page in range(20):
                page = await reference.result(method, {"cursor": cursor} if cursor else {})
                expected += [item["name"] for item in page[key]]
                cursor = page.get("nextCursor")
                if cursor is None:
                    break
            assert names == expected
            assert cursors == [f"page:{end}" for end in range(int(PAGE_SIZE), len(expected), int(PAGE_SIZE))]
            assert method != "tools/list" or len(cursors) >= 2


@every_kind
@both_faces
async def test_upstream_errors_keep_their_code_message_and_data(
    proxy: ProxyProcess, reference: RawHttp, kind: str, face: str
) -> None:
    with anyio.fail_after(30):
        async with through(proxy, kind, face) as client:
            for method, params in ERROR_CALLS:
                expected = await reference.request(method, params)
                got = await client.request(method, params)
                assert "error" in expected, method
                assert got["error"] == expected["error"], method
    boom = {"code": -32099, "message": "boom", "data": {"x": 1}}
    assert (await reference.request(*ERROR_CALLS[0]))["error"] == boom


@every_kind
@both_faces
async def test_a_custom_notification_is_forwarded_and_the_upstreams_answer_comes_back(
    proxy: ProxyProcess, kind: str, face: str
) -> None:
    with anyio.fail_after(20):
        async with through(proxy, kind, face, standalone=True) as client:
            await client.notify("x/ping", {"n": 7, "_meta": {"com.example/m": True}})
            pong = await client.notification("x/pong")
            assert pong["params"]["n"] == 7
