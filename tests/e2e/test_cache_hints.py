"""A 2026-07-28 upstream's cache hints (`ttlMs`, `cacheScope`) reach 2026 clients as far as they are safe.

Upstreams: the everything fixture spoken to in the 2026 era, telling `server/discover` and `tools/list`
public and `resources/list` private with a ttl (60 s, or 5 s for "brief" and "lazy"), and a 2025-only one
(no hints at all).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx2
import orjson
import pytest
from mcp.client import Client
from mcp.shared.subscriptions import ToolsListChanged
from relay_kit import ACCEPT_BOTH, BOUND_SECONDS, messages_of, raw_http, relay_proxy

from harness import ProxyProcess
from mcpmux.protocol.cache import HANDSHAKE_DISCOVER_HINT

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
TOKEN = "era2-cache-hints-token-0123456789"
LAZY = "era2-cache-hints-lazy-0123456789"  # only this token reaches "lazy": nothing else starts it
OPERATOR = "era2-cache-hints-operator-0123456789"
HINTED = ("--cache-ttl-ms", "60000")
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "cache-test", "version": "1"},
}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    modern = {"protocol": MODERN, "sessionMode": "shared"}
    routes = {
        "hinted": ("streamable-http", HINTED, modern),
        "brief": ("streamable-http", ("--cache-ttl-ms", "5000"), modern),
        "guarded": ("streamable-http", HINTED, {**modern, "authTokens": [TOKEN]}),
        "old": ("streamable-http", ("--handshake-only",), {"protocol": "auto"}),
        "lazy": (
            "streamable-http",
            ("--cache-ttl-ms", "5000"),
            {**modern, "lazyStart": True, "authTokens": [LAZY]},
        ),
    }
    groups = {
        "pair": {"servers": ["hinted", "brief"]},
        "mixed": {"servers": ["hinted", "old"]},
        "late": {"servers": ["hinted", "lazy"]},
    }
    operator = {"operatorTokens": [OPERATOR]}
    with relay_proxy(
        tmp_path_factory.mktemp("cache"), routes, groups=groups, proxy_options=operator
    ) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=BOUND_SECONDS) as client:
        yield client


async def modern_result(
    http: httpx2.AsyncClient, url: str, method: str, params: dict[str, Any] | None = None, token: str = ""
) -> dict[str, Any]:
    """The result of one 2026-07-28 request (raw, as the wire has it)."""
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": {**(params or {}), "_meta": ENVELOPE}}
    headers = {
        "accept": ACCEPT_BOTH,
        "content-type": "application/json",
        "mcp-protocol-version": MODERN,
        "mcp-method": method,
    }
    if method == "tools/call":
        headers["mcp-name"] = str((params or {}).get("name"))
    if token:
        headers["authorization"] = f"Bearer {token}"
    reply = await http.post(url, content=orjson.dumps(body), headers=headers)
    assert reply.status_code == 200, reply.text
    (answer,) = [m for m in messages_of(reply) if m.get("id") == 7]
    assert "result" in answer, answer
    result: dict[str, Any] = answer["result"]
    return result


def hints(result: dict[str, Any]) -> tuple[Any, Any]:
    assert "dev.mcpmux/cacheHint" not in (result.get("_meta") or {}), result.get("_meta")
    return result.get("ttlMs"), result.get("cacheScope")


async def test_a_route_passes_the_upstreams_hints_on(proxy: ProxyProcess, http: httpx2.AsyncClient) -> None:
    url = proxy.url("/hinted/mcp")
    assert hints(await modern_result(http, url, "tools/list")) == (60000, "public")
    assert hints(await modern_result(http, url, "resources/list")) == (60000, "private")
    called = await modern_result(http, url, "tools/call", {"name": "echo", "arguments": {"text": "x"}})
    assert hints(called) == (None, None)


async def test_a_token_makes_public_hints_private(proxy: ProxyProcess, http: httpx2.AsyncClient) -> None:
    url = proxy.url("/guarded/mcp")
    assert hints(await modern_result(http, url, "tools/list", token=TOKEN)) == (60000, "private")
    assert hints(await modern_result(http, url, "resources/list", token=TOKEN)) == (60000, "private")


async def test_a_merged_list_takes_the_shortest_ttl_and_the_most_private_scope(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    url = proxy.url("/pair/mcp")
    assert hints(await modern_result(http, url, "tools/list")) == (5000, "public")
    assert hints(await modern_result(http, url, "resources/list")) == (5000, "private")


async def test_a_merged_list_with_an_unhinted_member_is_not_cacheable(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    url = proxy.url("/mixed/mcp")
    assert hints(await modern_result(http, url, "tools/list")) == (0, "private")


@pytest.mark.parametrize("path", ["/hinted/mcp", "/pair/mcp", "/mcp"])
async def test_a_2025_client_gets_no_2026_hints_and_no_internal_key(proxy: ProxyProcess, path: str) -> None:
    """Not in the result, nor mcpmux's own `_meta` key (on a route, a group, the merged endpoint)."""
    async with raw_http(proxy.url(path)) as client:
        assert not [k for k in client.init_result.get("_meta") or {} if k.startswith("dev.mcpmux/")]
        for method in ("tools/list", "resources/list"):
            listed = await client.result(method)
            assert not {"resultType", "ttlMs", "cacheScope"} & set(listed), listed
            assert not [k for k in listed.get("_meta") or {} if k.startswith("dev.mcpmux/")], listed


async def test_the_sdk_legacy_client_sees_no_internal_key(proxy: ProxyProcess) -> None:
    async with Client(proxy.url("/hinted/mcp"), mode="legacy") as client:
        listed = await client.list_tools()
    assert "dev.mcpmux/cacheHint" not in (listed.meta or {}), listed.meta


def listed_so_far(proxy: ProxyProcess, route: str) -> float:
    """How many tools/list requests the route answered (from /metrics)."""
    auth = {"authorization": f"Bearer {OPERATOR}"}
    metrics = httpx2.get(proxy.url("/metrics"), headers=auth, timeout=BOUND_SECONDS)
    assert metrics.status_code == 200, metrics.text
    pattern = rf'^mcpmux_requests_total\{{method="tools/list",route="{route}",[^}}]*\}} (\S+)$'
    counts = [float(m.group(1)) for m in re.finditer(pattern, metrics.text, re.MULTILINE)]
    return sum(counts)


async def test_the_sdk_client_honours_the_hints_it_gets_through_mcpmux(proxy: ProxyProcess) -> None:
    """The SDK's 2026 `Client` caches what it is told it may: a second listing within the ttl is not asked."""
    before = listed_so_far(proxy, "hinted")
    async with Client(proxy.url("/hinted/mcp"), mode=MODERN) as client:
        first = await client.list_tools()
        again = await client.list_tools()
    assert [t.name for t in first.tools] == [t.name for t in again.tools]
    assert listed_so_far(proxy, "hinted") == before + 1


async def test_discover_on_a_route_carries_the_upstreams_own_discover_hint(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    assert hints(await modern_result(http, proxy.url("/hinted/mcp"), "server/discover")) == (60000, "public")
    assert hints(await modern_result(http, proxy.url("/brief/mcp"), "server/discover")) == (5000, "public")


async def test_discover_of_a_handshake_era_upstream_gets_a_bounded_default(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    """Its description changes only with a restart or reload: a minute, public without a token."""
    assert HANDSHAKE_DISCOVER_HINT == (60000, "public")
    assert (
        hints(await modern_result(http, proxy.url("/old/mcp"), "server/discover")) == HANDSHAKE_DISCOVER_HINT
    )


async def test_discover_with_a_token_is_never_public(proxy: ProxyProcess, http: httpx2.AsyncClient) -> None:
    discovered = await modern_result(http, proxy.url("/guarded/mcp"), "server/discover", token=TOKEN)
    assert hints(discovered) == (60000, "private")


async def test_discover_on_a_group_takes_the_shortest_ttl_and_the_most_private_scope(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    assert hints(await modern_result(http, proxy.url("/pair/mcp"), "server/discover")) == (5000, "public")
    assert hints(await modern_result(http, proxy.url("/mixed/mcp"), "server/discover")) == (60000, "public")


async def test_discover_on_the_merged_endpoint_with_a_token_is_private(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    discovered = await modern_result(http, proxy.url("/mcp"), "server/discover", token=TOKEN)
    ttl, scope = hints(discovered)
    assert scope == "private" and ttl == 5000, discovered  # the shortest: "brief"'s


async def test_discover_with_a_member_not_started_yet_is_not_cacheable(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    """A lazyStart member starts on the first discover: what it will say is not known yet, so that answer
    is 0/private; once it is up, its hint counts like any other."""
    url = proxy.url("/late/mcp")
    assert hints(await modern_result(http, url, "server/discover", token=LAZY)) == (0, "private")
    for _ in range(200):  # bounded: the member comes up (a connect, a discover) within a few seconds
        discovered = hints(await modern_result(http, url, "server/discover", token=LAZY))
        if discovered != (0, "private"):
            break
        await anyio.sleep(0.05)
    assert discovered == (5000, "private")


async def test_the_sdk_client_sees_the_discover_hint(proxy: ProxyProcess) -> None:
    async with Client(proxy.url("/brief/mcp"), mode="auto") as client:
        discovered = client.session.discover_result
    assert discovered is not None
    assert (discovered.ttl_ms, discovered.cache_scope) == (5000, "public")


async def test_a_list_change_is_not_masked_by_a_long_ttl(proxy: ProxyProcess) -> None:
    """tools/list may be cached for a minute, but the upstream's list_changed reaches the client's listen
    stream, the SDK's `Client` drops its cached list, and the next listing asks again and sees the change."""
    before = listed_so_far(proxy, "hinted")
    with anyio.fail_after(BOUND_SECONDS):
        async with (
            Client(proxy.url("/hinted/mcp"), mode=MODERN) as client,
            client.listen(tools_list_changed=True) as subscription,
        ):
            first = await client.list_tools()
            assert [t.name for t in (await client.list_tools()).tools] == [t.name for t in first.tools]
            await client.call_tool("notify_list_changed", {"kind": "tools"})
            async for event in subscription:
                if isinstance(event, ToolsListChanged):
                    break
            again = await client.list_tools()
    assert "dynamic_tool" not in {t.name for t in first.tools}
    assert "dynamic_tool" in {t.name for t in again.tools}
    assert listed_so_far(proxy, "hinted") == before + 2  # the second listing came from the cache
