"""The HTTP/1.1 server under test, a recording ASGI app and a raw-socket client: shared by the http1 tests."""

from __future__ import annotations

import asyncio
import functools
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

from mcpmux.config.model import HttpLimits
from mcpmux.web.server import HttpServer

TIMEOUT = 5.0  # every single wait in this file is bounded by this
BIG = os.urandom(8 * 1024 * 1024)
BIG_PIECE = 256 * 1024


def async_test(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test body with anyio on asyncio, under an overall deadline."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        async def main() -> None:
            with anyio.fail_after(20):
                await fn(*args, **kwargs)

        anyio.run(main, backend="asyncio")

    return wrapper


# -- the ASGI app under the server ---------------------------------------------------------------


class App:
    """Routes on the path; records what it saw so tests can assert on the app's side of things."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []  # what receive() returned, for the recording routes
        self.first_message = asyncio.Event()
        self.got_disconnect = asyncio.Event()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.done = asyncio.Event()
        self.big_sent = 0
        self.errors: list[BaseException] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        handler = getattr(self, "route_" + scope["path"].strip("/").replace("-", "_"))
        try:
            await handler(scope, receive, send)
        except Exception as exc:
            self.errors.append(exc)
            raise

    @staticmethod
    async def read_body(receive: Any) -> bytes:
        body = bytearray()
        while True:
            message = await receive()
            assert message["type"] == "http.request", message
            body += message.get("body", b"")
            if not message.get("more_body", False):
                return bytes(body)

    async def route_echo(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Answers with the request body, Content-Length framed; `?delay=s` waits first."""
        body = await self.read_body(receive)
        query = scope["query_string"].decode()
        if query.startswith("delay="):
            await asyncio.sleep(float(query.removeprefix("delay=")))
        headers = [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", b"%d" % len(body)),
            (b"x-method", scope["method"].encode()),
            (b"x-client-port", b"%d" % scope["client"][1]),
            (b"x-http-version", scope["http_version"].encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def route_stream(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """A response with no Content-Length, in several body messages."""
        await self.read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-kind", b"stream")]})
        for piece in (b"one", b"two", b"three"):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def route_boom(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise RuntimeError("the app failed before answering")

    async def route_gate(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Holds its answer until the test sets `release`."""
        await self.read_body(receive)
        self.entered.set()
        await asyncio.wait_for(self.release.wait(), TIMEOUT)
        body = b"released"
        headers = [(b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.done.set()

    async def route_big(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """8 MiB with a Content-Length, sent in 256 KiB pieces; `big_sent` counts what send() let through."""
        await self.read_body(receive)
        headers = [(b"content-length", b"%d" % len(BIG))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for offset in range(0, len(BIG), BIG_PIECE):
            piece = BIG[offset : offset + BIG_PIECE]
            more = offset + BIG_PIECE < len(BIG)
            await send({"type": "http.response.body", "body": piece, "more_body": more})
            self.big_sent += len(piece)
        self.done.set()

    async def route_hold_stream(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Opens a stream, then listens on receive() until the client goes away."""
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await self._record_until_disconnect(receive)
        # the client is gone: a further send() must neither raise nor hang
        await send({"type": "http.response.body", "body": b"late", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self.done.set()

    async def route_wait_disconnect(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Reads the whole body, then calls receive() again without answering."""
        await self._record_until_disconnect(receive)
        self.done.set()

    async def _record_until_disconnect(self, receive: Any) -> None:
        for _ in range(50):  # a busy loop would show up as many recorded messages, not a hang
            message = await receive()
            self.messages.append(message)
            self.first_message.set()
            if message["type"] == "http.disconnect":
                self.got_disconnect.set()
                return


# -- the server and a raw client -----------------------------------------------------------------


@asynccontextmanager
async def serving(
    app: App, *, graceful_seconds: float = 5.0, **limits: Any
) -> AsyncIterator[tuple[HttpServer, int]]:
    """HttpServer for `app` on a fresh 127.0.0.1 port; `limits` are HttpLimits fields (defaults otherwise)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    server = HttpServer(app, sock, graceful_seconds=graceful_seconds, limits=HttpLimits(**limits))
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        try:
            yield server, port
        finally:
            with anyio.fail_after(TIMEOUT + 2):
                await server.stop()
    sock.close()


@dataclass
class Response:
    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    raw_body: bytes = b""  # the body as framed on the wire (chunk sizes included)
    extra: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n == name]
        assert len(values) <= 1, (name, values)
        return values[0] if values else None


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, *, rcvbuf: int | None = None) -> Client:
        if rcvbuf is None:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
            return cls(reader, writer)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: caps the window
        sock.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), TIMEOUT)
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    @property
    def local_port(self) -> int:
        return self.writer.get_extra_info("sockname")[1]

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), TIMEOUT)

    async def read_exactly(self, n: int) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(n), TIMEOUT)

    async def read_until(self, sep: bytes) -> bytes:
        return await asyncio.wait_for(self.reader.readuntil(sep), TIMEOUT)

    async def read_to_eof(self) -> bytes:
        return await asyncio.wait_for(self.reader.read(), TIMEOUT)

    async def read_response(self, *, head_request: bool = False) -> Response:
        head = await self.read_until(b"\r\n\r\n")
        lines = head[:-4].decode("latin-1").split("\r\n")
        version, status, *reason = lines[0].split(" ", 2)
        assert version in ("HTTP/1.1", "HTTP/1.0"), f"not a status line: {lines[0]!r}"
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        response = Response(int(status), " ".join(reason), version, headers, b"")
        if head_request or response.status in (204, 304) or response.status < 200:
            return response
        if response.header("transfer-encoding") == "chunked":
            body, raw = bytearray(), bytearray()
            while True:
                size_line = await self.read_until(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                chunk = await self.read_exactly(size + 2)
                assert chunk.endswith(b"\r\n"), chunk[-10:]
                raw += size_line + chunk
                body += chunk[:-2]
                if size == 0:
                    break
            response.body, response.raw_body = bytes(body), bytes(raw)
        elif response.header("content-length") is not None:
            response.body = await self.read_exactly(int(response.header("content-length") or 0))
            response.raw_body = response.body
        else:
            response.body = response.raw_body = await self.read_to_eof()
        return response

    async def closed_by_peer(self, within: float = TIMEOUT) -> bool:
        """True if the server closes (EOF or reset) within `within` seconds with no further bytes."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), within)
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        assert data == b"", f"unexpected bytes from the server: {data!r}"
        return True

    async def still_open(self, wait: float = 0.2) -> bool:
        """True if nothing (no bytes, no EOF) arrives in `wait` seconds."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), wait)
        except TimeoutError:
            return True
        assert data == b"", f"unexpected bytes from the server: {data!r}"
        return False

    async def send_while_open(self, pieces: list[bytes]) -> int:
        """Send pieces one by one until the server stops taking them; how many it took."""
        for sent, piece in enumerate(pieces):
            try:
                await self.send(piece)
            except (ConnectionError, TimeoutError):
                return sent
            if self.reader.at_eof() or self.reader._buffer:  # type: ignore[attr-defined]
                return sent + 1  # the server answered (or closed): no point in sending more
        return len(pieces)

    async def drain_to_eof(self) -> bytes:
        """Everything the server still sends before it closes (a reset counts as the close)."""
        data = bytearray()
        try:
            while chunk := await asyncio.wait_for(self.reader.read(65536), TIMEOUT):
                data += chunk
        except ConnectionResetError:
            pass
        return bytes(data)

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)
        except (ConnectionError, OSError):
            pass


async def wait_until(condition: Callable[[], object], what: str, within: float = TIMEOUT) -> None:
    """Poll `condition` (every 10 ms, at most `within` seconds): event-free state on the server's side."""
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {within}s: {what}")


@asynccontextmanager
async def one_client(app: App) -> AsyncIterator[Client]:
    """The server for `app` and one connection to it, closed at the end."""
    async with serving(app) as (_, port):
        client = await Client.connect(port)
        try:
            yield client
        finally:
            await client.close()


def request(
    method: str, path: str, body: bytes = b"", *, version: str = "1.1", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1"]
    all_headers = dict(headers or {})
    if (body or method in ("POST", "PUT")) and "Transfer-Encoding" not in all_headers:
        all_headers.setdefault("Content-Length", str(len(body)))
    lines += [f"{k}: {v}" for k, v in all_headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
