"""Self-healing upstreams under injected faults: real subprocesses, real HTTP upstreams, no sleeps."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fault_kit import (
    DEBUG,
    FAST_RESTART,
    faulty,
    http_upstream,
    process_state,
    readyz,
    server_status,
)
from relay_kit import raw_http

from harness import ProxyProcess, count_lines, fixture_server, mcp_client, running_proxy, wait_for_log

pytestmark = pytest.mark.anyio

BOUND_SECONDS = 30


async def call(client: Any, tool: str, **arguments: Any) -> dict[str, Any]:
    return await client.request("tools/call", {"name": tool, "arguments": arguments})


async def pid_of(client: Any) -> int:
    return (await client.result("tools/call", {"name": "whoami", "arguments": {}}))["structuredContent"][
        "pid"
    ]


async def test_a_call_in_flight_when_its_stdio_upstream_is_killed_fails_at_once_and_the_next_call_works(
    tmp_path: Path,
) -> None:
    config = {"mcpServers": {"fx": faulty()}}
    with running_proxy(config, tmp_path, extra_args=DEBUG) as proxy, anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/fx/mcp"), standalone=True) as client:
            pid = await pid_of(client)
            mark = len(proxy.lines)
            answers: list[dict[str, Any]] = []
            async with anyio.create_task_group() as tg:

                async def sleep_long() -> None:
                    answers.append(await call(client, "sleep", seconds=60))

                tg.start_soon(sleep_long)
                await wait_for_log(proxy, r"fx stderr: sleep started", mark)
                killed_at = time.monotonic()
                os.kill(pid, signal.SIGKILL)
            assert time.monotonic() - killed_at < 5  # at once: not after the 60 s the call would take
            (answer,) = answers
            assert answer["error"]["code"] == -32000
            assert "fx" in answer["error"]["message"]
            assert "killed by signal 9" in answer["error"]["message"]

            await wait_for_log(proxy, r"<fx> Connected", mark)
            assert await pid_of(client) != pid  # same downstream session, fresh upstream process
            await client.notification("notifications/tools/list_changed")
            assert process_state(pid) is None  # reaped by the proxy: no zombie


async def test_a_hung_upstream_gets_a_timeout_error_is_told_to_cancel_and_the_proxy_stays_responsive(
    tmp_path: Path,
) -> None:
    config = {
        "mcpServers": {
            "fx": faulty(requestTimeout="500ms"),
            "seed": {**faulty(), "timeout": "500ms"},  # the original's per-server `timeout`
        }
    }
    with running_proxy(config, tmp_path, extra_args=DEBUG) as proxy, anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/fx/mcp")) as fx, raw_http(proxy.url("/seed/mcp")) as seed:
            answers: dict[str, dict[str, Any]] = {}
            async with anyio.create_task_group() as tg:

                async def hang(name: str, client: Any) -> None:
                    answers[name] = await call(client, "hang")

                tg.start_soon(hang, "fx", fx)
                tg.start_soon(hang, "seed", seed)
                await wait_for_log(proxy, r"fx stderr: hang started")
                echoed = await call(fx, "echo", text="still here")  # while the other call hangs
                assert echoed["result"]["content"][0]["text"] == "still here"
                assert httpx2.get(proxy.url("/_healthz"), timeout=5).status_code == 200
            for name in ("fx", "seed"):
                assert answers[name]["error"]["code"] == -32001
                assert answers[name]["error"]["message"] == f"{name}: request timed out after 0.5s"
                await wait_for_log(proxy, rf"{name} stderr: cancelled \d+")


async def test_health_checks_restart_an_upstream_that_stopped_answering(tmp_path: Path) -> None:
    health = {"interval": "100ms", "failureThreshold": 2, "timeout": "200ms"}
    config = {"mcpServers": {"fx": faulty(healthCheck=health)}}
    with running_proxy(config, tmp_path, extra_args=DEBUG) as proxy, anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/fx/mcp")) as client:
            pid = await pid_of(client)
            mark = len(proxy.lines)
            assert (await call(client, "freeze"))["result"]["content"][0]["text"] == "frozen"
            await wait_for_log(proxy, r"fx health check failed \(1 of 2\)", mark)
            await wait_for_log(
                proxy, r"fx is unhealthy: 2 health checks in a row failed .*; reconnecting", mark
            )
            await wait_for_log(proxy, r"<fx> Connected", mark)
            assert await pid_of(client) != pid


async def test_garbage_on_stdout_is_skipped_and_the_server_keeps_working(tmp_path: Path) -> None:
    config = {"mcpServers": {"fx": faulty("--garbage")}}
    with running_proxy(config, tmp_path) as proxy, anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/fx/mcp")) as client:
            for text in ("one", "two"):
                assert (await call(client, "echo", text=text))["result"]["content"][0]["text"] == text
        assert count_lines(proxy, "fx wrote a non-JSON line to stdout (ignored)") >= 3
        assert count_lines(proxy, "fx wrote a JSON value that is not a message (ignored)") == 1


async def test_a_server_failing_at_start_is_retried_reported_and_served_once_it_connects(
    tmp_path: Path,
) -> None:
    gate = tmp_path / "gate"
    config = {"mcpServers": {"fx": faulty("--exit-unless", str(gate)), "ok": faulty()}}
    with running_proxy(config, tmp_path) as proxy, anyio.fail_after(BOUND_SECONDS):
        refused = httpx2.post(proxy.url("/fx/mcp"), json=initialize_request(), headers=ACCEPT, timeout=5)
        assert refused.status_code == 404
        assert "server 'fx' is not connected" in refused.json()["error"]["message"]
        await wait_for_log(proxy, r"fx is in a crash loop")
        status, body = readyz(proxy)
        assert status == 503
        fx = body["servers"]["fx"]
        assert fx["state"] in ("failed", "connecting")
        assert fx["last_error"] == "process exited with code 3; stderr: exiting at start with code 3"
        assert fx["last_stderr"][-1] == "exiting at start with code 3"
        assert fx["crash_loop"] is True
        assert fx["attempt"] >= 3
        assert body["servers"]["ok"]["state"] == "ready"

        mark = len(proxy.lines)
        gate.touch()
        await wait_for_log(proxy, r"<fx> Connected", mark)
        async with raw_http(proxy.url("/fx/mcp")) as client:
            assert (await call(client, "echo", text="up"))["result"]["content"][0]["text"] == "up"
        assert readyz(proxy)[0] == 200
        assert server_status(proxy, "fx")["crash_loop"] is True  # reset only after it stays up


def test_panic_if_invalid_makes_the_proxy_exit_non_zero_promptly_with_a_clear_message(tmp_path: Path) -> None:
    broken = {"command": str(tmp_path / "no-such-server"), "options": {"panicIfInvalid": True}}
    proxy = ProxyProcess({"mcpServers": {"broken": broken, "ok": faulty()}}, tmp_path)
    try:
        assert proxy.process.wait(timeout=15) == 1
    finally:
        proxy.stop()
    assert "Exiting: broken: cannot start" in proxy.log
    assert "(panicIfInvalid is set)" in proxy.log
    assert "All clients initialized" not in proxy.log


async def test_a_resource_subscription_survives_a_restart_of_the_shared_upstream(tmp_path: Path) -> None:
    uri = "test://watched-resource"
    config = {"mcpServers": {"fx": {**fixture_server(), "options": {"restart": FAST_RESTART}}}}
    with running_proxy(config, tmp_path, extra_args=DEBUG) as proxy, anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/fx/mcp"), standalone=True) as client:
            await client.result("resources/subscribe", {"uri": uri})
            pid = await pid_of(client)
            mark = len(proxy.lines)
            os.kill(pid, signal.SIGKILL)
            await wait_for_log(proxy, r"<fx> Connected", mark)
            await wait_for_log(proxy, rf"fx stderr: subscribe {uri}", mark)  # told again, unasked
            await client.result("tools/call", {"name": "touch_resource", "arguments": {"uri": uri}})
            updated = await client.notification("notifications/resources/updated")
            assert updated["params"]["uri"] == uri


def test_an_upstream_that_never_answers_initialize_fails_after_the_connect_timeout_not_later(
    tmp_path: Path,
) -> None:
    mute = faulty("--mute", connectTimeout="300ms", panicIfInvalid=True)
    started = time.monotonic()
    proxy = ProxyProcess({"mcpServers": {"mute": mute}}, tmp_path)
    try:
        assert proxy.process.wait(timeout=15) == 1
    finally:
        proxy.stop()
    assert time.monotonic() - started < 10  # not the 30 s default, let alone forever
    assert "mute failed to connect: did not answer initialize within the connect timeout (0.3s)" in proxy.log
    assert "Exiting: mute: did not answer initialize" in proxy.log


async def test_a_list_or_read_in_flight_when_the_upstream_dies_is_replayed_but_a_tool_call_is_not(
    tmp_path: Path,
) -> None:
    state = tmp_path / "crashed-once"
    config = {
        "mcpServers": {
            "fx": faulty("--crash-once-on", "prompts/get", "--state", str(state)),
            "fy": faulty(),
        }
    }
    with running_proxy(config, tmp_path, extra_args=DEBUG) as proxy, anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/fx/mcp")) as fx, raw_http(proxy.url("/fy/mcp")) as fy:
            prompt = await fx.request("prompts/get", {"name": "greeting"})
            assert prompt["result"]["messages"][0]["content"]["text"] == "hello"
            assert state.exists()  # the first attempt did kill the upstream
            # the answer can reach us before the proxy's stderr line is read: wait for it, then count it
            await wait_for_log(proxy, r"fx: replaying prompts/get on the fresh upstream session")
            assert count_lines(proxy, "fx: replaying prompts/get on the fresh upstream session") == 1

            mark = len(proxy.lines)
            crashed = await call(fy, "crash")
            assert crashed["error"]["code"] == -32000
            assert "fy: upstream unavailable" in crashed["error"]["message"]
            await wait_for_log(proxy, r"<fy> Connected", mark)
            assert await pid_of(fy)  # the next call goes to the fresh process...
            assert count_lines(proxy, "fy stderr: crash called") == 1  # ...and the crash was not replayed


@pytest.mark.parametrize("mode", ["shared", "isolated"])
async def test_a_restarted_streamable_http_upstream_is_reinitialized_without_the_client_noticing(
    tmp_path: Path, mode: str
) -> None:
    with http_upstream("streamable-http") as upstream:
        server = {"url": upstream.url, "transportType": "streamable-http", "options": {"sessionMode": mode}}
        with (
            running_proxy({"mcpServers": {"web": server}}, tmp_path) as proxy,
            anyio.fail_after(BOUND_SECONDS),
        ):
            async with mcp_client(proxy.url("/web/mcp")) as client:
                before = (await client.call_tool("whoami", {})).structured_content
                upstream.restart()
                echoed = await client.call_tool("echo", {"text": "after the restart"})
                assert echoed.content[0].text == "after the restart"
                after = (await client.call_tool("whoami", {})).structured_content
                assert after["pid"] != before["pid"]
                assert after["sessionId"] != before["sessionId"]
        assert "web: re-initialized the upstream session" in proxy.log


@pytest.mark.parametrize("mode", ["shared", "isolated"])
async def test_a_dropped_sse_upstream_stream_is_reconnected(tmp_path: Path, mode: str) -> None:
    with http_upstream("sse") as upstream:
        server = {"url": upstream.url, "options": {"sessionMode": mode, "restart": FAST_RESTART}}
        with (
            running_proxy({"mcpServers": {"legacy": server}}, tmp_path) as proxy,
            anyio.fail_after(BOUND_SECONDS),
        ):
            async with mcp_client(proxy.url("/legacy/mcp")) as client:
                before = (await client.call_tool("whoami", {})).structured_content
                mark = len(proxy.lines)
                upstream.restart()
                await wait_for_log(proxy, r"legacy disconnected: the SSE stream", mark)
                after = (await client.call_tool("whoami", {})).structured_content
                assert after["pid"] != before["pid"]


ACCEPT = {"accept": "application/json, text/event-stream"}


def initialize_request() -> dict[str, Any]:
    params = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    return {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
