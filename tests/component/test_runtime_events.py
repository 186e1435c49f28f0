"""ServerRuntime alone over a fake upstream: what the server initiates comes out as events (no relay)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from fake_upstream import WAIT_SECONDS, FakeServer, fake_transport, tool
from relay_harness import FAST_RESTART, proxy_config, running, stdio

from mcpmux.upstream.events import NO_CLIENTS, Asked, Notified, Resumed

pytestmark = pytest.mark.anyio

Message = dict[str, Any]


class RecordingSink:
    """An event sink that records what it is told and answers every server request with `answer`."""

    def __init__(self) -> None:
        self.notified_events: list[Notified] = []
        self.asked_events: list[Asked] = []
        self.resumed_events: list[Resumed] = []
        self.changed = anyio.Event()

    def _note(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    def notified(self, event: Notified) -> None:
        self.notified_events.append(event)
        self._note()

    async def asked(self, event: Asked) -> Message | None:
        self.asked_events.append(event)
        self._note()
        return {"jsonrpc": "2.0", "id": None, "result": {"roots": [{"uri": "file:///sink"}]}}

    async def resumed(self, event: Resumed) -> None:
        self.resumed_events.append(event)
        self._note()


async def test_notifications_reach_the_sink_and_list_changed_also_reloads_the_catalog(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up", ["one"])
    with fake_transport(monkeypatch, server):
        async with running(proxy_config({"up": stdio()})) as runtimes:
            runtime, sink = runtimes["up"], RecordingSink()
            runtime.sink = sink
            refreshed = anyio.Event()
            runtime.catalog_listeners.append(lambda rt, why: refreshed.set() if why == "refreshed" else None)
            server.tools.append(tool("two"))
            server.latest.deliver({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
            server.latest.deliver({"jsonrpc": "2.0", "method": "notifications/message", "params": {}})
            with anyio.fail_after(WAIT_SECONDS):
                await refreshed.wait()
            primary = runtime.session
    assert [t["name"] for t in runtime.tools] == ["one", "two"]
    methods = [e.msg["method"] for e in sink.notified_events]
    assert methods == ["notifications/tools/list_changed", "notifications/message"]
    assert all(e.session is primary and e.related is None for e in sink.notified_events)


async def test_a_server_request_is_answered_by_the_sink_under_the_servers_id_and_ping_by_the_runtime(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up")
    with fake_transport(monkeypatch, server):
        async with running(proxy_config({"up": stdio()})) as runtimes:
            sink = RecordingSink()
            runtimes["up"].sink = sink
            roots = await server.latest.ask("roots/list", None, None)
            pong = await server.latest.ask("ping", None, None)
    assert roots["id"] != pong["id"]
    assert roots["result"] == {"roots": [{"uri": "file:///sink"}]} and pong["result"] == {}
    assert [e.msg["method"] for e in sink.asked_events] == ["roots/list"]  # ping never leaves the runtime


async def test_without_a_sink_a_server_request_gets_an_error_and_notifications_go_nowhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up")
    with fake_transport(monkeypatch, server):
        async with running(proxy_config({"up": stdio()})) as runtimes:
            assert runtimes["up"].sink is NO_CLIENTS
            server.latest.deliver({"jsonrpc": "2.0", "method": "notifications/message", "params": {}})
            answer = await server.latest.ask("sampling/createMessage", {"messages": []}, None)
    assert answer["error"]["message"] == "mcpmux: no client can answer sampling/createMessage"


async def test_a_fresh_primary_session_after_a_restart_is_reported_as_resumed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up")
    with fake_transport(monkeypatch, server):
        async with running(proxy_config({"up": stdio(restart=FAST_RESTART)})) as runtimes:
            runtime, sink = runtimes["up"], RecordingSink()
            runtime.sink = sink
            first = server.latest
            first.die("the process exited")
            with anyio.fail_after(WAIT_SECONDS):
                while not sink.resumed_events:
                    await sink.changed.wait()
            fresh = runtime.session
    assert server.latest is not first
    assert [e.session for e in sink.resumed_events] == [fresh]
