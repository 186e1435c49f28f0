"""The 2x2 era matrix: the SDK's `Client` in each era through mcpmux to an upstream of each era.

Clients: `Client(mode="legacy")` (the handshake, a session, a GET stream) and `Client(mode="2026-07-28")`
(stateless, `subscriptions/listen`). Upstreams, the everything fixture over streamable HTTP on
127.0.0.1 with `protocol: "auto"`: one started `--handshake-only` (it refuses 2026 requests as a 2025-only
server does, so the probe falls back to the handshake) and one serving 2026-07-28; over stdio, spoken
to in each era (`protocol` legacy and 2026-07-28); and over legacy SSE (handshake era only). Every cell,
on the server's own route, on the merged endpoint and in a group, does a tools/call, elicitation, sampling
and roots round trips answered by the client's callbacks (during tools/call and prompts/get), sees a tools
list_changed and a resource subscription's update.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from mcp import types
from mcp.client import Client
from mcp.shared.subscriptions import ResourceUpdated, ToolsListChanged
from relay_kit import BOUND_SECONDS, relay_proxy

from harness import ProxyProcess

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
UPSTREAMS = {
    "old": ("streamable-http", ("--handshake-only",), {"protocol": "auto"}),
    "new": ("streamable-http", (), {"protocol": "auto"}),
    "old_stdio": ("stdio", (), {"protocol": "legacy"}),
    "new_stdio": ("stdio", (), {"protocol": MODERN}),
    "old_sse": ("sse", (), {}),  # legacy HTTP+SSE has no 2026 form: always the handshake era
}
CLIENT_MODES = ("legacy", MODERN)
WATCHED = "test://watched-resource"
ROOT = "file:///work"
GROUP = "every_era"  # a group of all four upstreams


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    groups = {GROUP: {"servers": list(UPSTREAMS)}}
    with relay_proxy(tmp_path_factory.mktemp("era-matrix"), UPSTREAMS, groups=groups) as running:
        yield running


@dataclass(frozen=True)
class Cell:
    """Where a cell's client talks (a server's route or `/mcp`) and what names the tools have there."""

    path: str
    prefix: str
    uri: str  # the watched resource as the client sees it (both upstreams offer it: namespaced on /mcp)


def cell_of(upstream: str, where: str) -> Cell:
    if where == "route":
        return Cell(f"/{upstream}/mcp", "", WATCHED)
    path = "/mcp" if where == "merged" else f"/{GROUP}/mcp"
    return Cell(path, f"{upstream}__", f"mcpmux://{upstream}/{WATCHED}")


async def answer_elicitation(context: Any, params: Any) -> types.ElicitResult:
    # mcpmux's own carriage of a 2026 upstream's inputRequests key never reaches a client
    assert "dev.mcpmux/inputKey" not in (params.meta or {}), params.meta
    return types.ElicitResult(action="accept", content={"name": f"answer to {params.message}"})


async def answer_roots(context: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri=ROOT, name="work")])


async def answer_sampling(context: Any, params: Any) -> types.CreateMessageResult:
    asked = params.messages[0].content.text
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"sampled: {asked}"), model="m"
    )


class Notifications:
    """What a handshake-era client's session delivered outside any request (its GET stream)."""

    def __init__(self) -> None:
        self.send, self.received = anyio.create_memory_object_stream[Any](100)

    async def handler(self, message: Any) -> None:
        await self.send.send(message)

    async def next_of(self, kind: type[Any]) -> Any:
        with anyio.fail_after(BOUND_SECONDS):
            async for message in self.received:
                if isinstance(message, kind):
                    return message
        raise AssertionError(f"the stream ended before a {kind.__name__}")


@asynccontextmanager
async def client_for(proxy: ProxyProcess, cell: Cell, mode: str, **kwargs: Any) -> AsyncIterator[Client]:
    async with Client(
        proxy.url(cell.path),
        mode=mode,
        elicitation_callback=answer_elicitation,
        sampling_callback=answer_sampling,
        list_roots_callback=answer_roots,
        **kwargs,
    ) as client:
        yield client


def text_of(result: types.CallToolResult) -> str:
    assert not result.is_error, result
    first = result.content[0]
    assert isinstance(first, types.TextContent), result
    return first.text


async def tools_and_questions(client: Client, cell: Cell) -> None:
    """tools/call, then elicitation, sampling and roots round trips answered by the client's callbacks."""
    echoed = await client.call_tool(f"{cell.prefix}echo", {"text": "across eras"})
    assert echoed.structured_content == {"text": "across eras"}
    elicited = text_of(await client.call_tool(f"{cell.prefix}test_input_required_result_elicitation", {}))
    answer = json.loads(elicited.removeprefix("elicitation: "))
    assert answer == {"action": "accept", "content": {"name": "answer to Please provide your name"}}
    sampled = text_of(await client.call_tool(f"{cell.prefix}test_input_required_result_sampling", {}))
    content = json.loads(sampled.removeprefix("sampling: "))
    assert content == {"type": "text", "text": "sampled: What is the capital of France?"}
    rooted = text_of(await client.call_tool(f"{cell.prefix}test_input_required_result_list_roots", {}))
    assert json.loads(rooted.removeprefix("roots: ")) == [ROOT]
    prompt = await client.get_prompt(f"{cell.prefix}test_input_required_result_prompt")
    text = prompt.messages[0].content
    assert isinstance(text, types.TextContent) and text.text.startswith("Use this context: "), prompt


async def legacy_cell(proxy: ProxyProcess, cell: Cell) -> None:
    notifications = Notifications()
    async with client_for(proxy, cell, "legacy", message_handler=notifications.handler) as client:
        assert client.session.initialize_result is not None
        await tools_and_questions(client, cell)
        await client.call_tool(f"{cell.prefix}notify_list_changed", {"kind": "tools", "standalone": True})
        await notifications.next_of(types.ToolListChangedNotification)
        await client.subscribe_resource(cell.uri)
        await client.call_tool(f"{cell.prefix}touch_resource", {"uri": WATCHED})
        updated = await notifications.next_of(types.ResourceUpdatedNotification)
        assert updated.params.uri == cell.uri
        await client.unsubscribe_resource(cell.uri)


async def modern_cell(proxy: ProxyProcess, cell: Cell) -> None:
    async with client_for(proxy, cell, MODERN) as client:
        assert client.session.protocol_version == MODERN
        await tools_and_questions(client, cell)
        async with client.listen(tools_list_changed=True, resource_subscriptions=[cell.uri]) as subscription:
            assert subscription.honored.tools_list_changed is True
            assert subscription.honored.resource_subscriptions == [cell.uri]
            await client.call_tool(f"{cell.prefix}notify_list_changed", {"kind": "tools", "standalone": True})
            await next_event(subscription, ToolsListChanged)
            await client.call_tool(f"{cell.prefix}touch_resource", {"uri": WATCHED})
            updated = await next_event(subscription, ResourceUpdated)
            assert updated.uri == cell.uri


async def next_event(subscription: Any, kind: type[Any]) -> Any:
    """The next event of `kind` on a listen stream; a list_changed may come more than once (on `/mcp`
    mcpmux also says so itself when a member's list changes), so others are skipped."""
    with anyio.fail_after(BOUND_SECONDS):
        async for event in subscription:
            if isinstance(event, kind):
                return event
    raise AssertionError(f"the listen stream ended before a {kind.__name__}")


@pytest.mark.parametrize("where", ["route", "merged", "group"])
@pytest.mark.parametrize("upstream", list(UPSTREAMS))
@pytest.mark.parametrize("mode", CLIENT_MODES)
async def test_a_client_of_each_era_uses_an_upstream_of_each_era(
    proxy: ProxyProcess, mode: str, upstream: str, where: str
) -> None:
    cell = cell_of(upstream, where)
    with anyio.fail_after(BOUND_SECONDS * 3):
        if mode == "legacy":
            await legacy_cell(proxy, cell)
        else:
            await modern_cell(proxy, cell)


def test_each_upstream_was_spoken_to_in_its_own_era(proxy: ProxyProcess) -> None:
    assert any("old: the upstream speaks the handshake era" in line for line in proxy.lines), proxy.log
    assert any(f"new: the upstream speaks {MODERN}" in line for line in proxy.lines), proxy.log
