"""Isolated upstream sessions free their memory at DELETE without the cycle collector (issue 12).

The proxy runs in this process here (its real `serve`, real HTTP on 127.0.0.1, a real HTTP upstream in a
subprocess) so that the test can switch the garbage collector off and hold weak references to what each
client session created: a reference cycle anywhere keeps those objects alive and fails the test.
"""

from __future__ import annotations

import gc
import json
import weakref
from typing import Any

import anyio
import pytest
from relay_kit import raw_http, running_http_fixture

from harness import bound_socket
from mcpmux.config.parse import parse_config
from mcpmux.serve import serve

pytestmark = pytest.mark.anyio

ROUNDS = 25
BOUND_SECONDS = 60


def config_for(url: str, port: int) -> Any:
    document = {
        "mcpProxy": {"addr": f"127.0.0.1:{port}", "baseURL": f"http://127.0.0.1:{port}"},
        "mcpServers": {
            "up": {"url": url, "transportType": "streamable-http", "options": {"sessionMode": "isolated"}}
        },
    }
    return parse_config(json.dumps(document), "config.json", environ={}, expand_env=False)[0]


async def until(condition: Any, what: str, fail: bool = True) -> None:
    """Poll (bounded) while the proxy's tasks wind down."""
    for _ in range(1000):
        if condition():
            return
        await anyio.sleep(0.01)
    if fail:
        raise AssertionError(f"not within 10 s: {what}")


async def test_isolated_sessions_are_freed_at_delete_with_the_garbage_collector_off() -> None:
    sock = bound_socket()
    port = sock.getsockname()[1]
    refs: list[weakref.ref[Any]] = []
    with running_http_fixture("streamable-http") as upstream:
        config = config_for(upstream.url, port)
        gc.collect()
        gc.disable()
        try:
            with anyio.fail_after(BOUND_SECONDS):
                async with anyio.create_task_group() as tg:
                    proxy = await tg.start(
                        lambda task_status: serve(config, listen_fd=sock.detach(), task_status=task_status)
                    )
                    runtime = proxy.runtimes["up"]
                    assert await runtime.wait_ready(20)
                    route = proxy.routes["up"]
                    for _ in range(ROUNDS):
                        async with raw_http(f"http://127.0.0.1:{port}/up/mcp") as client:
                            await client.result("tools/call", {"name": "echo", "arguments": {"text": "x"}})
                            session = route.sessions[client.session_id]
                            upstream_session = session.upstreams["up"]
                            refs += [weakref.ref(session), weakref.ref(upstream_session)]
                            refs.append(weakref.ref(upstream_session.connection))  # the transport
                            del session, upstream_session
                        # raw_http DELETEd the session on exit
                    await until(lambda: not runtime.isolated_sessions, "every isolated session ended")
                    await until(lambda: not route.sessions, "every client session is gone")
                    # the last closes may still be unwinding on a loaded machine: wait (bounded) for the
                    # references to die; with the collector off, an object in a cycle never would
                    await until(lambda: all(ref() is None for ref in refs), "objects freed", fail=False)
                    alive = [ref() for ref in refs if ref() is not None]
                    described = [type(obj).__name__ for obj in alive]
                    del alive
                    tg.cancel_scope.cancel()
        finally:
            gc.enable()
    assert not described, f"{len(described)} of {len(refs)} objects outlived their session: {described[:6]}"
