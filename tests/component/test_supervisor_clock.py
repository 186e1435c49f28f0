"""Supervision on a manual clock: the restart backoff sequence, its reset after a stable run, health checks
and the connect timeout, driven by advancing the clock (no real waiting, no sleeps)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from fake_upstream import WAIT_SECONDS, Call, FakeServer, fake_transport
from relay_harness import proxy_config, stdio

from mcpmux.core.clock import ManualClock
from mcpmux.jsonrpc import INTERNAL_ERROR, REQUEST_TIMEOUT
from mcpmux.upstream.runtime import ServerRuntime

pytestmark = pytest.mark.anyio

NO_JITTER = {"initialDelay": "1s", "multiplier": 2, "maxDelay": "5s", "jitter": 0}
NO_HEALTH_CHECKS = {"interval": "0s"}


@asynccontextmanager
async def supervised(
    clock: ManualClock, first_attempt_connects: bool, **options: Any
) -> AsyncIterator[ServerRuntime]:
    """One runtime on `clock`, supervised in a task group from the first attempt on; stopped after."""
    config = proxy_config({"up": stdio(**options)})
    runtime = ServerRuntime(config.servers["up"], config)
    runtime.clock = clock
    async with anyio.create_task_group() as tg:
        assert await tg.start(runtime.run) is first_attempt_connects, runtime.last_error
        try:
            with anyio.fail_after(WAIT_SECONDS):  # the bound of the whole test: it never comes near it
                yield runtime
        finally:
            with anyio.CancelScope(shield=True):
                await runtime.stop("test over")


async def sleep_through(clock: ManualClock) -> float:
    """Wait until the code under test sleeps, then let that sleep end at once; its duration."""
    delay = await clock.next_sleep()
    clock.advance(delay)
    return delay


async def test_failed_connects_back_off_exponentially_to_the_cap_and_report_a_crash_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up")

    @server.on("initialize")
    async def refuse(call: Call) -> dict[str, Any]:
        return {"error": {"code": INTERNAL_ERROR, "message": "not today"}}

    clock = ManualClock()
    with fake_transport(monkeypatch, server):
        async with supervised(clock, False, restart=NO_JITTER, healthCheck=NO_HEALTH_CHECKS) as runtime:
            delays = [await sleep_through(clock) for _ in range(5)]
            last = await clock.next_sleep()  # the sixth failure's delay, not yet waited out
            assert (runtime.state, runtime.attempt, runtime.crash_loop) == ("failed", 6, True)
            assert runtime.retry_at == clock.now() + last
            status = runtime.status()  # what the status views and /_readyz show, on the same clock
            assert (status["state"], status["retry_in_seconds"], status["attempt"]) == ("failed", 5.0, 6)
            assert runtime.restarts == 5
            assert "not today" in (runtime.last_error or "")
    assert [*delays, last] == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert len(server.connections) == 6  # one attempt per delay waited out, and the first


async def test_a_connection_that_stayed_up_resets_the_backoff_and_one_that_did_not_grows_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up")
    clock = ManualClock()
    with fake_transport(monkeypatch, server):
        async with supervised(clock, True, restart=NO_JITTER, healthCheck=NO_HEALTH_CHECKS) as runtime:
            delays = []
            for uptime in (0.0, 9.0, 10.0, 0.0):  # stable after 10s up (Backoff.mark_healthy)
                clock.advance(uptime)
                server.latest.die("crashed")
                delays.append(await sleep_through(clock))
                assert await runtime.wait_ready(WAIT_SECONDS), runtime.last_error
            assert runtime.restarts == 4 and runtime.state == "ready"
            assert runtime.connected_at == clock.now()
    assert delays == [1.0, 2.0, 1.0, 2.0]


async def test_health_checks_ping_on_the_clock_and_reconnect_after_the_threshold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up")
    answered = [True]

    @server.on("ping")
    async def ping(call: Call) -> dict[str, Any]:
        if answered[0]:
            return {}
        return {"error": {"code": REQUEST_TIMEOUT, "message": "no answer"}}

    clock = ManualClock()
    health = {"interval": "30s", "failureThreshold": 2}
    with fake_transport(monkeypatch, server):
        async with supervised(clock, True, restart=NO_JITTER, healthCheck=health) as runtime:
            first = server.latest
            assert await sleep_through(clock) == 30.0  # then the first ping
            assert await clock.next_sleep() == 30.0  # it was answered: the next interval
            assert runtime.health_failures == 0 and runtime.state == "ready"
            answered[0] = False
            clock.advance(30.0)
            assert await sleep_through(clock) == 30.0  # after one failed ping: unhealthy, not yet gone
            assert runtime.health_failures == 1 and runtime.state == "unhealthy"
            assert await clock.next_sleep() == 1.0  # 2nd failure: reconnect (up 90s: backoff reset)
            assert "unhealthy: 2 health checks in a row failed (no answer)" in (runtime.last_error or "")
            assert first.closed and first.methods().count("ping") == 3


async def test_an_upstream_silent_past_the_connect_timeout_fails_when_the_clock_gets_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer("up")

    @server.on("initialize")
    async def never(call: Call) -> None:
        await anyio.sleep_forever()

    clock = ManualClock()
    config = proxy_config(
        {"up": stdio(connectTimeout="20s", restart=NO_JITTER, healthCheck=NO_HEALTH_CHECKS)}
    )
    runtime = ServerRuntime(config.servers["up"], config)
    runtime.clock = clock
    with fake_transport(monkeypatch, server), anyio.fail_after(WAIT_SECONDS):
        async with anyio.create_task_group() as tg:
            tg.start_soon(runtime.run)
            await server.opened.wait()
            await server.latest.wait_sent(lambda m: m.get("method") == "initialize")
            clock.advance(19.9)
            assert runtime.state == "connecting"
            clock.advance(0.1)
            assert await clock.next_sleep() == 1.0
            assert runtime.state == "failed"
            assert runtime.last_error == "did not answer initialize within the connect timeout (20s)"
            await runtime.stop("test over")
