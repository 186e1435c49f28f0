"""The everything fixture server answers real SDK clients over stdio, streamable HTTP and SSE."""

import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from anyio.abc import ByteReceiveStream
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import PaginatedRequestParams

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
from everything.launch import fixture_command, running_http_fixture, stdio_parameters

pytestmark = pytest.mark.anyio

CONFORMANCE_TOOLS = {
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_tool_with_logging",
    "test_tool_with_progress",
    "test_error_handling",
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    "json_schema_2020_12_tool",
    "test_reconnection",
}
BOUND_SECONDS = 30


@asynccontextmanager
async def stdio_session(*args: str, **callbacks: Any) -> AsyncIterator[ClientSession]:
    with anyio.fail_after(BOUND_SECONDS):
        async with (
            stdio_client(stdio_parameters(*args)) as (read, write),
            ClientSession(read, write, **callbacks) as session,
        ):
            await session.initialize()
            yield session


async def all_tool_names(session: ClientSession) -> list[str]:
    names: list[str] = []
    cursor: str | None = None
    while True:
        page = await session.list_tools(
            params=None if cursor is None else PaginatedRequestParams(cursor=cursor)
        )
        names += [tool.name for tool in page.tools]
        if (cursor := page.next_cursor) is None:
            return names


async def assert_echo_works(session: ClientSession) -> None:
    result = await session.call_tool("echo", {"text": "hello"})
    assert result.content[0].model_dump(exclude_none=True) == {"type": "text", "text": "hello"}
    assert result.structured_content == {"text": "hello"}
    assert not result.is_error


async def test_stdio_fixture_lists_every_conformance_tool_and_echoes() -> None:
    async with stdio_session() as session:
        names = await all_tool_names(session)
        assert CONFORMANCE_TOOLS <= set(names)
        assert {"echo", "slow", "big", "fail", "rich", "whoami", "ask_sampling", "ask_roots"} <= set(names)
        await assert_echo_works(session)


async def test_tool_prefix_renames_only_the_extra_tools_and_pages_walk_the_whole_list() -> None:
    async with stdio_session("--tool-prefix", "a_", "--page-size", "4") as session:
        first_page = await session.list_tools()
        names = await all_tool_names(session)
    assert len(first_page.tools) == 4 and first_page.next_cursor is not None
    assert len(names) == len(set(names))
    assert {"a_echo", "a_rich", "test_simple_text"} <= set(names)
    assert "echo" not in names


async def test_fail_tool_surfaces_its_json_rpc_error_unchanged() -> None:
    async with stdio_session() as session:
        with pytest.raises(MCPError) as caught:
            await session.call_tool("fail", {})
    assert (caught.value.code, caught.value.message, caught.value.data) == (-32099, "boom", {"x": 1})


async def test_ask_tools_return_the_clients_answers_verbatim_and_whoami_counts_calls() -> None:
    async def sample(ctx: Any, params: Any) -> types.CreateMessageResult:
        content = types.TextContent(type="text", text="sampled")
        return types.CreateMessageResult(role="assistant", content=content, model="m", _meta={"k": 1})

    async def roots(ctx: Any) -> types.ListRootsResult:
        return types.ListRootsResult.model_validate({"roots": [{"uri": "file:///tmp", "name": "tmp"}]})

    async with stdio_session(sampling_callback=sample, list_roots_callback=roots) as session:
        sampled = await session.call_tool("ask_sampling", {"prompt": "hi"})
        listed = await session.call_tool("ask_roots", {})
        first, second = [await session.call_tool("whoami", {}) for _ in range(2)]
    assert json.loads(text_of(sampled)) == {
        "_meta": {"k": 1},
        "role": "assistant",
        "content": {"type": "text", "text": "sampled"},
        "model": "m",
    }
    assert json.loads(text_of(listed)) == {"roots": [{"uri": "file:///tmp", "name": "tmp"}]}
    assert first.structured_content is not None and second.structured_content is not None
    assert (first.structured_content["calls"], second.structured_content["calls"]) == (1, 2)
    assert first.structured_content["pid"] == second.structured_content["pid"]


def text_of(result: types.CallToolResult) -> str:
    assert isinstance(result.content[0], types.TextContent)
    return result.content[0].text


async def test_custom_request_is_echoed_and_custom_notification_is_answered_verbatim() -> None:
    lines = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "x/custom", "params": {"a": [1, {"b": None}], "vendorX": "y"}},
        {"jsonrpc": "2.0", "method": "x/ping", "params": {"n": 7}},
    ]
    with anyio.fail_after(BOUND_SECONDS):
        async with await anyio.open_process(fixture_command("stdio")) as process:
            assert process.stdin is not None and process.stdout is not None
            await process.stdin.send(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
            received = await read_messages(process.stdout, until=has_custom_answer_and_pong)
            await process.stdin.aclose()
    by_id = {msg["id"]: msg for msg in received if "id" in msg}
    assert by_id[2]["result"] == {"a": [1, {"b": None}], "vendorX": "y"}
    assert {"jsonrpc": "2.0", "method": "x/pong", "params": {"n": 7}} in received


def has_custom_answer_and_pong(messages: list[dict[str, Any]]) -> bool:
    answered = any(msg.get("id") == 2 for msg in messages)
    return answered and any(msg.get("method") == "x/pong" for msg in messages)


async def read_messages(
    stdout: ByteReceiveStream, until: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    buffer, messages = b"", list[dict[str, Any]]()
    while not until(messages):
        buffer += await stdout.receive()
        *complete, buffer = buffer.split(b"\n")
        messages += [json.loads(line) for line in complete if line.strip()]
    return messages


async def test_streamable_http_fixture_on_a_socket_the_test_bound_answers_the_sdk_client() -> None:
    with running_http_fixture("streamable-http") as fixture:
        with anyio.fail_after(BOUND_SECONDS):
            async with (
                httpx2.AsyncClient(timeout=httpx2.Timeout(BOUND_SECONDS)) as http,
                streamable_http_client(fixture.url, http_client=http) as (read, write),
                ClientSession(read, write) as session,
            ):
                init = await session.initialize()
                assert init.server_info.name == "mcpmux-everything"
                assert init.capabilities.tools is not None and init.capabilities.tools.list_changed
                assert CONFORMANCE_TOOLS <= set(await all_tool_names(session))
                await assert_echo_works(session)


async def test_sse_fixture_answers_the_sdk_client() -> None:
    with running_http_fixture("sse") as fixture:
        with anyio.fail_after(BOUND_SECONDS):
            async with sse_client(fixture.url) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                await assert_echo_works(session)
