"""A stand-in for mcpmux built on the `mcp` SDK's own HTTP server, to validate the benchmark harness.

Serves the same URLs the benchmark drives on mcpmux (`/echo/mcp`, `/echo/sse`, merged `/mcp` with
`echo__echo`), accepts the same `--config FILE --listen-fd N` flags (the config is ignored: the
tools are served in-process, there is no upstream), and prints `All clients initialized` when ready.
Its figures are the SDK's, not a proxy's: `python bench/run.py --target sdk`.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
from collections.abc import AsyncIterator

import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette

_big_texts: dict[int, str] = {}


def big_text(size: int) -> str:
    if size not in _big_texts:
        _big_texts[size] = "x" * size
    return _big_texts[size]


def build_server(name: str, prefix: str) -> MCPServer:
    server = MCPServer(name)

    @server.tool(name=f"{prefix}echo")
    def echo(text: str) -> str:
        """Return the given text."""
        return text

    @server.tool(name=f"{prefix}big")
    def big(size: int) -> str:
        """Return a text of `size` bytes."""
        return big_text(size)

    return server


def build_app(json_response: bool) -> Starlette:
    per_server = build_server("echo", "")
    merged = build_server("merged", "echo__")
    streamable = per_server.streamable_http_app(streamable_http_path="/echo/mcp", json_response=json_response)
    merged_app = merged.streamable_http_app(streamable_http_path="/mcp", json_response=json_response)
    legacy = per_server.sse_app(sse_path="/echo/sse", message_path="/echo/messages/")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with (
            streamable.router.lifespan_context(streamable),
            merged_app.router.lifespan_context(merged_app),
        ):
            print("All clients initialized", file=sys.stderr, flush=True)
            yield

    return Starlette(routes=[*streamable.routes, *merged_app.routes, *legacy.routes], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", help="ignored (accepted for command-line compatibility with mcpmux)")
    parser.add_argument("--listen-fd", type=int, help="serve on this inherited listening socket")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--json-response", action="store_true", help="answer POSTs with JSON, not SSE")
    args = parser.parse_args()
    app = build_app(args.json_response)
    config = uvicorn.Config(app, loop="uvloop", http="httptools", log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    if args.listen_fd is not None:
        sock = socket.socket(fileno=args.listen_fd)
        server.run(sockets=[sock])
    else:
        config.host, config.port = "127.0.0.1", args.port
        server.run()


if __name__ == "__main__":
    main()
