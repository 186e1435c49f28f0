"""The HTTP server's limits on real loopback sockets: what one client may hold of the proxy is bounded.

Each test configures small limits (timeouts of 0.2 s) so that a limit is hit at once; no test depends
on how fast the machine is: every wait is an event or a bounded poll of the server's own state. What
must *not* time out (a slow body that keeps coming) is pinned against a test clock in
tests/unit/test_http1_timers.py instead.
"""

from __future__ import annotations

import asyncio

import pytest
from http1_kit import BIG, TIMEOUT, App, Client, async_test, request, serving, wait_until

from mcpmux.web.http1 import Connection

SHORT = 0.2  # seconds: the timeouts under test


def only_connection(server: object) -> Connection:
    connections = server.http.connections  # type: ignore[attr-defined]
    assert len(connections) == 1, connections
    return next(iter(connections))


# -- the head: its size while it arrives, and its time -------------------------------------------


@pytest.mark.parametrize(
    ("start", "filler"),
    [(b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Long: ", b"a"), (b"GET /echo?", b"q")],
    ids=["header-line", "url"],
)
@async_test
async def test_a_head_that_never_ends_gets_431_once_it_passes_the_limit(start: bytes, filler: bytes):
    app = App()
    async with serving(app, max_head_bytes=4096) as (_, port):
        client = await Client.connect(port)
        pieces = [start] + [filler * 8192] * 128  # 1 MiB, far past the limit, never ending the line
        taken = await client.send_while_open(pieces)
        assert taken < len(pieces)  # refused long before the end
        response = await client.read_response()
        assert response.status == 431
        assert await client.closed_by_peer()
        await client.close()


@async_test
async def test_a_head_that_stops_arriving_gets_408_and_the_connection_closes():
    app = App()
    async with serving(app, head_timeout_seconds=SHORT) as (_, port):
        client = await Client.connect(port)
        await client.send(b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        response = await client.read_response()
        assert response.status == 408
        assert b"head" in response.body
        assert await client.closed_by_peer()
        await client.close()


# -- the body: a stalled one is timed out --------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    [
        request("POST", "/wait-disconnect", headers={"Content-Length": "100"}) + b"only ten b",
        request("POST", "/wait-disconnect", headers={"Transfer-Encoding": "chunked"}) + b"5\r\nhello\r\n",
    ],
    ids=["content-length", "chunked"],
)
@async_test
async def test_a_body_that_stalls_gets_408_and_the_app_sees_the_disconnect(sent: bytes):
    app = App()
    async with serving(app, body_timeout_seconds=SHORT) as (_, port):
        client = await Client.connect(port)
        await client.send(sent)
        response = await client.read_response()
        assert response.status == 408
        assert b"body" in response.body
        assert await client.closed_by_peer()
        await asyncio.wait_for(app.got_disconnect.wait(), TIMEOUT)
        await client.close()


# -- the response: a client that reads nothing ---------------------------------------------------


@async_test
async def test_a_client_that_stops_reading_is_disconnected_after_the_write_timeout():
    app = App()
    async with serving(app, write_timeout_seconds=SHORT) as (server, port):
        client = await Client.connect(port, rcvbuf=64 * 1024)
        await client.send(request("GET", "/big"))
        # the app's send() returns once the connection is dropped, without the client reading a byte
        await asyncio.wait_for(app.done.wait(), TIMEOUT)
        await wait_until(lambda: not server.http.connections, "the connection is gone")  # type: ignore[union-attr]
        received = await client.drain_to_eof()
        assert len(received) < len(BIG)
        await client.close()


# -- connections: a cap, refused cleanly ---------------------------------------------------------


@async_test
async def test_connections_beyond_the_cap_get_503_and_a_freed_slot_is_usable_again():
    app = App()
    async with serving(app, max_connections=2) as (server, port):
        held = [await Client.connect(port) for _ in range(2)]
        for client in held:  # both are in: each got an answer
            await client.send(request("POST", "/echo", b"in"))
            assert (await client.read_response()).status == 200
        extra = await Client.connect(port)
        refused = await extra.read_response()
        assert refused.status == 503
        assert refused.header("connection") == "close"
        assert await extra.closed_by_peer()
        await extra.close()
        await held[0].close()
        await wait_until(lambda: len(server.http.connections) == 1, "a slot is free")  # type: ignore[union-attr]
        again = await Client.connect(port)
        await again.send(request("POST", "/echo", b"again"))
        assert (await again.read_response()).body == b"again"
        for client in (again, held[1]):
            await client.close()


# -- pipelining: a cap on requests parsed ahead --------------------------------------------------


@async_test
async def test_pipelined_requests_beyond_the_cap_are_not_parsed_until_there_is_room():
    app = App()
    async with serving(app, max_pipelined=3) as (server, port):
        client = await Client.connect(port)
        flood = [request("POST", "/echo", b"%d" % i) for i in range(40)]
        await client.send(request("POST", "/gate", b"") + b"".join(flood))
        await asyncio.wait_for(app.entered.wait(), TIMEOUT)
        conn = only_connection(server)
        await wait_until(lambda: len(conn.queued) >= 3, "the pipeline is full")
        assert len(conn.queued) == 3  # the rest waits as bytes, not as parsed requests
        assert conn.read_paused
        app.release.set()
        assert (await client.read_response()).body == b"released"
        for i in range(40):  # every one answered, in order
            response = await client.read_response()
            assert (response.status, response.body) == (200, b"%d" % i)
        assert await client.still_open()
        await client.close()


# -- bad bytes after good ones: the good request is answered first ------------------------------


@pytest.mark.parametrize("first", ["/echo", "/echo?delay=0.1"], ids=["fast", "slow"])
@async_test
async def test_junk_after_a_valid_request_in_one_packet_gets_the_answer_then_400(first: str):
    app = App()
    async with serving(app) as (_, port):
        client = await Client.connect(port)
        await client.send(request("POST", first, b"valid") + b"\x01\x02 not http\r\n\r\n")
        answer = await client.read_response()
        assert (answer.status, answer.body) == (200, b"valid")
        refusal = await client.read_response()
        assert refusal.status == 400
        assert await client.closed_by_peer()
        await client.close()


@async_test
async def test_a_bad_chunk_in_the_body_being_read_answers_that_request_with_400():
    app = App()
    async with serving(app) as (_, port):
        client = await Client.connect(port)
        head = request("POST", "/wait-disconnect", headers={"Transfer-Encoding": "chunked"})
        await client.send(head + b"5\r\nhello\r\nzz\r\n")
        response = await client.read_response()
        assert response.status == 400
        assert await client.closed_by_peer()
        await asyncio.wait_for(app.got_disconnect.wait(), TIMEOUT)
        await client.close()


@async_test
async def test_a_client_that_keeps_sending_after_the_refusal_still_reads_it():
    app = App()
    async with serving(app, max_head_bytes=4096) as (server, port):
        client = await Client.connect(port)
        await client.send(b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Long: ")
        for _ in range(16):  # 512 KiB more, sent whatever the server does meanwhile
            try:
                await client.send(b"a" * 32768)
            except ConnectionError:
                break
        response = await client.read_response()  # not destroyed by a reset
        assert response.status == 431
        assert await client.closed_by_peer()
        await client.close()
        await wait_until(lambda: not server.http.lingering, "the lingering connection is gone")  # type: ignore[union-attr]
