"""The `oauth` option (resource server) in config, and the pure parts of the OAuth front."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcpmux.config.model import TokenScope, ToolFilter
from mcpmux.config.parse import parse_config
from mcpmux.errors import ConfigError
from mcpmux.oauth.resource import Refusal, challenge
from mcpmux.oauth.tokens import normalize_resource

ISSUER = "https://login.example.com"


def load(config: dict[str, Any]) -> Any:
    return parse_config(json.dumps(config), "c.json", environ={}, expand_env=False)[0]


def proxy_with(proxy_oauth: Any, **server_options: Any) -> Any:
    server: dict[str, Any] = {"command": "x"}
    if server_options:
        server["options"] = server_options
    return load(
        {
            "mcpProxy": {"options": {"oauth": proxy_oauth}},
            "mcpServers": {"a": server, "b": {"command": "x"}},
            "mcpGroups": {"g": {"servers": ["a"], "options": {"oauth": False}}},
        }
    )


def test_proxy_wide_oauth_is_inherited_and_can_be_turned_off_or_replaced_per_route() -> None:
    config = proxy_with(
        {
            "issuer": ISSUER,
            "scopes": {"s": {"servers": ["a"], "toolFilter": {"mode": "allow", "list": ["x"]}}},
        },
        oauth={"issuer": "https://other.example.com", "leeway": "5s", "audience": "api://a"},
    )
    inherited = config.servers["b"].options.oauth
    assert inherited.issuer == ISSUER and inherited.authorization_servers == (ISSUER,)
    assert inherited.scopes == (("s", TokenScope("", ("a",), ToolFilter("allow", ("x",)))),)
    assert config.merged.oauth == inherited and config.defaults.oauth == inherited
    own = config.servers["a"].options.oauth
    assert (own.issuer, own.leeway_seconds, own.audiences) == ("https://other.example.com", 5.0, ("api://a",))
    assert config.groups["g"].oauth is None


@pytest.mark.parametrize(
    ("oauth", "where", "expected"),
    [
        ({}, "mcpProxy.options.oauth", '"issuer"'),
        ({"issuer": "login.example.com"}, "mcpProxy.options.oauth.issuer", "http(s) URL"),
        ({"issuer": ISSUER, "algorithms": ["HS256"]}, "mcpProxy.options.oauth.algorithms[0]", "HMAC"),
        ({"issuer": ISSUER, "algorithms": ["none"]}, "mcpProxy.options.oauth.algorithms[0]", "none"),
        ({"issuer": ISSUER, "leeway": "1h"}, "mcpProxy.options.oauth.leeway", "at most"),
        ({"issuer": ISSUER, "introspection": {"clientId": "x"}}, "oauth.introspection", "clientSecret"),
        ({"issuer": ISSUER, "scopes": ["a"]}, "mcpProxy.options.oauth.scopes", "expected an object"),
        (True, "mcpProxy.options.oauth", "false"),
    ],
)
def test_a_bad_oauth_setting_names_its_path(oauth: Any, where: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        proxy_with(oauth)
    assert where in str(info.value) and expected in str(info.value)


def test_the_introspection_secret_is_not_in_the_config_repr() -> None:
    config = proxy_with({"issuer": ISSUER, "introspection": {"clientId": "rs", "clientSecret": "s3cret"}})
    assert "s3cret" not in repr(config)


def test_resources_compare_without_trailing_slash_and_host_case() -> None:
    assert normalize_resource("HTTP://Example.COM:8080/a/mcp/#x") == "http://example.com:8080/a/mcp"
    assert normalize_resource("https://h/") == normalize_resource("https://h") == "https://h"


def test_challenges_quote_values_so_nothing_breaks_out() -> None:
    header = challenge(Refusal(403, "insufficient_scope", 'bad "x"\r\n, y="z', ("a", "b")), "https://h/m")
    assert header == (
        'Bearer error="insufficient_scope", error_description="bad x, y=z", scope="a b", '
        'resource_metadata="https://h/m"'
    )
    assert challenge(Refusal(401), "https://h/m") == 'Bearer resource_metadata="https://h/m"'


def test_metadata_paths_follow_the_base_path_and_only_routes_with_oauth() -> None:
    from types import SimpleNamespace

    from mcpmux.web.oauth_front import OAuthFront

    config = load(
        {
            "mcpProxy": {"baseURL": "https://mcp.example.com/base", "options": {"oauth": {"issuer": ISSUER}}},
            "mcpServers": {"a": {"command": "x"}, "b": {"command": "x", "options": {"oauth": False}}},
        }
    )
    front = OAuthFront()
    front.rebuild(config, [SimpleNamespace(name=n) for n in ("a", "b", "")])  # type: ignore[misc]
    prefix = "/.well-known/oauth-protected-resource"
    assert set(front.documents) == {
        f"{prefix}/base",
        *(f"{prefix}/base{p}{s}" for p in ("/a/mcp", "/a/sse", "/mcp", "/sse") for s in ("", "/")),
    }
    assert front.documents[f"{prefix}/base"][1] == "https://mcp.example.com/base"
    assert front.documents[f"{prefix}/base/a/mcp/"][1] == "https://mcp.example.com/base/a/mcp/"
    assert (
        front.metadata_url("https://mcp.example.com/base/a/mcp")
        == f"https://mcp.example.com{prefix}/base/a/mcp"
    )
    assert "b" not in front.doors and front.doors["a"].accepted == {
        "https://mcp.example.com/base/a/mcp",
        "https://mcp.example.com/base/a/sse",
        "https://mcp.example.com/base",
    }


def test_mcpproxy_oauth_is_shorthand_for_options_oauth() -> None:
    short = load({"mcpProxy": {"oauth": {"issuer": ISSUER}}, "mcpServers": {"a": {"command": "x"}}})
    assert short.defaults.oauth is not None and short.servers["a"].options.oauth == short.defaults.oauth
    assert short.merged.oauth == short.defaults.oauth
    text = json.dumps(
        {
            "mcpProxy": {"oauth": {"issuer": ISSUER}, "options": {"oauth": {"issuer": "https://b.example"}}},
            "mcpServers": {"a": {"command": "x"}},
        }
    )
    both, warnings = parse_config(text, "c.json", environ={}, expand_env=False)
    assert both.defaults.oauth.issuer == "https://b.example"
    assert any("mcpProxy.oauth" in w and "options.oauth" in w for w in warnings)
