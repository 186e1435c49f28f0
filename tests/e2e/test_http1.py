"""The HTTP/1.1 layer (web/http1.py behind web/server.py) on real loopback sockets, byte by byte.

Each test binds its own socket on 127.0.0.1, runs HttpServer in an anyio task group on the asyncio
backend with a small ASGI app defined here, and talks to it over raw `asyncio.open_connection` so the
exact bytes on the wire are under the test's control. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os

import anyio
import pytest
from http1_kit import BIG, TIMEOUT, App, Client, async_test, one_client, request, serving


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
    async with serving(app, keep_alive_timeout_seconds=0.3) as (_, port):
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
