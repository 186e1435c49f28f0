"""Run mcpmux as a real subprocess on a socket the test bound first, and talk to it with the SDK client."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "everything_server.py"
START_TIMEOUT_SECONDS = 20.0


def bound_socket() -> socket.socket:
    """A listening socket on 127.0.0.1 with a free port: connections queue until someone serves it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    return sock


def fixture_server(prefix: str = "", *extra: str) -> dict[str, Any]:
    """A stdio server entry running the everything fixture."""
    args = [str(FIXTURE), "--transport", "stdio"]
    if prefix:
        args += ["--tool-prefix", prefix]
    return {"command": sys.executable, "args": [*args, *extra]}


class ProxyProcess:
    """`python -m mcpmux` on a pre-bound socket, its stderr collected line by line."""

    def __init__(
        self,
        config: dict[str, Any],
        tmp_path: Path,
        *,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        launcher: tuple[str, ...] = (sys.executable, "-m", "mcpmux"),
    ) -> None:
        self.sock = bound_socket()
        self.port = self.sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        proxy = config.setdefault("mcpProxy", {})
        proxy.setdefault("baseURL", self.base)
        proxy.setdefault("addr", f"127.0.0.1:{self.port}")
        self.config_path = tmp_path / "config.json"
        self.config_path.write_text(json.dumps(config))
        fd = self.sock.fileno()
        self.process = subprocess.Popen(
            [
                *launcher,
                "--config",
                str(self.config_path),
                "--listen-fd",
                str(fd),
                *extra_args,
            ],
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            with self._changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for_line(self, pattern: str, timeout: float = START_TIMEOUT_SECONDS, start: int = 0) -> str:
        """Block until a stderr line matches `pattern` (regex); fail with the log if it never does."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[start:]:
                    if regex.search(line):
                        return line
                if self.process.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(
                        f"mcpmux exited ({self.process.returncode}) before {pattern!r}:\n{self.log}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line matching {pattern!r} within {timeout}s:\n{self.log}")
                self._changed.wait(left)

    def wait_ready(self) -> None:
        self.wait_for_line(r"All clients initialized")

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._reader.join(5)
        self.sock.close()
        return self.process.returncode


async def wait_for_log(proxy: ProxyProcess, pattern: str, start: int = 0, within: float = 15.0) -> str:
    """A proxy log line matching `pattern` after line `start`, waited for without blocking the event loop."""
    return await anyio.to_thread.run_sync(lambda: proxy.wait_for_line(pattern, within, start))


def count_lines(proxy: ProxyProcess, text: str, start: int = 0) -> int:
    """How many proxy log lines after line `start` contain `text`."""
    return sum(1 for line in proxy.lines[start:] if text in line)


@contextmanager
def running_proxy(
    config: dict[str, Any], tmp_path: Path, *, wait: bool = True, **kwargs: Any
) -> Iterator[ProxyProcess]:
    proxy = ProxyProcess(config, tmp_path, **kwargs)
    try:
        if wait:
            proxy.wait_ready()
        yield proxy
    finally:
        proxy.stop()


@asynccontextmanager
async def mcp_client(
    url: str, *, transport: str = "streamable-http", token: str | None = None, **session_kwargs: Any
) -> AsyncIterator[Any]:
    """An initialized SDK `ClientSession` over streamable HTTP or legacy SSE."""
    from mcp import ClientSession
    from mcp.client.sse import sse_client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if transport == "sse":
        async with sse_client(url, headers=headers) as (read, write):
            async with ClientSession(read, write, **session_kwargs) as session:
                await session.initialize()
                yield session
        return
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http:
        async with streamable_http_client(url, http_client=http, max_sse_event_size=None) as (read, write):
            async with ClientSession(read, write, **session_kwargs) as session:
                await session.initialize()
                yield session
