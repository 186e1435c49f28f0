"""The upstream HTTP client against real local servers: TLS with a generated CA, proxies from the
environment, connect and request timeouts, keep-alive connection reuse."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from mini_http import Script, mini_server
from net_kit import generated_pki, http_proxy, silent_listener

from harness import mcp_client, running_proxy
from mcpmux.upstream.http_client import HttpPool
from mcpmux.upstream.http_post import Posted

pytestmark = pytest.mark.anyio

BOUND_SECONDS = 30
NO_PROXY_ENV = {"HTTP_PROXY": "", "HTTPS_PROXY": "", "NO_PROXY": ""}  # (an empty lower-case one would win)


def server_entry(url: str, **options: Any) -> dict[str, Any]:
    restart = {"initialDelay": "50ms", "maxDelay": "200ms", "jitter": 0}
    return {"url": url, "transportType": "streamable-http", "options": {"restart": restart, **options}}


async def echo_through(proxy_url: str, text: str = "hi") -> str:
    async with mcp_client(proxy_url) as client:
        result = await client.call_tool("echo", {"text": text})
        return str(result.content[0].text)


async def test_tls_to_a_server_whose_ca_is_trusted_via_ssl_cert_file(tmp_path: Path) -> None:
    pki = generated_pki(tmp_path)
    script = Script()
    with mini_server(script, tls=pki.server) as url:
        env = {**NO_PROXY_ENV, "SSL_CERT_FILE": str(pki.ca_file)}
        config = {"mcpServers": {"secure": server_entry(f"{url}/mcp")}}
        with running_proxy(config, tmp_path, env=env) as proxy, anyio.fail_after(BOUND_SECONDS):
            assert await echo_through(proxy.url("/secure/mcp"), "over tls") == "over tls"
    assert url.startswith("https://") and script.count(lambda seen: b"over tls" in seen.body) == 1


async def test_tls_to_a_server_with_an_unknown_ca_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    pki = generated_pki(tmp_path)
    script = Script()
    with mini_server(script, tls=pki.server) as url:
        config = {"mcpServers": {"secure": server_entry(f"{url}/mcp")}}
        with running_proxy(config, tmp_path, env=NO_PROXY_ENV, wait=False) as proxy:
            line = proxy.wait_for_line(r"secure.*TLS failed", 20)
    assert "CERTIFICATE_VERIFY_FAILED" in line
    assert script.seen == []  # nothing was sent over an unverified connection


async def test_http_proxy_env_var_is_honoured_for_a_plain_http_upstream(tmp_path: Path) -> None:
    script = Script()
    with mini_server(script) as url, http_proxy() as (proxy_url, proxy_log):
        env = {**NO_PROXY_ENV, "HTTP_PROXY": proxy_url}
        config = {"mcpServers": {"web": server_entry(f"{url}/mcp")}}
        with running_proxy(config, tmp_path, env=env) as proxy, anyio.fail_after(BOUND_SECONDS):
            assert await echo_through(proxy.url("/web/mcp"), "proxied") == "proxied"
    assert f"POST {url}/mcp" in proxy_log.seen()  # absolute-form request through the forward proxy


async def test_https_proxy_env_var_tunnels_tls_with_connect(tmp_path: Path) -> None:
    pki = generated_pki(tmp_path)
    script = Script()
    with mini_server(script, tls=pki.server) as url, http_proxy() as (proxy_url, proxy_log):
        env = {**NO_PROXY_ENV, "HTTPS_PROXY": proxy_url, "SSL_CERT_FILE": str(pki.ca_file)}
        config = {"mcpServers": {"secure": server_entry(f"{url}/mcp")}}
        with running_proxy(config, tmp_path, env=env) as proxy, anyio.fail_after(BOUND_SECONDS):
            assert await echo_through(proxy.url("/secure/mcp"), "tunnelled") == "tunnelled"
    authority = url.removeprefix("https://")
    assert f"CONNECT {authority}" in proxy_log.seen()


async def test_no_proxy_sends_the_upstream_direct(tmp_path: Path) -> None:
    script = Script()
    with mini_server(script) as url, http_proxy() as (proxy_url, proxy_log):
        env = {**NO_PROXY_ENV, "HTTP_PROXY": proxy_url, "NO_PROXY": "127.0.0.1"}
        config = {"mcpServers": {"web": server_entry(f"{url}/mcp")}}
        with running_proxy(config, tmp_path, env=env) as proxy, anyio.fail_after(BOUND_SECONDS):
            assert await echo_through(proxy.url("/web/mcp")) == "hi"
    assert proxy_log.seen() == []


async def test_an_upstream_that_never_completes_the_tls_handshake_fails_after_the_connect_timeout(
    tmp_path: Path,
) -> None:
    with silent_listener() as port:
        config = {"mcpServers": {"mute": server_entry(f"https://127.0.0.1:{port}/mcp", connectTimeout="1s")}}
        with running_proxy(config, tmp_path, env=NO_PROXY_ENV) as proxy:  # ready: it did not hang
            proxy.wait_for_line(r"mute failed to connect: .*connect timeout \(1s\)", 20)


async def test_a_hung_http_upstream_request_times_out_and_the_next_call_works(tmp_path: Path) -> None:
    script = Script(hold=threading.Event())
    with mini_server(script) as url:
        entry = {**server_entry(f"{url}/mcp"), "timeout": "1s"}
        with (
            running_proxy({"mcpServers": {"web": entry}}, tmp_path, env=NO_PROXY_ENV) as proxy,
            anyio.fail_after(BOUND_SECONDS),
        ):
            async with mcp_client(proxy.url("/web/mcp")) as client:
                with pytest.raises(MCPError, match="web: request timed out after 1s"):
                    await client.call_tool("echo", {"text": "never"})
                script.hold.set()  # type: ignore[union-attr]
                result = await client.call_tool("echo", {"text": "after"})
                assert result.content[0].text == "after"


async def test_sequential_calls_reuse_one_keep_alive_connection(tmp_path: Path) -> None:
    script = Script()
    with mini_server(script) as url:
        config = {"mcpServers": {"web": server_entry(f"{url}/mcp")}}
        with running_proxy(config, tmp_path, env=NO_PROXY_ENV) as proxy, anyio.fail_after(BOUND_SECONDS):
            async with mcp_client(proxy.url("/web/mcp")) as client:
                for n in range(20):
                    result = await client.call_tool("echo", {"text": f"call {n}"})
                    assert result.content[0].text == f"call {n}"
    posts = script.count(lambda seen: seen.method == "POST")
    assert posts >= 22  # initialize, initialized, tools/list, 20 calls
    assert script.connections("POST") <= 2  # one keep-alive connection (two if one overlapped)


class AnswersOncePerConnection(asyncio.Protocol):
    """Answers the first request of a connection; at the second it closes without a word (as a server
    does when its keep-alive timer fires just as the request arrives)."""

    def __init__(self, served: list[int]) -> None:
        self.served = served
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.requests += 1
        if self.requests > 1:
            self.transport.close()
            return
        self.served.append(id(self))
        body = b'{"jsonrpc":"2.0","id":1,"result":{}}'
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
        self.transport.write(head + body)  # type: ignore[attr-defined]


async def test_a_request_on_a_reused_connection_the_server_dropped_is_sent_once_more_on_a_fresh_one() -> None:
    served: list[int] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: AnswersOncePerConnection(served), "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/mcp"
    try:
        async with anyio.create_task_group() as tg:
            pool = HttpPool(url, {}, 5.0, tg.start_soon)
            with anyio.fail_after(BOUND_SECONDS):
                for _ in range(3):
                    answer = Posted(loop.create_future())
                    await pool.request(b"POST", url, b"content-type: application/json\r\n", b"{}", answer)
                    assert answer.done is not None
                    await answer.done
                    assert answer.status == 200 and b'"result"' in answer.body()
            pool.close()
    finally:
        server.close()
    assert len(served) == 3  # each request answered once, each on its own (fresh) connection


class EarlyHints(asyncio.Protocol):
    """Answers every request with a 103 Early Hints first, then the response."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        body = b'{"jsonrpc":"2.0","id":1,"result":{}}'
        hints = b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
        self.transport.write(hints + head + body)  # type: ignore[attr-defined]


async def test_an_interim_1xx_response_is_skipped_and_the_final_one_delivered() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EarlyHints, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/mcp"
    try:
        async with anyio.create_task_group() as tg:
            pool = HttpPool(url, {}, 5.0, tg.start_soon)
            with anyio.fail_after(BOUND_SECONDS):
                for _ in range(2):  # the second on the same keep-alive connection
                    answer = Posted(loop.create_future())
                    await pool.request(b"POST", url, b"", b"{}", answer)
                    assert answer.done is not None
                    await answer.done
                    assert answer.status == 200 and b"link" not in answer.headers
                    assert answer.body() == b'{"jsonrpc":"2.0","id":1,"result":{}}'
            assert len(pool.idle) == 1
            pool.close()
    finally:
        server.close()
