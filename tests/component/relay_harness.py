"""Runtimes and routes in process over fake upstreams: the downstream side of the component tests.

`running(config)` starts one `ServerRuntime` per configured server in a task group (their connections
go to the fake servers installed by `fake_transport`) and stops them after. `Origin` stands for the
face's exchange of one client request: it records what the route emits on the request's stream and
answers server-to-client requests as the client would.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from itertools import count
from typing import Any

import anyio
import pytest
from fake_upstream import FakeServer, fake_transport

from mcpmux.config.model import ProxyConfig, TokenScope
from mcpmux.config.parse import parse_config
from mcpmux.relay.client import ClientSession
from mcpmux.relay.merged_route import MergedRoute
from mcpmux.relay.route import Route
from mcpmux.relay.server_route import ServerRoute
from mcpmux.upstream.runtime import ServerRuntime

Message = dict[str, Any]
# a server's `restart` for tests that kill it: it comes back at once
FAST_RESTART = {"initialDelay": "1ms", "maxDelay": "1ms", "jitter": 0}
_ids = count(1)


def proxy_config(servers: dict[str, Any], **proxy: Any) -> ProxyConfig:
    """A validated config of `servers` (each a server object as in config.json) on a dummy listener."""
    document = {
        "mcpProxy": {"baseURL": "http://127.0.0.1:1", "addr": "127.0.0.1:1", **proxy},
        "mcpServers": servers,
    }
    return parse_config(json.dumps(document), "config.json", environ={}, expand_env=False)[0]


def stdio(**options: Any) -> dict[str, Any]:
    """A server entry (its command is never run: the fake transport stands in for it)."""
    return {"command": "unused", "options": options}


@asynccontextmanager
async def merged(
    monkeypatch: pytest.MonkeyPatch, *servers: FakeServer, tokens: tuple[TokenScope, ...] = (), **options: Any
) -> AsyncIterator[MergedRoute]:
    """The merged endpoint over the fake `servers` (each a server named like its fake, with `options`)."""
    with fake_transport(monkeypatch, *servers):
        config = proxy_config({s.name: stdio(**options) for s in servers})
        async with running(config) as runtimes:
            route = MergedRoute("", [(rt, None) for rt in runtimes.values()], config, tokens, False, "mcpmux")
            try:
                yield route
            finally:
                route.detach_listeners()


@asynccontextmanager
async def served(
    monkeypatch: pytest.MonkeyPatch, server: FakeServer, **options: Any
) -> AsyncIterator[ServerRoute]:
    """The server's route, its runtime running over the fake `server` (named "up") with `options`."""
    with fake_transport(monkeypatch, server):
        config = proxy_config({"up": stdio(**options)})
        async with running(config) as runtimes:
            yield ServerRoute(runtimes["up"], config)


@asynccontextmanager
async def running(config: ProxyConfig) -> AsyncIterator[dict[str, ServerRuntime]]:
    """Every server of `config` supervised in one task group, connected before the block starts."""
    runtimes = {name: ServerRuntime(server, config) for name, server in config.servers.items()}
    async with anyio.create_task_group() as tg:
        for rt in runtimes.values():
            assert await tg.start(rt.run), rt.last_error
        try:
            yield runtimes
        finally:
            with anyio.CancelScope(shield=True):
                for rt in runtimes.values():
                    await rt.stop("test over")


class Origin:
    """One client request's exchange: the stream its related messages go to (relay.Exchange)."""

    def __init__(
        self, client: ClientSession, request_id: Any, answer: Callable[[Message], Any] | None
    ) -> None:
        self.client = client
        self.request_id = request_id
        self.emitted: list[Message] = []
        self.answer = answer  # the client's result for a server-to-client request (None: never answers)
        self.early: list[Message] = []  # responses written from the upstream's reader (the early path)

    def finish_now(self, msg: Message) -> bool:
        """The early response path: the face writes the response as the upstream's reader hands it over."""
        self.early.append(dict(msg))
        return True

    async def emit(self, msg: Message) -> None:
        self.emitted.append(msg)
        if "id" in msg and "method" in msg and self.answer is not None:
            result = self.answer(msg)
            self.client.route.handle_response(
                self.client, {"jsonrpc": "2.0", "id": msg["id"], "result": result}
            )


async def request(
    route: Route,
    client: ClientSession,
    method: str,
    params: dict[str, Any] | None = None,
    answer: Callable[[Message], Any] | None = None,
) -> tuple[Message, Origin]:
    """Send one request as a face would; the response and the exchange (what was emitted on it)."""
    msg: Message = {"jsonrpc": "2.0", "id": f"c{next(_ids)}", "method": method}
    if params is not None:
        msg["params"] = params
    origin = Origin(client, msg["id"], answer)
    with anyio.fail_after(5):
        response = await route.handle_request(client, msg, origin)
    assert response["id"] == msg["id"]
    return response, origin


async def connect(
    route: Route, scope: TokenScope | None = None, capabilities: dict[str, Any] | None = None
) -> ClientSession:
    """A client session through initialize and notifications/initialized."""
    client = route.new_session(scope)
    params = {
        "protocolVersion": "2025-06-18",
        "capabilities": capabilities or {},
        "clientInfo": {"name": "component-test", "version": "1"},
    }
    response, _ = await request(route, client, "initialize", params)
    assert "result" in response, response
    await route.handle_notification(client, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    return client


def names(response: Message, key: str = "tools") -> list[str]:
    return sorted(str(item["name"]) for item in response["result"][key])
