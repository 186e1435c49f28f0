"""A stdio upstream: a child process speaking newline-delimited JSON-RPC on its stdin/stdout."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson

from ..config.model import ServerConfig
from ..errors import UpstreamUnavailableError
from ..jsonrpc import Message
from .connection import Receiver

log = logging.getLogger("mcpmux.upstream")

STDERR_LINE_LIMIT = 8192
CLOSE_STDIN_GRACE_SECONDS = 2.0
TERM_GRACE_SECONDS = 2.0
PR_SET_PDEATHSIG = 1


class _ChildProtocol(asyncio.SubprocessProtocol):
    """Splits stdout into lines and hands each parsed message to the receiver, inline."""

    def __init__(self, name: str, receiver: Receiver) -> None:
        self.name = name
        self.receiver = receiver
        self.partial: list[bytes] = []
        self.err_partial = b""
        self.exited = asyncio.get_running_loop().create_future()
        self.stdout_closed = False
        self.paused: asyncio.Future[None] | None = None
        self.garbage_lines = 0

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1:
            self._on_stdout(data)
        else:
            self._on_stderr(data)

    def _on_stdout(self, data: bytes) -> None:
        start = 0
        find = data.find
        while True:
            nl = find(b"\n", start)
            if nl < 0:
                if start < len(data):
                    self.partial.append(data[start:] if start else data)
                return
            if self.partial:
                self.partial.append(data[start:nl])
                line: bytes | memoryview = b"".join(self.partial)
                self.partial.clear()
            else:
                line = memoryview(data)[start:nl]
            start = nl + 1
            self._on_line(line)

    def _on_line(self, line: bytes | memoryview) -> None:
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError:
            text = bytes(line).strip()
            if text:
                self.garbage_lines += 1
                log.warning("%s wrote a non-JSON line to stdout (ignored): %.200r", self.name, text)
            return
        if type(msg) is dict:
            self.receiver(msg, None)
        else:
            log.warning("%s wrote a JSON value that is not a message (ignored)", self.name)

    def _on_stderr(self, data: bytes) -> None:
        lines = (self.err_partial + data).split(b"\n")
        self.err_partial = lines.pop()[-STDERR_LINE_LIMIT:]
        if log.isEnabledFor(logging.DEBUG):
            for raw in lines:
                log.debug("%s stderr: %s", self.name, raw[:STDERR_LINE_LIMIT].decode("utf-8", "replace"))

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self.stdout_closed = True

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def pause_writing(self) -> None:
        if self.paused is None:
            self.paused = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.paused is not None:
            if not self.paused.done():
                self.paused.set_result(None)
            self.paused = None


class StdioConnection:
    """The sending half of a running child process; receiving happens in `_ChildProtocol`.

    Small messages sent in one event-loop iteration (many sessions' requests arriving together) leave
    in one write() at the end of it: one syscall and one wake-up of the child instead of one each.
    A message of BATCH_LIMIT bytes or more is written at once, after whatever is pending.
    """

    BATCH_LIMIT = 65536

    def __init__(self, name: str, transport: asyncio.SubprocessTransport, protocol: _ChildProtocol) -> None:
        self.name = name
        self.transport = transport
        self.protocol = protocol
        self._stdin: Any = transport.get_pipe_transport(0)  # uvloop's pipe is not an asyncio.WriteTransport
        self.pid = transport.get_pid()
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes] | None = None

    async def send(self, msg: Message, related: Any = None) -> None:
        if self.protocol.exited.done() or self._stdin.is_closing():
            raise UpstreamUnavailableError(self.name, "process has exited")
        data = orjson.dumps(msg) + b"\n"
        if len(data) >= self.BATCH_LIMIT:
            self._flush()
            self._stdin.write(data)
        elif self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self._flush)
        else:
            self._pending.append(data)
        paused = self.protocol.paused
        if paused is not None:
            await paused

    def _flush(self) -> None:
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        if not self._stdin.is_closing():
            self._stdin.write(pending[0] if len(pending) == 1 else b"".join(pending))

    async def wait_closed(self) -> str:
        """Wait until the process exits; return a description of why."""
        await self._exited()
        code = self.transport.get_returncode()
        if code is not None and code < 0:
            return f"process killed by signal {-code}"
        return f"process exited with code {code}"

    @property
    def closed(self) -> bool:
        return self.protocol.exited.done()

    def _exited(self) -> asyncio.Future[None]:
        # Shielded: a waiter being cancelled must not cancel the one future every waiter shares.
        return asyncio.shield(self.protocol.exited)

    async def close(self) -> None:
        """Close stdin, then SIGTERM and finally SIGKILL the whole process group."""
        with anyio.CancelScope(shield=True):
            self._flush()
            if not self._stdin.is_closing():
                self._stdin.close()
            with anyio.move_on_after(CLOSE_STDIN_GRACE_SECONDS):
                await self._exited()
            if not self.protocol.exited.done():
                _signal_group(self.pid, signal.SIGTERM)
                with anyio.move_on_after(TERM_GRACE_SECONDS):
                    await self._exited()
            _signal_group(self.pid, signal.SIGKILL)  # also reaps grandchildren left behind
            with anyio.move_on_after(TERM_GRACE_SECONDS):
                await self._exited()
            self.transport.close()


def _signal_group(pid: int | None, sig: int) -> None:
    if pid is None:
        return
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()


def die_with_parent() -> Callable[[], None] | None:
    """Linux: a preexec function so the child gets SIGKILL when the proxy dies, even by SIGKILL.

    Closing stdin, SIGTERM and SIGKILL to the group cover every orderly path; this covers a proxy that
    is killed outright, for its direct children (grandchildren still see their stdin close).
    """
    prctl = _prctl
    if prctl is None:
        return None
    parent = os.getpid()

    def arm() -> None:  # runs in the child between fork and exec: no allocation-heavy work here
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the proxy died before the signal was armed
            os._exit(1)

    return arm


def child_environment(server: ServerConfig) -> dict[str, str]:
    """The proxy's own environment with the server's `env` on top, as the original does."""
    env = dict(os.environ)
    env.update(server.env)
    return env


@asynccontextmanager
async def open_stdio_connection(server: ServerConfig, receiver: Receiver) -> AsyncIterator[StdioConnection]:
    """Start the server's command; yield the connection; stop the process group on exit."""
    loop = asyncio.get_running_loop()
    assert server.command is not None
    argv = [server.command, *server.args]

    def factory() -> _ChildProtocol:
        return _ChildProtocol(server.name, receiver)

    try:
        transport, protocol = await loop.subprocess_exec(
            factory,
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child_environment(server),
            cwd=server.cwd,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
    except OSError as exc:
        raise UpstreamUnavailableError(
            server.name, f"cannot start {server.command!r}: {exc.strerror or exc}"
        ) from None
    conn = StdioConnection(server.name, transport, protocol)
    log.debug("%s started pid %s: %s", server.name, conn.pid, " ".join(argv))
    try:
        yield conn
    finally:
        await conn.close()
