"""The clients of bench/soak.py: well-behaved MCP sessions, and abusers that try to starve the proxy.

Well-behaved clients keep one keep-alive connection each and call `echo` at a steady pace; every answer
is checked and every problem is an error (there must be none). Callers of the misbehaving upstream
count what they get and expect errors. Each abuser repeats one attack on fresh connections and
records what the proxy did about it (a status code, `closed`, `cut-off`, ...).
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from loadgen import StreamableSession, Target, http_request, reply_problem

READ_BOUND_SECONDS = 10.0  # no single wait of a client is longer
BIG_RESULT = 16 << 20  # more than the kernel buffers a reader that reads nothing


@dataclass
class Tally:
    """What one kind of client saw: outcome -> count, plus a few samples of the unexpected."""

    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    samples: list[str] = field(default_factory=list)

    def add(self, outcome: str, sample: str = "") -> None:
        self.outcomes[outcome] += 1
        if sample and len(self.samples) < 5:
            self.samples.append(sample)


def call_body(call_id: int, tool: str, arguments: dict[str, Any]) -> bytes:
    params = {"name": tool, "arguments": arguments}
    return orjson.dumps({"jsonrpc": "2.0", "id": call_id, "method": "tools/call", "params": params})


async def mcp_caller(url: str, tool: str, pace: float, deadline: float, tally: Tally, strict: bool) -> None:
    """Calls `tool` every `pace` seconds on one session until `deadline`; reconnects after a failure.

    strict: anything but the echoed result is an `error` (the well-behaved clients' count).
    """
    target = Target.from_url(url)
    call_id = 1_000_000_000
    while time.monotonic() < deadline:
        session = StreamableSession(target, stats=None)  # type: ignore[arg-type]
        try:
            await asyncio.wait_for(session.open(), READ_BOUND_SECONDS)
            while time.monotonic() < deadline:
                call_id += 1
                text = f"soak {call_id}"
                body = call_body(call_id, tool, {"text": text} if tool == "echo" else {})
                assert session.conn is not None
                status, reply = await session.conn.exchange(
                    http_request("POST", target, session._headers(), body), READ_BOUND_SECONDS
                )
                problem = f"HTTP {status}" if status != 200 else reply_problem(reply, call_id, thorough=True)
                if problem is None and strict and text.encode() not in reply:
                    problem = f"not the echo: {reply[:200]!r}"
                tally.add("ok" if problem is None else "error", problem or "")
                await asyncio.sleep(pace)
        except (OSError, TimeoutError, RuntimeError) as exc:
            tally.add("error", f"{type(exc).__name__}: {exc}")
        finally:
            await session.close(delete=False)


# -- abusers: each opens a connection, attacks once, and returns what the proxy did --------------


class Raw:
    """A raw connection with bounded reads."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, rcvbuf: int | None = None) -> Raw:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), 5)
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), READ_BOUND_SECONDS)

    async def status(self, within: float = READ_BOUND_SECONDS) -> str:
        """The next response's status code, `closed` when the proxy closed instead, `silent` on no answer."""
        try:
            line = await asyncio.wait_for(self.reader.readline(), within)
        except TimeoutError:
            return "silent"
        except ConnectionError:
            return "closed"
        if not line:
            return "closed"
        try:
            rest = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), within)
            length = [
                v
                for n, _, v in (h.partition(b":") for h in rest.split(b"\r\n"))
                if n.lower() == b"content-length"
            ]
            await asyncio.wait_for(self.reader.readexactly(int(length[0]) if length else 0), within)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, ValueError):
            pass
        parts = line.split()
        return parts[1].decode() if len(parts) > 1 else "junk"

    async def drained(self, within: float = READ_BOUND_SECONDS) -> tuple[int, bool]:
        """Read until the proxy closes or `within` seconds pass: the bytes read, and whether it closed."""
        total = 0
        try:
            async with asyncio.timeout(within):
                while chunk := await self.reader.read(1 << 16):
                    total += len(chunk)
        except TimeoutError:
            return total, False
        except ConnectionError:
            pass
        return total, True

    def close(self) -> None:
        self.writer.close()


def head(port: int, first: str, *lines: str) -> bytes:
    return "\r\n".join([first, f"Host: 127.0.0.1:{port}", *lines, "", ""]).encode()


MCP_HEADERS = ("Content-Type: application/json", "Accept: application/json, text/event-stream")


async def slowloris(port: int, limit: float) -> str:
    raw = await Raw.open(port)
    try:
        await raw.send(head(port, "GET /_healthz HTTP/1.1")[:-2] + b"X-Slow: ")
        for _ in range(int(limit / 0.1) + 50):  # a byte every 0.1 s; the head timeout ends it
            try:
                await raw.send(b"a")
            except (ConnectionError, TimeoutError):
                return "closed"
            if raw.reader._buffer or raw.reader.at_eof():  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.1)
        return await raw.status()
    finally:
        raw.close()


async def stalled_body(port: int, limit: float) -> str:
    raw = await Raw.open(port)
    try:
        await raw.send(
            head(port, "POST /echo/mcp HTTP/1.1", *MCP_HEADERS, "Content-Length: 1000") + b'{"jsonrpc":'
        )
        return await raw.status()
    finally:
        raw.close()


async def garbage(port: int, limit: float) -> str:
    raw = await Raw.open(port)
    try:
        await raw.send(os.urandom(2048))
        return await raw.status()
    finally:
        raw.close()


async def junk_after_valid(port: int, limit: float) -> str:
    raw = await Raw.open(port)
    try:
        await raw.send(head(port, "GET /_healthz HTTP/1.1") + b"\x16\x03\x01 junk\r\n\r\n")
        first, second = await raw.status(), await raw.status()
        return f"{first}+{second}"
    finally:
        raw.close()


async def huge_head(port: int, limit: float) -> str:
    raw = await Raw.open(port)
    try:
        await raw.send(head(port, "GET /_healthz HTTP/1.1")[:-2] + b"X-Huge: ")
        for _ in range(256):  # up to 16 MiB, unless refused on the way
            if raw.reader._buffer or raw.reader.at_eof():  # type: ignore[attr-defined]
                break
            try:
                await raw.send(b"h" * 65536)
            except (ConnectionError, TimeoutError):
                return "closed"
        return await raw.status()
    finally:
        raw.close()


async def pipeline_flood(port: int, limit: float) -> str:
    """Thousands of requests in a row, none of the answers read for a while."""
    raw = await Raw.open(port, rcvbuf=4096)
    try:
        raw.writer.write(head(port, "GET /_healthz HTTP/1.1") * 5000)
        await asyncio.sleep(limit * 3)  # nothing read meanwhile
        read, closed = await raw.drained(within=limit * 3)
        return "cut-off" if closed else "answered, open" if read else "silent"
    finally:
        raw.close()


async def non_reader(port: int, limit: float) -> str:
    """Asks for a 16 MiB result and reads none of it: the write timeout must cut it off."""
    raw = await Raw.open(port, rcvbuf=4096)
    session = StreamableSession(Target("127.0.0.1", port, "/echo/mcp"), stats=None)  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(session.open(), READ_BOUND_SECONDS)  # a session of its own, politely
        body = call_body(7, "big", {"size": BIG_RESULT})
        headers = (*MCP_HEADERS, f"Mcp-Session-Id: {session.session_id}", f"Content-Length: {len(body)}")
        await raw.send(head(port, "POST /echo/mcp HTTP/1.1", *headers) + body)
        await asyncio.sleep(limit * 3 + 1)  # read nothing
        read, closed = await raw.drained()
        return "cut-off" if closed and read < BIG_RESULT else "complete" if read >= BIG_RESULT else "open"
    finally:
        await session.close(delete=True)
        raw.close()


async def connection_flood(port: int, count: int) -> collections.Counter[str]:
    """`count` connections at once, each asking once, held until all have answers; their statuses."""
    raws: list[Raw] = []
    try:
        for _ in range(count):
            raws.append(await Raw.open(port))
        for raw in raws:
            try:
                raw.writer.write(head(port, "GET /_healthz HTTP/1.1"))
            except ConnectionError:
                pass
        statuses = await asyncio.gather(*(raw.status() for raw in raws))
        return collections.Counter(statuses)
    finally:
        for raw in raws:
            raw.close()


ABUSERS = {
    "slowloris": slowloris,
    "stalled-body": stalled_body,
    "garbage": garbage,
    "junk-after-valid": junk_after_valid,
    "huge-head": huge_head,
    "pipeline-flood": pipeline_flood,
    "non-reader": non_reader,
}


async def abuse(kind: str, port: int, limit: float, deadline: float, tally: Tally) -> None:
    """Repeat one attack on fresh connections until `deadline`."""
    attack = ABUSERS[kind]
    while time.monotonic() < deadline:
        try:
            outcome = await asyncio.wait_for(attack(port, limit), limit * 5 + READ_BOUND_SECONDS)
        except (OSError, TimeoutError, RuntimeError) as exc:
            outcome = type(exc).__name__
        tally.add(outcome)


async def flood(port: int, count: int, every: float, deadline: float, tally: Tally) -> None:
    while time.monotonic() < deadline:
        try:
            tally.outcomes.update(await asyncio.wait_for(connection_flood(port, count), 30))
        except (OSError, TimeoutError) as exc:
            tally.add(type(exc).__name__)
        await asyncio.sleep(every)
