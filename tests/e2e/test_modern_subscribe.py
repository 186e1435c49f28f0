"""A resource subscription made through mcpmux to a 2026-07-28 upstream is in place when it is answered.

mcpmux holds a `subscriptions/listen` stream upstream for each subscribed URI; `resources/subscribe` is
answered once the upstream acknowledged that stream, so an update right after the answer is not lost,
even from an upstream slow to start listen streams (the fixture's `--listen-delay`); likewise the
list_changed stream of a new upstream connection before its `initialize` is answered.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from mcp.client import Client
from mcp.shared.subscriptions import ResourceUpdated
from relay_kit import BOUND_SECONDS, raw_http, relay_proxy

from harness import ProxyProcess

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
SLOW = ("--listen-delay", "1")
WATCHED = "test://watched-resource"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    routes = {
        "http": ("streamable-http", SLOW, {"protocol": MODERN, "sessionMode": "shared"}),
        "stdio": ("stdio", SLOW, {"protocol": MODERN}),
        "isolated": ("streamable-http", SLOW, {"protocol": MODERN, "sessionMode": "isolated"}),
    }
    with relay_proxy(tmp_path_factory.mktemp("modern-subscribe"), routes) as running:
        yield running


@pytest.mark.parametrize("route", ["http", "stdio"])
async def test_an_update_right_after_subscribing_reaches_a_2025_client(
    proxy: ProxyProcess, route: str
) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url(f"/{route}/mcp"), standalone=True) as client:
            await client.result("resources/subscribe", {"uri": WATCHED})
            await client.result("tools/call", {"name": "touch_resource", "arguments": {"uri": WATCHED}})
            updated = await client.notification("notifications/resources/updated")
            await client.result("resources/unsubscribe", {"uri": WATCHED})
    assert updated["params"]["uri"] == WATCHED


@pytest.mark.parametrize("route", ["http", "stdio"])
async def test_an_update_right_after_listening_reaches_a_2026_client(proxy: ProxyProcess, route: str) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with (
            Client(proxy.url(f"/{route}/mcp"), mode=MODERN) as client,
            client.listen(resource_subscriptions=[WATCHED]) as subscription,
        ):
            await client.call_tool("touch_resource", {"uri": WATCHED})
            async for event in subscription:
                if isinstance(event, ResourceUpdated):
                    assert event.uri == WATCHED
                    break


async def test_a_list_change_right_after_initialize_reaches_a_2025_client(proxy: ProxyProcess) -> None:
    """An isolated session's upstream connection starts with the client's initialize, and so does its
    list_changed listen stream: initialize is answered once the upstream acknowledged it."""
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/isolated/mcp"), standalone=True) as client:
            call = {"name": "notify_list_changed", "arguments": {"kind": "prompts", "standalone": True}}
            await client.result("tools/call", call)
            await client.notification("notifications/prompts/list_changed")
