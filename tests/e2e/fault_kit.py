"""What the fault-injection tests share: misbehaving upstreams, HTTP upstreams that restart, /proc checks.

Waiting is event-driven: on proxy log lines (harness's `wait_for_log`), on subprocess exit, or on a condition
polled in a bounded loop (`wait_until`, for HTTP status and /proc).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
from relay_kit import RawHttp

from harness import ProxyProcess

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FAULTY = FIXTURES / "faulty_server.py"
EVERYTHING = FIXTURES / "everything_server.py"
DEBUG = ("--log-level", "debug")
FAST_RESTART = {"initialDelay": "50ms", "maxDelay": "200ms", "jitter": 0}
BOUND_SECONDS = 30.0


def faulty(*flags: str, **options: Any) -> dict[str, Any]:
    """A stdio server entry running the faulty fixture with `flags`; `options` become its options."""
    entry: dict[str, Any] = {"command": sys.executable, "args": [str(FAULTY), *flags]}
    entry["options"] = {"restart": FAST_RESTART, **options}
    return entry


def wait_until(condition: Callable[[], Any], what: str, within: float = 10.0) -> Any:
    """Poll `condition` (an HTTP status, a /proc entry) until it is truthy; fail after `within` s."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        time.sleep(0.02)


def readyz(proxy: ProxyProcess) -> tuple[int, dict[str, Any]]:
    response = httpx2.get(proxy.url("/_readyz"), timeout=5)
    return response.status_code, response.json()


def server_status(proxy: ProxyProcess, name: str) -> dict[str, Any]:
    return readyz(proxy)[1]["servers"][name]


# -- processes -----------------------------------------------------------------------------------


def process_state(pid: int) -> str | None:
    """The state letter of a process (R, S, Z, ...), None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that is not ours counts as dead)."""
    return process_state(pid) not in (None, "Z")


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


# -- HTTP upstreams --------------------------------------------------------------------------------


class HttpUpstream:
    """The everything fixture over HTTP on a socket this object keeps: restart it behind the proxy.

    Connections made while no process serves the socket wait in its backlog, so a restart never
    refuses a connection; it only makes the old session unknown (streamable HTTP answers 404) or ends
    the event stream (SSE).
    """

    def __init__(self, transport: str, *args: str) -> None:
        self.transport = transport
        self.args = args
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/{'mcp' if transport == 'streamable-http' else 'sse'}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        fd = self.sock.fileno()
        command = [sys.executable, str(EVERYTHING), "--transport", self.transport, "--listen-fd", str(fd)]
        self.process = subprocess.Popen(
            [*command, *self.args], pass_fds=[fd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def close(self) -> None:
        self.kill()
        self.sock.close()


@contextmanager
def http_upstream(transport: str, *args: str) -> Iterator[HttpUpstream]:
    upstream = HttpUpstream(transport, *args)
    upstream.start()
    try:
        yield upstream
    finally:
        upstream.close()


def send_signal(proxy: ProxyProcess, sig: int) -> None:
    os.kill(proxy.process.pid, sig)


# -- a raw client that outlives nothing ----------------------------------------------------------


class StreamWatch:
    """A session's standalone GET stream, read until the proxy ends it."""

    def __init__(self) -> None:
        self.ended = anyio.Event()


@asynccontextmanager
async def raw_session(url: str, *, standalone: bool = False) -> AsyncIterator[tuple[RawHttp, StreamWatch]]:
    """An initialized raw streamable-HTTP session that never says goodbye (the proxy may be gone)."""
    watch = StreamWatch()
    async with (
        httpx2.AsyncClient(timeout=httpx2.Timeout(BOUND_SECONDS, read=None)) as http,
        anyio.create_task_group() as tg,
    ):
        client = RawHttp(http, url)
        await client.initialize()
        if standalone:
            await tg.start(_read_until_closed, client, watch)
        yield client, watch
        tg.cancel_scope.cancel()


async def _read_until_closed(client: RawHttp, watch: StreamWatch, *, task_status: Any) -> None:
    try:
        headers = client.headers(accept="text/event-stream")
        async with client.http.stream("GET", client.url, headers=headers) as stream:
            assert stream.status_code == 200
            task_status.started()
            async for _chunk in stream.aiter_bytes():
                pass
    except httpx2.TransportError:
        pass
    watch.ended.set()
