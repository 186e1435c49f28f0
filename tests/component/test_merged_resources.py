"""The merged endpoint's resources over fake upstreams: a URI two servers offer is published under each
server's label, reads and subscriptions reach the right server under its own URI, one upstream
subscription is shared by every client, and updates reach the clients as they subscribed."""

from __future__ import annotations

from typing import Any

import pytest
from fake_upstream import Call, FakeServer
from relay_harness import connect, merged, request

from mcpmux.protocol.constants import RESOURCE_NOT_FOUND

pytestmark = pytest.mark.anyio

DOC = "test://doc"


def resource_server(name: str) -> FakeServer:
    """A server offering DOC (read answers with its name) and subscriptions to it."""
    server = FakeServer(name, ["echo"], resources={"subscribe": True})

    @server.on("resources/list")
    async def listed(call: Call) -> dict[str, Any]:
        return {"resources": [{"uri": DOC, "name": "doc"}]}

    @server.on("resources/templates/list")
    async def templates(call: Call) -> dict[str, Any]:
        return {"resourceTemplates": []}

    @server.on("resources/read")
    async def read(call: Call) -> dict[str, Any]:
        return {"contents": [{"uri": call.params["uri"], "text": f"from {name}"}]}

    for method in ("resources/subscribe", "resources/unsubscribe"):
        server.on(method)(_empty)
    return server


async def _empty(call: Call) -> dict[str, Any]:
    return {}


def updated(uri: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": uri}}


def sent(server: FakeServer, method: str) -> list[Any]:
    return [m["params"]["uri"] for m in server.latest.sent if m.get("method") == method]


async def test_a_shared_uri_is_read_from_the_server_it_names_and_answered_under_the_published_uri(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = resource_server("a"), resource_server("b")
    async with merged(monkeypatch, a, b) as route:
        client = await connect(route)
        listed, _ = await request(route, client, "resources/list")
        read, _ = await request(route, client, "resources/read", {"uri": "mcpmux://b/test://doc"})
        unknown, _ = await request(route, client, "resources/read", {"uri": "mcpmux://c/test://doc"})
    assert sorted(r["uri"] for r in listed["result"]["resources"]) == [
        "mcpmux://a/test://doc",
        "mcpmux://b/test://doc",
    ]
    assert read["result"]["contents"] == [{"uri": "mcpmux://b/test://doc", "text": "from b"}]
    assert sent(a, "resources/read") == [] and sent(b, "resources/read") == [DOC]
    assert unknown["error"]["code"] == RESOURCE_NOT_FOUND


async def test_clients_share_one_upstream_subscription_and_see_updates_under_the_uri_they_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = resource_server("a"), resource_server("b")
    shown = "mcpmux://b/test://doc"
    async with merged(monkeypatch, a, b) as route:
        first, second = await connect(route), await connect(route)
        for client in (first, second, first):  # the second subscribe of the same client is a no-op
            answer, _ = await request(route, client, "resources/subscribe", {"uri": shown})
            assert answer["result"] == {}
        assert sent(b, "resources/subscribe") == [DOC] and sent(a, "resources/subscribe") == []

        a.latest.deliver(updated(DOC))  # a's resource: nobody subscribed to it
        b.latest.deliver(updated(DOC))
        for client in (first, second):
            assert await client.outbox.take_all(5) == [updated(shown)]

        await request(route, client=first, method="resources/unsubscribe", params={"uri": shown})
        assert sent(b, "resources/unsubscribe") == []  # the second client still holds it
        await request(route, client=second, method="resources/unsubscribe", params={"uri": shown})
        assert sent(b, "resources/unsubscribe") == [DOC]


async def test_a_closed_session_gives_back_its_subscriptions(monkeypatch: pytest.MonkeyPatch) -> None:
    b = resource_server("b")
    async with merged(monkeypatch, b) as route:
        client = await connect(route)
        await request(route, client, "resources/subscribe", {"uri": DOC})  # not shared: the bare URI
        await route.close_session(client)
        assert sent(b, "resources/unsubscribe") == [DOC]
        assert not client.subscriptions and not route._subscriptions
