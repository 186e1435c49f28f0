"""Hot-path counters: request stats with a latency histogram, and messages counted per direction and kind."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from mcpmux.core.counters import (
    LATENCY_BUCKETS_SECONDS,
    NOTIFICATION,
    REQUEST,
    RESPONSE,
    RequestStats,
    Traffic,
)
from mcpmux.upstream.session import Link, UpstreamSession


def test_finished_requests_are_counted_with_errors_and_cumulative_latency_buckets() -> None:
    stats = RequestStats("fx", "fx", "tools/call", "echo")
    for seconds, failed in ((0.0004, False), (0.001, True), (0.3, False), (1e9, False)):
        stats.active += 1
        stats.finish(seconds, failed)
    assert (stats.calls, stats.errors, stats.active) == (4, 1, 0)
    assert stats.seconds == pytest.approx(0.0004 + 0.001 + 0.3 + 1e9)
    buckets = dict(stats.cumulative_buckets())
    assert buckets[0.0005] == 1
    assert buckets[0.001] == 2  # a bucket counts observations <= its bound
    assert buckets[0.25] == 2 and buckets[0.5] == 3
    assert buckets[float("inf")] == 4
    assert list(buckets) == list(LATENCY_BUCKETS_SECONDS)


def test_a_counting_link_counts_every_message_by_kind_then_delivers_it() -> None:
    traffic = Traffic()
    delivered: list[tuple[dict[str, Any], Any]] = []
    receive = Link(lambda msg, related: delivered.append((msg, related)), traffic.received)
    messages = [
        {"jsonrpc": "2.0", "id": 1, "result": {}},
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": {}},
        {"jsonrpc": "2.0", "id": "s1", "method": "sampling/createMessage"},
        {"jsonrpc": "2.0", "id": 2, "error": {"code": -1, "message": "x"}},
    ]
    for index, msg in enumerate(messages):
        receive(msg, index)
    assert delivered == [(msg, index) for index, msg in enumerate(messages)]
    assert traffic.received[RESPONSE] == 2
    assert traffic.received[NOTIFICATION] == 1
    assert traffic.received[REQUEST] == 1
    assert traffic.sent == [0, 0, 0]


class RecordingConnection:
    """A connection that records what it is sent and answers requests inline."""

    name = "rec"
    closed = False

    def __init__(self, session: UpstreamSession) -> None:
        self.session = session
        self.sent: list[tuple[dict[str, Any], Any]] = []

    async def send(self, msg: dict[str, Any], related: Any = None) -> None:
        self.sent.append((msg, related))
        if "method" in msg and "id" in msg:
            self.session.receive({"jsonrpc": "2.0", "id": msg["id"], "result": {}}, related)


class NoOwner:
    def on_notification(self, session: Any, msg: dict[str, Any], related: Any) -> None: ...

    def on_server_request(self, session: Any, msg: dict[str, Any], related: Any) -> None: ...

    def spawn(self, fn: Any, *args: Any) -> None: ...


def test_an_upstream_session_counts_what_it_sends_by_kind_in_its_traffic() -> None:
    traffic = Traffic()
    sent: list[tuple[dict[str, Any], Any]] = []

    async def send_all() -> None:
        session = UpstreamSession("rec", NoOwner())
        conn = RecordingConnection(session)
        session.connection, session.sent = conn, traffic.sent
        await session.request({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {}}, None, 5)
        await session.notify({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"})
        session.receive({"jsonrpc": "2.0", "id": "s1", "method": "roots/list"}, None)  # the server asks
        await session.respond({"jsonrpc": "2.0", "id": "s1", "result": {"roots": []}})
        sent.extend(conn.sent)

    anyio.run(send_all)
    assert traffic.sent == [1, 1, 1]
    assert [related for _, related in sent] == [1, None, None]
