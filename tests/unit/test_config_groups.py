"""The merged endpoint (`mcpProxy.merged`) and hand-picked groups (`mcpGroups`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcpmux.config.model import GroupMember, MergedConfig, ProxyConfig, TokenScope, ToolFilter
from mcpmux.config.parse import parse_config
from mcpmux.errors import ConfigError

SERVERS = {
    "a": {"command": "x"},
    "b": {"url": "https://b.example"},
    "off": {"command": "y", "disabled": True},
}
DEFAULT_OPTIONS = {"authTokens": ["default"], "logEnabled": True}


def parse(proxy: dict[str, Any], groups: Any = None) -> tuple[ProxyConfig, list[str]]:
    document: dict[str, Any] = {"mcpProxy": {"options": DEFAULT_OPTIONS, **proxy}, "mcpServers": SERVERS}
    if groups is not None:
        document["mcpGroups"] = groups
    return parse_config(json.dumps(document), "config.json", environ={}, expand_env=True)


def parse_error(proxy: dict[str, Any], groups: Any = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(proxy, groups)
    return str(caught.value)


def test_the_merged_endpoint_is_on_by_default_and_inherits_tokens_and_logging() -> None:
    config, _ = parse({})
    assert config.merged == MergedConfig(enabled=True, auth_tokens=(TokenScope("default"),), log_enabled=True)


def test_merged_false_is_shorthand_for_disabled() -> None:
    config, _ = parse({"merged": False})
    assert config.merged.enabled is False


def test_merged_reads_enabled_separator_tokens_and_logging() -> None:
    merged = {"Enabled": True, "separator": ".", "authTokens": [], "logEnabled": False}
    config, _ = parse({"merged": merged})
    assert config.merged == MergedConfig(enabled=True, separator=".", auth_tokens=(), log_enabled=False)


def test_merged_null_tokens_inherit() -> None:
    config, _ = parse({"merged": {"authTokens": None}})
    assert config.merged.auth_tokens == (TokenScope("default"),)


@pytest.mark.parametrize("separator", ["", "::", "a b"])
def test_a_merged_separator_outside_the_safe_characters_is_an_error(separator: str) -> None:
    message = parse_error({"merged": {"separator": separator}})
    assert message.startswith("config.json: mcpProxy.merged.separator: expected one or more of")


def test_merged_must_be_an_object_or_a_boolean() -> None:
    assert parse_error({"merged": "yes"}) == "config.json: mcpProxy.merged: expected an object"


def test_groups_take_a_list_of_servers_and_inherit_tokens() -> None:
    config, _ = parse({}, {"dev": {"servers": ["a", "b"]}})
    group = config.groups["dev"]
    assert group.members == (GroupMember("a"), GroupMember("b"))
    assert group.auth_tokens == (TokenScope("default"),)
    assert group.log_enabled is True


def test_groups_take_an_object_of_servers_with_tool_filters_and_own_options() -> None:
    servers = {"a": {"toolFilter": {"mode": "allow", "list": ["read_*"]}}, "b": {}, "off": None}
    config, warnings = parse(
        {}, {"ro": {"servers": servers, "options": {"authTokens": [], "logEnabled": False}}}
    )
    group = config.groups["ro"]
    assert group.members == (
        GroupMember("a", ToolFilter("allow", ("read_*",))),
        GroupMember("b"),
        GroupMember("off"),
    )
    assert (group.auth_tokens, group.log_enabled) == ((), False)
    assert 'config.json: mcpGroups.ro.servers.off: server "off" is disabled' in warnings


def test_a_group_naming_an_unknown_server_is_an_error() -> None:
    assert parse_error({}, {"g": {"servers": ["a", "x"]}}) == (
        'config.json: mcpGroups.g.servers.x: unknown server "x"'
    )


def test_a_group_named_like_a_server_is_an_error() -> None:
    assert (
        parse_error({}, {"a": {"servers": ["b"]}})
        == 'config.json: mcpGroups.a: "a" is also the name of a server'
    )


def test_an_empty_group_is_an_error() -> None:
    assert (
        parse_error({}, {"g": {"servers": []}})
        == "config.json: mcpGroups.g.servers: expected at least one server"
    )
    assert parse_error({}, {"g": {}}) == 'config.json: mcpGroups.g: needs "servers"'


def test_group_names_follow_the_route_name_rules() -> None:
    assert parse_error({}, {"_all": {"servers": ["a"]}}).startswith(
        "config.json: mcpGroups._all: a name must not"
    )
