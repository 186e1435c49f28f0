"""Closed-loop MCP load generator: streamable HTTP, legacy SSE, or a stdio upstream driven directly.

Built for a low per-call cost so it is never the bottleneck: uvloop, one asyncio protocol per TCP
connection (no task, no future per call), httptools for HTTP/1.1 parsing (keep-alive, chunked),
orjson, request bytes prebuilt around a fixed-width id. Each session keeps exactly one call in
flight; the next call is sent from the callback that completes the previous one.

Modes (one JSON report on stdout; see `--help`):
  http    streamable HTTP: initialize, notifications/initialized, then the loop; JSON or SSE replies
  stateless  streamable HTTP in the 2026-07-28 era: no initialize, no session; every call carries
          the `_meta` envelope and the MCP-Protocol-Version, Mcp-Method and Mcp-Name headers
  sse     legacy HTTP+SSE: GET the stream, read `endpoint`, POST calls, replies arrive on the stream
  direct  spawn a stdio upstream and keep N calls in flight on its stdin/stdout
  idle    open N streamable HTTP sessions, print a line, hold them until stdin closes
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httptools
import orjson

PROTOCOL_VERSION = "2025-06-18"
MODERN_VERSION = "2026-07-28"
ENVELOPE_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "mcpmux-loadgen", "version": "1.0.0"},
}
FIRST_CALL_ID = 1_000_000_000  # ten digits until 9e9 calls, so Content-Length never changes
CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
ERROR_SAMPLES_KEPT = 5
LARGE_REPLY_BYTES = 64 * 1024  # replies this big are checked by their edges (see skim_large_reply)
FULL_CHECK_EVERY = 32
LARGE_REPLY_ID = re.compile(rb'"id":\s*(\d+)')
clock = time.perf_counter


# ---------------------------------------------------------------------------------------------
# Measurement window and statistics


@dataclass
class Stats:
    """What happened inside the measured window (calls completed in it, and errors anywhere)."""

    recording: bool = False
    stopping: bool = False
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < ERROR_SAMPLES_KEPT:
            self.error_samples.append(message[:300])


def read_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (its threads, not its children) from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_SECOND


def read_machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy (not idle or iowait) since boot, from /proc/stat."""
    with open("/proc/stat", "rb") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS_PER_SECOND


def read_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1])
    return 0


class Window:
    """Warmup, then a measured window; samples CPU (own and watched processes) at its edges."""

    def __init__(self, stats: Stats, watch_pids: list[int]) -> None:
        self.stats = stats
        self.watch_pids = watch_pids
        self.started_at = self.ended_at = 0.0
        self.own_cpu = [0.0, 0.0]
        self.machine_cpu = [0.0, 0.0]
        self.watched_cpu: dict[int, list[float]] = {pid: [0.0, 0.0] for pid in watch_pids}
        self.ended = asyncio.get_running_loop().create_future()

    def schedule(self, warmup_seconds: float, duration_seconds: float) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(warmup_seconds, self._start)
        loop.call_later(warmup_seconds + duration_seconds, self._end)

    def _sample(self, edge: int) -> None:
        self.own_cpu[edge] = time.process_time()
        self.machine_cpu[edge] = read_machine_busy_seconds()
        for pid, cpu in self.watched_cpu.items():
            cpu[edge] = read_cpu_seconds(pid)

    def _start(self) -> None:
        self._sample(0)
        self.started_at = clock()
        self.stats.recording = True

    def _end(self) -> None:
        self.ended_at = clock()
        self.stats.recording = False
        self.stats.stopping = True
        self._sample(1)
        if not self.ended.done():
            self.ended.set_result(None)

    def report(self, stats: Stats) -> dict[str, Any]:
        seconds = max(self.ended_at - self.started_at, 1e-9)
        calls = len(stats.latencies)
        own_cpu = self.own_cpu[1] - self.own_cpu[0]
        report: dict[str, Any] = {
            "calls": calls,
            "seconds": round(seconds, 4),
            "calls_per_s": round(calls / seconds, 1),
            "errors": stats.errors,
            "error_samples": stats.error_samples,
            **latency_summary(stats.latencies),
            "loadgen_cpu_s": round(own_cpu, 4),
            "loadgen_cpu_per_call_ms": round(1000 * own_cpu / calls, 4) if calls else None,
            "loadgen_cpu_share": round(own_cpu / seconds, 4),
            "machine_busy_share": round((self.machine_cpu[1] - self.machine_cpu[0]) / seconds, 3),
            "watched": {},
        }
        for pid, (before, after) in self.watched_cpu.items():
            cpu = after - before
            report["watched"][str(pid)] = {
                "cpu_s": round(cpu, 4),
                "cpu_per_call_ms": round(1000 * cpu / calls, 4) if calls else None,
                "cpu_share": round(cpu / seconds, 4),
                "rss_kib": read_rss_kib(pid),
            }
        return report


def latency_summary(latencies: list[float]) -> dict[str, float | None]:
    if not latencies:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    ordered = sorted(latencies)
    last = len(ordered) - 1

    def pick(q: float) -> float:
        return round(1000 * ordered[min(last, int(q * len(ordered)))], 4)

    return {
        "p50_ms": pick(0.50),
        "p90_ms": pick(0.90),
        "p99_ms": pick(0.99),
        "max_ms": round(1000 * ordered[-1], 4),
        "mean_ms": round(1000 * sum(ordered) / len(ordered), 4),
    }


# ---------------------------------------------------------------------------------------------
# Messages


class CallTemplate:
    """A JSON-RPC request prebuilt around its id: body = head + id digits + tail."""

    def __init__(self, method: str, params: dict[str, Any]) -> None:
        rest = orjson.dumps({"method": method, "params": params})
        self.head = b'{"jsonrpc":"2.0","id":'
        self.tail = b"," + rest[1:]
        self.body_length = len(self.head) + len(str(FIRST_CALL_ID)) + len(self.tail)

    def body(self, call_id: int) -> bytes:
        return self.head + b"%d" % call_id + self.tail


def initialize_body(call_id: int) -> bytes:
    return orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": call_id,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "mcpmux-loadgen", "version": "1.0.0"},
            },
        }
    )


INITIALIZED_BODY = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'


def check_reply(msg: Any, call_id: int) -> str | None:
    """None when `msg` is a successful result for `call_id`, else what is wrong with it."""
    if not isinstance(msg, dict) or msg.get("id") != call_id:
        return f"unexpected message: {str(msg)[:200]}"
    result = msg.get("result")
    if result is None:
        return f"error reply: {str(msg.get('error'))[:200]}"
    if isinstance(result, dict) and result.get("isError"):
        return f"tool error: {str(result)[:200]}"
    return None


class SseDecoder:
    """Incremental text/event-stream decoder: feed chunks, get (event name, data) per complete event.

    Each chunk is searched once for the last blank line and everything before it is parsed in one
    pass, so a 1 MiB event costs a couple of memchr passes and one copy, not a split of the buffer.
    """

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, chunk: bytes) -> list[tuple[bytes, memoryview]]:
        buffer = self.buffer
        scan_from = max(0, len(buffer) - 3)
        buffer += chunk
        end = last_blank_line_end(buffer, scan_from)
        if end < 0:
            return []
        with memoryview(buffer) as view:
            text = bytes(view[:end])
        del buffer[:end]
        return parse_sse(text)

    def flush(self) -> list[tuple[bytes, memoryview]]:
        """The events left when the stream ends, even without a closing blank line."""
        text = bytes(self.buffer)
        self.buffer.clear()
        return parse_sse(text)


def last_blank_line_end(buffer: bytearray, scan_from: int) -> int:
    """Index just past the last blank line ending at or after `scan_from`, or -1.

    Walks back over line ends with memrchr instead of searching for two-byte patterns, which
    would scan a whole 1 MiB event backwards whenever the stream uses the other line ending.
    """
    stop = len(buffer)
    while True:
        newline = buffer.rfind(b"\n", scan_from, stop)
        if newline < 1:
            return -1
        before = buffer[newline - 1]
        if before == 10 or (before == 13 and newline >= 2 and buffer[newline - 2] == 10):
            return newline + 1
        stop = newline


def parse_sse(text: bytes) -> list[tuple[bytes, memoryview]]:
    """Events in SSE text as (event name, data); data is a zero-copy view for orjson."""
    view = memoryview(text)
    events: list[tuple[bytes, memoryview]] = []
    name, data = b"message", []
    pos, size = 0, len(text)
    while pos < size:
        end = text.find(b"\n", pos)
        if end < 0:
            end = size
        stop = end - 1 if end > pos and text[end - 1] == 13 else end  # drop the CR of a CRLF
        if stop == pos:  # a blank line ends the event
            if data:
                events.append((name, data[0] if len(data) == 1 else memoryview(b"\n".join(data))))
            name, data = b"message", []
        elif text.startswith(b"data:", pos):
            data.append(view[pos + 6 if text[pos + 5 : pos + 6] == b" " else pos + 5 : stop])
        elif text.startswith(b"event:", pos):
            name = text[pos + 6 : stop].strip()
        pos = end + 1
    if data:
        events.append((name, data[0] if len(data) == 1 else memoryview(b"\n".join(data))))
    return events


def find_reply_in_sse(body: bytes, call_id: int) -> Any:
    """The JSON-RPC message with `call_id` in a complete SSE body, or None."""
    for _name, data in parse_sse(body):
        if not data:
            continue  # a priming event (id only, empty data)
        msg = orjson.loads(data)
        if isinstance(msg, dict) and msg.get("id") == call_id and "method" not in msg:
            return msg
    return None


def parse_http_reply(body: bytes, call_id: int) -> Any:
    """The reply to `call_id` in a POST response body, JSON or SSE (told apart by the first byte)."""
    if body[:1] == b"{":
        return orjson.loads(body)
    return find_reply_in_sse(body, call_id)


def skim_large_reply(data: bytes | memoryview, call_id: int) -> str | None:
    """Check a large reply by its edges: our id, a result, no tool error; "" if it is not ours.

    Parsing 1 MiB with orjson costs the load generator ~0.6 ms per call; error replies are small,
    and every FULL_CHECK_EVERY-th large reply is still parsed fully.
    """
    head, tail = bytes(data[:256]), bytes(data[-256:])
    ids = (b'"id":%d' % call_id, b'"id": %d' % call_id)
    if not any(i in head or i in tail for i in ids):
        return ""
    if b'"result"' not in head:
        return f"large reply without a result: {head[:200]!r}"
    if b'"isError":true' in head + tail or b'"isError": true' in head + tail:
        return f"tool error: {head[:200]!r}"
    return None


def reply_problem(body: bytes, call_id: int, thorough: bool) -> str | None:
    """None when a POST response body carries a successful reply to `call_id`, else the problem."""
    if len(body) < LARGE_REPLY_BYTES or thorough:
        return check_reply(parse_http_reply(body, call_id), call_id)
    payloads = [body] if body[:1] == b"{" else [data for _name, data in parse_sse(body) if data]
    for data in payloads:
        if len(data) >= LARGE_REPLY_BYTES:
            problem = skim_large_reply(data, call_id)
        else:
            msg = orjson.loads(data)
            if not isinstance(msg, dict) or "method" in msg:
                continue
            problem = check_reply(msg, call_id)
        if problem != "":
            return problem
    return f"no reply to id {call_id} in {body[:200]!r}"


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 connection


@dataclass
class Target:
    host: str
    port: int
    path: str

    @classmethod
    def from_url(cls, url: str) -> Target:
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(parts.hostname or "127.0.0.1", parts.port or 80, path)


def request_head(method: str, target: Target, headers: dict[str, str]) -> bytes:
    """Request line and headers, up to and including the blank line."""
    lines = [f"{method} {target.path} HTTP/1.1", f"Host: {target.host}:{target.port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def http_request(method: str, target: Target, headers: dict[str, str], body: bytes = b"") -> bytes:
    if body or method == "POST":
        headers = {**headers, "Content-Length": str(len(body))}
    return request_head(method, target, headers) + body


def call_head(target: Target, headers: dict[str, str], template: CallTemplate) -> bytes:
    """Everything of a tools/call POST before the id digits (its Content-Length never changes)."""
    headers = {**headers, "Content-Length": str(template.body_length)}
    return request_head("POST", target, headers) + template.head


class HttpConnection(asyncio.Protocol):
    """One keep-alive TCP connection; one request at a time; a callback per complete response.

    In streaming mode (a long-lived SSE GET) body chunks go to `on_chunk` as they arrive.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.headers: dict[bytes, bytes] = {}
        self.chunks: list[bytes] = []
        self.on_response: Callable[[int, bytes], None] | None = None
        self.on_chunk: Callable[[bytes], None] | None = None
        self.on_headers: Callable[[int], None] | None = None
        self.on_lost: Callable[[str], None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"HTTP parse error: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"connection lost: {exc}")

    def _fail(self, message: str) -> None:
        if self.on_lost is not None:
            callback, self.on_lost = self.on_lost, None
            callback(message)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.headers = {}
        self.chunks = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        if self.on_headers is not None:
            self.on_headers(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        if self.on_chunk is not None:
            self.on_chunk(body)
        else:
            self.chunks.append(body)

    def on_message_complete(self) -> None:
        body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        if self.on_response is not None:
            self.on_response(self.parser.get_status_code(), body)

    # client side
    async def exchange(self, data: bytes, timeout_seconds: float = 10.0) -> tuple[int, bytes]:
        """Send one request and wait for its whole response (handshakes only, not the hot loop)."""
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()

        def done(status: int, body: bytes) -> None:
            if not future.done():
                future.set_result((status, body))

        def lost(message: str) -> None:
            if not future.done():
                future.set_exception(ConnectionError(message))

        self.on_response, self.on_lost = done, lost
        assert self.transport is not None
        self.transport.write(data)
        try:
            return await asyncio.wait_for(future, timeout_seconds)
        finally:
            self.on_response = self.on_lost = None


async def open_connection(target: Target) -> HttpConnection:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(HttpConnection, target.host, target.port)
    return conn


# ---------------------------------------------------------------------------------------------
# Streamable HTTP sessions


class StreamableSession:
    """One MCP session over one keep-alive connection."""

    def __init__(self, target: Target, stats: Stats) -> None:
        self.target = target
        self.stats = stats
        self.conn: HttpConnection | None = None
        self.session_id = ""
        self.done: asyncio.Future[None] | None = None
        self.call_id = FIRST_CALL_ID
        self.sent_at = 0.0
        self.head = b""
        self.template: CallTemplate | None = None

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
            headers["MCP-Protocol-Version"] = PROTOCOL_VERSION
        return headers

    async def open(self) -> None:
        self.conn = await open_connection(self.target)
        init = http_request("POST", self.target, self._headers(), initialize_body(1))
        status, body = await self.conn.exchange(init)
        reply = parse_http_reply(body, 1) if status == 200 else None
        if not isinstance(reply, dict) or "result" not in reply:
            raise RuntimeError(f"initialize failed: HTTP {status} {body[:300]!r}")
        self.session_id = self.conn.headers.get(b"mcp-session-id", b"").decode()
        note = http_request("POST", self.target, self._headers(), INITIALIZED_BODY)
        status, body = await self.conn.exchange(note)
        if status not in (200, 202, 204):
            raise RuntimeError(f"notifications/initialized failed: HTTP {status} {body[:300]!r}")

    def start(self, template: CallTemplate) -> asyncio.Future[None]:
        """Start the closed loop; the returned future resolves when the session has stopped."""
        assert self.conn is not None
        self.template = template
        self.head = call_head(self.target, self._headers(), template)
        self.done = asyncio.get_running_loop().create_future()
        self.conn.on_response = self._on_response
        self.conn.on_lost = self._on_lost
        self._send()
        return self.done

    def _send(self) -> None:
        self.call_id += 1
        assert self.conn is not None and self.conn.transport is not None and self.template is not None
        self.sent_at = clock()
        self.conn.transport.write(self.head + b"%d" % self.call_id + self.template.tail)

    def _on_response(self, status: int, body: bytes) -> None:
        now = clock()
        stats = self.stats
        problem = f"HTTP {status}: {body[:200]!r}" if status != 200 else None
        if problem is None:
            try:
                thorough = self.call_id % FULL_CHECK_EVERY == 0
                problem = reply_problem(body, self.call_id, thorough)
            except orjson.JSONDecodeError as exc:
                problem = f"bad JSON: {exc}"
        if problem is not None:
            stats.error(problem)
        elif stats.recording:
            stats.latencies.append(now - self.sent_at)
        if stats.stopping or (problem is not None and status >= 500):
            self._finish()
        else:
            self._send()

    def _on_lost(self, message: str) -> None:
        if not self.stats.stopping:
            self.stats.error(message)
        self._finish()

    def _finish(self) -> None:
        assert self.conn is not None
        self.conn.on_response = None
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def close(self, delete: bool) -> None:
        if self.conn is None or self.conn.transport is None:
            return
        if delete and self.session_id and not self.conn.transport.is_closing():
            request = http_request("DELETE", self.target, self._headers())
            try:
                await self.conn.exchange(request, timeout_seconds=2.0)
            except (ConnectionError, TimeoutError):
                pass
        self.conn.on_lost = None
        self.conn.transport.close()


class StatelessSession(StreamableSession):
    """2026-07-28 calls over one keep-alive connection: no handshake, no session, no DELETE.

    The envelope is in the call template (see `envelope_template`); the routing headers are fixed
    per tool, so the prebuilt request head still never changes.
    """

    def __init__(self, target: Target, stats: Stats, tool: str) -> None:
        super().__init__(target, stats)
        self.tool = tool

    def _headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": MODERN_VERSION,
            "Mcp-Method": "tools/call",
            "Mcp-Name": self.tool,
        }

    async def open(self) -> None:
        self.conn = await open_connection(self.target)


def call_template(tool: str, arguments: dict[str, Any], stateless: bool) -> CallTemplate:
    """The tools/call every session repeats; a stateless one carries the 2026 envelope in `_meta`."""
    params: dict[str, Any] = {"name": tool, "arguments": arguments}
    if stateless:
        params["_meta"] = ENVELOPE_META
    return CallTemplate("tools/call", params)


# ---------------------------------------------------------------------------------------------
# Legacy HTTP+SSE sessions


class LegacySseSession:
    """One legacy session: a GET stream for server messages plus a keep-alive POST connection.

    A call is complete when both its 202 (POST connection) and its reply (stream) have arrived.
    """

    def __init__(self, target: Target, stats: Stats) -> None:
        self.target = target
        self.stats = stats
        self.stream: HttpConnection | None = None
        self.poster: HttpConnection | None = None
        self.post_target: Target | None = None
        self.decoder = SseDecoder()
        self.waiters: dict[int, asyncio.Future[Any]] = {}
        self.endpoint: asyncio.Future[str] | None = None
        self.done: asyncio.Future[None] | None = None
        self.call_id = FIRST_CALL_ID
        self.sent_at = 0.0
        self.pending_parts = 0
        self.head = b""
        self.tail = b""
        self.looping = False
        self.ok = True  # no part of the call in flight has failed

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self.endpoint = loop.create_future()
        self.stream = await open_connection(self.target)
        self.stream.on_chunk = self._on_stream_chunk
        self.stream.on_headers = self._on_stream_headers
        self.stream.on_lost = self._on_lost
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        assert self.stream.transport is not None
        self.stream.transport.write(http_request("GET", self.target, headers))
        endpoint = await asyncio.wait_for(self.endpoint, 10.0)
        base = f"http://{self.target.host}:{self.target.port}{self.target.path}"
        self.post_target = Target.from_url(urljoin(base, endpoint))
        self.poster = await open_connection(self.post_target)
        await self._handshake()

    async def _handshake(self) -> None:
        assert self.poster is not None and self.post_target is not None
        reply = asyncio.get_running_loop().create_future()
        self.waiters[1] = reply
        headers = {"Content-Type": "application/json"}
        status, body = await self.poster.exchange(
            http_request("POST", self.post_target, headers, initialize_body(1))
        )
        if status not in (200, 202):
            raise RuntimeError(f"initialize POST failed: HTTP {status} {body[:300]!r}")
        msg = await asyncio.wait_for(reply, 10.0)
        if "result" not in msg:
            raise RuntimeError(f"initialize failed: {msg}")
        status, body = await self.poster.exchange(
            http_request("POST", self.post_target, headers, INITIALIZED_BODY)
        )
        if status not in (200, 202, 204):
            raise RuntimeError(f"notifications/initialized failed: HTTP {status} {body[:300]!r}")

    def _on_stream_headers(self, status: int) -> None:
        if status != 200 and self.endpoint is not None and not self.endpoint.done():
            self.endpoint.set_exception(RuntimeError(f"GET stream failed: HTTP {status}"))

    def _on_stream_chunk(self, chunk: bytes) -> None:
        for name, data in self.decoder.feed(chunk):
            if name == b"endpoint":
                if self.endpoint is not None and not self.endpoint.done():
                    self.endpoint.set_result(bytes(data).decode().strip())
                continue
            if not data:
                continue  # a priming event
            try:
                msg = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                self.stats.error(f"bad JSON on stream: {exc}")
                continue
            self._on_message(msg)

    def _on_message(self, msg: Any) -> None:
        if not isinstance(msg, dict) or "method" in msg:
            return  # a notification or server request: not part of the loop
        if self.looping:
            if msg.get("id") == self.call_id:
                problem = check_reply(msg, self.call_id)
                if problem is not None:
                    self.stats.error(problem)
                self._part_done(problem is None)
            return
        waiter = self.waiters.pop(msg.get("id"), None)  # type: ignore[arg-type]
        if waiter is not None and not waiter.done():
            waiter.set_result(msg)

    def start(self, template: CallTemplate) -> asyncio.Future[None]:
        assert self.poster is not None and self.post_target is not None
        self.head = call_head(self.post_target, {"Content-Type": "application/json"}, template)
        self.tail = template.tail
        self.done = asyncio.get_running_loop().create_future()
        self.poster.on_response = self._on_post_response
        self.poster.on_lost = self._on_lost
        self.looping = True
        self._send()
        return self.done

    def _send(self) -> None:
        assert self.poster is not None and self.poster.transport is not None
        self.call_id += 1
        self.pending_parts = 2
        self.ok = True
        self.sent_at = clock()
        self.poster.transport.write(self.head + b"%d" % self.call_id + self.tail)

    def _on_post_response(self, status: int, body: bytes) -> None:
        ok = status in (200, 202)
        if not ok:
            self.stats.error(f"POST HTTP {status}: {body[:200]!r}")
        self._part_done(ok)

    def _part_done(self, ok: bool) -> None:
        now = clock()
        self.ok = self.ok and ok
        self.pending_parts -= 1
        if self.pending_parts:
            return
        if self.ok and self.stats.recording:
            self.stats.latencies.append(now - self.sent_at)
        if self.stats.stopping:
            self._finish()
        else:
            self._send()

    def _on_lost(self, message: str) -> None:
        if not self.stats.stopping:
            self.stats.error(message)
        if self.endpoint is not None and not self.endpoint.done():
            self.endpoint.set_exception(ConnectionError(message))
        self._finish()

    def _finish(self) -> None:
        self.looping = False
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def close(self, delete: bool) -> None:
        for conn in (self.poster, self.stream):
            if conn is not None and conn.transport is not None:
                conn.on_lost = None
                conn.transport.close()


# ---------------------------------------------------------------------------------------------
# Direct stdio upstream


class LineReader:
    """Splits a byte stream into lines; a 1 MiB line is joined once and handed out as a view."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def feed(self, data: bytes) -> list[bytes] | list[memoryview]:
        end = data.rfind(b"\n")
        if end < 0:
            self.parts.append(data)
            return []
        if self.parts:
            tail = len(data) - end
            self.parts.append(data)
            data = b"".join(self.parts)
            end = len(data) - tail
        self.parts = [data[end + 1 :]] if end + 1 < len(data) else []
        if end < LARGE_REPLY_BYTES:
            return data[:end].split(b"\n")
        view, lines, start = memoryview(data), [], 0
        while start <= end:
            stop = data.find(b"\n", start, end + 1)
            lines.append(view[start:stop])
            start = stop + 1
        return lines


class DirectUpstream(asyncio.SubprocessProtocol):
    """A stdio upstream with `callers` requests kept in flight; replies are read line by line.

    New requests triggered by one read are written with a single write, like a proxy would batch.
    """

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.transport: asyncio.SubprocessTransport | None = None
        self.stdin: asyncio.WriteTransport | None = None
        self.lines = LineReader()
        self.pending: dict[int, float] = {}
        self.waiters: dict[int, asyncio.Future[Any]] = {}
        self.template: CallTemplate | None = None
        self.next_id = FIRST_CALL_ID
        self.done: asyncio.Future[None] | None = None
        self.exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.stdin = self.transport.get_pipe_transport(0)  # type: ignore[union-attr,assignment]

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd != 1:
            return
        lines = self.lines.feed(data)
        if self.template is None:
            for line in lines:
                self._on_handshake_line(line)
            return
        self._on_reply_lines(lines)

    def _on_handshake_line(self, line: bytes | memoryview) -> None:
        msg = orjson.loads(line)
        waiter = self.waiters.pop(msg.get("id"), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(msg)

    def _on_reply_lines(self, lines: list[bytes] | list[memoryview]) -> None:
        now = clock()
        stats = self.stats
        out = []
        for line in lines:
            call_id, problem = self._check_line(line)
            sent_at = self.pending.pop(call_id, None)  # type: ignore[arg-type]
            if sent_at is None:
                stats.error(f"reply to unknown id: {bytes(line[:200])!r}")
                continue
            if problem is not None:
                stats.error(problem)
            elif stats.recording:
                stats.latencies.append(now - sent_at)
            if not stats.stopping:
                out.append(self._next_request(now))
        if out:
            assert self.stdin is not None
            self.stdin.write(b"".join(out))
        elif stats.stopping and not self.pending and self.done is not None and not self.done.done():
            self.done.set_result(None)

    def _check_line(self, line: bytes | memoryview) -> tuple[Any, str | None]:
        """The reply's id and its problem (None when it is a success)."""
        if len(line) >= LARGE_REPLY_BYTES:
            match = LARGE_REPLY_ID.search(bytes(line[:256])) or LARGE_REPLY_ID.search(bytes(line[-256:]))
            if match is not None and int(match[1]) % FULL_CHECK_EVERY:
                call_id = int(match[1])
                return call_id, skim_large_reply(line, call_id) or None
        msg = orjson.loads(line)
        call_id = msg.get("id")
        return call_id, check_reply(msg, call_id)

    def _next_request(self, now: float) -> bytes:
        assert self.template is not None
        self.next_id += 1
        self.pending[self.next_id] = now
        return self.template.body(self.next_id) + b"\n"

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)
        if self.done is not None and not self.done.done():
            if not self.stats.stopping:
                self.stats.error("upstream exited")
            self.done.set_result(None)

    async def handshake(self) -> None:
        assert self.stdin is not None
        waiter = asyncio.get_running_loop().create_future()
        self.waiters[1] = waiter
        self.stdin.write(initialize_body(1) + b"\n")
        msg = await asyncio.wait_for(waiter, 10.0)
        if "result" not in msg:
            raise RuntimeError(f"initialize failed: {msg}")
        self.stdin.write(INITIALIZED_BODY + b"\n")

    def start(self, template: CallTemplate, callers: int) -> asyncio.Future[None]:
        self.template = template
        self.done = asyncio.get_running_loop().create_future()
        now = clock()
        assert self.stdin is not None
        self.stdin.write(b"".join(self._next_request(now) for _ in range(callers)))
        return self.done


# ---------------------------------------------------------------------------------------------
# Runs


def parse_watch_pids(values: list[str]) -> list[int]:
    return [int(v) for value in values for v in value.split(",") if v]


async def wait_loops(done: list[asyncio.Future[None]], window: Window, grace_seconds: float) -> None:
    """Wait for the window to end, then for every loop to stop; count stuck loops as errors."""
    await window.ended
    _, stuck = await asyncio.wait(done, timeout=grace_seconds)
    for _ in stuck:
        window.stats.error(f"session stuck: no reply within {grace_seconds} s after the window")


def http_sessions(args: argparse.Namespace, target: Target, stats: Stats) -> list[Any]:
    if args.mode == "stateless":
        return [StatelessSession(target, stats, args.tool) for _ in range(args.sessions)]
    kind = LegacySseSession if args.mode == "sse" else StreamableSession
    return [kind(target, stats) for _ in range(args.sessions)]


async def run_http(args: argparse.Namespace) -> dict[str, Any]:
    stats = Stats()
    target = Target.from_url(args.url)
    sessions = http_sessions(args, target, stats)
    await asyncio.gather(*(s.open() for s in sessions))
    template = call_template(args.tool, orjson.loads(args.arguments), args.mode == "stateless")
    window = Window(stats, parse_watch_pids(args.watch_pid))
    window.schedule(args.warmup, args.duration)
    done = [s.start(template) for s in sessions]
    await wait_loops(done, window, args.grace)
    report = window.report(stats)
    await asyncio.gather(*(s.close(delete=not args.no_delete) for s in sessions))
    return report


async def run_direct(args: argparse.Namespace) -> dict[str, Any]:
    stats = Stats()
    loop = asyncio.get_running_loop()
    command = args.upstream or [sys.executable, str(Path(__file__).with_name("echo_upstream.py"))]
    spawned_at = clock()
    transport, upstream = await loop.subprocess_exec(
        lambda: DirectUpstream(stats),
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=None,
    )
    try:
        await upstream.handshake()
        start_seconds = clock() - spawned_at
        template = CallTemplate("tools/call", {"name": args.tool, "arguments": orjson.loads(args.arguments)})
        window = Window(stats, [transport.get_pid(), *parse_watch_pids(args.watch_pid)])
        window.schedule(args.warmup, args.duration)
        await wait_loops([upstream.start(template, args.sessions)], window, args.grace)
        report = window.report(stats)
        report["upstream_pid"] = transport.get_pid()
        report["upstream_start_s"] = round(start_seconds, 4)
    finally:
        transport.get_pipe_transport(0).close()  # only once no reply is pending (see perf-anchors)
        try:
            await asyncio.wait_for(upstream.exited, 5.0)
        except TimeoutError:
            transport.kill()
        transport.close()
    return report


async def run_idle(args: argparse.Namespace) -> dict[str, Any]:
    """Open N sessions, report, hold them until stdin closes (the driver measures RSS meanwhile)."""
    stats = Stats()
    target = Target.from_url(args.url)
    sessions = [StreamableSession(target, stats) for _ in range(args.sessions)]
    started = clock()
    for batch in range(0, len(sessions), 16):
        await asyncio.gather(*(s.open() for s in sessions[batch : batch + 16]))
    report = {"sessions_open": len(sessions), "open_seconds": round(clock() - started, 4), "errors": 0}
    sys.stdout.buffer.write(orjson.dumps(report) + b"\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.buffer.read)
    await asyncio.gather(*(s.close(delete=not args.no_delete) for s in sessions))
    return report


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.mode == "direct":
        report = await run_direct(args)
    elif args.mode == "idle":
        return await run_idle(args)
    else:
        report = await run_http(args)
    report.update(mode=args.mode, sessions=args.sessions, tool=args.tool, url=args.url)
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("mode", choices=["http", "stateless", "sse", "direct", "idle"])
    parser.add_argument("--url", default="", help="streamable HTTP endpoint, or the legacy GET /sse URL")
    parser.add_argument("--sessions", type=int, default=1, help="concurrent sessions (direct: callers)")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds to wait for the last replies")
    parser.add_argument("--tool", default="echo")
    parser.add_argument("--arguments", default='{"text":"hello"}', help="tool arguments as JSON")
    parser.add_argument("--watch-pid", action="append", default=[], help="report CPU/RSS of these pids")
    parser.add_argument("--upstream", nargs="+", help="direct mode: upstream command (default echo)")
    parser.add_argument("--no-delete", action="store_true", help="do not DELETE sessions at the end")
    parser.add_argument("--pretty", action="store_true", help="indent the JSON report")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.mode != "direct" and not args.url:
        raise SystemExit("--url is required for http, sse and idle modes")
    try:
        import uvloop

        report = uvloop.run(run(args))
    except ImportError:
        report = asyncio.run(run(args))
    option = orjson.OPT_INDENT_2 if args.pretty else 0
    sys.stdout.buffer.write(orjson.dumps(report, option=option) + b"\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
