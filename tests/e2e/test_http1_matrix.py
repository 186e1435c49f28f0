"""HTTP/1.1 smuggling and limits matrix, pinned: raw bytes at a real mcpmux process on 127.0.0.1.

Each case is exact bytes on a fresh connection and the exact outcome: the status of every response
in order and whether the server then closes the connection. A change of parser flags or limits that
alters any outcome fails here. The proxy runs with small limits (timeouts of 0.2 s) so a limit is hit
at once; waits are bounded and never needed for a case to pass.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from http1_kit import Client, async_test

from harness import ProxyProcess, fixture_server, running_proxy

LIMITS = {
    "maxHeadBytes": 8192,
    "headTimeout": "200ms",
    "bodyTimeout": "200ms",
    "writeTimeout": "200ms",
    "keepAliveTimeout": "10s",
    "maxPipelined": 4,
    "maxConnections": 40,
}
INITIALIZE = orjson.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    config = {"mcpProxy": {"http": LIMITS}, "mcpServers": {"echo": fixture_server()}}
    with running_proxy(config, tmp_path_factory.mktemp("matrix")) as running:
        yield running


def head(port: int, first: str, *lines: str) -> bytes:
    """A request head (request line, Host, `lines`) with CRLF line ends."""
    return "\r\n".join([first, f"Host: 127.0.0.1:{port}", *lines, "", ""]).encode("latin-1")


def post_mcp(port: int, *framing: str) -> bytes:
    return head(
        port,
        "POST /echo/mcp HTTP/1.1",
        "Content-Type: application/json",
        "Accept: application/json, text/event-stream",
        *framing,
    )


def chunked(body: bytes) -> bytes:
    return b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)


@dataclass(frozen=True)
class Case:
    name: str
    data: Callable[[int], bytes]  # the bytes sent, given the proxy's port
    statuses: tuple[int, ...]  # every response, in order
    closes: bool  # the server closes the connection after them


HEALTH = "GET /_healthz HTTP/1.1"
CL5 = "Content-Length: 5"
TE = "Transfer-Encoding: chunked"
CASES = [
    # controls: what valid requests get
    Case("valid-get-keeps-the-connection", lambda p: head(p, HEALTH), (200,), False),
    Case(
        "valid-post-content-length",
        lambda p: post_mcp(p, f"Content-Length: {len(INITIALIZE)}") + INITIALIZE,
        (200,),
        False,
    ),
    Case("valid-post-chunked", lambda p: post_mcp(p, TE) + chunked(INITIALIZE), (200,), False),
    Case("http-1.0-closes", lambda p: head(p, "GET /_healthz HTTP/1.0"), (200,), True),
    # request smuggling: ambiguous framing is refused, never guessed
    Case("content-length-and-chunked", lambda p: post_mcp(p, CL5, TE) + b"0\r\n\r\n", (400,), True),
    Case("chunked-and-content-length", lambda p: post_mcp(p, TE, CL5) + b"0\r\n\r\n", (400,), True),
    Case("duplicate-content-length-same", lambda p: post_mcp(p, CL5, CL5) + b"hello", (400,), True),
    Case(
        "duplicate-content-length-different",
        lambda p: post_mcp(p, CL5, "Content-Length: 6") + b"hello!",
        (400,),
        True,
    ),
    Case("content-length-list", lambda p: post_mcp(p, "Content-Length: 5, 5") + b"hello", (400,), True),
    Case("content-length-signed", lambda p: post_mcp(p, "Content-Length: +5") + b"hello", (400,), True),
    # chunked last is unambiguous (the body is chunked); anything after chunked is refused
    Case(
        "te-identity-chunked",
        lambda p: post_mcp(p, "Transfer-Encoding: identity, chunked") + chunked(INITIALIZE),
        (200,),
        False,
    ),
    Case(
        "te-chunked-identity",
        lambda p: post_mcp(p, "Transfer-Encoding: chunked, identity") + chunked(b"hello"),
        (400,),
        True,
    ),
    Case("te-twice", lambda p: post_mcp(p, TE, TE) + chunked(b"hello"), (400,), True),
    Case("te-gzip-only", lambda p: post_mcp(p, "Transfer-Encoding: gzip") + b"hello", (400,), True),
    # malformed heads
    Case("obs-fold", lambda p: head(p, HEALTH, "X-A: b", " folded"), (400,), True),
    Case("bare-lf-everywhere", lambda p: f"{HEALTH}\nHost: 127.0.0.1:{p}\n\n".encode(), (400,), True),
    Case("bare-lf-after-header", lambda p: f"{HEALTH}\r\nHost: 127.0.0.1:{p}\n\r\n".encode(), (400,), True),
    Case("space-before-colon", lambda p: head(p, HEALTH, "X-A : b"), (400,), True),
    Case("nul-in-header-value", lambda p: head(p, HEALTH, "X-A: b\0c"), (400,), True),
    # malformed chunked bodies
    Case("chunk-size-not-hex", lambda p: post_mcp(p, TE) + b"zz\r\nhello\r\n0\r\n\r\n", (400,), True),
    Case(
        "chunk-size-overflow",
        lambda p: post_mcp(p, TE) + b"fffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        (400,),
        True,
    ),
    Case("chunk-size-negative", lambda p: post_mcp(p, TE) + b"-5\r\nhello\r\n0\r\n\r\n", (400,), True),
    Case("chunk-size-trailing-space", lambda p: post_mcp(p, TE) + b"5 \r\nhello\r\n0\r\n\r\n", (400,), True),
    Case(
        "chunk-longer-than-its-size", lambda p: post_mcp(p, TE) + b"5\r\nhelloXX\r\n0\r\n\r\n", (400,), True
    ),
    # limits
    Case("unterminated-head", lambda p: head(p, HEALTH)[:-2], (408,), True),
    Case("oversized-head", lambda p: head(p, HEALTH, "X-Big: " + "a" * 9000), (431,), True),
    Case(
        "oversized-header-line-never-ending",
        lambda p: head(p, HEALTH)[:-2] + b"X-Big: " + b"a" * 9000,
        (431,),
        True,
    ),
    Case("stalled-body", lambda p: post_mcp(p, "Content-Length: 100") + b"only some", (408,), True),
    Case("pipelining-flood", lambda p: head(p, HEALTH) * 60, (200,) * 60, False),
    Case(
        "junk-after-a-valid-request",
        lambda p: head(p, HEALTH) + b"\x16\x03\x01 junk\r\n\r\n",
        (200, 400),
        True,
    ),
    Case(
        "upgrade-is-answered-plainly",
        lambda p: head(p, HEALTH, "Connection: Upgrade", "Upgrade: h2c"),
        (200,),
        True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
@async_test
async def test_matrix(proxy: ProxyProcess, case: Case) -> None:
    client = await Client.connect(proxy.port)
    try:
        await client.send(case.data(proxy.port))
        statuses = [(await client.read_response()).status for _ in case.statuses]
        assert tuple(statuses) == case.statuses
        if case.closes:
            assert await client.closed_by_peer()
        else:
            assert await client.still_open()
    finally:
        await client.close()
    assert proxy.process.poll() is None


def session_id(port: int) -> str:
    """Initialize a streamable HTTP session on the echo route (blocking, bounded)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(post_mcp(port, f"Content-Length: {len(INITIALIZE)}") + INITIALIZE)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536) or b"?\r\n\r\n"
    for line in data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "mcp-session-id":
            return value.strip()
    raise AssertionError(f"no session id in {data[:500]!r}")


@pytest.fixture
def own_proxy(tmp_path: Path) -> Iterator[ProxyProcess]:
    """A proxy of the test's own: no other test's refusals in its log (their rate-limited summary line,
    printed up to a second later, must not be taken for this test's cut-off)."""
    config = {"mcpProxy": {"http": LIMITS}, "mcpServers": {"echo": fixture_server()}}
    with running_proxy(config, tmp_path) as running:
        yield running


@async_test
async def test_a_reader_that_never_reads_its_big_result_is_disconnected(own_proxy: ProxyProcess) -> None:
    proxy = own_proxy
    session = session_id(proxy.port)
    call = orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "big", "arguments": {"size": 8 << 20}},
        }
    )
    start = len(proxy.lines)
    client = await Client.connect(proxy.port, rcvbuf=4096)
    try:
        framing = (
            f"Content-Length: {len(call)}",
            f"Mcp-Session-Id: {session}",
            "Mcp-Protocol-Version: 2025-06-18",
        )
        await client.send(post_mcp(proxy.port, *framing) + call)
        # logged by name: nothing else is refused on this proxy, so no summary line stands in for it
        proxy.wait_for_line(r"read nothing of its response .*writeTimeout", timeout=20, start=start)
        received = await client.drain_to_eof()  # then the connection is gone
        assert len(received) < 8 << 20
    finally:
        await client.close()
    assert proxy.process.poll() is None


@async_test
async def test_a_connection_flood_beyond_the_cap_gets_503_and_the_proxy_serves_after_it(
    proxy: ProxyProcess,
) -> None:
    flood: list[Client] = []
    outcomes: list[Any] = []
    try:
        for _ in range(LIMITS["maxConnections"] + 10):  # type: ignore[operator]
            flood.append(await Client.connect(proxy.port))
        for client in flood:  # every connection asks; the ones over the cap were answered 503 already
            try:
                await client.send(head(proxy.port, HEALTH))
            except ConnectionError:
                pass
            outcomes.append((await client.read_response()).status)
    finally:
        for client in flood:
            await client.close()
    assert set(outcomes) <= {200, 503}
    assert outcomes.count(503) >= 10
    assert 200 in outcomes
    for _ in range(200):  # the slots come back as the proxy sees the closes
        client = await Client.connect(proxy.port)
        try:
            await client.send(head(proxy.port, HEALTH))
            if (await client.read_response()).status == 200:
                break
        finally:
            await client.close()
    else:
        raise AssertionError("no connection admitted after the flood")
    assert "Refusing connections with 503" in proxy.log
