"""The HTTP/1.1 layer (web/http1.py behind web/server.py) on real loopback sockets, byte by byte.

Each test binds its own socket on 127.0.0.1, runs HttpServer in an anyio task group on the asyncio
backend with a small ASGI app defined here, and talks to it over raw `asyncio.open_connection` so the
exact bytes on the wire are under the test's control. Every wait is bounded.
"""

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
import pytest

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
    app: App, *, keep_alive_seconds: float = 30.0, graceful_seconds: float = 5.0
) -> AsyncIterator[tuple[HttpServer, int]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    server = HttpServer(app, sock, graceful_seconds=graceful_seconds, keep_alive_seconds=keep_alive_seconds)
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

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)
        except (ConnectionError, OSError):
            pass


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


# -- 1. keep-alive and 2. pipelining -------------------------------------------------------------


@async_test
async def test_keep_alive_answers_three_requests_on_one_connection_and_leaves_it_open():
    app = App()
    async with serving(app) as (_, port):
        client = await Client.connect(port)
        for i in range(3):
            body = b"request %d" % i
            await client.send(request("POST", "/echo", body))
            response = await client.read_response()
            assert response.status == 200
            assert response.version == "HTTP/1.1"
            assert response.body == body
            assert response.header("content-length") == str(len(body))
            assert response.header("connection") is None  # keep-alive is the HTTP/1.1 default
            assert response.header("x-client-port") == str(client.local_port)  # the same connection
        assert await client.still_open()
        await client.close()


@async_test
async def test_pipelined_requests_in_one_write_are_answered_in_order():
    app = App()
    async with one_client(app) as client:
        # the first one is slower than the second: the answers must still come in request order
        await client.send(
            request("POST", "/echo?delay=0.1", b"first") + request("POST", "/echo", b"second, longer")
        )
        first = await client.read_response()
        second = await client.read_response()
        assert (first.status, first.body) == (200, b"first")
        assert (second.status, second.body) == (200, b"second, longer")
        # and the connection still serves a third
        await client.send(request("GET", "/echo"))
        third = await client.read_response()
        assert (third.status, third.body) == (200, b"")
        await client.close()


# -- 3. chunked request bodies and 4. Expect: 100-continue ---------------------------------------


@pytest.mark.parametrize("size", [11, 300 * 1024], ids=["small", "past-the-read-high-water"])
@async_test
async def test_chunked_request_body_arrives_in_full(size):
    app = App()
    body = os.urandom(size) if size > 100 else b"hello world"
    pieces = [body[i : i + 7000] for i in range(0, len(body), 7000)] if size > 100 else [b"hello", b" world"]
    async with serving(app) as (_, port):
        client = await Client.connect(port)
        await client.send(request("POST", "/echo", headers={"Transfer-Encoding": "chunked"}))
        for piece in pieces:  # in several writes, so the body arrives across many reads
            await client.send(b"%x\r\n%b\r\n" % (len(piece), piece))
        await client.send(b"0\r\n\r\n")
        response = await client.read_response()
        assert response.status == 200
        assert response.header("content-length") == str(len(body))
        assert response.body == body
        # the connection is fit for the next request after a chunked body
        await client.send(request("POST", "/echo", b"next"))
        assert (await client.read_response()).body == b"next"
        await client.close()


@async_test
async def test_expect_100_continue_is_answered_before_the_body_is_sent():
    app = App()
    async with one_client(app) as client:
        head = request("POST", "/echo", headers={"Content-Length": "5", "Expect": "100-continue"})
        await client.send(head)  # headers only
        interim = await client.read_until(b"\r\n\r\n")
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        await client.send(b"hello")
        response = await client.read_response()
        assert (response.status, response.body) == (200, b"hello")
        await client.close()


# -- 5. streaming responses ---------------------------------------------------------------------


@async_test
async def test_streaming_response_is_chunked_for_http11():
    app = App()
    async with one_client(app) as client:
        await client.send(request("GET", "/stream"))
        response = await client.read_response()
        assert response.status == 200
        assert response.header("transfer-encoding") == "chunked"
        assert response.header("content-length") is None
        assert response.header("x-kind") == "stream"
        assert response.raw_body == b"3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n0\r\n\r\n"
        assert response.body == b"onetwothree"
        # chunked framing keeps the connection usable
        await client.send(request("POST", "/echo", b"after"))
        assert (await client.read_response()).body == b"after"
        await client.close()


@async_test
async def test_streaming_response_is_close_delimited_for_http10():
    app = App()
    async with one_client(app) as client:
        await client.send(request("GET", "/stream", version="1.0"))
        head = await client.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        lowered = head.lower()
        assert b"transfer-encoding" not in lowered
        assert b"content-length" not in lowered
        assert b"\r\nconnection: close\r\n" in lowered
        rest = await client.read_to_eof()  # the server closes to end the body
        assert rest == b"onetwothree"
        await client.close()


# -- 6. malformed requests ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"NOT A REQUEST\r\n\r\n",
        b"GET / HTTP/9.x\r\n\r\n",
        b"GET http:// HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",  # llhttp accepts it, parse_url does not
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ],
    ids=["bad-method", "bad-version", "scheme-only-target", "connect"],
)
@async_test
async def test_malformed_request_gets_400_and_the_connection_closes(garbage):
    app = App()
    async with one_client(app) as client:
        await client.send(garbage)
        response = await client.read_response()
        assert response.status == 400
        assert response.header("connection") == "close"
        assert await client.closed_by_peer()


@async_test
async def test_headers_over_64_kib_get_431_and_the_connection_closes():
    app = App()
    async with serving(app) as (_, port):
        client = await Client.connect(port)
        await client.send(request("GET", "/echo", headers={"X-Big": "a" * (65 * 1024)}))
        response = await client.read_response()
        assert response.status == 431
        assert response.header("connection") == "close"
        assert await client.closed_by_peer()
        await client.close()
        # many headers adding up past the limit are refused the same way
        client = await Client.connect(port)
        many = {f"X-H{i}": "b" * 1000 for i in range(70)}
        await client.send(request("GET", "/echo", headers=many))
        assert (await client.read_response()).status == 431
        assert await client.closed_by_peer()
        await client.close()
        # headers just under the limit are fine
        client = await Client.connect(port)
        await client.send(request("POST", "/echo", b"ok", headers={"X-Big": "a" * (60 * 1024)}))
        assert (await client.read_response()).body == b"ok"
        await client.close()


# -- 7. app failures ----------------------------------------------------------------------------


@async_test
async def test_app_raising_before_responding_gives_500_and_the_server_keeps_serving():
    app = App()
    async with serving(app) as (_, port):
        idle = await Client.connect(port)  # a bystander connection, opened before the failure
        await idle.send(request("POST", "/echo", b"warm"))
        assert (await idle.read_response()).body == b"warm"

        client = await Client.connect(port)
        await client.send(request("GET", "/boom"))
        response = await client.read_response()
        assert response.status == 500
        assert response.body == b"Internal Server Error"
        assert await client.closed_by_peer()
        await client.close()
        assert [str(e) for e in app.errors] == ["the app failed before answering"]

        fresh = await Client.connect(port)
        await fresh.send(request("POST", "/echo", b"still here"))
        assert (await fresh.read_response()).body == b"still here"
        await fresh.close()
        await idle.send(request("POST", "/echo", b"me too"))
        assert (await idle.read_response()).body == b"me too"
        await idle.close()


# -- 8. HEAD ------------------------------------------------------------------------------------


@async_test
async def test_head_gets_the_headers_and_no_body_bytes():
    app = App()
    async with one_client(app) as client:
        await client.send(request("HEAD", "/echo", headers={"Content-Length": "4"}) + b"abcd")
        response = await client.read_response(head_request=True)
        assert response.status == 200
        assert response.header("x-method") == "HEAD"
        assert response.header("content-length") == "4"  # what a GET would have carried
        assert await client.still_open()  # no body bytes follow the head
        # and the very next bytes on the connection are the next response's status line
        await client.send(request("POST", "/echo", b"next"))
        following = await client.read_response()
        assert (following.status, following.body) == (200, b"next")
        assert await client.still_open()
        await client.close()


# -- 9. and 10. receive() and disconnects --------------------------------------------------------


@async_test
async def test_client_disconnect_during_a_streaming_response_reaches_receive():
    app = App()
    async with one_client(app) as client:
        await client.send(request("GET", "/hold-stream"))
        head = await client.read_until(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head.lower()
        assert await client.read_until(b"first\r\n") == b"5\r\nfirst\r\n"
        await asyncio.wait_for(app.first_message.wait(), TIMEOUT)
        assert not app.got_disconnect.is_set()
        await client.close()
        await asyncio.wait_for(app.got_disconnect.wait(), TIMEOUT)
        await asyncio.wait_for(app.done.wait(), TIMEOUT)  # sending after the disconnect did not raise
        assert app.messages == [
            {"type": "http.request", "body": b"", "more_body": False},
            {"type": "http.disconnect"},
        ]
        assert app.errors == []


@async_test
async def test_receive_after_the_whole_body_waits_for_the_disconnect():
    app = App()
    async with one_client(app) as client:
        await client.send(request("POST", "/wait-disconnect", b"payload"))
        await asyncio.wait_for(app.first_message.wait(), TIMEOUT)
        await asyncio.sleep(0.3)  # the second receive() is pending meanwhile, not spinning
        assert app.messages == [{"type": "http.request", "body": b"payload", "more_body": False}]
        assert not app.done.is_set()
        await client.close()
        await asyncio.wait_for(app.done.wait(), TIMEOUT)
        assert app.messages == [
            {"type": "http.request", "body": b"payload", "more_body": False},
            {"type": "http.disconnect"},
        ]


# -- 11. the keep-alive sweep -------------------------------------------------------------------


@async_test
async def test_idle_keep_alive_connection_is_closed_by_the_sweep():
    app = App()
    async with serving(app, keep_alive_seconds=0.3) as (_, port):
        client = await Client.connect(port)
        await client.send(request("POST", "/echo", b"once"))
        assert (await client.read_response()).body == b"once"
        never_spoke = await Client.connect(port)
        assert await client.closed_by_peer(within=4.0)
        assert await never_spoke.closed_by_peer(within=4.0)
        await client.close()
        await never_spoke.close()


# -- 12. graceful stop --------------------------------------------------------------------------


@async_test
async def test_graceful_stop_finishes_the_request_in_flight_and_refuses_new_connections():
    app = App()
    async with serving(app, graceful_seconds=5.0) as (server, port):
        idle = await Client.connect(port)
        await idle.send(request("POST", "/echo", b"idle"))
        assert (await idle.read_response()).body == b"idle"

        busy = await Client.connect(port)
        await busy.send(request("POST", "/gate", b""))
        await asyncio.wait_for(app.entered.wait(), TIMEOUT)

        server.stop_accepting()
        assert await idle.closed_by_peer()  # idle keep-alive connections go at once
        with pytest.raises(ConnectionRefusedError):
            await Client.connect(port)

        stopped = asyncio.Event()

        async def stop() -> None:
            await server.stop()
            stopped.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(stop)
            await asyncio.sleep(0.2)
            assert not stopped.is_set()  # stop() waits for the request under way
            app.release.set()
            response = await busy.read_response()
            assert (response.status, response.body) == (200, b"released")
            assert await busy.closed_by_peer()  # no keep-alive while shutting down
            await asyncio.wait_for(stopped.wait(), TIMEOUT)
        assert app.done.is_set()
        await busy.close()
        await idle.close()


# -- 13. write flow control ---------------------------------------------------------------------


@async_test
async def test_large_response_to_a_slow_reader_arrives_byte_exact_and_holds_the_app_back():
    app = App()
    async with serving(app) as (_, port):
        client = await Client.connect(port, rcvbuf=64 * 1024)
        await client.send(request("GET", "/big"))
        await asyncio.sleep(0.5)  # read nothing for a while: the server must stop taking the app's data
        assert not app.done.is_set()
        assert app.big_sent < len(BIG)
        head = await client.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"\r\ncontent-length: %d\r\n" % len(BIG) in head.lower()
        received = bytearray()
        while len(received) < len(BIG):
            received += await client.read_exactly(min(64 * 1024, len(BIG) - len(received)))
            if len(received) % (1024 * 1024) == 0:
                await asyncio.sleep(0.01)  # a slow reader
        assert len(received) == len(BIG)
        assert bytes(received) == BIG
        await asyncio.wait_for(app.done.wait(), TIMEOUT)
        assert app.big_sent == len(BIG)
        # the connection is still in step for another request
        await client.send(request("POST", "/echo", b"after big"))
        assert (await client.read_response()).body == b"after big"
        await client.close()


# -- requests the server does not support get a clear answer -------------------------------------


UPGRADE = {"Connection": "Upgrade", "Upgrade": "h2c"}


@pytest.mark.parametrize(
    ("sent", "status"),
    [
        # answered as plain HTTP, then closed: the request pipelined behind it is not read
        (request("GET", "/echo", headers=UPGRADE) + request("POST", "/echo", b"pipelined"), 200),
        # the parser stops at an upgrade's head: a body would be lost, so the request is refused
        (request("POST", "/echo", b"hi", headers=UPGRADE), 400),
    ],
    ids=["without-body", "with-body"],
)
@async_test
async def test_upgrade_requests_are_not_upgraded_and_the_connection_closes(sent, status):
    app = App()
    async with one_client(app) as client:
        await client.send(sent)
        response = await client.read_response()
        assert response.status == status
        if status == 400:
            assert b"upgrade" in response.body.lower()
        assert await client.closed_by_peer(within=1.0)
        await client.close()
