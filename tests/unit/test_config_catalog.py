"""Config keys of issue 18: options.pinning, options.catalog, merged.catalog and a group's options.catalog."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcpmux.config.parse import parse_config
from mcpmux.errors import ConfigError


def parse(document: dict[str, Any]) -> Any:
    return parse_config(json.dumps(document), "config.json", environ={}, expand_env=True)[0]


def test_pinning_and_catalog_inherit_from_mcpproxy_options_and_can_be_overridden() -> None:
    config = parse(
        {
            "mcpProxy": {"options": {"pinning": "warn", "catalog": "search"}},
            "mcpServers": {
                "a": {"command": "x"},
                "b": {"command": "x", "options": {"pinning": "Enforce", "catalog": "full"}},
            },
            "mcpGroups": {"g": {"servers": ["a"]}, "h": {"servers": ["b"], "options": {"catalog": "full"}}},
        }
    )
    assert (config.servers["a"].options.pinning, config.servers["a"].options.catalog) == ("warn", "search")
    assert (config.servers["b"].options.pinning, config.servers["b"].options.catalog) == ("enforce", "full")
    assert config.merged.catalog == "search"
    assert (config.groups["g"].catalog, config.groups["h"].catalog) == ("search", "full")


def test_defaults_are_off_and_full_and_merged_catalog_is_its_own_key() -> None:
    config = parse({"mcpProxy": {"merged": {"catalog": "search"}}, "mcpServers": {"a": {"command": "x"}}})
    assert (config.servers["a"].options.pinning, config.servers["a"].options.catalog) == ("off", "full")
    assert config.merged.catalog == "search"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"mcpServers": {"a": {"command": "x", "options": {"pinning": "strict"}}}},
            "mcpServers.a.options.pinning",
        ),
        ({"mcpProxy": {"merged": {"catalog": "smart"}}, "mcpServers": {}}, 'expected "full" or "search"'),
    ],
)
def test_bad_values_name_the_path_and_the_choices(document: dict[str, Any], message: str) -> None:
    document.setdefault("mcpProxy", {})
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse(document)
