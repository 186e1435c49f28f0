"""`options.protocol`: the era mcpmux speaks to an upstream (inherited; legacy SSE has only one)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcpmux.config.parse import parse_config
from mcpmux.errors import ConfigError


def protocol_of(proxy_options: dict[str, Any] | None, options: dict[str, Any] | None) -> str:
    entry: dict[str, Any] = {"url": "https://a.example/mcp", "transportType": "streamable-http"}
    entry.update({"options": options} if options else {})
    document = {"mcpProxy": {"options": proxy_options or {}}, "mcpServers": {"s": entry}}
    config, _ = parse_config(json.dumps(document), "config.json", environ={}, expand_env=True)
    return config.servers["s"].options.protocol


@pytest.mark.parametrize(
    ("proxy_options", "options", "era"),
    [
        (None, None, "legacy"),
        (None, {"protocol": "2026-07-28"}, "2026-07-28"),
        ({"protocol": "2026-07-28"}, None, "2026-07-28"),
        ({"protocol": "2026-07-28"}, {"protocol": "Legacy"}, "legacy"),
        (None, {"protocol": "auto"}, "auto"),
    ],
)
def test_protocol_is_legacy_unless_set_and_inherits(
    proxy_options: dict[str, Any] | None, options: dict[str, Any] | None, era: str
) -> None:
    assert protocol_of(proxy_options, options) == era


def test_an_unknown_protocol_names_the_path_and_the_choices() -> None:
    with pytest.raises(ConfigError) as caught:
        protocol_of(None, {"protocol": "2027"})
    text = str(caught.value)
    assert "mcpServers.s.options.protocol" in text and '"legacy", "auto" or "2026-07-28"' in text


def era_of(entry: dict[str, Any], proxy_options: dict[str, Any] | None = None) -> str:
    document = {"mcpProxy": {"options": proxy_options or {}}, "mcpServers": {"s": entry}}
    config, _ = parse_config(json.dumps(document), "config.json", environ={}, expand_env=True)
    return config.servers["s"].options.protocol


def test_a_stdio_server_takes_the_protocol_option() -> None:
    stdio = {"command": "server", "options": {"protocol": "2026-07-28"}}
    assert era_of(stdio) == "2026-07-28"
    assert era_of({"command": "server"}, {"protocol": "auto"}) == "auto"


def test_a_legacy_sse_server_pinned_to_2026_is_an_error_naming_file_and_path() -> None:
    sse = {"url": "https://a.example/sse", "transportType": "sse", "options": {"protocol": "2026-07-28"}}
    with pytest.raises(ConfigError) as caught:
        era_of(sse)
    text = str(caught.value)
    assert "config.json" in text and "mcpServers.s.options.protocol" in text
    assert "HTTP+SSE has no 2026-07-28 form" in text


@pytest.mark.parametrize(
    ("own", "inherited"), [({"protocol": "auto"}, None), ({}, {"protocol": "2026-07-28"}), ({}, None)]
)
def test_a_legacy_sse_server_is_spoken_to_in_the_handshake_era(
    own: dict[str, Any], inherited: dict[str, Any] | None
) -> None:
    sse = {"url": "https://a.example/sse", "transportType": "sse", "options": own}
    assert era_of(sse, inherited) == "legacy"
