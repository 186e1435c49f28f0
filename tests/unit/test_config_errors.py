"""Config errors: every one reported in one run (file: json.path: what was expected), and strict mode."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcpmux.config.parse import parse_config
from mcpmux.config.servers import TRANSPORT_EXPECTED
from mcpmux.errors import ConfigError, ConfigErrors


def errors_of(document: dict[str, Any], *, strict: bool = False) -> list[str]:
    with pytest.raises(ConfigErrors) as caught:
        parse_config(json.dumps(document), "config.json", environ={}, expand_env=True, strict=strict)
    return [str(error) for error in caught.value.errors]


BROKEN = {
    "mcpProxy": {"addr": "nine", "type": "websocket", "options": {"logEnabled": "maybe"}},
    "mcpServers": {
        "a": {"url": "https://a.example/sse", "transportType": "grpc"},
        "b": {"command": "x", "options": {"toolFilter": {"mode": "deny", "list": ["t"]}, "authTokens": [""]}},
        "c": {"command": 7},
        "ok": {"command": "x"},
    },
    "mcpGroups": {"g": {"servers": ["ok", "nope", "c"]}},
}


def test_every_error_is_reported_each_with_file_path_and_expectation() -> None:
    assert errors_of(BROKEN) == [
        "config.json: mcpProxy.options.logEnabled: expected true or false",
        f"config.json: mcpServers.a.transportType: {TRANSPORT_EXPECTED}",
        "config.json: mcpServers.b.options.authTokens[0]: expected a non-empty token",
        'config.json: mcpServers.b.options.toolFilter.mode: expected "allow" or "block"',
        "config.json: mcpServers.c.command: expected a string",
        'config.json: mcpProxy.addr: expected an address like ":9090" or "127.0.0.1:9090"',
        'config.json: mcpProxy.type: expected "sse" or "streamable-http"',
        'config.json: mcpGroups.g.servers.nope: unknown server "nope"',
    ]


def test_several_errors_read_as_one_message_with_a_line_each() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(json.dumps(BROKEN), "config.json", environ={}, expand_env=True)
    lines = str(caught.value).splitlines()
    assert lines[0] == "8 errors:"
    assert lines[1:] == [str(error) for error in caught.value.errors]  # type: ignore[attr-defined]


def test_one_error_keeps_its_single_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config('{"mcpProxy": {"addr": "x"}}', "c.json", environ={}, expand_env=True)
    assert str(caught.value) == 'c.json: mcpProxy.addr: expected an address like ":9090" or "127.0.0.1:9090"'


TYPOS = {
    "mcpProxy": {},
    "mcpServers": {"a": {"command": "x", "options": {"authToken": ["t"], "toolFliter": {}}}},
}


def test_warnings_stay_warnings_without_strict() -> None:
    _config, warnings = parse_config(json.dumps(TYPOS), "config.json", environ={}, expand_env=True)
    assert len(warnings) == 2


@pytest.mark.parametrize("how", ["argument", "mcpProxy.strict"])
def test_strict_turns_every_warning_into_an_error(how: str) -> None:
    document = json.loads(json.dumps(TYPOS))
    if how == "mcpProxy.strict":
        document["mcpProxy"]["strict"] = True
    with pytest.raises(ConfigErrors) as caught:
        parse_config(
            json.dumps(document), "config.json", environ={}, expand_env=True, strict=how == "argument"
        )
    assert str(caught.value).splitlines() == [
        "2 errors (strict: warnings count as errors):",
        'config.json: mcpServers.a.options.authToken: unknown key; did you mean "authTokens"?',
        'config.json: mcpServers.a.options.toolFliter: unknown key; did you mean "toolFilter"?',
    ]


def test_strict_includes_undefined_variables_and_prior_warnings() -> None:
    prior = [ConfigError(".env", "line 3", "expected KEY=VALUE")]
    with pytest.raises(ConfigErrors) as caught:
        parse_config(
            '{"mcpProxy": {"name": "${UNSET}"}}',
            "c.json",
            environ={},
            expand_env=True,
            strict=True,
            prior_warnings=prior,
        )
    assert [str(error) for error in caught.value.errors] == [
        ".env: line 3: expected KEY=VALUE",
        'c.json: environment variable "UNSET" is not set; it expands to an empty string',
    ]


def test_a_clean_config_passes_strict() -> None:
    document = {"mcpProxy": {"strict": True}, "mcpServers": {"a": {"command": "x"}}}
    config, warnings = parse_config(json.dumps(document), "c.json", environ={}, expand_env=True, strict=True)
    assert (list(config.servers), warnings) == (["a"], [])
