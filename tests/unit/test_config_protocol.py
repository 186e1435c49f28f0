"""`options.protocol`: the era mcpmux speaks to a streamable-HTTP upstream (inherited like any option)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcpmux.config.parse import parse_config
from mcpmux.errors import ConfigError


def protocol_of(proxy_options: dict[str, Any] | None, options: dict[str, Any] | None) -> str:
    entry: dict[str, Any] = {"url": "https://a.example/mcp", **({"options": options} if options else {})}
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
