"""Cluster mode and upstream OAuth: replicas whose token expired refresh it once, under a Redis lock.

Two replicas on a real redis-server, each with its own encrypted token store holding the same login (an
expired access token and a refresh token), connect to an OAuth-protected upstream at once: one asks the
test authorization server for a new token, the other takes it from Redis (encrypted with a key derived
from the cluster secret). Without the lock each would refresh: two token requests.
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest
from cluster_kit import SECRET, running_redis
from cryptography.fernet import Fernet
from merged_kit import raw_client, raw_tool_names

from harness import ProxyProcess
from mcpmux.config.model import TokenStoreConfig
from mcpmux.config.parse import parse_config
from mcpmux.oauth.store import TokenStore
from mcpmux.oauth.upstream import UpstreamAuth
from oauth_as import running_auth_server
from oauth_upstream import Protected, running_protected

pytestmark = pytest.mark.anyio

BOUND = 30
KEY = Fernet.generate_key().decode()
ENV = {"MCPMUX_TOKEN_KEY": KEY}
STORE = "mcpmux-tokens.enc"


def config(redis_url: str, upstream: Protected) -> dict[str, Any]:
    return {
        "mcpProxy": {
            "cluster": {"redis": redis_url, "secret": SECRET},
            "options": {"authTokens": ["client-token"]},
        },
        "mcpServers": {"up": {"type": "streamable-http", "url": upstream.url, "oauth": {"scope": "mcp"}}},
    }


async def logged_in_store(document: dict[str, Any], home: Path) -> dict[str, Any]:
    """`mcpmux auth login up` done here, then the access token made expired: the stored tokens."""
    proxy, _ = parse_config(json.dumps(document), str(home / "config.json"), environ={}, expand_env=False)
    store = TokenStore(TokenStoreConfig(path=str(home / STORE)), environ=ENV)
    login = UpstreamAuth(proxy.servers["up"], proxy, store)
    url = await login.begin_login()
    async with httpx2.AsyncClient(timeout=BOUND) as http:
        approved = await http.get(url)  # the authorization server approves at once
    query = {k: v[0] for k, v in parse_qs(urlsplit(approved.headers["location"]).query).items()}
    await login.finish_login(query["code"], query.get("state"), query.get("iss"))
    tokens = {**store.record("up")["tokens"], "expires_at": time.time() - 1}
    store.update("up", tokens=tokens)
    return tokens


async def test_two_replicas_with_an_expired_token_refresh_it_once_for_the_cluster(tmp_path: Path) -> None:
    homes = [tmp_path / "replica-0", tmp_path / "replica-1"]
    for home in homes:
        home.mkdir()
    with ExitStack() as stack:
        auth = stack.enter_context(running_auth_server())
        upstream = stack.enter_context(running_protected(auth, required_scopes=["mcp"]))
        redis_url = stack.enter_context(running_redis())
        document = config(redis_url, upstream)
        with anyio.fail_after(BOUND):
            expired = await logged_in_store(document, homes[0])
        shutil.copy(homes[0] / STORE, homes[1] / STORE)  # the same login on both (separate stores)
        auth.token_requests.clear()
        replicas = []
        for home in homes:
            replica = ProxyProcess(json.loads(json.dumps(document)), home, env=ENV)
            stack.callback(replica.stop)
            replicas.append(replica)
        tools = []
        for replica in replicas:
            replica.wait_ready()
            replica.wait_for_line(r"<up> Connected")
            with anyio.fail_after(BOUND):
                async with raw_client(replica.url("/up/mcp"), "client-token") as client:
                    tools.append(await raw_tool_names(client))
        logs = [replica.log for replica in replicas]
    refreshes = [r for r in auth.token_requests if r.get("grant_type") == "refresh_token"]
    assert tools == [{"hello", "secret"}] * 2
    assert len(refreshes) == 1, auth.token_requests  # one refresh for the cluster, not one per replica
    assert refreshes[0]["refresh_token"] == expired["refresh_token"]
    sent = set(upstream.tokens) - {expired["access_token"]}
    assert len(sent) == 1  # both replicas use the one new token
    assert not any(token in log for log in logs for token in [*sent, expired["refresh_token"]])
