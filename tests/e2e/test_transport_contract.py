"""The transport contract: one body run against every upstream transport (stdio, legacy SSE, streamable
HTTP) behind the seam `open_connection` returns, with the real session and the everything fixture as the
server: connect, initialize, request and response, notifications both ways, a server-to-client request,
close.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest
from fault_kit import EVERYTHING, http_upstream

from mcpmux.config.parse import parse_config
from mcpmux.jsonrpc import CONNECTION_CLOSED
from mcpmux.upstream.connection import open_connection
from mcpmux.upstream.session import InFlight, Link, UpstreamSession

pytestmark = pytest.mark.anyio

Message = dict[str, Any]
BOUND_SECONDS = 30
TRANSPORTS = ("stdio", "sse", "streamable-http")
PROXY = {"baseURL": "http://127.0.0.1:1", "addr": "127.0.0.1:1"}  # never listened on here
ROOTS = {"roots": [{"uri": "file:///contract", "name": "contract"}]}


@contextmanager
def server_entry(transport: str) -> Iterator[dict[str, Any]]:
    """The everything fixture over `transport`, as a config.json server entry."""
    if transport == "stdio":
        yield {"command": sys.executable, "args": [str(EVERYTHING), "--transport", "stdio"]}
        return
    with http_upstream(transport) as upstream:
        yield {"url": upstream.url, "transportType": transport}


class Client:
    """The downstream client a request is for, as far as the session looks at one."""

    id = "contract"
    busy = 0

    def touch(self) -> None:
        pass

    def wants_log(self, level: Any) -> bool:
        return True


class Origin:
    """The downstream request: what reaches its stream, with an event per message."""

    def __init__(self) -> None:
        self.client = Client()
        self.request_id = "r"
        self.emitted: list[Message] = []
        self.arrived = anyio.Event()

    async def emit(self, msg: Message) -> None:
        self.emitted.append(msg)
        self.arrived.set()


class Answering:
    """The session's owner: related notifications go to their request; roots/list is answered."""

    def __init__(self, tg: Any) -> None:
        self.tg = tg
        self.notifications: list[Message] = []
        self.server_requests: list[Message] = []

    def on_notification(self, session: UpstreamSession, msg: Message, related: InFlight | None) -> None:
        self.notifications.append(msg)
        if related is not None:
            related.put(msg)

    def on_server_request(self, session: UpstreamSession, msg: Message, related: InFlight | None) -> None:
        self.server_requests.append(msg)
        self.tg.start_soon(session.respond, {"jsonrpc": "2.0", "id": msg["id"], "result": ROOTS})

    def spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        self.tg.start_soon(fn, *args)


def call(name: str, arguments: dict[str, Any], **params: Any) -> Message:
    return {
        "jsonrpc": "2.0",
        "id": "r",
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments, **params},
    }


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_upstream_transport_keeps_the_contract(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    with server_entry(transport) as entry, anyio.fail_after(BOUND_SECONDS):
        config = parse_config(
            json.dumps({"mcpProxy": PROXY, "mcpServers": {"up": entry}}),
            "config.json",
            environ={},
            expand_env=False,
        )[0]
        async with anyio.create_task_group() as tg:
            owner = Answering(tg)
            session = UpstreamSession("up", owner)
            link = Link(session.receive)
            async with open_connection(config.servers["up"], link) as conn:  # connect
                session.connection = conn
                await check_contract(session, owner)
            session.close("closed by the test")
            link.cut()
            assert conn.closed  # close
            after = await session.request(call("echo", {"text": "late"}), None, 5)
            assert after["error"]["code"] == CONNECTION_CLOSED


async def check_contract(session: UpstreamSession, owner: Answering) -> None:
    # initialize (and notifications/initialized)
    params = {
        "protocolVersion": "2025-06-18",
        "capabilities": {"roots": {"listChanged": True}},
        "clientInfo": {"name": "contract", "version": "1"},
    }
    result = await session.initialize(params, BOUND_SECONDS)
    assert result["serverInfo"]["name"] == "mcpmux-everything"
    assert session.protocol_version == "2025-06-18"

    # a request and its response, under the caller's id
    answer = await session.request(call("echo", {"text": "hello"}), None, BOUND_SECONDS)
    assert answer["id"] == "r" and answer["result"]["structuredContent"] == {"text": "hello"}

    # a notification from the server, on the request it belongs to, before the response
    origin = Origin()
    logged = await session.request(call("log", {"level": "info", "data": "contract"}), origin, BOUND_SECONDS)
    assert "result" in logged
    assert [(m["method"], m["params"]["data"]) for m in origin.emitted] == [
        ("notifications/message", "contract")
    ]

    # a notification from the client: cancelling a running call reaches the server
    await cancel_a_running_call(session)

    # a request from the server to the client, answered through the session
    asked = await session.request(call("ask_roots", {}), Origin(), BOUND_SECONDS)
    assert [m["method"] for m in owner.server_requests] == ["roots/list"]
    assert json.loads(asked["result"]["content"][0]["text"]) == ROOTS


async def cancel_a_running_call(session: UpstreamSession) -> None:
    origin = Origin()
    slow = call("slow", {"seconds": 60}, _meta={"progressToken": "p"})
    async with anyio.create_task_group() as tg:
        answers: list[Message] = []

        async def run_slow() -> None:
            answers.append(await session.request(slow, origin, BOUND_SECONDS))

        tg.start_soon(run_slow)
        await origin.arrived.wait()  # the first progress: the call is running upstream
        assert origin.emitted[0]["params"]["progressToken"] == "p"
        (uid,) = session.pending
        assert session.cancel(uid, "the contract test cancelled it")
    assert answers[0]["error"]["message"] == "Request cancelled"
    seen = await session.request(
        call("cancellations", {"above": 0, "wait": BOUND_SECONDS}), None, BOUND_SECONDS
    )
    assert seen["result"]["structuredContent"] == {"count": 1}
