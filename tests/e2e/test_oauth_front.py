"""OAuth front end to end: mcpmux as a resource server for a local authorization server's real JWTs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest
from merged_kit import colliding_server, raw_client, raw_tool_names

from harness import ProxyProcess, running_proxy
from oauth_as import AuthServer, running_auth_server

pytestmark = pytest.mark.anyio

BOUND = 30
WELL_KNOWN = "/.well-known/oauth-protected-resource"
SCOPES = {
    "mcp:a": {"servers": ["a"]},
    "mcp:b-who": {"servers": ["b"], "toolFilter": {"mode": "allow", "list": ["b__who*"]}},
    "mcp:all": {},
}


@pytest.fixture(scope="module")
def auth() -> Iterator[AuthServer]:
    with running_auth_server() as server:
        yield server


@pytest.fixture(scope="module")
def proxy(auth: AuthServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    oauth = {"issuer": auth.issuer, "scopes": SCOPES}
    config = {
        "mcpProxy": {"name": "mux", "options": {"oauth": oauth, "authTokens": ["static-full"]}},
        "mcpServers": {
            "a": colliding_server(),
            "b": colliding_server(),
            "c": colliding_server(oauth=False),
        },
    }
    with running_proxy(config, tmp_path_factory.mktemp("oauth")) as running:
        yield running


async def get(url: str, token: str | None = None) -> httpx2.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    async with httpx2.AsyncClient(timeout=BOUND) as http:
        if "/.well-known/" in url:
            return await http.get(url)
        return await http.post(
            url, json=body, headers={**headers, "accept": "application/json, text/event-stream"}
        )


def params(challenge: str) -> dict[str, str]:
    assert challenge.startswith("Bearer ")
    out = {}
    for part in challenge[7:].split(", "):
        key, _, value = part.partition("=")
        out[key] = value.strip('"')
    return out


async def tool_names(url: str, token: str) -> set[str]:
    async with raw_client(url, token) as client:
        return await raw_tool_names(client)


async def test_metadata_is_served_per_route_and_at_the_root_only_where_oauth_is_on(
    proxy: ProxyProcess, auth: AuthServer
) -> None:
    with anyio.fail_after(BOUND):
        merged = (await get(proxy.url(f"{WELL_KNOWN}/mcp"))).json()
        server = (await get(proxy.url(f"{WELL_KNOWN}/a/mcp"))).json()
        slash = (await get(proxy.url(f"{WELL_KNOWN}/a/mcp/"))).json()
        sse = (await get(proxy.url(f"{WELL_KNOWN}/a/sse"))).json()
        root = (await get(proxy.url(WELL_KNOWN))).json()
        off = await get(proxy.url(f"{WELL_KNOWN}/c/mcp"))
    assert merged == {
        "resource": proxy.url("/mcp"),
        "authorization_servers": [auth.issuer],
        "bearer_methods_supported": ["header"],
        "resource_name": "mux",
        "scopes_supported": list(SCOPES),
    }
    assert (server["resource"], slash["resource"]) == (proxy.url("/a/mcp"), proxy.url("/a/mcp/"))
    assert (sse["resource"], root["resource"]) == (proxy.url("/a/sse"), proxy.url("/"))
    assert off.status_code == 404


async def test_no_token_gets_401_pointing_at_the_routes_metadata(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND):
        answer = await get(proxy.url("/a/mcp"))
        sse = await get(proxy.url("/a/sse"))
    assert answer.status_code == 401
    challenge = params(answer.headers["www-authenticate"])
    assert challenge == {
        "scope": "mcp:a mcp:all",
        "resource_metadata": proxy.url(f"{WELL_KNOWN}/a/mcp"),
    }
    assert params(sse.headers["www-authenticate"])["resource_metadata"] == proxy.url(f"{WELL_KNOWN}/a/sse")


async def test_a_bad_token_gets_401_invalid_token(proxy: ProxyProcess, auth: AuthServer) -> None:
    with anyio.fail_after(BOUND):
        answer = await get(proxy.url("/a/mcp"), "not-a-token")
        other = await get(proxy.url("/mcp"), auth.mint({"aud": proxy.url("/a/mcp"), "scope": "mcp:all"}))
    assert answer.status_code == other.status_code == 401
    assert params(answer.headers["www-authenticate"])["error"] == "invalid_token"
    assert "aud" in params(other.headers["www-authenticate"])["error_description"]


async def test_an_audience_that_is_no_url_is_no_match_not_a_crash(
    proxy: ProxyProcess, auth: AuthServer
) -> None:
    url = proxy.url("/a/mcp")  # an issuer copies a client's `resource` into `aud`: it may be anything
    with anyio.fail_after(BOUND):
        alone = await get(url, auth.mint({"aud": "http://[::1", "scope": "mcp:a"}))
        beside = await get(url, auth.mint({"aud": ["http://[::1", url], "scope": "mcp:a"}))
    assert alone.status_code == 401  # was a ValueError: HTTP 500
    assert "aud" in params(alone.headers["www-authenticate"])["error_description"]
    assert beside.status_code == 400  # admitted: the MCP layer answers a ping without a session


async def test_a_token_without_a_scope_for_the_route_gets_403_insufficient_scope(
    proxy: ProxyProcess, auth: AuthServer
) -> None:
    token = auth.mint({"aud": proxy.url("/a/mcp"), "scope": "mcp:b-who"})
    with anyio.fail_after(BOUND):
        answer = await get(proxy.url("/a/mcp"), token)
    assert answer.status_code == 403
    challenge = params(answer.headers["www-authenticate"])
    assert challenge["error"] == "insufficient_scope"
    assert challenge["scope"].split() == ["mcp:b-who", "mcp:a", "mcp:all"]
    assert challenge["resource_metadata"] == proxy.url(f"{WELL_KNOWN}/a/mcp")


async def test_scopes_filter_lists_and_calls_like_scoped_static_tokens(
    proxy: ProxyProcess, auth: AuthServer
) -> None:
    url = proxy.url("/mcp")
    only_a = auth.mint({"aud": url, "scope": "mcp:a"})
    who = auth.mint({"aud": url, "scope": "mcp:b-who"})
    both = auth.mint({"aud": url, "scope": "mcp:b-who mcp:a"})
    with anyio.fail_after(BOUND):
        a_names = await tool_names(url, only_a)
        who_names = await tool_names(url, who)
        both_names = await tool_names(url, both)
        static_names = await tool_names(url, "static-full")
        async with raw_client(url, who) as client:
            refused = await client.request("tools/call", {"name": "b__echo", "arguments": {"text": "x"}})
            allowed = await client.request("tools/call", {"name": "b__whoami", "arguments": {}})
    assert a_names and all(name.startswith("a__") for name in a_names)
    assert who_names and all(name.startswith("b__who") for name in who_names)
    assert both_names == a_names | who_names
    assert {"a__echo", "b__echo", "c__echo"} <= static_names
    assert refused["error"] == {"code": -32602, "message": "Unknown tool: b__echo"}
    assert "result" in allowed


async def test_a_token_for_the_whole_proxy_is_accepted_on_each_route(
    proxy: ProxyProcess, auth: AuthServer
) -> None:
    token = auth.mint({"aud": proxy.url("/"), "scope": "mcp:a"})
    with anyio.fail_after(BOUND):
        names = await tool_names(proxy.url("/a/mcp"), token)
    assert "echo" in names


async def post(url: str, token: str, body: dict[str, Any], session: str | None = None) -> httpx2.Response:
    headers = {"authorization": f"Bearer {token}", "accept": "application/json, text/event-stream"}
    if session is not None:
        headers |= {"mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
    async with httpx2.AsyncClient(timeout=BOUND) as http:
        return await http.post(url, json=body, headers=headers)


async def test_a_session_is_bound_to_its_principal_not_to_a_name_another_token_shares(
    proxy: ProxyProcess, auth: AuthServer
) -> None:
    url = proxy.url("/a/mcp")
    user = auth.mint({"aud": url, "scope": "mcp:a", "sub": "svc"})
    machine = auth.mint({"aud": url, "scope": "mcp:a", "sub": None, "client_id": "svc"})  # no `sub`
    again = auth.mint({"aud": url, "scope": "mcp:a", "sub": "svc", "client_id": "other-app"})
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    with anyio.fail_after(BOUND):
        opened = await post(url, user, init)
        session = opened.headers["mcp-session-id"]
        stolen = await post(url, machine, ping, session)
        same = await post(url, again, ping, session)
    assert opened.status_code == 200
    assert stolen.status_code == 404  # the client-credentials token `svc` reached user svc's session before
    assert same.status_code == 200  # the same user through another app: the same principal


def sdk_login(server_url: str, storage: MemoryStorage) -> Any:
    """The SDK's OAuth client for `server_url`, with the user's browser approving at once."""
    from mcp.client.auth import OAuthClientProvider
    from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

    redirected: dict[str, str] = {}

    async def redirect_handler(authorization_url: str) -> None:
        async with httpx2.AsyncClient(timeout=BOUND) as http:
            answer = await http.get(authorization_url)
        assert answer.status_code == 302
        redirected.update({k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()})

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(
            code=redirected["code"], state=redirected["state"], iss=redirected["iss"]
        )

    metadata = OAuthClientMetadata(
        redirect_uris=["http://127.0.0.1:1/callback"], client_name="test", token_endpoint_auth_method="none"
    )
    return OAuthClientProvider(
        server_url=server_url,
        client_metadata=metadata,
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )


async def test_the_sdk_client_logs_in_with_authorization_code_and_pkce(
    proxy: ProxyProcess, auth: AuthServer
) -> None:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    storage = MemoryStorage()
    with anyio.fail_after(BOUND):
        async with (
            httpx2.AsyncClient(auth=sdk_login(proxy.url("/b/mcp"), storage), timeout=BOUND) as http,
            streamable_http_client(proxy.url("/b/mcp"), http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            tools = await session.list_tools()
    granted = storage.tokens
    assert granted is not None and set(granted.scope.split()) == {
        "mcp:b-who",
        "mcp:all",
    }  # from the challenge
    assert {tool.name for tool in tools.tools} >= {"echo", "whoami"}
    token_request = auth.token_requests[-1]
    assert token_request["resource"] == proxy.url("/b/mcp") and token_request["code_verifier"]


async def test_the_sdk_client_logs_in_over_legacy_sse_too(proxy: ProxyProcess, auth: AuthServer) -> None:
    from mcp import ClientSession
    from mcp.client.sse import sse_client

    storage = MemoryStorage()
    with anyio.fail_after(BOUND):
        async with (
            sse_client(proxy.url("/a/sse"), auth=sdk_login(proxy.url("/a/sse"), storage)) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            echoed = await session.call_tool("echo", {"text": "hi"})
    assert echoed.structured_content == {"text": "hi"}  # the POSTs to /a/message were let in too
    assert auth.token_requests[-1]["resource"] == proxy.url("/a/sse")


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: Any = None
        self.client: Any = None

    async def get_tokens(self) -> Any:
        return self.tokens

    async def set_tokens(self, tokens: Any) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> Any:
        return self.client

    async def set_client_info(self, client_info: Any) -> None:
        self.client = client_info


async def test_without_proxy_wide_oauth_no_root_metadata(auth: AuthServer, tmp_path: Any) -> None:
    config = {
        "mcpProxy": {"merged": False},
        "mcpServers": {"a": colliding_server(oauth={"issuer": auth.issuer}), "b": colliding_server()},
    }
    with running_proxy(config, tmp_path) as running:
        with anyio.fail_after(BOUND):
            root = await get(running.url(WELL_KNOWN))
            a = await get(running.url(f"{WELL_KNOWN}/a/mcp"))
            b = await get(running.url(f"{WELL_KNOWN}/b/mcp"))
            open_b = await get(running.url("/b/mcp"))
    assert (root.status_code, a.status_code, b.status_code) == (404, 200, 404)
    assert open_b.status_code != 401 and "www-authenticate" not in open_b.headers  # auth is off on b
