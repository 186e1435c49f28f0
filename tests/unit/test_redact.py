"""The one redaction module: URL credentials and query values, known secrets, path tokens."""

from __future__ import annotations

import json

from mcpmux.config.parse import parse_config
from mcpmux.core.redact import (
    Redactor,
    config_secrets,
    redact_tree,
    redact_url,
    redact_urls,
    route_display_name,
)


def test_a_url_keeps_its_shape_but_not_its_userinfo_query_values_or_fragment() -> None:
    assert (
        redact_url("https://user:pw@mcp.amap.com/sse?key=abc&x=1&flag")
        == "https://***@mcp.amap.com/sse?key=***&x=***&flag"
    )
    assert redact_url("https://example.com/mcp") == "https://example.com/mcp"
    assert redact_url("http://h/p#tok") == "http://h/p#***"


def test_urls_inside_text_are_redacted_and_punctuation_around_them_stays() -> None:
    text = "cannot reach https://mcp.amap.com/sse?key=abc123: ConnectError (see http://a:b@h/x)."
    assert (
        redact_urls(text)
        == "cannot reach https://mcp.amap.com/sse?key=***: ConnectError (see http://***@h/x)."
    )


def test_path_tokens_are_hidden_from_route_names() -> None:
    assert route_display_name("fetch/s3cret") == "fetch/***"
    assert route_display_name("fetch") == "fetch"


def config_with_secrets() -> dict[str, object]:
    return {
        "mcpProxy": {
            "options": {"authTokens": ["default-token", {"token": "scoped-token", "servers": ["a"]}]}
        },
        "mcpServers": {
            "a": {"command": "x", "env": {"API_KEY": "env-secret-value"}},
            "b": {"url": "https://u:pass-word@h/sse?key=query-secret", "headers": {"X-Key": "header-secret"}},
            "fetch/path-token": {"command": "x", "options": {"authTokens": ["own-token"]}},
        },
        "mcpGroups": {"g": {"servers": ["a"], "options": {"authTokens": ["group-token"]}}},
    }


def test_request_state_key_secrets_are_known_secrets() -> None:
    secret = "state-key-secret-0123456789abcdef0123"
    document = {"mcpProxy": {"requestStateKeys": [{"id": "k1", "secret": secret}]}, "mcpServers": {}}
    config, _ = parse_config(json.dumps(document), "t", environ={}, expand_env=False)
    assert secret in config_secrets(config)
    assert Redactor(config_secrets(config))(f"bad key {secret}") == "bad key ***"
    assert secret not in repr(config)


def test_every_secret_of_a_config_is_known_and_replaced_in_free_text() -> None:
    config, _ = parse_config(json.dumps(config_with_secrets()), "t", environ={}, expand_env=False)
    secrets = config_secrets(config)
    expected = {
        "default-token",
        "scoped-token",
        "env-secret-value",
        "pass-word",
        "query-secret",
        "header-secret",
    }
    assert expected | {"path-token", "own-token", "group-token"} <= secrets
    redact = Redactor(secrets)
    line = "<fetch/path-token> failed: env-secret-value rejected by header-secret; token own-token"
    assert redact(line) == "<fetch/***> failed: *** rejected by ***; token ***"


def test_short_values_are_not_searched_for_and_trees_are_redacted_everywhere() -> None:
    redact = Redactor(["abc", "long-secret"])
    assert redact("abc long-secret") == "abc ***"
    tree = {"long-secret": ["x long-secret", 3, {"k": "https://h/?t=1"}]}
    assert redact_tree(tree, redact) == {"***": ["x ***", 3, {"k": "https://h/?t=***"}]}


def test_routes_sharing_a_head_stay_apart_once_redacted() -> None:
    document = {
        "mcpProxy": {},
        "mcpServers": {
            "fetch/first-token": {"command": "x"},
            "fetch/second-token": {"command": "x"},
            "fetch": {"command": "x"},
        },
        "mcpGroups": {"team/group-token": {"servers": ["fetch"]}},
    }
    config, _ = parse_config(json.dumps(document), "t", environ={}, expand_env=False)
    redact = Redactor.for_config(config)
    shown = [redact.name(name) for name in (*config.servers, *config.groups)]
    assert shown == ["fetch/***", "fetch/***2", "fetch", "team/***"]
    line = 'mcpmux_sessions_active{route="fetch/second-token"} 0 and /fetch/first-token/mcp'
    assert redact(line) == 'mcpmux_sessions_active{route="fetch/***2"} 0 and /fetch/***/mcp'


def test_the_callers_own_token_can_be_kept() -> None:
    document = {"mcpProxy": {"options": {"authTokens": ["mine-1234", "other-5678"]}}, "mcpServers": {}}
    config, _ = parse_config(json.dumps(document), "t", environ={}, expand_env=False)
    assert Redactor.for_config(config, keep=["mine-1234"])("mine-1234 other-5678") == "mine-1234 ***"


def test_cluster_and_oauth_secrets_are_known_secrets() -> None:
    cluster_secret = "cluster-secret-0123456789abcdef0123456789"
    front = {
        "issuer": "https://as.example/",
        "jwksUri": "https://as.example/jwks",
        "introspection": {"clientId": "mcpmux", "clientSecret": "introspection-secret-42"},
    }
    document = {
        "mcpProxy": {
            "options": {"authTokens": [], "oauth": front},
            "cluster": {"redis": "redis://:redis-pass-word@127.0.0.1:6379/0", "secret": cluster_secret},
        },
        "mcpServers": {
            "gh": {
                "url": "https://gh.example/mcp",
                "oauth": {"clientId": "c", "clientSecret": "upstream-client-secret"},
            }
        },
        "mcpGroups": {
            "g": {
                "servers": ["gh"],
                "options": {
                    "oauth": {
                        **front,
                        "introspection": {"clientId": "g", "clientSecret": "group-introspection-secret"},
                    }
                },
            }
        },
    }
    config, _ = parse_config(json.dumps(document), "t", environ={}, expand_env=False)
    secrets = config_secrets(config)
    hidden = (
        cluster_secret,
        "redis-pass-word",
        "introspection-secret-42",
        "upstream-client-secret",
        "group-introspection-secret",
    )
    assert set(hidden) <= secrets
    line = " ".join(hidden)
    assert Redactor.for_config(config)(line) == " ".join("***" for _ in hidden)
    for secret in hidden:  # fields holding a secret are left out of the config's repr (URLs are not)
        assert secret == "redis-pass-word" or secret not in repr(config)
