"""A near-free stdio MCP server (no SDK) for benchmarks: echo and big tools, ~0.01 ms per call.

Reads newline-delimited JSON-RPC from stdin in whatever chunks are available, answers every
complete line, and writes all answers with one write per chunk, so a pipelined client gets
batched replies and the upstream is never the bottleneck of a proxy benchmark.
"""

from __future__ import annotations

import os
import sys

import orjson

SUPPORTED_VERSIONS = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
LATEST_VERSION = "2025-11-25"
READ_CHUNK_BYTES = 1 << 20

TOOLS = {
    "tools": [
        {
            "name": "echo",
            "description": "Return the given text.",
            "inputSchema": {
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
            },
        },
        {
            "name": "big",
            "description": "Return a text of `size` bytes.",
            "inputSchema": {
                "type": "object",
                "properties": {"size": {"type": "integer", "minimum": 0}},
                "required": ["size"],
            },
        },
    ]
}

_big_results: dict[int, bytes] = {}


def big_result(size: int) -> bytes:
    """The serialized result of `big` for one size, built once."""
    cached = _big_results.get(size)
    if cached is None:
        cached = orjson.dumps({"content": [{"type": "text", "text": "x" * size}]})
        _big_results[size] = cached
    return cached


def initialize_result(params: dict) -> dict:
    requested = params.get("protocolVersion")
    version = requested if requested in SUPPORTED_VERSIONS else LATEST_VERSION
    return {
        "protocolVersion": version,
        "capabilities": {"tools": {}},
        "serverInfo": {"name": "echo-upstream", "version": "1.0.0"},
    }


def error_reply(msg_id: object, code: int, message: str) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}})


def call_tool(msg_id: object, params: dict) -> bytes:
    name = params.get("name")
    args = params.get("arguments") or {}
    if name == "echo":
        result = {"content": [{"type": "text", "text": args.get("text", "")}]}
        return orjson.dumps({"jsonrpc": "2.0", "id": msg_id, "result": result})
    if name == "big":
        size = args.get("size", 0)
        if not isinstance(size, int) or size < 0:
            return error_reply(msg_id, -32602, "size must be a non-negative integer")
        return b'{"jsonrpc":"2.0","id":' + orjson.dumps(msg_id) + b',"result":' + big_result(size) + b"}"
    return error_reply(msg_id, -32602, f"Unknown tool: {name}")


def answer(line: bytes) -> bytes | None:
    """The reply line (without newline) to one JSON-RPC message, or None for no reply."""
    try:
        msg = orjson.loads(line)
    except orjson.JSONDecodeError:
        return error_reply(None, -32700, "Parse error")
    if not isinstance(msg, dict):
        return error_reply(None, -32600, "Invalid Request")
    method = msg.get("method")
    if "id" not in msg or method is None:
        return None  # a notification, or a response to a request we never send
    msg_id = msg["id"]
    params = msg.get("params") or {}
    if method == "tools/call":
        return call_tool(msg_id, params)
    if method == "ping":
        result: dict = {}
    elif method == "tools/list":
        result = TOOLS
    elif method == "initialize":
        result = initialize_result(params)
    else:
        return error_reply(msg_id, -32601, f"Method not found: {method}")
    return orjson.dumps({"jsonrpc": "2.0", "id": msg_id, "result": result})


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def serve(in_fd: int, out_fd: int) -> None:
    pending = b""
    while True:
        chunk = os.read(in_fd, READ_CHUNK_BYTES)
        if not chunk:
            return
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        replies = []
        for line in lines:
            if line.strip():
                reply = answer(line)
                if reply is not None:
                    replies.append(reply)
        if replies:
            replies.append(b"")
            write_all(out_fd, b"\n".join(replies))


def main() -> None:
    try:
        serve(sys.stdin.buffer.fileno(), sys.stdout.buffer.fileno())
    except (BrokenPipeError, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    main()
