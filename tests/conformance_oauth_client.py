"""The client command for `conformance client --suite auth`: mcpmux's upstream OAuth client logs in.

Usage (the suite appends the server URL and sets MCP_CONFORMANCE_SCENARIO / MCP_CONFORMANCE_CONTEXT):
    python tests/conformance_oauth_client.py <server-url>

The OAuth part is mcpmux's own: `UpstreamAuth` (discovery, registration, tokens, refresh, step-up, its
encrypted store) asked for the header of every request and told of every 401/403, as mcpmux's upstream
HTTP client does (`upstream/http_auth.py`), here through an httpx2 auth; "the person" approving a login is
this script following the authorization server's redirect. The MCP part is the SDK's `ClientSession`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from mcpmux.config.model import (  # noqa: E402
    ProxyConfig,
    ServerConfig,
    ServerOptions,
    TokenStoreConfig,
    UpstreamOAuth,
)
from mcpmux.oauth.flow import FlowError  # noqa: E402
from mcpmux.oauth.store import TokenStore  # noqa: E402
from mcpmux.oauth.upstream import LoginRequired, UpstreamAuth  # noqa: E402

CIMD_URL = "https://conformance-test.local/client-metadata.json"  # the suite's expected client ID
ATTEMPTS = 3  # a login, then at most two step-ups
TIMEOUT_SECONDS = 20


class HttpxAuth(httpx2.Auth):
    """What `upstream/http_auth.py` does for mcpmux's own client, for httpx2: the header on every
    request, one retry after a 401 or 403 once the login renewed the token."""

    requires_response_body = False

    def __init__(self, auth: UpstreamAuth) -> None:
        self.auth = auth

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        try:
            header = await self.auth.authorization()
        except FlowError as exc:
            raise LoginRequired(str(exc)) from None
        request.headers["authorization"] = header
        response = yield request
        if response.status_code in (401, 403):
            try:
                retry = await self.auth.rejected(response, header)
            except FlowError as exc:
                raise LoginRequired(str(exc)) from None
            if retry:
                request.headers["authorization"] = await self.auth.authorization()
                yield request


def configure(url: str, scenario: str, context: dict[str, Any], store_path: str) -> UpstreamAuth:
    grant = "client_credentials" if "client-credentials" in scenario else "authorization_code"
    oauth = UpstreamOAuth(
        grant=grant,  # type: ignore[arg-type]
        client_id=context.get("client_id"),
        client_secret=context.get("client_secret"),
        client_metadata_url=CIMD_URL,  # used where the authorization server supports CIMD
        private_key=context.get("private_key_pem"),
        signing_algorithm=context.get("signing_algorithm") or "RS256",
    )
    server = ServerConfig(
        name="conformance", transport="streamable-http", options=ServerOptions(), url=url, oauth=oauth
    )
    store_config = TokenStoreConfig(path=store_path)
    proxy = ProxyConfig(
        base_url="http://127.0.0.1:9",
        addr="127.0.0.1:9",
        name="mcpmux",
        version="0",
        type="streamable-http",
        defaults=ServerOptions(),
        servers={server.name: server},
        token_store=store_config,
    )
    store = TokenStore(store_config, {"MCPMUX_TOKEN_KEY": Fernet.generate_key().decode()})
    return UpstreamAuth(server, proxy, store)


async def log_in(auth: UpstreamAuth) -> None:
    """Start a login and approve it as the person at the browser would: follow the redirect's code."""
    url = await auth.begin_login()
    async with httpx2.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as http:
        answer = await http.get(url)
    location = answer.headers.get("location", "")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    if "code" not in query:
        raise SystemExit(f"the authorization server did not redirect with a code (HTTP {answer.status_code})")
    await auth.finish_login(query["code"], query.get("state"), query.get("iss"))


async def use_server(auth: UpstreamAuth, url: str) -> None:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(auth=HttpxAuth(auth), timeout=TIMEOUT_SECONDS) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = await session.list_tools()
        for tool in tools.tools:
            await session.call_tool(tool.name, {})


async def main(url: str) -> int:
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    with tempfile.TemporaryDirectory() as tmp:
        auth = configure(url, scenario, context, str(Path(tmp) / "tokens.enc"))
        for _ in range(ATTEMPTS):
            auth.check_ready()
            if auth.needs_login is not None:
                await log_in(auth)
            try:
                with anyio.fail_after(TIMEOUT_SECONDS):
                    await use_server(auth, url)
                return 0
            except Exception as exc:  # the session failed: log in again if that is why, else give up
                if auth.needs_login is None:
                    print(f"conformance client: {type(exc).__name__}: {exc}", file=sys.stderr)
                    return 1
        return 1


if __name__ == "__main__":
    sys.exit(anyio.run(main, sys.argv[-1]))
