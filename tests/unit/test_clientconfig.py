"""The exported MCP client config: URLs per transport, tokens, merged endpoint and groups."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcpmux.clientconfig import client_config, merged_entry_name
from mcpmux.config.model import ProxyConfig
from mcpmux.config.parse import parse_config


def config_of(
    proxy: dict[str, Any], servers: dict[str, Any], groups: dict[str, Any] | None = None
) -> ProxyConfig:
    document: dict[str, Any] = {
        "mcpProxy": {"baseURL": "https://mcp.example.com/", **proxy},
        "mcpServers": servers,
    }
    if groups:
        document["mcpGroups"] = groups
    return parse_config(json.dumps(document), "config.json", environ={}, expand_env=True)[0]


def test_sse_entries_point_at_the_sse_route_with_type_sse() -> None:
    config = config_of({"merged": False}, {"fetch": {"command": "uvx"}})
    assert client_config(config) == {
        "mcpServers": {"fetch": {"type": "sse", "url": "https://mcp.example.com/fetch/sse"}}
    }


def test_streamable_http_entries_point_at_mcp_with_type_http() -> None:
    config = config_of({"type": "streamable-http", "merged": False}, {"fetch": {"command": "uvx"}})
    assert client_config(config)["mcpServers"]["fetch"] == {
        "type": "http",
        "url": "https://mcp.example.com/fetch/mcp",
    }


def test_the_transport_argument_overrides_the_proxy_type() -> None:
    config = config_of({"merged": False}, {"fetch": {"command": "uvx"}})
    assert client_config(config, transport="http")["mcpServers"]["fetch"]["url"].endswith("/fetch/mcp")


def test_a_server_uses_its_own_first_token_else_the_default_first_token() -> None:
    options = {"authTokens": ["d1", "d2"]}
    servers = {"own": {"command": "x", "options": {"authTokens": ["s1", "s2"]}}, "inherits": {"command": "x"}}
    entries = client_config(config_of({"options": options, "merged": False}, servers))["mcpServers"]
    assert entries["own"]["headers"] == {"Authorization": "Bearer s1"}
    assert entries["inherits"]["headers"] == {"Authorization": "Bearer d1"}


def test_no_headers_when_auth_is_off() -> None:
    servers = {"open": {"command": "x", "options": {"authTokens": []}}}
    entry = client_config(config_of({"options": {"authTokens": ["d"]}, "merged": False}, servers))[
        "mcpServers"
    ]["open"]
    assert "headers" not in entry


def test_a_token_scoped_to_other_servers_is_skipped_for_this_one() -> None:
    tokens = [{"token": "only-b", "servers": ["b"]}, "any"]
    config = config_of({"options": {"authTokens": tokens}, "merged": False}, {"a": {"command": "x"}})
    assert client_config(config)["mcpServers"]["a"]["headers"] == {"Authorization": "Bearer any"}


def test_disabled_servers_are_left_out() -> None:
    config = config_of({"merged": False}, {"on": {"command": "x"}, "off": {"command": "x", "disabled": True}})
    assert list(client_config(config)["mcpServers"]) == ["on"]


def test_the_merged_endpoint_is_named_after_the_proxy_and_uses_its_own_token() -> None:
    proxy = {"name": "MCP Proxy!", "merged": {"authTokens": ["m"]}}
    entries = client_config(config_of(proxy, {"a": {"command": "x"}}))["mcpServers"]
    assert entries["MCP-Proxy"] == {
        "type": "sse",
        "url": "https://mcp.example.com/sse",
        "headers": {"Authorization": "Bearer m"},
    }


def test_the_merged_entry_name_never_collides_with_a_server() -> None:
    config = config_of({"name": "a"}, {"a": {"command": "x"}})
    assert merged_entry_name(config) == "a-all"


def test_groups_get_their_own_route_and_token() -> None:
    groups = {"dev": {"servers": ["a"], "options": {"authTokens": ["g"]}}}
    entries = client_config(
        config_of({"merged": False}, {"a": {"command": "x"}}, groups), transport="streamable-http"
    )
    assert entries["mcpServers"]["dev"] == {
        "type": "http",
        "url": "https://mcp.example.com/dev/mcp",
        "headers": {"Authorization": "Bearer g"},
    }


def test_path_token_names_keep_their_slash_and_spaces_are_encoded() -> None:
    config = config_of({"merged": False}, {"fetch/tok": {"command": "x"}, "my server": {"command": "x"}})
    urls = [entry["url"] for entry in client_config(config)["mcpServers"].values()]
    assert urls == ["https://mcp.example.com/fetch/tok/sse", "https://mcp.example.com/my%20server/sse"]


def test_servers_selects_entries_by_name_in_the_given_order() -> None:
    config = config_of({"merged": False}, {"a": {"command": "x"}, "b": {"command": "x"}})
    assert list(client_config(config, servers=["b", "a"])["mcpServers"]) == ["b", "a"]


def test_unknown_names_and_transports_raise_value_error() -> None:
    config = config_of({}, {"a": {"command": "x"}})
    with pytest.raises(ValueError, match='unknown server "zzz"'):
        client_config(config, servers=["zzz"])
    with pytest.raises(ValueError, match='unknown transport "ws"'):
        client_config(config, transport="ws")


def test_the_merged_endpoint_prefers_a_token_that_reaches_every_tool() -> None:
    tokens = [
        {"token": "a-only", "servers": ["a"]},
        {"token": "no-tools", "toolFilter": {"mode": "block", "list": ["*"]}},
        "all",
    ]
    config = config_of(
        {"name": "mux", "options": {"authTokens": tokens}}, {"a": {"command": "x"}, "b": {"command": "x"}}
    )
    assert client_config(config)["mcpServers"]["mux"]["headers"] == {"Authorization": "Bearer all"}


def test_a_group_gets_the_first_token_that_reaches_all_its_servers() -> None:
    tokens = [{"token": "a-only", "servers": ["a"]}, {"token": "a-and-b", "servers": ["a", "b"]}]
    groups = {"dev": {"servers": ["a", "b"]}}
    servers = {"a": {"command": "x"}, "b": {"command": "x"}}
    config = config_of({"merged": False, "options": {"authTokens": tokens}}, servers, groups)
    assert client_config(config)["mcpServers"]["dev"]["headers"] == {"Authorization": "Bearer a-and-b"}


def test_a_token_that_reaches_none_of_a_routes_servers_is_never_written() -> None:
    tokens = [{"token": "b-only", "servers": ["b"]}]
    config = config_of({"merged": False, "options": {"authTokens": tokens}}, {"a": {"command": "x"}})
    assert "headers" not in client_config(config)["mcpServers"]["a"]


def test_a_group_whose_servers_are_all_disabled_is_left_out() -> None:
    servers = {"a": {"command": "x", "disabled": True}, "b": {"command": "x"}}
    config = config_of({"merged": False}, servers, {"dev": {"servers": ["a"]}})
    assert list(client_config(config)["mcpServers"]) == ["b"]


def test_entry_names_are_client_safe_and_never_carry_a_path_token() -> None:
    servers = {
        "fetch/s3cr3t-path-token": {"command": "x"},
        "fetch": {"command": "x"},
        "my server": {"command": "x"},
    }
    entries = client_config(config_of({"name": "mux", "options": {"authTokens": ["d"]}}, servers))[
        "mcpServers"
    ]
    assert list(entries) == ["fetch-2", "fetch", "my-server", "mux"]
    assert all("/" not in name and "s3cr3t" not in name for name in entries)
    assert entries["fetch-2"]["url"] == "https://mcp.example.com/fetch/s3cr3t-path-token/sse"


def test_a_server_can_be_selected_by_its_key_or_its_entry_name() -> None:
    config = config_of({"merged": False}, {"fetch/tok1234": {"command": "x"}})
    assert list(client_config(config, servers=["fetch"])["mcpServers"]) == ["fetch"]
    assert list(client_config(config, servers=["fetch/tok1234"])["mcpServers"]) == ["fetch"]


def test_the_merged_entry_carries_the_token_that_reaches_most_servers_on_their_own_routes() -> None:
    proxy = {"name": "mux", "options": {"authTokens": ["narrow", "wide"]}}
    servers = {"a": {"command": "x"}, "b": {"command": "x", "options": {"authTokens": ["wide"]}}}
    entries = client_config(config_of(proxy, servers))["mcpServers"]
    assert entries["mux"]["headers"] == {"Authorization": "Bearer wide"}
