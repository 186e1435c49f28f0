"""`mcpProxy.http`: the HTTP server's limits, their defaults and their errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcpmux.config.model import HttpLimits
from mcpmux.config.parse import parse_config
from mcpmux.errors import ConfigError


def limits(http: Any) -> HttpLimits:
    document = {"mcpProxy": {"http": http}, "mcpServers": {}}
    config, _ = parse_config(json.dumps(document), "config.json", environ={}, expand_env=True)
    return config.http


def test_absent_means_the_documented_defaults() -> None:
    config, _ = parse_config('{"mcpProxy": {}, "mcpServers": {}}', "config.json", environ={}, expand_env=True)
    assert config.http == HttpLimits()
    assert config.http == HttpLimits(
        max_head_bytes=65536,
        head_timeout_seconds=30.0,
        body_timeout_seconds=30.0,
        write_timeout_seconds=30.0,
        keep_alive_timeout_seconds=30.0,
        max_connections=1000,
        max_pipelined=16,
    )


def test_every_key_is_read() -> None:
    assert limits(
        {
            "maxHeadBytes": 8192,
            "headTimeout": "5s",
            "bodyTimeout": "200ms",
            "writeTimeout": 2,
            "keepAliveTimeout": "1m",
            "maxConnections": "50",
            "maxPipelined": 4,
        }
    ) == HttpLimits(8192, 5.0, 0.2, 2.0, 60.0, 50, 4)


def test_keys_are_case_insensitive_and_partial_sections_keep_other_defaults() -> None:
    assert limits({"maxconnections": 7}) == HttpLimits(max_connections=7)


@pytest.mark.parametrize(
    ("http", "where", "expected"),
    [
        ({"maxHeadBytes": 0}, "mcpProxy.http.maxHeadBytes", "integer >= 1"),
        ({"maxPipelined": "many"}, "mcpProxy.http.maxPipelined", "integer >= 1"),
        ({"bodyTimeout": "soon"}, "mcpProxy.http.bodyTimeout", "duration"),
        ({"writeTimeout": 0}, "mcpProxy.http.writeTimeout", "above zero"),
        ([1], "mcpProxy.http", "object"),
    ],
)
def test_bad_values_name_the_key_and_what_was_expected(http: Any, where: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        limits(http)
    assert where in str(caught.value)
    assert expected in str(caught.value)


def test_an_unknown_key_is_warned_about() -> None:
    document = {"mcpProxy": {"http": {"maxConnection": 5}}, "mcpServers": {}}
    _, warnings = parse_config(json.dumps(document), "config.json", environ={}, expand_env=True)
    assert any("maxConnection" in w for w in warnings)


def test_a_limit_written_one_level_up_is_pointed_at_http() -> None:
    document = {"mcpProxy": {"maxConnections": 5}, "mcpServers": {}}
    _, warnings = parse_config(json.dumps(document), "config.json", environ={}, expand_env=True)
    assert any("maxConnections" in w and "http.maxConnections" in w for w in warnings), warnings
