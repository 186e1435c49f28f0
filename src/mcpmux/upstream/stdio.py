"""A stdio upstream: a child process speaking newline-delimited JSON-RPC on its stdin/stdout."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import re
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson

from ..config.model import ServerConfig
from ..core.redact import Redactor
from ..errors import UpstreamUnavailableError
from ..jsonrpc import Message
from .connection import Receiver

log = logging.getLogger("mcpmux.upstream")

STDERR_LINE_LIMIT = 8192
STDERR_TAIL_LINES = 10  # the last stderr lines kept for the error a failing server is reported with
STDERR_TAIL_LINE_CHARS = 500
STDERR_REASON_LINES = 3  # of those, in the reason it stopped (the log line and last_error)
STDERR_DRAIN_SECONDS = 1.0
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024
CLOSE_STDIN_GRACE_SECONDS = 2.0
TERM_GRACE_SECONDS = 2.0
PR_SET_PDEATHSIG = 1


class _ChildProtocol(asyncio.SubprocessProtocol):
    """Splits stdout into lines and hands each parsed message to the receiver, inline."""

    def __init__(self, name: str, receiver: Receiver, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.name = name
        self.receiver = receiver
        self.max_line_bytes = max_line_bytes
        self.partial: list[bytes] = []
        self.partial_size = 0
        self.failed: str | None = None  # why the connection was given up (stdout is ignored from then)
        self.transport: asyncio.SubprocessTransport | None = None
        self.err_partial = b""
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self.exited = asyncio.get_running_loop().create_future()
        self.stderr_closed = asyncio.get_running_loop().create_future()
        self.stdout_closed = False
        self.paused: asyncio.Future[None] | None = None
        self.garbage_lines = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1:
            if self.failed is None:
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
                    self._keep_partial(data[start:] if start else data)
                return
            if self.partial:
                if self.partial_size + nl - start > self.max_line_bytes:
                    self._give_up()
                    return
                self.partial.append(data[start:nl])
                line: bytes | memoryview = b"".join(self.partial)
                self.partial.clear()
                self.partial_size = 0
            else:
                line = memoryview(data)[start:nl]
            start = nl + 1
            self._on_line(line)
            if self.failed is not None:
                return

    def _keep_partial(self, chunk: bytes) -> None:
        """The start of a line whose end has not arrived yet, bounded by `max_line_bytes`."""
        self.partial_size += len(chunk)
        if self.partial_size > self.max_line_bytes:
            self._give_up()
        else:
            self.partial.append(chunk)

    def _give_up(self) -> None:
        """A line longer than `max_line_bytes`: stop reading and kill the process (the server restarts)."""
        self.failed = f"wrote a line longer than {self.max_line_bytes} bytes to stdout (maxLineBytes)"
        self.partial.clear()
        self.partial_size = 0
        log.error("%s %s; restarting it", self.name, self.failed, extra={"server": self.name})
        if self.transport is not None:
            _signal_group(self.transport.get_pid(), signal.SIGKILL)

    def _on_line(self, line: bytes | memoryview) -> None:
        if len(line) > self.max_line_bytes:
            self._give_up()
            return
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError:
            text = bytes(line).strip()
            if text:
                self.garbage_lines += 1
                log.warning("%s wrote a non-JSON line to stdout (ignored): %.200r", self.name, text)
            return
        if type(msg) is not dict:
            log.warning("%s wrote a JSON value that is not a message (ignored)", self.name)
            return
        try:
            self.receiver(msg, None)
        except Exception:  # one message's failure must not lose the lines after it in this read
            log.exception("%s: handling a message from the server failed", self.name)

    def _on_stderr(self, data: bytes) -> None:
        lines = (self.err_partial + data).split(b"\n")
        self.err_partial = lines.pop()[-STDERR_LINE_LIMIT:]
        debug = log.isEnabledFor(logging.DEBUG)
        for raw in lines:
            text = raw[:STDERR_LINE_LIMIT].decode("utf-8", "replace").rstrip()
            if text:  # kept whole (bounded by the line limit): redacted before it is cut to show
                self.stderr_tail.append(text)
            if debug:
                log.debug("%s stderr: %s", self.name, text)

    def last_stderr(self) -> list[str]:
        """The last lines the process wrote to stderr (bounded), its unfinished last line included."""
        tail = list(self.stderr_tail)
        rest = self.err_partial.decode("utf-8", "replace").strip()
        if rest:
            tail = [*tail[1 - STDERR_TAIL_LINES :], rest]
        return tail

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self.stdout_closed = True
        elif fd == 2 and not self.stderr_closed.done():
            self.stderr_closed.set_result(None)

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

    def __init__(
        self,
        name: str,
        transport: asyncio.SubprocessTransport,
        protocol: _ChildProtocol,
        redactor: Redactor | None = None,
    ) -> None:
        self.name = name
        self.redactor = redactor or Redactor()  # what is never shown from its stderr (its env values)
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
        """Wait until the process exits; return a description of why (with its last stderr line)."""
        await self._exited()
        with anyio.move_on_after(STDERR_DRAIN_SECONDS):  # its last words may still be in the pipe
            await asyncio.shield(self.protocol.stderr_closed)
        if self.protocol.failed is not None:
            return self.protocol.failed
        code = self.transport.get_returncode()
        why = (
            f"process killed by signal {-code}"
            if code is not None and code < 0
            else f"process exited with code {code}"
        )
        tail = self.stderr_tail()[-STDERR_REASON_LINES:]
        return f"{why}; stderr: {' | '.join(tail)}" if tail else why

    def stderr_tail(self) -> list[str]:
        """The last lines of the process's stderr, secrets redacted, then cut (for the logs and status
        views: cut first, a secret straddling the cut would keep its first part)."""
        lines = self.protocol.last_stderr()
        return [redact_stderr(line, self.redactor)[:STDERR_TAIL_LINE_CHARS] for line in lines]

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


# Credentials that a child may print in free text, beyond the known secrets of the config (its `env`
# values, which `Redactor` removes): `Bearer x`, `token=x`, `api_key: x`, `password=x`.
_CREDENTIAL = re.compile(
    r"(?i)(bearer\s+|(?:api[_-]?key|access[_-]?key|token|secret|password|passwd|authorization)"
    r"[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;]+"
)


def redact_stderr(text: str, redactor: Redactor) -> str:
    """A stderr line as mcpmux may show it: known secrets, URL credentials and credential-like values gone."""
    return _CREDENTIAL.sub(r"\1***", redactor(text))


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
        return _ChildProtocol(server.name, receiver, server.options.max_line_bytes)

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
    conn = StdioConnection(server.name, transport, protocol, Redactor(server.env.values()))
    # the command only: arguments may carry secrets the redactor does not know (expanded from the environment)
    log.debug("%s started pid %s: %s (%d arguments)", server.name, conn.pid, server.command, len(server.args))
    try:
        yield conn
    finally:
        await conn.close()
