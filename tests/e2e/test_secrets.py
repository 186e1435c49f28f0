"""No secret in what mcpmux shows: /_readyz, operator views, logs, errors to clients, serverInfo."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from merged_kit import raw_client
from mini_http import Script, mini_server

from harness import ProxyProcess, fixture_server, running_proxy

pytestmark = pytest.mark.anyio

BOUND_SECONDS = 20
URL_KEY = "url-key-SECRET-1234"
PATH_TOKEN = "pathSECRET5678"
ADMIN = "admin-token-SECRET"
SERVER_TOKEN = "server-token-SECRET"
DISABLED_PATH_TOKEN = "offSECRET9012"
SECRETS = (URL_KEY, PATH_TOKEN, SERVER_TOKEN, DISABLED_PATH_TOKEN)
INIT_PARAMS = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "t", "version": "1"},
}


def refused_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    fetch = fixture_server()
    fetch["options"] = {"authTokens": [ADMIN, SERVER_TOKEN], "pinning": "warn"}
    config = {
        "mcpProxy": {"options": {"authTokens": [ADMIN]}},
        "mcpServers": {
            "amap": {
                "url": f"http://127.0.0.1:{refused_port()}/sse?key={URL_KEY}",
                "options": {"logEnabled": True},
            },
            f"fetch/{PATH_TOKEN}": fetch,
            f"old/{DISABLED_PATH_TOKEN}": {"command": "x", "disabled": True},
        },
    }
    with running_proxy(config, tmp_path_factory.mktemp("secrets")) as running:
        yield running


async def get(proxy: ProxyProcess, path: str, token: str | None = None) -> httpx2.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient() as http:
        return await http.get(proxy.url(path), headers=headers)


def assert_no_secret(text: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, text


async def test_readyz_without_an_operator_token_says_only_ready_or_not(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        anonymous = await get(proxy, "/_readyz")
        operator = await get(proxy, "/_readyz", ADMIN)
    assert anonymous.status_code == operator.status_code == 503
    assert anonymous.json() == {
        "status": "not ready",
        "servers": {"amap": {"ready": False}, "fetch/***": {"ready": True}},
    }
    details = operator.json()["servers"]
    # the upstream's error may name its URL (then redacted: key=***) or only its origin; never the key
    assert details["amap"]["last_error"] and details["fetch/***"]["state"] == "ready"
    assert_no_secret(anonymous.text + operator.text)


async def test_operator_views_show_no_secret_but_the_callers_token(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        status = await get(proxy, "/_status/api", ADMIN)
        metrics = await get(proxy, "/metrics", ADMIN)
        pins = await get(proxy, "/_pins", ADMIN)
        refused = await get(proxy, "/_status/api", SERVER_TOKEN)
    assert status.status_code == metrics.status_code == pins.status_code == 200 and refused.status_code == 401
    assert "fetch/***" in pins.text
    assert_no_secret(status.text + metrics.text + pins.text + refused.text)
    names = [server["name"] for server in status.json()["servers"]]
    assert names == ["amap", "fetch/***", "old/***"]


async def test_errors_to_clients_and_server_info_show_no_secret(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with httpx2.AsyncClient() as http:
            down = await http.post(
                proxy.url("/amap/mcp"),
                json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT_PARAMS},
                headers={"authorization": f"Bearer {ADMIN}"},
            )
        async with raw_client(proxy.url(f"/fetch/{PATH_TOKEN}/mcp"), SERVER_TOKEN) as client:
            info = client.init_result["serverInfo"]
    assert down.status_code == 404 and "'amap' is not connected" in down.text
    assert_no_secret(down.text)
    assert info["name"] == "fetch"


async def test_logs_show_no_secret(proxy: ProxyProcess) -> None:
    proxy.wait_for_line(r"<fetch/\*\*\*> Handling requests at")
    proxy.wait_for_line(r"<old/\*\*\*> Disabled")
    assert "amap failed to connect" in proxy.log
    assert_no_secret(proxy.log)


@pytest.mark.parametrize(("as_json", "length"), [(False, 18), (True, 18), (False, 400)])
async def test_an_upstream_error_quoting_a_configured_header_reaches_the_client_redacted(
    tmp_path: Path, as_json: bool, length: int
) -> None:
    # a long one (an API key that is a JWT) straddled the 200-byte cut: its first part was shown
    header_secret = ("header-SECRET-3141" + "k" * length)[:length]
    script = Script(refuse_calls_echoing="x-api-key", echo_as_json=as_json)  # JSON: verbatim before
    with mini_server(script) as base:
        upstream = {
            "url": f"{base}/mcp",
            "transportType": "streamable-http",
            "headers": {"X-Api-Key": header_secret},
        }
        with (
            running_proxy({"mcpServers": {"docs": upstream}}, tmp_path) as proxy,
            anyio.fail_after(BOUND_SECONDS),
        ):
            async with raw_client(proxy.url("/docs/mcp")) as client:
                refused = await client.request("tools/call", {"name": "echo", "arguments": {"text": "x"}})
    message = refused["error"]["message"]
    assert "bad credentials: ***" in message and header_secret[:16] not in message
    assert header_secret[:16] not in proxy.log
    assert len(message) < 1000  # the upstream's 100 kB body is not relayed whole in an error message


ARG_SECRET = "arg-SECRET-from-the-environment-77"
STATE_KEY = "state-key-SECRET-0123456789abcdef-0123"
ENV_SECRET = "env-SECRET-value-2718"


async def test_debug_logs_show_no_token_state_key_env_value_or_argument_from_the_environment(
    tmp_path: Path,
) -> None:
    """At debug level, with handshake and 2026-07-28 traffic, refused tokens and MRTR round trips."""
    upstream = fixture_server("", "--name", "${MCPMUX_TEST_ARG_SECRET}")
    upstream["env"] = {"SOME_KEY": ENV_SECRET}
    upstream["options"] = {"authTokens": [SERVER_TOKEN]}
    config = {
        "mcpProxy": {
            "options": {"authTokens": [ADMIN]},
            "requestStateKeys": [{"id": "k1", "secret": STATE_KEY}],
        },
        "mcpServers": {"docs": upstream},
    }
    env = {"MCPMUX_TEST_ARG_SECRET": ARG_SECRET}
    modern = {
        "authorization": f"Bearer {SERVER_TOKEN}",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": "ask_sampling",
    }
    envelope = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {"sampling": {}},
    }
    call = {"name": "ask_sampling", "arguments": {"prompt": "p"}, "_meta": envelope}
    with (
        running_proxy(config, tmp_path, extra_args=("--log-level", "debug"), env=env) as proxy,
        anyio.fail_after(BOUND_SECONDS),
    ):
        async with raw_client(proxy.url("/docs/mcp"), SERVER_TOKEN) as client:
            await client.request("tools/list")
        async with httpx2.AsyncClient(timeout=BOUND_SECONDS) as http:
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call}
            asked = (await http.post(proxy.url("/docs/mcp"), json=body, headers=modern)).json()["result"]
            ((key, _),) = asked["inputRequests"].items()
            sampled = {"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": "m"}
            retry = {**call, "inputResponses": {key: sampled}, "requestState": asked["requestState"]}
            done = await http.post(proxy.url("/docs/mcp"), json={**body, "params": retry}, headers=modern)
            assert done.json()["result"]["resultType"] == "complete", done.text
            wrong = {**modern, "authorization": f"Bearer {SERVER_TOKEN}x"}
            assert (await http.post(proxy.url("/docs/mcp"), json=body, headers=wrong)).status_code == 401
    assert "started pid" in proxy.log  # debug lines were written
    for secret in (ARG_SECRET, STATE_KEY, ENV_SECRET, SERVER_TOKEN, ADMIN):
        assert secret not in proxy.log, secret


async def test_a_2026_discover_and_errors_show_no_secret(proxy: ProxyProcess) -> None:
    envelope = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    headers = {
        "authorization": f"Bearer {SERVER_TOKEN}",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
    }
    with anyio.fail_after(BOUND_SECONDS):
        async with httpx2.AsyncClient(timeout=BOUND_SECONDS) as http:
            url = proxy.url(f"/fetch/{PATH_TOKEN}/mcp")
            replies = [
                await http.post(
                    url,
                    json={
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": method,
                        "params": {"_meta": envelope, **params},
                    },
                    headers={**headers, "mcp-method": method, **extra},
                )
                for method, params, extra in (
                    ("server/discover", {}, {}),
                    ("tools/call", {"name": "nope", "arguments": {}}, {"mcp-name": "nope"}),
                    ("tools/call", {"name": "nope", "arguments": {}}, {"mcp-name": "other"}),
                    ("resources/read", {"uri": "test://missing"}, {"mcp-name": "test://missing"}),
                )
            ]
            down = await http.post(
                proxy.url("/amap/mcp"),
                json={"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": envelope}},
                headers={**headers, "authorization": f"Bearer {ADMIN}", "mcp-method": "tools/list"},
            )
    assert replies[0].status_code == 200 and replies[0].json()["result"]["_meta"], replies[0].text
    for reply in [*replies, down]:
        assert_no_secret(reply.text)
