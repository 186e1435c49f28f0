"""2026-07-28 clients without a token (a route with auth off) share one carrier session; its places
(listen streams, suspended calls) are counted per client address, so one client cannot take them all
from the others, while all of them together stay bounded (relay/shares.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import httpx2
import orjson
import pytest

from harness import ProxyProcess, fixture_server, running_proxy

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
}
HEADERS = {
    "accept": "application/json, text/event-stream",
    "content-type": "application/json",
    "mcp-protocol-version": MODERN,
    "mcp-method": "subscriptions/listen",
}
BOUND_SECONDS = 60
PER_ADDRESS = 64


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    config = {"mcpServers": {"open": fixture_server("", "--name", "open-upstream")}}  # no auth anywhere
    with running_proxy(config, tmp_path_factory.mktemp("anonymous2026")) as p:
        yield p


@asynccontextmanager
async def client_from(address: str) -> AsyncIterator[httpx2.AsyncClient]:
    """An HTTP client whose connections come from `address` (another loopback address: another client)."""
    transport = httpx2.AsyncHTTPTransport(local_address=address, limits=httpx2.Limits(max_connections=100))
    async with httpx2.AsyncClient(timeout=BOUND_SECONDS, transport=transport) as client:
        yield client


async def listen(http: httpx2.AsyncClient, url: str, stack: AsyncExitStack, sub: int) -> httpx2.Response:
    params = {"notifications": {"toolsListChanged": True}, "_meta": ENVELOPE}
    body = {"jsonrpc": "2.0", "id": sub, "method": "subscriptions/listen", "params": params}
    stream = http.stream("POST", url, content=orjson.dumps(body), headers=HEADERS)
    return await stack.enter_async_context(stream)


async def test_one_anonymous_client_cannot_take_every_listen_stream(proxy: ProxyProcess) -> None:
    url = proxy.url("/open/mcp")
    with anyio.fail_after(BOUND_SECONDS * 2):
        async with (
            client_from("127.0.0.1") as greedy,
            client_from("127.0.0.2") as other,
            AsyncExitStack() as stack,
        ):
            for sub in range(PER_ADDRESS):
                assert (await listen(greedy, url, stack, sub)).status_code == 200
            refused = await listen(greedy, url, stack, PER_ADDRESS)
            assert refused.status_code == 400
            assert "per client address without a token" in (await refused.aread()).decode()
            served = await listen(other, url, stack, 1)  # was refused: one share for all anonymous clients
            assert served.status_code == 200
            first = await served.aiter_lines().__anext__()
            assert first.startswith("data:") or first.startswith("event:") or first.startswith("id:"), first
    assert proxy.process.poll() is None
    assert "Traceback" not in proxy.log
