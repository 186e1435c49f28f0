"""Host and Origin: DNS-rebinding protection on loopback, containers and probes elsewhere; RFC 9112 400s."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest

from harness import ProxyProcess, fixture_server, running_proxy

pytestmark = pytest.mark.anyio

BOUND_SECONDS = 20
CLIENT = {"name": "t", "version": "1"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize"}
INIT["params"] = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": CLIENT}
ACCEPT = "application/json, text/event-stream"


@pytest.fixture(scope="module")
def everywhere(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    """Configured as in a container: `addr` on all interfaces, no baseURL."""
    config = {"mcpProxy": {"addr": ":9090", "baseURL": ""}, "mcpServers": {"fx": fixture_server()}}
    with running_proxy(config, tmp_path_factory.mktemp("everywhere")) as running:
        yield running


async def post(proxy: ProxyProcess, path: str, **headers: str) -> int:
    async with httpx2.AsyncClient() as http:
        response = await http.post(proxy.url(path), json=INIT, headers={"accept": ACCEPT, **headers})
        return response.status_code


def raw_status(proxy: ProxyProcess, request: bytes) -> int:
    """The status code a hand-written request gets (httpx always sends exactly one Host)."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=BOUND_SECONDS) as sock:
        sock.sendall(request)
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])


async def test_without_base_url_a_non_loopback_listener_takes_any_host_and_probes(
    everywhere: ProxyProcess,
) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        lan = await post(everywhere, "/fx/mcp", host="myserver.lan:9090")
        async with httpx2.AsyncClient() as http:
            probe = await http.get(everywhere.url("/_readyz"), headers={"host": "10.1.2.3:9090"})
    assert lan == 200
    assert probe.status_code == 200 and probe.json()["status"] == "ready"


async def test_cross_site_browser_origins_are_still_refused(everywhere: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        same_site = await post(
            everywhere, "/fx/mcp", host="myserver.lan:9090", origin="http://myserver.lan:9090"
        )
        cross_site = await post(everywhere, "/fx/mcp", host="myserver.lan:9090", origin="http://evil.example")
        other_port = await post(
            everywhere, "/fx/mcp", host="myserver.lan:9090", origin="http://myserver.lan:8080"
        )
    assert (same_site, cross_site, other_port) == (200, 403, 403)


async def test_a_loopback_listener_keeps_dns_rebinding_protection(tmp_path: Path) -> None:
    with running_proxy({"mcpServers": {"fx": fixture_server()}}, tmp_path) as proxy:
        with anyio.fail_after(BOUND_SECONDS):
            rebound = await post(proxy, "/fx/mcp", host="myserver.lan:9090")
            local = await post(proxy, "/fx/mcp", host=f"127.0.0.1:{proxy.port}")
    assert (rebound, local) == (403, 200)


def test_a_request_without_host_or_with_two_gets_400(everywhere: ProxyProcess) -> None:
    body = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
    common = b"Content-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n" % len(body)
    no_host = b"POST /fx/mcp HTTP/1.1\r\n" + common + b"\r\n" + body
    two_hosts = b"POST /fx/mcp HTTP/1.1\r\nHost: a.lan\r\nHost: b.lan\r\n" + common + b"\r\n" + body
    http10 = b"GET /_healthz HTTP/1.0\r\n\r\n"  # HTTP/1.0 may omit Host
    statuses = [raw_status(everywhere, request) for request in (no_host, two_hosts, http10)]
    assert statuses == [400, 400, 200]
