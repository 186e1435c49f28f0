"""Idle client sessions on a manual clock: ended between one and 1.25 idle timeouts after their last
activity, a relayed request counting as activity, and never while a stream is open or a request waits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from fake_upstream import WAIT_SECONDS, Call, FakeServer, fake_transport
from relay_harness import connect, proxy_config, request, running, stdio

from mcpmux.core.clock import ManualClock
from mcpmux.relay.route import reap_idle_sessions
from mcpmux.relay.server_route import ServerRoute

pytestmark = pytest.mark.anyio

CHECK_SECONDS = 15.0  # a quarter of the 60s idle timeout (IDLE_CHECKS_PER_TIMEOUT)


@asynccontextmanager
async def reaped_route(
    monkeypatch: pytest.MonkeyPatch, clock: ManualClock, server: FakeServer | None = None
) -> AsyncIterator[ServerRoute]:
    """A server route with a 60s idle timeout on `clock`, its idle sessions reaped on the same clock."""
    server = server or FakeServer("up")
    with fake_transport(monkeypatch, server):
        config = proxy_config({"up": stdio(idleTimeout="60s", healthCheck={"interval": "0s"})})
        async with running(config) as runtimes, anyio.create_task_group() as tg:
            route = ServerRoute(runtimes["up"], config)
            route.clock = clock
            tg.start_soon(reap_idle_sessions, lambda: [route], clock)
            with anyio.fail_after(WAIT_SECONDS):  # the bound of the whole test: it never comes near it
                assert await clock.next_sleep() == CHECK_SECONDS
                yield route
            tg.cancel_scope.cancel()


async def checks_until(clock: ManualClock, seconds: float) -> None:
    """Move the clock to `seconds`, one idle check at a time, each done before the next (the reaper has
    begun its next sleep)."""
    while clock.now() < seconds:
        clock.advance(CHECK_SECONDS)
        assert await clock.next_sleep() == CHECK_SECONDS


@pytest.mark.parametrize(
    ("listened_until", "alive_at", "ended_at"),
    [
        (0.0, 45.0, 60.0),
        # cluster mode: a listener on another replica holds the timeout off until its key's end (the pump
        # sets listened_until from the live key); idleness counts from then, not from the last request
        (90.0, 135.0, 150.0),
    ],
)
async def test_a_session_is_ended_at_the_first_check_after_its_idle_timeout(
    monkeypatch: pytest.MonkeyPatch, listened_until: float, alive_at: float, ended_at: float
) -> None:
    clock = ManualClock()
    async with reaped_route(monkeypatch, clock) as route:
        client = await connect(route)
        client.listened_until = listened_until
        await checks_until(clock, alive_at)
        assert route.sessions.get(client.id) is client and not client.closed
        await checks_until(clock, ended_at)
        assert client.id not in route.sessions and client.closed


async def test_a_relayed_request_counts_as_activity(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock()
    async with reaped_route(monkeypatch, clock) as route:
        client = await connect(route)
        await checks_until(clock, 45.0)
        answer, _ = await request(route, client, "tools/call", {"name": "echo", "arguments": {"text": "x"}})
        assert "result" in answer and client.last_active == 45.0
        await checks_until(clock, 90.0)
        assert route.sessions.get(client.id) is client
        await checks_until(clock, 105.0)
        assert client.closed


async def test_a_session_with_an_open_stream_or_a_waiting_request_is_not_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up", ["echo", "slow"])
    release, answered = anyio.Event(), anyio.Event()

    @server.on("tools/call")
    async def slow(call: Call) -> dict[str, Any]:
        await release.wait()
        return {"content": []}

    clock = ManualClock()
    async with reaped_route(monkeypatch, clock, server) as route, anyio.create_task_group() as tg:
        streaming, waiting, idle = [await connect(route) for _ in range(3)]
        streaming.has_stream = True  # what a face sets while the standalone stream is open

        async def call_slow() -> None:
            await request(route, waiting, "tools/call", {"name": "slow"})
            answered.set()

        tg.start_soon(call_slow)
        await server.latest.wait_sent(lambda m: m.get("method") == "tools/call")
        await checks_until(clock, 120.0)
        assert idle.closed
        assert set(route.sessions) == {streaming.id, waiting.id}
        streaming.has_stream = False
        release.set()
        await answered.wait()
        assert waiting.last_active == 120.0  # the request's end counts as activity
        await checks_until(clock, 135.0)
        assert set(route.sessions) == {waiting.id}
        await checks_until(clock, 180.0)
        assert not route.sessions
