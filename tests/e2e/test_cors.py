"""CORS on the MCP routes, over raw HTTP: preflights for allowed Origins only, headers on every answer."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import orjson
import pytest

from harness import ProxyProcess, fixture_server, running_proxy

BOUND_SECONDS = 20
APP = "https://app.example"
TOKEN = "cors-test-token-1234"
CLIENT = {"name": "t", "version": "1"}
INIT_PARAMS = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": CLIENT}
INIT = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT_PARAMS})
MCP_HEADERS = (
    "Authorization, Content-Type, Mcp-Session-Id, MCP-Protocol-Version, Mcp-Method, Mcp-Name, Last-Event-ID"
)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    config = {
        "mcpProxy": {"allowedOrigins": [APP], "options": {"authTokens": [TOKEN]}},
        "mcpServers": {"fx": fixture_server()},
    }
    with running_proxy(config, tmp_path_factory.mktemp("cors")) as running:
        yield running


def exchange(
    proxy: ProxyProcess, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection (Connection: close): status, headers (lower-case names), body."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{proxy.port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in {**headers, "Content-Length": str(len(body))}.items()]
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=BOUND_SECONDS) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    found: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        found[name.strip().lower()] = value.strip()
    return int(status_line.split(" ", 2)[1]), found, rest


def preflight(proxy: ProxyProcess, path: str, origin: str, requested: str) -> tuple[int, dict[str, str]]:
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    if requested:
        headers["Access-Control-Request-Headers"] = requested
    status, found, _ = exchange(proxy, "OPTIONS", path, headers)
    return status, found


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/fx/mcp", "GET, POST, DELETE, OPTIONS"),
        ("/mcp", "GET, POST, DELETE, OPTIONS"),
        ("/fx/sse", "GET, OPTIONS"),
    ],
)
def test_a_preflight_from_an_allowed_origin_is_answered_without_credentials(
    proxy: ProxyProcess, path: str, methods: str
) -> None:
    requested = "authorization, content-type, mcp-session-id, mcp-protocol-version, mcp-param-region, x-evil"
    status, headers = preflight(proxy, path, APP, requested)
    assert status == 200
    assert headers["access-control-allow-origin"] == APP
    assert headers["access-control-allow-methods"] == methods
    # every MCP header, and of those asked for only the Mcp-Param-* one beyond them (x-evil is not echoed)
    assert headers["access-control-allow-headers"] == MCP_HEADERS + ", mcp-param-region"
    assert "Mcp-Session-Id" in headers["access-control-expose-headers"]
    assert headers["vary"] == "Origin" and int(headers["access-control-max-age"]) > 0


def test_a_preflight_from_another_origin_is_refused(proxy: ProxyProcess) -> None:
    status, headers = preflight(proxy, "/fx/mcp", "https://evil.example", "authorization")
    assert status == 403
    assert "access-control-allow-origin" not in headers


def test_same_origin_browser_pages_are_allowed_too(proxy: ProxyProcess) -> None:
    origin = f"http://127.0.0.1:{proxy.port}"
    status, headers = preflight(proxy, "/fx/mcp", origin, "")
    assert status == 200 and headers["access-control-allow-origin"] == origin


def test_responses_to_an_allowed_origin_expose_the_session_id(proxy: ProxyProcess) -> None:
    common = {
        "Origin": APP,
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    status, headers, _ = exchange(
        proxy, "POST", "/fx/mcp", {**common, "Authorization": f"Bearer {TOKEN}"}, INIT
    )
    assert status == 200 and headers["mcp-session-id"]
    assert headers["access-control-allow-origin"] == APP
    assert "Mcp-Session-Id" in headers["access-control-expose-headers"]
    refused, refused_headers, _ = exchange(proxy, "POST", "/fx/mcp", common, INIT)  # no token
    assert refused == 401 and refused_headers["access-control-allow-origin"] == APP
    assert "WWW-Authenticate" in refused_headers["access-control-expose-headers"]


def test_clients_without_an_origin_get_no_cors_headers(proxy: ProxyProcess) -> None:
    common = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    status, headers, _ = exchange(
        proxy, "POST", "/fx/mcp", {**common, "Authorization": f"Bearer {TOKEN}"}, INIT
    )
    assert status == 200 and not any(name.startswith("access-control-") for name in headers)
    status, headers, _ = exchange(proxy, "OPTIONS", "/fx/mcp", {})
    assert status == 200 and headers["allow"] == "GET, POST, DELETE, OPTIONS"
    assert "access-control-allow-origin" not in headers


def test_a_stateless_2026_call_from_a_browser_is_readable(proxy: ProxyProcess) -> None:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call"}
    call["params"] = {"name": "echo", "arguments": {"text": "hi"}, "_meta": meta}
    headers = {
        "Origin": APP,
        "Authorization": f"Bearer {TOKEN}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": "echo",
    }
    status, found, body = exchange(proxy, "POST", "/fx/mcp", headers, orjson.dumps(call))
    assert status == 200, body
    assert b'"result"' in body and b"hi" in body
    assert found["access-control-allow-origin"] == APP
