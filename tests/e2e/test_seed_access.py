"""The seed README's example config (local stand-ins): per token, what each route and /mcp expose."""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from merged_kit import auth_status, raw_client, raw_tool_names
from relay_kit import running_http_fixture

from harness import ROOT, ProxyProcess, mcp_client, running_proxy

pytestmark = pytest.mark.anyio

BOUND_SECONDS = 30
NAMED_TOOLS = ROOT / "tests" / "fixtures" / "named_tools_server.py"
GITHUB_TOOLS = ("create_issue", "get_issue", "create_or_update_file")
FETCH_TOOLS = ("fetch",)
AMAP_KEY = "amap-secret-key-1234"
TOKENS = ("DefaultTokens", "SpecificTokens", "WrongToken", None)
# The seed README's example (mcp-proxy-README.md), verbatim but for the commands and the amap URL.
SEED_CONFIG: dict[str, Any] = {
    "mcpProxy": {
        "name": "MCP Proxy",
        "version": "1.0.0",
        "type": "streamable-http",
        "options": {"panicIfInvalid": False, "logEnabled": True, "authTokens": ["DefaultTokens"]},
    },
    "mcpServers": {
        "github": {
            "command": sys.executable,
            "args": [str(NAMED_TOOLS), *GITHUB_TOOLS],
            "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "<YOUR_TOKEN>"},
            "options": {"toolFilter": {"mode": "block", "list": ["create_or_update_file"]}},
        },
        "fetch": {
            "command": sys.executable,
            "args": [str(NAMED_TOOLS), *FETCH_TOOLS],
            "options": {"panicIfInvalid": True, "logEnabled": False, "authTokens": ["SpecificTokens"]},
        },
        "amap": {"url": "<set by the fixture>"},
    },
}


def seed_config(amap_url: str) -> dict[str, Any]:
    config = copy.deepcopy(SEED_CONFIG)
    config["mcpServers"]["amap"]["url"] = f"{amap_url}?key={AMAP_KEY}"
    return config


@pytest.fixture(scope="module")
def amap_url() -> Iterator[str]:
    with running_http_fixture("sse", "--tools-only") as amap:
        yield amap.url


@pytest.fixture(scope="module")
def amap_tools(amap_url: str) -> set[str]:
    async def listing() -> set[str]:
        async with mcp_client(amap_url, transport="sse") as session:
            return {tool.name for tool in (await session.list_tools()).tools}

    return anyio.run(listing)


@pytest.fixture(scope="module")
def proxy(amap_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    with running_proxy(seed_config(amap_url), tmp_path_factory.mktemp("seed")) as running:
        yield running


async def exposed(proxy: ProxyProcess, path: str, token: str | None) -> int | set[str]:
    """401 (or another refusal status), or the set of tool names `token` sees on `path`."""
    status = await auth_status(proxy.url(path), token)
    if status == 401:
        return status
    async with raw_client(proxy.url(path), token) as client:
        return await raw_tool_names(client)


async def exposure(
    proxy: ProxyProcess, paths: tuple[str, ...]
) -> dict[tuple[str, str | None], int | set[str]]:
    with anyio.fail_after(BOUND_SECONDS):
        return {(path, token): await exposed(proxy, path, token) for path in paths for token in TOKENS}


async def test_the_seed_example_exposes_per_token_exactly_what_its_routes_allow(
    proxy: ProxyProcess, amap_tools: set[str]
) -> None:
    github = {"create_issue", "get_issue"}  # create_or_update_file is blocked
    amap = set(amap_tools)
    assert amap, "the amap stand-in lists tools"
    expected: dict[tuple[str, str | None], int | set[str]] = {
        ("/github/mcp", "DefaultTokens"): github,
        ("/fetch/mcp", "SpecificTokens"): {"fetch"},
        ("/amap/mcp", "DefaultTokens"): amap,
        # /mcp has the default tokens; fetch (SpecificTokens only) is not merged for them
        ("/mcp", "DefaultTokens"): {f"github__{t}" for t in github} | {f"amap__{t}" for t in amap},
    }
    paths = ("/github/mcp", "/fetch/mcp", "/amap/mcp", "/mcp")
    actual = await exposure(proxy, paths)
    assert actual == {key: expected.get(key, 401) for key in actual}


async def test_the_merged_endpoint_refuses_calls_to_a_server_the_token_may_not_use(
    proxy: ProxyProcess,
) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_client(proxy.url("/mcp"), "DefaultTokens") as client:
            refused = await client.request("tools/call", {"name": "fetch__fetch", "arguments": {"url": "x"}})
            unknown = await client.request("tools/call", {"name": "nope__nothing", "arguments": {}})
            allowed = await client.result("tools/call", {"name": "github__get_issue", "arguments": {"n": 1}})
    assert refused["error"]["message"] == unknown["error"]["message"].replace("nope__nothing", "fetch__fetch")
    assert refused["error"]["code"] == unknown["error"]["code"]
    assert '"tool": "get_issue"' in allowed["content"][0]["text"]


async def test_merged_tokens_that_name_a_server_token_reach_only_that_server(
    amap_url: str, tmp_path: Path
) -> None:
    config = seed_config(amap_url)
    config["mcpProxy"]["merged"] = {"authTokens": ["DefaultTokens", "SpecificTokens"]}
    with running_proxy(config, tmp_path) as proxy:
        actual = await exposure(proxy, ("/mcp",))
    assert actual[("/mcp", "SpecificTokens")] == {"fetch__fetch"}
    assert actual[("/mcp", "WrongToken")] == actual[("/mcp", None)] == 401
    default = actual[("/mcp", "DefaultTokens")]
    assert isinstance(default, set) and default and not any(n.startswith("fetch__") for n in default)
