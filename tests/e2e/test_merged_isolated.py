"""The merged endpoint over a shared stdio member and an isolated streamable-HTTP member (one session each).

Also what happens when a member adds a tool at run time: the merged list follows after list_changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import mcp_types as types
import pytest
from merged_kit import raw_tool_names
from relay_kit import raw_http, relay_proxy

from harness import ProxyProcess, mcp_client

pytestmark = pytest.mark.anyio

BOUND_SECONDS = 20
MAX_NOTIFICATIONS = 10


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    routes = {"s": ("stdio", (), {}), "h": ("streamable-http", (), {})}
    with relay_proxy(tmp_path_factory.mktemp("merged-isolated"), routes, debug=False) as running:
        yield running


async def test_each_merged_client_gets_its_own_session_on_an_isolated_member(proxy: ProxyProcess) -> None:
    identities: dict[str, dict[str, Any]] = {}

    async def whoami(client: str) -> None:
        async with mcp_client(proxy.url("/mcp")) as merged:
            shared = (await merged.call_tool("s__whoami")).structured_content
            own = (await merged.call_tool("h__whoami")).structured_content
            identities[client] = {"shared": shared["pid"], "connection": own["connection"]}

    with anyio.fail_after(BOUND_SECONDS):
        async with anyio.create_task_group() as tg:
            for client in ("one", "two"):
                tg.start_soon(whoami, client)
    one, two = identities["one"], identities["two"]
    assert one["shared"] == two["shared"]
    assert one["connection"] != two["connection"]


async def test_sampling_from_an_isolated_member_reaches_each_merged_caller(proxy: ProxyProcess) -> None:
    answers: dict[str, str] = {}

    def sampler(name: str) -> Any:
        async def sampling(
            context: Any, params: types.CreateMessageRequestParams
        ) -> types.CreateMessageResult:
            text = types.TextContent(type="text", text=f"sampled by {name}")
            return types.CreateMessageResult(role="assistant", content=text, model=name)

        return sampling

    async def ask(name: str) -> None:
        async with mcp_client(proxy.url("/mcp"), sampling_callback=sampler(name)) as merged:
            result = await merged.call_tool("h__ask_sampling", {"prompt": name})
            answers[name] = json.loads(result.content[0].text)["model"]

    with anyio.fail_after(BOUND_SECONDS):
        async with anyio.create_task_group() as tg:
            for name in ("one", "two"):
                tg.start_soon(ask, name)
    assert answers == {"one": "one", "two": "two"}


@pytest.mark.parametrize("server", ["s", "h"])
async def test_a_tool_a_member_adds_is_listed_and_callable_after_list_changed(
    proxy: ProxyProcess, server: str
) -> None:
    added = f"{server}__dynamic_tool"
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/mcp"), standalone=True) as client:
            await client.result("tools/call", {"name": f"{server}__notify_list_changed", "arguments": {}})
            for _ in range(MAX_NOTIFICATIONS):
                await client.notification("notifications/tools/list_changed")
                names = await raw_tool_names(client)
                if added in names:
                    break
            called = await client.result("tools/call", {"name": added, "arguments": {}})
    assert added in names
    assert called["content"] == [{"type": "text", "text": "dynamic tool called"}]
