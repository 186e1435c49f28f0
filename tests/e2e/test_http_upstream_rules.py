"""Rules of the HTTP upstream client: redirects stay in the origin, a 404 GET stream is no loop."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from fault_kit import wait_until
from mini_http import Script, mini_server

from harness import mcp_client, running_proxy

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-upstream-header"
BOUND_SECONDS = 30


def http_server(url: str) -> dict[str, object]:
    return {
        "url": url,
        "transportType": "streamable-http",
        "headers": {"X-Upstream-Secret": SECRET},
        "options": {"restart": {"initialDelay": "50ms", "maxDelay": "200ms", "jitter": 0}},
    }


async def test_a_redirect_to_another_origin_is_refused_before_anything_reaches_it(tmp_path: Path) -> None:
    elsewhere, home = Script(), Script()
    with mini_server(elsewhere) as other_url, mini_server(home) as home_url:
        home.redirects["/mcp"] = f"{other_url}/mcp"
        config = {"mcpServers": {"web": http_server(f"{home_url}/mcp")}}
        with running_proxy(config, tmp_path, wait=False) as proxy:
            proxy.wait_for_line(r"refused to follow a redirect", 20)
            wait_until(lambda: home.count(lambda seen: seen.method == "POST") >= 2, "a retry")
        assert home.count(lambda seen: seen.headers.get("x-upstream-secret") == SECRET) >= 1
        assert elsewhere.seen == []  # neither the secret header nor the initialize body went there
        assert SECRET not in proxy.log


async def test_a_same_origin_redirect_is_followed_with_the_configured_headers(tmp_path: Path) -> None:
    script = Script()
    with mini_server(script) as url:
        script.redirects["/old"] = "/mcp"
        with (
            running_proxy({"mcpServers": {"web": http_server(f"{url}/old")}}, tmp_path) as proxy,
            anyio.fail_after(BOUND_SECONDS),
        ):
            async with mcp_client(proxy.url("/web/mcp")) as client:
                result = await client.call_tool("echo", {"text": "moved"})
                assert result.content[0].text == "moved"
        posts = [seen for seen in script.seen if seen.method == "POST" and seen.path == "/mcp"]
        assert posts and all(seen.headers.get("x-upstream-secret") == SECRET for seen in posts)


@pytest.mark.parametrize("status", [404, 405])
async def test_an_upstream_without_a_get_stream_is_initialized_once_not_in_a_loop(
    tmp_path: Path, status: int
) -> None:
    script = Script(get_status=status)
    with mini_server(script) as url:
        with (
            running_proxy({"mcpServers": {"web": http_server(f"{url}/mcp")}}, tmp_path),
            anyio.fail_after(BOUND_SECONDS),
        ):
            wait_until(lambda: script.count(lambda seen: seen.method == "GET") >= 1, "the GET stream")
            # the old code re-initialized at once after each 404 GET, ~10 times a second, forever
            for _ in range(30):  # watch 1.5 s for a second initialize
                if script.initializes() > 1:
                    break
                await anyio.sleep(0.05)
            assert script.initializes() == 1
            assert script.count(lambda seen: seen.method == "GET") == 1


def discovers(script: Script) -> int:
    return script.count(lambda seen: b'"server/discover"' in seen.body)


async def test_the_auto_era_probe_is_kept_by_the_runtime_and_remembered_for_the_same_upstream(
    tmp_path: Path,
) -> None:
    script = Script()  # answers server/discover without supportedVersions: the handshake era
    with mini_server(script) as url:
        server = http_server(f"{url}/mcp")
        server["options"] = {"protocol": "auto", "sessionMode": "isolated"}
        with (
            running_proxy({"mcpServers": {"web": server}}, tmp_path) as proxy,
            anyio.fail_after(BOUND_SECONDS),
        ):
            for text in ("one", "two"):  # each client gets its own upstream connection
                async with mcp_client(proxy.url("/web/mcp")) as client:
                    assert (await client.call_tool("echo", {"text": text})).content[0].text == text
            assert discovers(script) == 1 and script.initializes() == 3  # the primary and two isolated
            start = len(proxy.lines)
            config = json.loads(proxy.config_path.read_text())
            config["mcpServers"]["web"]["headers"] = {"X-Upstream-Secret": "changed"}  # a new runtime
            proxy.config_path.write_text(json.dumps(config))
            proxy.wait_for_line(r"Reloaded config from", 20, start=start)
            # the same upstream (headers are not its identity): the remembered era, no new probe
            proxy.wait_for_line(r"web: the upstream speaks the handshake era \(remembered\)", 20, start=start)
            async with mcp_client(proxy.url("/web/mcp")) as client:
                assert (await client.call_tool("echo", {"text": "three"})).content[0].text == "three"
            assert discovers(script) == 1
        assert sum(line.endswith("web: the upstream speaks the handshake era") for line in proxy.lines) == 1
