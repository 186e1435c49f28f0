"""Server options: inheritance from mcpProxy.options, tokens, tool filters, overrides and mcpmux additions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcpmux.config.model import (
    BackoffPolicy,
    HealthCheck,
    ServerOptions,
    TokenScope,
    ToolFilter,
    ToolOverride,
)
from mcpmux.config.parse import parse_config
from mcpmux.errors import ConfigError


def parse(proxy_options: dict[str, Any] | None = None, **servers: Any) -> tuple[Any, list[str]]:
    document = {
        "mcpProxy": {"options": proxy_options} if proxy_options is not None else {},
        "mcpServers": servers,
    }
    return parse_config(json.dumps(document), "config.json", environ={}, expand_env=True)


def server_options(
    proxy_options: dict[str, Any] | None, options: Any, transport: str = "stdio"
) -> ServerOptions:
    entry: dict[str, Any] = {"command": "x"} if transport == "stdio" else {"url": "https://a.example"}
    if options is not ...:
        entry["options"] = options
    config, _ = parse(proxy_options, s=entry)
    return config.servers["s"].options


def parse_error(proxy_options: dict[str, Any] | None = None, **servers: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(proxy_options, **servers)
    return str(caught.value)


DEFAULTS = {"panicIfInvalid": True, "logEnabled": True, "authTokens": ["default-token"]}


def test_absent_options_inherit_every_default() -> None:
    options = server_options(DEFAULTS, ...)
    assert options.panic_if_invalid is True
    assert options.log_enabled is True
    assert options.auth_tokens == (TokenScope("default-token"),)


def test_null_options_inherit_like_absent_ones() -> None:
    options = server_options(DEFAULTS, {"panicIfInvalid": None, "logEnabled": None, "authTokens": None})
    assert (options.panic_if_invalid, options.log_enabled) == (True, True)
    assert options.auth_tokens == (TokenScope("default-token"),)


def test_explicit_values_override_the_defaults() -> None:
    options = server_options(DEFAULTS, {"panicIfInvalid": False, "logEnabled": False, "authTokens": ["mine"]})
    assert (options.panic_if_invalid, options.log_enabled) == (False, False)
    assert options.auth_tokens == (TokenScope("mine"),)


def test_an_explicit_empty_token_list_turns_auth_off_for_that_server() -> None:
    assert server_options(DEFAULTS, {"authTokens": []}).auth_tokens == ()


def test_proxy_defaults_are_exposed_as_the_config_defaults() -> None:
    config, _ = parse(DEFAULTS)
    assert config.defaults.auth_tokens == (TokenScope("default-token"),)
    assert config.defaults.panic_if_invalid is True


def test_token_objects_carry_server_globs_and_a_tool_filter() -> None:
    tokens = [
        "plain",
        {"token": "scoped", "servers": ["git*", "fetch"], "toolFilter": {"mode": "allow", "list": "read_*"}},
        {"Token": "csv", "Servers": "a, b"},
    ]
    options = server_options({"authTokens": tokens}, ...)
    assert options.auth_tokens == (
        TokenScope("plain"),
        TokenScope("scoped", servers=("git*", "fetch"), tool_filter=ToolFilter("allow", ("read_*",))),
        TokenScope("csv", servers=("a", "b")),
    )
    assert options.auth_tokens[0].unrestricted


def test_an_empty_token_is_an_error_naming_its_index() -> None:
    message = parse_error(None, s={"command": "x", "options": {"authTokens": ["ok", ""]}})
    assert message == "config.json: mcpServers.s.options.authTokens[1]: expected a non-empty token"


def test_a_token_object_without_token_is_an_error() -> None:
    message = parse_error({"authTokens": [{"servers": ["a"]}]})
    assert message == 'config.json: mcpProxy.options.authTokens[0]: needs "token"'


def test_auth_tokens_that_are_not_a_list_are_an_error() -> None:
    message = parse_error(None, x={"command": "c", "options": {"authTokens": "secret"}})
    assert message == "config.json: mcpServers.x.options.authTokens: expected a list of strings"


def test_duplicate_tokens_warn_and_are_kept_once() -> None:
    config, warnings = parse({"authTokens": ["a", "a"]})
    assert config.defaults.auth_tokens == (TokenScope("a"),)
    assert "config.json: mcpProxy.options.authTokens[1]: duplicate token" in warnings


def test_tool_filter_reads_a_list_with_a_case_insensitive_mode() -> None:
    options = server_options(None, {"toolFilter": {"mode": "BLOCK", "list": ["create_*", "delete_repo"]}})
    assert options.tool_filter == ToolFilter("block", ("create_*", "delete_repo"))


def test_tool_filter_list_may_be_a_comma_separated_string() -> None:
    options = server_options(None, {"toolFilter": {"mode": "allow", "list": "a, b,,c "}})
    assert options.tool_filter == ToolFilter("allow", ("a", "b", "c"))


def test_an_empty_tool_filter_list_filters_nothing() -> None:
    assert server_options(None, {"toolFilter": {"mode": "allow", "list": []}}).tool_filter is None
    assert server_options(None, {"toolFilter": {"mode": "allow", "list": ""}}).tool_filter is None


def test_a_missing_tool_filter_mode_warns_and_filters_nothing_like_the_original() -> None:
    config, warnings = parse(None, s={"command": "x", "options": {"toolFilter": {"list": ["a"]}}})
    assert config.servers["s"].options.tool_filter is None
    assert any("mcpServers.s.options.toolFilter.mode: missing; expected" in w for w in warnings)


@pytest.mark.parametrize("listed", [["a"], []])
def test_an_unknown_tool_filter_mode_is_an_error_naming_the_allowed_modes(listed: list[str]) -> None:
    # The original ignored such a filter: a typo in "block" would silently expose every tool.
    spec = {"mode": "deny", "list": listed}
    assert parse_error(None, s={"command": "x", "options": {"toolFilter": spec}}) == (
        'config.json: mcpServers.s.options.toolFilter.mode: expected "allow" or "block"'
    )


def test_tool_filter_is_not_inherited_and_warns_at_proxy_level() -> None:
    config, warnings = parse({"toolFilter": {"mode": "block", "list": ["a"]}}, s={"command": "x"})
    assert config.servers["s"].options.tool_filter is None
    assert "config.json: mcpProxy.options.toolFilter: only applies in mcpServers; ignored here" in warnings


def test_tool_overrides_rename_describe_and_title_tools() -> None:
    overrides = {"create_issue": {"name": "new_issue", "description": "Open an issue"}, "x": {"title": "X"}}
    options = server_options(None, {"toolOverrides": overrides})
    assert options.tool_overrides == {
        "create_issue": ToolOverride(name="new_issue", description="Open an issue"),
        "x": ToolOverride(title="X"),
    }


def test_two_tools_renamed_to_one_name_is_an_error() -> None:
    overrides = {"a": {"name": "same"}, "b": {"name": "same"}}
    message = parse_error(None, s={"command": "x", "options": {"toolOverrides": overrides}})
    assert (
        message
        == 'config.json: mcpServers.s.options.toolOverrides.b.name: "same" is already the new name of "a"'
    )


def test_session_mode_defaults_to_shared_for_stdio_and_isolated_for_http() -> None:
    assert server_options(None, ..., "stdio").session_mode == "shared"
    assert server_options(None, ..., "http").session_mode == "isolated"


def test_session_mode_is_inherited_when_set_on_the_proxy() -> None:
    assert server_options({"sessionMode": "Isolated"}, ..., "stdio").session_mode == "isolated"
    assert server_options({"sessionMode": "isolated"}, {"sessionMode": "shared"}).session_mode == "shared"


def test_mcpmux_additions_are_read_and_inherited() -> None:
    proxy = {
        "maxSessions": 5,
        "idleTimeout": "10m",
        "connectTimeout": 3,
        "requestTimeout": "1m30s",
        "lazyStart": True,
    }
    options = server_options(proxy, {"maxSessions": 7})
    assert options.max_sessions == 7
    assert options.idle_timeout_seconds == 600.0
    assert options.connect_timeout_seconds == 3.0
    assert options.request_timeout_seconds == 90.0
    assert options.lazy_start is True


def test_restart_and_health_check_inherit_field_by_field() -> None:
    proxy = {
        "restart": {"initialDelay": "1s", "multiplier": 3},
        "healthCheck": {"interval": "0", "timeout": "2s"},
    }
    options = server_options(
        proxy, {"restart": {"maxDelay": "1m", "jitter": 0}, "healthCheck": {"failureThreshold": 5}}
    )
    assert options.restart == BackoffPolicy(initial_seconds=1.0, max_seconds=60.0, multiplier=3.0, jitter=0.0)
    assert options.health_check == HealthCheck(interval_seconds=0.0, failure_threshold=5, timeout_seconds=2.0)


def test_restart_multiplier_below_one_is_an_error() -> None:
    message = parse_error({"restart": {"multiplier": 0.5}})
    assert message == "config.json: mcpProxy.options.restart.multiplier: expected a number >= 1"


def test_max_sessions_must_be_a_positive_integer() -> None:
    message = parse_error(None, s={"command": "x", "options": {"maxSessions": 0}})
    assert message == "config.json: mcpServers.s.options.maxSessions: expected an integer >= 1"


def test_a_negative_duration_option_is_an_error() -> None:
    message = parse_error({"idleTimeout": "-5s"})
    assert message == 'config.json: mcpProxy.options.idleTimeout: expected a duration like "30s"'


def test_booleans_may_come_as_true_or_false_strings_from_env_templates() -> None:
    assert server_options(None, {"logEnabled": "TRUE", "lazyStart": "false"}).log_enabled is True


def test_a_non_boolean_flag_is_an_error() -> None:
    message = parse_error({"logEnabled": "yes"})
    assert message == "config.json: mcpProxy.options.logEnabled: expected true or false"
