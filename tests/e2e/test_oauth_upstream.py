"""OAuth back end to end: mcpmux logs in to OAuth-protected upstreams (client credentials, authorization
code via `mcpmux auth login` and the proxy's callback route or a pasted redirect), refreshes, steps up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest
from cryptography.fernet import Fernet
from merged_kit import raw_client, raw_tool_names

from harness import ROOT, ProxyProcess, running_proxy
from oauth_as import AuthServer, running_auth_server
from oauth_upstream import Protected, running_protected

pytestmark = pytest.mark.anyio

BOUND = 30
KEY = Fernet.generate_key().decode()
ENV = {"MCPMUX_TOKEN_KEY": KEY}
OPERATOR = {"authorization": "Bearer client-token"}  # the proxy's unscoped default token


@pytest.fixture
def auth() -> Iterator[AuthServer]:
    with running_auth_server() as server:
        yield server


@pytest.fixture
def upstream(auth: AuthServer) -> Iterator[Protected]:
    with running_protected(auth, required_scopes=["mcp"]) as server:
        yield server


def config(upstream: Protected, oauth: dict[str, Any], **proxy: Any) -> dict[str, Any]:
    return {
        "mcpProxy": {"options": {"authTokens": ["client-token"]}, **proxy},
        "mcpServers": {"up": {"type": "streamable-http", "url": upstream.url, "oauth": oauth}},
    }


async def tool_names(proxy: ProxyProcess) -> set[str]:
    async with raw_client(proxy.url("/up/mcp"), "client-token") as client:
        return await raw_tool_names(client)


def machine_client(auth: AuthServer, **extra: str) -> dict[str, str]:
    """A pre-registered confidential client for the client credentials grant."""
    client = auth.register_client(secret=True)
    return {
        "grant": "client_credentials",
        "clientId": client["client_id"],
        "clientSecret": client["client_secret"],
        **extra,
    }


def token_requests(auth: AuthServer, grant: str) -> list[dict[str, str]]:
    return [r for r in auth.token_requests if r.get("grant_type") == grant]


async def test_client_credentials_reach_the_upstream_with_their_own_token_never_the_clients(
    auth: AuthServer, upstream: Protected, tmp_path: Path
) -> None:
    oauth = machine_client(auth, scope="mcp")
    with running_proxy(config(upstream, oauth), tmp_path, env=ENV) as proxy:
        with anyio.fail_after(BOUND):
            names = await tool_names(proxy)
        log = proxy.log
    assert names == {"hello", "secret"}
    assert upstream.tokens and "client-token" not in upstream.tokens
    grant = token_requests(auth, "client_credentials")[0]
    assert grant["resource"] == upstream.url and grant["scope"] == "mcp"  # RFC 8707 resource indicator
    store = (tmp_path / "mcpmux-tokens.enc").read_bytes()
    assert all(token.encode() not in store for token in upstream.tokens)  # encrypted at rest
    assert oauth["clientSecret"] not in log and not any(token in log for token in upstream.tokens)


async def test_a_clients_oauth_token_for_mcpmux_never_reaches_the_upstream(
    auth: AuthServer, upstream: Protected, tmp_path: Path
) -> None:
    setup = config(upstream, machine_client(auth, scope="mcp"))
    setup["mcpProxy"]["options"]["oauth"] = {"issuer": auth.issuer}  # clients log in to mcpmux too
    with running_proxy(setup, tmp_path, env=ENV) as proxy:
        client_token = auth.mint({"aud": proxy.url("/up/mcp"), "scope": "mcp"})
        with anyio.fail_after(BOUND):
            async with raw_client(proxy.url("/up/mcp"), client_token) as client:
                called = await client.result("tools/call", {"name": "hello", "arguments": {}})
    assert called["content"][0]["text"] == "hello ok"
    assert upstream.tokens and client_token not in upstream.tokens


async def test_a_403_insufficient_scope_steps_up_to_the_scopes_the_upstream_names(
    auth: AuthServer, upstream: Protected, tmp_path: Path
) -> None:
    with running_proxy(config(upstream, machine_client(auth)), tmp_path, env=ENV) as proxy:  # no scope yet
        with anyio.fail_after(BOUND):
            names = await tool_names(proxy)
    assert names == {"hello", "secret"}
    scopes = [r.get("scope") for r in token_requests(auth, "client_credentials")]
    assert scopes[0] is None and scopes[-1] == "mcp"


def login_command(config_path: Path, server: str = "up") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mcpmux", "--config", str(config_path), "auth", "login", server],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **ENV},
    )


def authorization_url(login: subprocess.Popen[str]) -> str:
    assert login.stdout is not None
    for _ in range(20):
        line = login.stdout.readline()
        if line.strip().startswith("http"):
            return line.strip()
    raise AssertionError(f"no authorization URL printed: {login.stderr.read() if login.stderr else ''}")


def browse(url: str) -> str:
    """The user's browser at the authorization server (which approves at once): where it is sent."""
    answer = httpx2.get(url, timeout=BOUND)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def finish(login: subprocess.Popen[str], stdin: str = "") -> tuple[int, str, str]:
    out, err = login.communicate(stdin, timeout=BOUND)
    return login.returncode, out, err


async def test_a_server_waiting_for_login_is_reported_then_logged_in_via_the_callback_route(
    auth: AuthServer, upstream: Protected, tmp_path: Path
) -> None:
    auth.token_ttl = 30  # below the refresh margin: every use refreshes first
    with running_proxy(config(upstream, {}), tmp_path, env=ENV, wait=False) as proxy:
        proxy.wait_for_line(r"<up> Waiting for login")
        with anyio.fail_after(BOUND):
            async with httpx2.AsyncClient(timeout=BOUND) as http:
                waiting = await http.get(proxy.url("/_readyz"), headers=OPERATOR)
                page_waiting = await http.get(proxy.url("/_status/api"), headers=OPERATOR)
        login = login_command(proxy.config_path)
        try:
            redirect = browse(authorization_url(login))
            assert redirect.startswith(proxy.url("/_oauth/callback?"))
            page = httpx2.get(redirect, timeout=BOUND)  # the browser lands on the proxy's callback
            code, out, err = finish(login)
        finally:
            login.kill()
        proxy.wait_for_line(r"<up> Connected")
        with anyio.fail_after(BOUND):
            names = await tool_names(proxy)
            async with httpx2.AsyncClient(timeout=BOUND) as http:
                ready = await http.get(proxy.url("/_readyz"), headers=OPERATOR)
        command = [sys.executable, "-m", "mcpmux", "--config", str(proxy.config_path), "auth", "status"]
        with anyio.fail_after(BOUND):
            status = (await anyio.run_process(command, cwd=ROOT, env={**os.environ, **ENV})).stdout.decode()
        log = proxy.log
    assert waiting.status_code == 503
    up = waiting.json()["servers"]["up"]
    assert up["state"] == "login required" and "mcpmux auth login up" in json.dumps(up)
    assert "login required" in page_waiting.text  # the status page data says so too
    assert "crash loop" not in log and log.count("Waiting for login") == 1
    assert page.status_code == 200 and "Logged in to up" in page.text
    assert code == 0 and "Logged in to up" in out, err
    assert names == {"hello", "secret"} and ready.status_code == 200
    registered = next(iter(auth.clients.values()))
    assert registered["token_endpoint_auth_method"] == "none"  # dynamic client registration, PKCE only
    exchange = token_requests(auth, "authorization_code")[0]
    assert exchange["resource"] == upstream.url and len(exchange["code_verifier"]) >= 43
    refreshes = token_requests(auth, "refresh_token")
    assert refreshes and refreshes[0]["resource"] == upstream.url  # refreshed before expiry
    assert "logged in" in status and "issuer " + auth.issuer in status
    assert not any(token in status or token in log for token in upstream.tokens)


async def test_a_login_pasted_into_the_command_wakes_the_waiting_proxy(
    auth: AuthServer, upstream: Protected, tmp_path: Path
) -> None:
    with running_proxy(config(upstream, {"scope": "mcp"}), tmp_path, env=ENV, wait=False) as proxy:
        proxy.wait_for_line(r"<up> Waiting for login")
        login = login_command(proxy.config_path)
        try:
            redirect = browse(authorization_url(login))
            code, out, err = finish(login, redirect + "\n")  # the browser never reaches the proxy
        finally:
            login.kill()
        proxy.wait_for_line(r"<up> Connected")  # it saw the store change
        with anyio.fail_after(BOUND):
            names = await tool_names(proxy)
    assert code == 0 and "Logged in to up" in out, err
    assert names == {"hello", "secret"}


async def test_login_by_pasting_the_redirect_without_a_running_proxy(
    auth: AuthServer, upstream: Protected, tmp_path: Path
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config(upstream, {"scope": "mcp"}, baseURL="http://127.0.0.1:1")))
    login = login_command(path)
    try:
        authorization = authorization_url(login)
        redirect = browse(authorization)
        code, out, err = finish(login, redirect + "\n")
    finally:
        login.kill()
    assert code == 0 and "Logged in to up" in out, err
    assert parse_qs(urlsplit(redirect).query)["iss"] == [auth.issuer]
    assert parse_qs(urlsplit(authorization).query)["scope"] == ["mcp"]
    assert token_requests(auth, "authorization_code")
    store = (tmp_path / "mcpmux-tokens.enc").read_bytes()
    assert b"access_token" not in store


async def test_a_huge_metadata_document_is_refused_not_buffered(auth: AuthServer) -> None:
    from mcpmux.config.model import UpstreamOAuth
    from mcpmux.oauth import flow

    auth.metadata_padding = 2 * flow.MAX_BODY_BYTES
    with anyio.fail_after(BOUND), pytest.raises(flow.FlowError, match="larger than"):
        async with flow.new_http() as http:
            await flow.discover(http, f"{auth.issuer}/mcp", UpstreamOAuth())


def test_auth_keygen_prints_a_usable_key() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mcpmux", "auth", "keygen"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=BOUND,
    ).stdout.strip()
    Fernet(out.encode())


async def test_the_callback_page_shows_a_path_token_servers_name_redacted(
    auth: AuthServer, upstream: Protected, tmp_path: Path
) -> None:
    name = "up/cb-path-SECRET-1"
    document = config(upstream, {})
    document["mcpServers"] = {name: document["mcpServers"]["up"]}
    with running_proxy(document, tmp_path, env=ENV, wait=False) as proxy:
        proxy.wait_for_line(r"<up/\*\*\*> Waiting for login")
        login = login_command(proxy.config_path, name)
        try:
            redirect = browse(authorization_url(login))
            page = httpx2.get(redirect, timeout=BOUND)  # the browser lands on the proxy's callback
            finish(login)
        finally:
            login.kill()
    assert page.status_code == 200 and "Logged in to up/***" in page.text, page.text
    assert "cb-path-SECRET-1" not in page.text
