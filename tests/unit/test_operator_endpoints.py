"""The status page, its API and /metrics as the ASGI app serves them (a proxy built but not started)."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mcpmux.config.parse import parse_config
from mcpmux.proxy import Proxy
from mcpmux.web.app import ProxyApp
from mcpmux.web.pins import PinsEndpoints
from mcpmux.web.status import status_snapshot

TOKEN = "admin"
BASE_URL = "http://127.0.0.1:9999/base"


def proxy_of(**proxy: Any) -> Proxy:
    document = {
        "mcpProxy": {
            "name": "ops",
            "baseURL": "http://127.0.0.1:9999/base",
            "addr": "127.0.0.1:9999",
            **proxy,
        },
        "mcpServers": {
            "fx": {
                "command": "fixture",
                "options": {
                    "toolFilter": {"mode": "block", "list": ["hidden"]},
                    "toolOverrides": {"old": {"name": "renamed", "description": "New words"}},
                },
            },
            "off": {"command": "x", "disabled": True},
        },
        "mcpGroups": {"team": {"servers": ["fx"]}},
    }
    config, _ = parse_config(json.dumps(document), "test", environ={}, expand_env=False)
    return Proxy(config)


def get(app: ProxyApp, path: str, token: str | None = None) -> tuple[int, dict[bytes, bytes], bytes]:
    headers = [(b"host", b"127.0.0.1:9999")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {"type": "http", "method": "GET", "path": path, "headers": headers, "query_string": b""}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    anyio.run(app, scope, receive, send)
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), body


def test_the_page_and_its_assets_are_served_under_the_base_path_without_data() -> None:
    app = ProxyApp(proxy_of(options={"authTokens": [TOKEN]}))
    status, headers, body = get(app, "/base/_status")
    assert status == 200 and headers[b"content-type"].startswith(b"text/html")
    assert b"script-src 'self'" in headers[b"content-security-policy"]
    page = body.decode()
    assert 'src="/base/_status/status.js"' in page and 'data-api="/base/_status/api"' in page
    assert "fx" not in page
    for asset, kind in (("status.js", b"text/javascript"), ("status.css", b"text/css")):
        status, headers, body = get(app, f"/base/_status/{asset}")
        assert status == 200 and headers[b"content-type"].startswith(kind) and body
    assert get(app, "/_status")[0] == 404


def test_status_data_and_metrics_need_a_default_token_when_tokens_are_set() -> None:
    app = ProxyApp(proxy_of(options={"authTokens": [TOKEN]}))
    for path in ("/base/_status/api", "/metrics"):
        status, headers, _ = get(app, path)
        assert status == 401 and headers[b"www-authenticate"].startswith(b"Bearer")
        assert get(app, path, "wrong")[0] == 401
        assert get(app, path, TOKEN)[0] == 200


def test_status_data_and_metrics_are_open_when_no_tokens_are_set() -> None:
    app = ProxyApp(proxy_of())
    assert get(app, "/base/_status/api")[0] == 200
    status, headers, body = get(app, "/metrics")
    assert status == 200 and headers[b"content-type"].startswith(b"text/plain; version=")
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}
    assert [s.value for s in families["mcpmux_upstream_up"].samples] == [0]
    states = {s.labels["state"]: s.value for s in families["mcpmux_upstream_state"].samples}
    assert states["stopped"] == 1 and sum(states.values()) == 1
    routes = {s.labels["route"] for s in families["mcpmux_sessions_active"].samples}
    assert routes == {"fx", "_merged", "team"}


def test_the_snapshot_lists_servers_with_filtered_renamed_tools_urls_and_client_configs() -> None:
    proxy = proxy_of()
    proxy.runtimes["fx"].tools = [{"name": "old"}, {"name": "hidden"}, {"name": "kept", "title": "Kept"}]
    snapshot = status_snapshot(proxy)
    fx, off = snapshot["servers"]
    assert fx["tools"] == [
        {"name": "renamed", "title": None, "description": "New words"},
        {"name": "kept", "title": "Kept", "description": None},
    ]
    assert fx["urls"] == {
        "mcp": "http://127.0.0.1:9999/base/fx/mcp",
        "sse": "http://127.0.0.1:9999/base/fx/sse",
    }
    assert fx["clientConfig"] == {"mcpServers": {"fx": {"type": "sse", "url": fx["urls"]["sse"]}}}
    assert (fx["state"], fx["ready"], fx["restarts"], fx["transport"]) == ("stopped", False, 0, "stdio")
    assert (off["state"], off["clientConfig"]) == ("disabled", None)
    assert snapshot["merged"]["servers"] == ["fx"] and snapshot["merged"]["enabled"] is True
    (team,) = snapshot["groups"]
    assert team["name"] == "team" and team["servers"] == ["fx"]
    assert team["clientConfig"]["mcpServers"]["team"]["url"] == "http://127.0.0.1:9999/base/team/sse"


@pytest.mark.parametrize(
    ("value", "enabled", "exporter"),
    [(None, False, "otlp"), (True, True, "otlp"), ({"exporter": "console"}, True, "console")],
)
def test_tracing_is_configured_under_mcp_proxy(value: Any, enabled: bool, exporter: str) -> None:
    proxy = proxy_of() if value is None else proxy_of(tracing=value)
    assert (proxy.config.tracing.enabled, proxy.config.tracing.exporter) == (enabled, exporter)


def test_without_operator_tokens_a_non_loopback_listener_turns_operator_views_off() -> None:
    app = ProxyApp(proxy_of(addr=":9999"))
    for path in ("/base/_status/api", "/metrics"):
        status, _, body = get(app, path)
        assert status == 403 and b"operatorTokens" in body
    assert get(app, "/base/_status")[0] == 200  # the page itself holds no data


def test_per_server_tokens_without_proxy_tokens_turn_operator_views_off_even_on_loopback() -> None:
    proxy = proxy_of(options={"authTokens": []})
    app = ProxyApp(proxy)
    assert get(app, "/base/_status/api")[0] == 200  # nothing asks for a token: nothing to protect
    document = {
        "mcpProxy": {"baseURL": BASE_URL, "addr": "127.0.0.1:9999"},
        "mcpServers": {"fx": {"command": "x", "options": {"authTokens": ["server-token"]}}},
    }
    config, _ = parse_config(json.dumps(document), "test", environ={}, expand_env=False)
    status, _, body = get(ProxyApp(Proxy(config)), "/base/_status/api", "server-token")
    assert status == 403 and b"server-token" not in body


def test_scoped_default_tokens_are_not_operator_tokens_and_operator_tokens_replace_the_default() -> None:
    scoped = {"token": "scoped", "servers": ["fx"]}
    app = ProxyApp(proxy_of(options={"authTokens": [TOKEN, scoped]}))
    assert get(app, "/base/_status/api", "scoped")[0] == 401
    assert get(app, "/metrics", "scoped")[0] == 401
    explicit = ProxyApp(proxy_of(options={"authTokens": [TOKEN]}, operatorTokens=["op-token"]))
    assert get(explicit, "/base/_status/api", TOKEN)[0] == 401
    assert get(explicit, "/base/_status/api", "op-token")[0] == 200


def test_client_configs_on_the_status_api_carry_only_the_callers_token_or_a_placeholder() -> None:
    proxy = proxy_of(options={"authTokens": [TOKEN, "other-default"]}, operatorTokens=["op-token", TOKEN])
    for caller in ("op-token", TOKEN):
        status, _, body = get(ProxyApp(proxy), "/base/_status/api", caller)
        data = json.loads(body)
        headers = {
            name: entry.get("headers", {}).get("Authorization")
            for item in [*data["servers"], data["merged"], *data["groups"]]
            if item["clientConfig"]
            for name, entry in item["clientConfig"]["mcpServers"].items()
        }
        expected = f"Bearer {caller}" if caller == TOKEN else "Bearer <your token>"
        assert status == 200 and headers == {"fx": expected, "ops": expected, "team": expected}
        assert b"other-default" not in body and (caller == "op-token" or b"op-token" not in body)


def test_readyz_without_an_operator_token_says_only_ready_or_not_per_server() -> None:
    app = ProxyApp(proxy_of(options={"authTokens": [TOKEN]}))
    status, _, body = get(app, "/_readyz")
    assert status == 503 and json.loads(body) == {"status": "not ready", "servers": {"fx": {"ready": False}}}
    status, _, body = get(app, "/_readyz", TOKEN)
    detailed = json.loads(body)
    assert detailed["servers"]["fx"]["state"] == "stopped" and detailed["serverCount"] == 1


def test_oauth_on_a_loopback_proxy_without_tokens_turns_operator_views_off() -> None:
    oauth = {"issuer": "https://login.example.com"}
    document = {
        "mcpProxy": {"baseURL": BASE_URL, "addr": "127.0.0.1:9999"},
        "mcpServers": {"fx": {"command": "x", "options": {"oauth": oauth}}},
    }
    config, _ = parse_config(json.dumps(document), "test", environ={}, expand_env=False)
    status, _, body = get(ProxyApp(Proxy(config)), "/base/_status/api")
    assert status == 403 and b"operatorTokens" in body


def two_servers(second: dict[str, Any], **proxy: Any) -> ProxyApp:
    """`fx` inheriting the default token, and `own` with the options given (its own tokens, OAuth)."""
    document = {
        "mcpProxy": {
            "baseURL": BASE_URL,
            "addr": "127.0.0.1:9999",
            "options": {"authTokens": [TOKEN]},
            **proxy,
        },
        "mcpServers": {"fx": {"command": "x"}, "own": {"command": "x", "options": second}},
    }
    config, _ = parse_config(json.dumps(document), "test", environ={}, expand_env=False)
    app = ProxyApp(Proxy(config))
    app.tables.append(PinsEndpoints(app).table)  # as `serve` does
    app.rebuild()
    return app


@pytest.mark.parametrize(
    "second",
    [
        {"authTokens": ["own-only"]},  # the server's own tokens replace the default one
        {
            "authTokens": [
                {"token": TOKEN, "servers": ["own"], "toolFilter": {"mode": "allow", "list": ["a"]}}
            ]
        },
        {"authTokens": [], "oauth": {"issuer": "https://login.example.com"}},  # OAuth only
    ],
)
def test_a_default_token_that_a_server_leaves_out_sees_no_operator_view(second: dict[str, Any]) -> None:
    app = two_servers(second)
    for path in ("/base/_status/api", "/metrics", "/_pins", "/base/_pins"):
        status, _, body = get(app, path, TOKEN)
        assert status == 403 and b"operatorTokens" in body, path  # 200 with `own`'s data before
    assert json.loads(get(app, "/_readyz", TOKEN)[2]) == {
        "status": "not ready",
        "servers": {"fx": {"ready": False}, "own": {"ready": False}},
    }  # no details either
    explicit = two_servers(second, operatorTokens=[TOKEN])  # an operator named as such sees everything
    assert get(explicit, "/_pins", TOKEN)[0] == 200


def test_a_default_token_that_every_server_takes_stays_the_operator() -> None:
    for second in (
        {},
        {"authTokens": ["own-extra", TOKEN]},
        {"authTokens": []},
    ):  # inherited, listed, auth off
        assert get(two_servers(second), "/_pins", TOKEN)[0] == 200, second


def test_readyz_details_need_an_allowed_host_even_where_operator_views_are_open() -> None:
    app = ProxyApp(proxy_of())  # loopback, no token anywhere: operator views open to the listener
    app.state.runtimes["fx"].stderr_tail = ["secret-ish stderr line"]
    scope = {"type": "http", "method": "GET", "path": "/_readyz", "query_string": b""}
    answers = {}
    for host in (b"127.0.0.1:9999", b"rebound.example:9999"):  # the second: a DNS-rebinding page
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        anyio.run(app, {**scope, "headers": [(b"host", host)]}, receive, send)
        answers[host] = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert "secret-ish stderr line" in json.dumps(answers[b"127.0.0.1:9999"])
    assert answers[b"rebound.example:9999"] == {"status": "not ready", "servers": {"fx": {"ready": False}}}
