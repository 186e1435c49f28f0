"""The old `server` + `clients` format, converted without the original's losses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcpmux.config.model import ProxyConfig, TokenScope
from mcpmux.config.parse import parse_config
from mcpmux.errors import ConfigError

OLD = {
    "server": {
        "baseURL": "https://old.example",
        "addr": ":8080",
        "name": "Old Proxy",
        "version": "0.9",
        "globalAuthTokens": ["global"],
    },
    "clients": {
        "fetch": {
            "type": "stdio",
            "config": {"command": "uvx", "args": ["mcp-server-fetch"], "env": {"A": "1"}},
            "panicIfInvalid": True,
            "logEnabled": True,
            "authTokens": ["own"],
        },
        "amap": {"type": "sse", "config": {"url": "https://amap.example/sse", "headers": {"K": "v"}}},
        "stream": {
            "type": "streamable-http",
            "config": {"url": "https://s.example/mcp", "timeout": 5_000_000_000},
        },
    },
}


def parse(document: dict[str, Any]) -> tuple[ProxyConfig, list[str]]:
    return parse_config(json.dumps(document), "config.json", environ={}, expand_env=True)


def test_the_server_section_becomes_mcp_proxy_with_global_tokens_as_defaults() -> None:
    config, _ = parse(OLD)
    assert (config.base_url, config.addr, config.name, config.version) == (
        "https://old.example",
        ":8080",
        "Old Proxy",
        "0.9",
    )
    assert config.defaults.auth_tokens == (TokenScope("global"),)


def test_conversion_logs_a_warning() -> None:
    _, warnings = parse(OLD)
    assert any("old config format" in w for w in warnings)


def test_each_client_keeps_its_transport_fields_and_flags() -> None:
    config, _ = parse(OLD)
    fetch = config.servers["fetch"]
    assert (fetch.transport, fetch.command, fetch.args, fetch.env) == (
        "stdio",
        "uvx",
        ("mcp-server-fetch",),
        {"A": "1"},
    )
    assert (fetch.options.panic_if_invalid, fetch.options.log_enabled) == (True, True)
    assert config.servers["amap"].transport == "sse"
    assert config.servers["amap"].headers == {"K": "v"}


def test_a_streamable_http_client_stays_streamable_http_with_its_timeout() -> None:
    config, _ = parse(OLD)
    assert config.servers["stream"].transport == "streamable-http"
    assert config.servers["stream"].timeout_seconds == 5.0


def test_a_clients_tokens_are_its_own_plus_the_global_ones() -> None:
    config, _ = parse(OLD)
    assert config.servers["fetch"].options.auth_tokens == (TokenScope("own"), TokenScope("global"))
    assert config.servers["amap"].options.auth_tokens == (TokenScope("global"),)


def test_a_client_with_a_bad_type_is_an_error_not_dropped() -> None:
    document = {"server": {}, "clients": {"x": {"type": "carrier-pigeon", "config": {}}}}
    with pytest.raises(ConfigError) as caught:
        parse(document)
    assert str(caught.value) == 'config.json: clients.x.type: expected "stdio", "sse" or "streamable-http"'


def test_a_client_missing_its_transport_field_is_an_error_naming_it() -> None:
    document = {"server": {}, "clients": {"x": {"type": "sse", "config": {"headers": {}}}}}
    with pytest.raises(ConfigError) as caught:
        parse(document)
    assert str(caught.value) == 'config.json: clients.x.config: a sse client needs "url"'


def test_a_client_with_a_bad_field_is_an_error_naming_its_path() -> None:
    document = {"server": {}, "clients": {"x": {"type": "stdio", "config": {"command": "c", "args": "a b"}}}}
    with pytest.raises(ConfigError) as caught:
        parse(document)
    assert str(caught.value) == "config.json: clients.x.config.args: expected a list of strings"


def test_old_clients_are_used_with_a_new_mcp_proxy_when_mcp_servers_is_empty() -> None:
    document = {"mcpProxy": {"options": {"authTokens": ["d"]}}, "clients": OLD["clients"]}
    config, _ = parse(document)
    assert set(config.servers) == {"fetch", "amap", "stream"}
    assert config.servers["amap"].options.auth_tokens == (TokenScope("d"),)
    assert config.servers["fetch"].options.auth_tokens == (TokenScope("own"),)


def test_old_sections_are_ignored_with_a_warning_when_new_ones_exist() -> None:
    document = {**OLD, "mcpProxy": {}, "mcpServers": {"n": {"command": "c"}}}
    config, warnings = parse(document)
    assert list(config.servers) == ["n"]
    assert 'config.json: server: ignored because "mcpProxy" is present' in warnings
    assert 'config.json: clients: ignored because "mcpServers" is present' in warnings
