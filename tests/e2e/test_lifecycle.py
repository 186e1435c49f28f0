"""The proxy's own lifecycle: graceful SIGTERM, a SIGKILLed proxy, lazily started servers."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import anyio
import pytest
from fault_kit import (
    DEBUG,
    alive,
    faulty,
    group_members,
    process_state,
    raw_session,
    readyz,
    send_signal,
    wait_until,
)

from harness import ProxyProcess, running_proxy, wait_for_log
from mcpmux.config.loader import load_config
from mcpmux.serve import serve

pytestmark = pytest.mark.anyio

BOUND_SECONDS = 30


async def test_sigterm_lets_calls_in_flight_finish_exits_zero_and_leaves_no_upstream_process(
    tmp_path: Path,
) -> None:
    proxy = ProxyProcess({"mcpServers": {"fx": faulty("--grandchild")}}, tmp_path, extra_args=DEBUG)
    try:
        proxy.wait_ready()
        with anyio.fail_after(BOUND_SECONDS):
            async with raw_session(proxy.url("/fx/mcp"), standalone=True) as (client, stream):
                whoami = await client.result("tools/call", {"name": "whoami", "arguments": {}})
                pgid = whoami["structuredContent"]["pid"]  # a stdio server leads its own process group
                grandchild = int(re.findall(r"fx stderr: grandchild (\d+)", proxy.log)[0])
                assert {pgid, grandchild} <= set(group_members(pgid))

                answers = []
                async with anyio.create_task_group() as tg:

                    async def sleep_a_second() -> None:
                        answers.append(
                            await client.request("tools/call", {"name": "sleep", "arguments": {"seconds": 1}})
                        )

                    tg.start_soon(sleep_a_second)
                    await wait_for_log(proxy, r"fx stderr: sleep started")
                    send_signal(proxy, signal.SIGTERM)
                assert answers[0]["result"]["content"][0]["text"] == "slept 1.0 s"
                await stream.ended.wait()  # the open event stream did not hold the shutdown up
            started = time.monotonic()
            assert await anyio.to_thread.run_sync(lambda: proxy.process.wait(15)) == 0
        assert time.monotonic() - started < 10
        assert group_members(pgid) == []  # the server, its grandchild: nothing of the group is left
    finally:
        proxy.stop()
    assert "Received SIGTERM, shutting down" in proxy.log
    assert "<fx> Stopped" not in proxy.log  # (reload wording) shutdown stops servers quietly


def test_sigterm_while_a_server_is_still_connecting_exits_zero_promptly(tmp_path: Path) -> None:
    mute = faulty("--mute", connectTimeout="60s")
    proxy = ProxyProcess({"mcpServers": {"mute": mute}}, tmp_path)
    try:
        proxy.wait_for_line(r"<mute> Connecting")
        started = time.monotonic()
        send_signal(proxy, signal.SIGTERM)
        assert proxy.process.wait(15) == 0
        assert time.monotonic() - started < 10
    finally:
        proxy.stop()
    assert "All clients initialized" not in proxy.log


async def test_a_sigkilled_proxy_leaves_no_stdio_child_even_one_that_ignores_stdin_and_sigterm(
    tmp_path: Path,
) -> None:
    proxy = ProxyProcess({"mcpServers": {"fx": faulty("--survive-eof")}}, tmp_path)
    try:
        proxy.wait_ready()
        with anyio.fail_after(BOUND_SECONDS):
            async with raw_session(proxy.url("/fx/mcp")) as (client, _stream):
                whoami = await client.result("tools/call", {"name": "whoami", "arguments": {}})
        pid = whoami["structuredContent"]["pid"]
        assert alive(pid)
        proxy.process.kill()
        proxy.process.wait(10)
        wait_until(lambda: not alive(pid), "the stdio child died with the proxy (PR_SET_PDEATHSIG)", within=5)
    finally:
        proxy.stop()


async def test_a_lazy_start_server_connects_on_first_use_and_counts_as_ready_until_then(
    tmp_path: Path,
) -> None:
    config = {"mcpServers": {"lazy": faulty(lazyStart=True), "eager": faulty()}}
    with running_proxy(config, tmp_path) as proxy, anyio.fail_after(BOUND_SECONDS):
        assert "<lazy> Waiting for first use (lazyStart)" in proxy.log
        assert "<lazy> Connecting" not in proxy.log
        status, body = readyz(proxy)
        assert status == 200
        assert body["servers"]["lazy"]["state"] == "idle"

        async with raw_session(proxy.url("/lazy/mcp")) as (client, _stream):
            echoed = await client.result("tools/call", {"name": "echo", "arguments": {"text": "woken"}})
            assert echoed["content"][0]["text"] == "woken"
        assert "<lazy> Connected" in proxy.log
        assert readyz(proxy)[1]["servers"]["lazy"]["state"] == "ready"


async def test_an_error_that_tears_the_proxy_down_still_stops_its_stdio_children(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"mcpProxy": {"addr": "127.0.0.1:0"}, "mcpServers": {"fx": faulty()}}))
    config = load_config(str(path))
    pids = []
    with anyio.fail_after(BOUND_SECONDS), pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="crash")):
        async with anyio.create_task_group() as tg:
            proxy = await tg.start(lambda task_status: serve(config, task_status=task_status))
            runtime = proxy.runtimes["fx"]
            assert await runtime.wait_ready(10)
            pids.append(runtime.session.connection.pid)
            raise RuntimeError("a crash beside (or inside) the proxy's root task group")
    assert process_state(pids[0]) is None  # stopped and reaped: neither orphan nor zombie
