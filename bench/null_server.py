"""A near-free MCP HTTP server (no SDK, no upstream) to measure the load generator's own ceiling.

Answers the URLs the benchmark drives on mcpmux (`/echo/mcp`, `/mcp` with `echo__echo`, legacy
`/echo/sse`) from one asyncio protocol per connection with prebuilt bytes. Accepts mcpmux's
`--config FILE --listen-fd N` (config ignored) and prints `All clients initialized` when ready, so
`python bench/run.py --target null` runs the whole benchmark against it.

It is also the near-free HTTP upstream of `bench/remote.py` (mcpmux in front of a remote MCP
server): `/echo/mcp` is a streamable-HTTP server (JSON replies, 405 to the GET stream, as the spec
allows) and `/echo/sse` a legacy HTTP+SSE one; both answer `tools/list` with `echo` and `big`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import socket
import sys
from typing import Any

import httptools
import orjson

SUPPORTED_VERSIONS = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
STREAMABLE_PATHS = {b"/echo/mcp": "", b"/mcp": "echo__"}
LEGACY_STREAM_PATH = b"/echo/sse"
LEGACY_POST_PATH = b"/echo/messages/"
legacy_streams: dict[str, asyncio.Transport] = {}
_big_texts: dict[int, str] = {}
TOOLS = {
    "tools": [
        {"name": name, "description": name, "inputSchema": {"type": "object"}} for name in ("echo", "big")
    ]
}


def tool_result(params: dict[str, Any], prefix: str) -> dict[str, Any]:
    name = params.get("name")
    args = params.get("arguments") or {}
    if name == prefix + "echo":
        text = args.get("text", "")
    elif name == prefix + "big":
        size = int(args.get("size", 0))
        text = _big_texts.get(size) or _big_texts.setdefault(size, "x" * size)
    else:
        return {"content": [{"type": "text", "text": f"unknown tool {name}"}], "isError": True}
    return {"content": [{"type": "text", "text": text}]}


def answer(msg: dict[str, Any], prefix: str) -> bytes | None:
    """The serialized reply to one JSON-RPC message, or None for a notification."""
    if "id" not in msg or "method" not in msg:
        return None
    method, params = msg["method"], msg.get("params") or {}
    if method == "tools/call":
        result: Any = tool_result(params, prefix)
    elif method == "initialize":
        version = params.get("protocolVersion")
        result = {
            "protocolVersion": version if version in SUPPORTED_VERSIONS else "2025-06-18",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "null-server", "version": "1.0.0"},
        }
    elif method == "ping":
        result = {}
    elif method == "tools/list":
        result = TOOLS
    else:
        error = {"code": -32601, "message": f"Method not found: {method}"}
        return orjson.dumps({"jsonrpc": "2.0", "id": msg["id"], "error": error})
    return orjson.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result})


def response(status: bytes, body: bytes = b"", headers: bytes = b"") -> bytes:
    head = b"HTTP/1.1 " + status + b"\r\n" + headers
    return head + b"content-length: %d\r\n\r\n" % len(body) + body


class Connection(asyncio.Protocol):
    def __init__(self, sse_replies: bool) -> None:
        self.sse_replies = sse_replies
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.write(response(b"400 Bad Request"))
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.transport is not None
        method = self.parser.get_method()
        path, _, query = self.url.partition(b"?")
        if method == b"POST" and path in STREAMABLE_PATHS:
            self.transport.write(self.streamable_post(STREAMABLE_PATHS[path]))
        elif method == b"DELETE" and path in STREAMABLE_PATHS:
            self.transport.write(response(b"200 OK"))
        elif method == b"GET" and path in STREAMABLE_PATHS:
            self.transport.write(response(b"405 Method Not Allowed", headers=b"allow: POST, DELETE\r\n"))
        elif method == b"GET" and path == LEGACY_STREAM_PATH:
            self.open_legacy_stream()
        elif method == b"POST" and path == LEGACY_POST_PATH:
            self.transport.write(self.legacy_post(query))
        elif method == b"GET" and path == b"/_readyz":
            self.transport.write(response(b"200 OK", b"ok"))
        else:
            self.transport.write(response(b"404 Not Found"))

    def streamable_post(self, prefix: str) -> bytes:
        msg = orjson.loads(b"".join(self.body))
        reply = answer(msg, prefix)
        if reply is None:
            return response(b"202 Accepted")
        headers = b""
        if msg["method"] == "initialize":
            headers = b"mcp-session-id: " + secrets.token_hex(16).encode() + b"\r\n"
        if self.sse_replies:
            event = b"event: message\r\ndata: " + reply + b"\r\n\r\n"
            return response(b"200 OK", event, headers + b"content-type: text/event-stream\r\n")
        return response(b"200 OK", reply, headers + b"content-type: application/json\r\n")

    def open_legacy_stream(self) -> None:
        assert self.transport is not None
        session_id = secrets.token_hex(16)
        legacy_streams[session_id] = self.transport
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        endpoint = b"event: endpoint\r\ndata: /echo/messages/?session_id=" + session_id.encode() + b"\r\n\r\n"
        self.transport.write(head + chunk(endpoint))

    def legacy_post(self, query: bytes) -> bytes:
        session_id = query.partition(b"session_id=")[2].decode()
        stream = legacy_streams.get(session_id)
        if stream is None or stream.is_closing():
            return response(b"404 Not Found")
        reply = answer(orjson.loads(b"".join(self.body)), "")
        if reply is not None:
            stream.write(chunk(b"event: message\r\ndata: " + reply + b"\r\n\r\n"))
        return response(b"202 Accepted")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


async def serve(sock: socket.socket, sse_replies: bool) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(sse_replies), sock=sock)
    print("All clients initialized", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", help="ignored (accepted for command-line compatibility with mcpmux)")
    parser.add_argument("--listen-fd", type=int, help="serve on this inherited listening socket")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--sse-replies", action="store_true", help="answer POSTs with SSE, not JSON")
    args = parser.parse_args()
    if args.listen_fd is not None:
        sock = socket.socket(fileno=args.listen_fd)
    else:
        sock = socket.create_server(("127.0.0.1", args.port))
    import uvloop

    try:
        uvloop.run(serve(sock, args.sse_replies))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
