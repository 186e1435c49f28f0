"""A scripted streamable-HTTP MCP server in a thread of the test: it records every request it gets.

Real HTTP on 127.0.0.1 (the standard library's threading server), for the tests that need an
upstream to misbehave in one precise way: answer the GET stream with 404, redirect elsewhere.
"""

from __future__ import annotations

import itertools
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

TOOL = {"name": "echo", "description": "echo", "inputSchema": {"type": "object"}}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int]  # the client's address: one per TCP connection


@dataclass
class Script:
    """How the server answers: the GET stream's status, and paths redirected elsewhere."""

    get_status: int = 405
    redirects: dict[str, str] = field(default_factory=dict)  # path -> Location (answered with 307)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    sessions: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    hold: threading.Event | None = None  # when set here, tools/call waits for it before answering
    refuse_calls_echoing: str | None = None  # a header name: tools/call gets 401 quoting its value
    echo_as_json: bool = False  # that 401 as a JSON object (not JSON-RPC) instead of plain text

    def connections(self, method: str = "POST") -> int:
        with self.lock:
            return len({seen.peer for seen in self.seen if seen.method == method})

    def count(self, predicate: Callable[[Seen], bool]) -> int:
        with self.lock:
            return sum(1 for seen in self.seen if predicate(seen))

    def initializes(self) -> int:
        return self.count(lambda seen: b'"initialize"' in seen.body)


def answer(request: dict[str, Any]) -> dict[str, Any]:
    method = request.get("method")
    if method == "initialize":
        result: dict[str, Any] = {
            "protocolVersion": request["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "mini", "version": "1"},
        }
    elif method == "tools/list":
        result = {"tools": [TOOL]}
    elif method == "tools/call":
        text = str(request["params"].get("arguments", {}).get("text", ""))
        result = {"content": [{"type": "text", "text": text}]}
    else:
        result = {}
    return {"jsonrpc": "2.0", "id": request["id"], "result": result}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    script: Script

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _record(self) -> bytes:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        path = urlsplit(self.path).path  # a forward proxy sends the absolute URL
        with self.script.lock:
            self.script.seen.append(Seen(self.command, path, headers, body, self.client_address))
        return body

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirected(self) -> bool:
        location = self.script.redirects.get(urlsplit(self.path).path)
        if location is not None:
            self._send(307, headers={"location": location})
        return location is not None

    def do_GET(self) -> None:
        self._record()
        if not self._redirected():
            self._send(self.script.get_status)

    def do_DELETE(self) -> None:
        self._record()
        self._send(200)

    def do_POST(self) -> None:
        body = self._record()
        if self._redirected():
            return
        request = json.loads(body)
        if request.get("method") == "tools/call" and self.script.hold is not None:
            self.script.hold.wait(30)
        echoed = self.script.refuse_calls_echoing
        if request.get("method") == "tools/call" and echoed is not None:
            text = f"bad credentials: {self.headers.get(echoed)}"
            if self.script.echo_as_json:
                body = json.dumps({"error": text, "padding": "p" * 100_000}).encode()
                self._send(401, body, {"content-type": "application/json"})
            else:
                self._send(401, text.encode(), {"content-type": "text/plain"})
            return
        if "id" not in request:
            self._send(202)
            return
        headers = {"content-type": "application/json"}
        if request.get("method") == "initialize":
            headers["mcp-session-id"] = f"s{next(self.script.sessions)}"
        self._send(200, json.dumps(answer(request)).encode(), headers)


@contextmanager
def mini_server(script: Script, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """Serve `script` on 127.0.0.1 (port 0), over TLS with `tls`; yields the base URL."""
    handler = type("ScriptedHandler", (Handler,), {"script": script})
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        server.daemon_threads = True
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        serving = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        serving.start()
        try:
            yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            serving.join(10)
