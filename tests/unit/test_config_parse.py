"""Config parsing: the seed's format, defaults, transports, servers, names and error messages."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcpmux import __version__
from mcpmux.config.model import ProxyConfig
from mcpmux.config.parse import listen_port, parse_config
from mcpmux.errors import ConfigError


def parse(
    document: dict[str, Any] | str, environ: dict[str, str] | None = None
) -> tuple[ProxyConfig, list[str]]:
    text = document if isinstance(document, str) else json.dumps(document)
    return parse_config(text, "config.json", environ=environ or {}, expand_env=True)


def parse_error(document: dict[str, Any] | str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(document)
    return str(caught.value)


def with_servers(**servers: Any) -> dict[str, Any]:
    return {"mcpProxy": {}, "mcpServers": servers}


def test_only_mcp_proxy_is_required_and_no_servers_means_no_routes() -> None:
    config, warnings = parse({"mcpProxy": {}})
    assert config.servers == {}
    assert warnings == []


def test_defaults_are_port_9090_sse_package_version_and_a_local_base_url() -> None:
    config, _ = parse({"mcpProxy": {}})
    assert (config.addr, config.type, config.name, config.version) == (":9090", "sse", "mcpmux", __version__)
    assert config.base_url == "http://127.0.0.1:9090"
    assert config.max_request_bytes == 4 * 1024 * 1024
    assert config.source == "config.json"


def test_an_empty_addr_means_port_80_like_go() -> None:
    config, _ = parse({"mcpProxy": {"addr": ""}})
    assert config.addr == ""
    assert config.base_url == "http://127.0.0.1"


def test_base_url_is_derived_from_a_specific_listen_host() -> None:
    config, _ = parse({"mcpProxy": {"addr": "127.0.0.2:8080"}})
    assert config.base_url == "http://127.0.0.2:8080"


def test_listen_port_understands_go_addresses() -> None:
    assert listen_port(":9090") == 9090
    assert listen_port("[::1]:8080") == 8080
    assert listen_port("") == 80
    assert listen_port("localhost") is None
    assert listen_port(":99999") is None


def test_an_addr_without_a_port_is_an_error() -> None:
    assert parse_error({"mcpProxy": {"addr": "localhost"}}) == (
        'config.json: mcpProxy.addr: expected an address like ":9090" or "127.0.0.1:9090"'
    )


def test_base_url_loses_its_trailing_slash() -> None:
    config, _ = parse({"mcpProxy": {"baseURL": "https://mcp.example.com/prefix/"}})
    assert config.base_url == "https://mcp.example.com/prefix"


def test_a_base_url_that_is_not_http_is_only_a_warning() -> None:
    config, warnings = parse({"mcpProxy": {"baseURL": "mcp.example.com"}})
    assert config.base_url == "mcp.example.com"
    assert any("mcpProxy.baseURL: expected an http(s) URL" in w for w in warnings)


def test_proxy_type_is_case_insensitive_and_validated() -> None:
    assert parse({"mcpProxy": {"type": "Streamable-HTTP"}})[0].type == "streamable-http"
    assert parse_error({"mcpProxy": {"type": "websocket"}}) == (
        'config.json: mcpProxy.type: expected "sse" or "streamable-http"'
    )


def test_keys_of_our_schema_match_case_insensitively_at_every_level() -> None:
    config, warnings = parse(
        {
            "MCPPROXY": {"BaseUrl": "https://x.example", "OPTIONS": {"LogEnabled": True}},
            "mcpservers": {"gh": {"Command": "npx", "ARGS": ["-y"], "Disabled": True, "Options": {}}},
        }
    )
    assert warnings == []
    assert config.base_url == "https://x.example"
    assert config.servers["gh"].command == "npx"
    assert config.servers["gh"].args == ("-y",)
    assert config.servers["gh"].disabled is True
    assert config.servers["gh"].options.log_enabled is True


def test_keys_inside_user_maps_keep_their_case() -> None:
    config, _ = parse(with_servers(GitHub={"command": "x", "env": {"Token": "a", "TOKEN": "b"}}))
    assert list(config.servers) == ["GitHub"]
    assert config.servers["GitHub"].env == {"Token": "a", "TOKEN": "b"}


def test_unknown_keys_are_accepted_with_a_warning_naming_the_path() -> None:
    config, warnings = parse(with_servers(github={"comand": "npx", "url": "https://x.example/sse"}))
    assert config.servers["github"].transport == "sse"
    assert 'config.json: mcpServers.github.comand: unknown key; did you mean "command"?' in warnings


@pytest.mark.parametrize(
    ("server", "warning"),
    [
        ({"options": {"authToken": ["t"]}}, 'options.authToken: unknown key; did you mean "authTokens"?'),
        ({"options": {"toolFliter": {}}}, 'options.toolFliter: unknown key; did you mean "toolFilter"?'),
        ({"authTokens": ["t"]}, 'authTokens: unknown key; did you mean "options.authTokens"?'),
        ({"toolfilter": {}}, 'toolfilter: unknown key; did you mean "options.toolFilter"?'),
        ({"banana": 1}, "banana: unknown key"),
    ],
)
def test_an_unknown_key_near_a_known_one_gets_a_did_you_mean(server: dict[str, Any], warning: str) -> None:
    _config, warnings = parse(with_servers(a={"command": "x", **server}))
    assert warnings == [f"config.json: mcpServers.a.{warning}"]


def test_an_unknown_proxy_key_suggests_the_options_key_it_belongs_in() -> None:
    _config, warnings = parse({"mcpProxy": {"authTokens": ["t"]}})
    assert warnings == ['config.json: mcpProxy.authTokens: unknown key; did you mean "options.authTokens"?']


def test_keys_that_differ_only_in_case_warn_and_the_last_one_wins() -> None:
    config, warnings = parse('{"mcpProxy": {"name": "a", "Name": "b"}}')
    assert config.name == "b"
    assert any("mcpProxy.Name: duplicate" in w for w in warnings)


def test_command_means_stdio_with_args_env_and_cwd() -> None:
    config, _ = parse(with_servers(s={"command": "uvx", "args": ["x"], "env": {"A": "1"}, "cwd": "/tmp"}))
    server = config.servers["s"]
    assert (server.transport, server.command, server.args, server.env, server.cwd) == (
        "stdio",
        "uvx",
        ("x",),
        {"A": "1"},
        "/tmp",
    )


def test_url_means_sse_unless_transport_type_asks_for_streamable_http() -> None:
    config, _ = parse(
        with_servers(
            a={"url": "https://a.example/sse"},
            b={"url": "https://b.example/mcp", "transportType": "streamable-http"},
            c={"url": "https://c.example/mcp", "transportType": "HTTP"},
            d={"url": "https://d.example/mcp", "transportType": "streamableHttp"},
            e={"url": "https://e.example/mcp", "type": "http"},
        )
    )
    transports = {name: server.transport for name, server in config.servers.items()}
    assert transports == {
        "a": "sse",
        "b": "streamable-http",
        "c": "streamable-http",
        "d": "streamable-http",
        "e": "streamable-http",
    }


@pytest.mark.parametrize(
    "entry",
    [
        {"url": "https://a.example/sse", "transportType": "grpc"},
        {"command": "x", "transportType": "stdoi"},
        {"url": "https://a.example/mcp", "type": "streamable"},
    ],
)
def test_an_unknown_transport_type_is_an_error_naming_the_allowed_values(entry: dict[str, Any]) -> None:
    key = "type" if "type" in entry else "transportType"
    assert parse_error(with_servers(a=entry)) == (
        f'config.json: mcpServers.a.{key}: expected "stdio", "sse" or "streamable-http" (or its alias "http")'
    )


def test_command_wins_over_url_and_the_url_is_reported_as_ignored() -> None:
    config, warnings = parse(with_servers(a={"command": "x", "url": "https://a.example/sse"}))
    assert config.servers["a"].transport == "stdio"
    assert config.servers["a"].url is None
    assert "config.json: mcpServers.a.url: ignored for a stdio server" in warnings


def test_a_server_with_neither_command_nor_url_is_an_error_naming_it() -> None:
    assert parse_error(with_servers(github={"args": []})) == (
        'config.json: mcpServers.github: needs "command" or "url"'
    )


def test_transport_type_stdio_without_command_is_an_error() -> None:
    message = parse_error(with_servers(a={"transportType": "stdio", "url": "https://a.example"}))
    assert message == 'config.json: mcpServers.a: transportType "stdio" needs "command"'


def test_a_url_that_is_not_http_is_an_error() -> None:
    message = parse_error(with_servers(a={"url": "ftp://a.example"}))
    assert message.startswith("config.json: mcpServers.a.url: expected an http(s) URL")


def test_headers_and_timeout_are_read_for_http_servers() -> None:
    config, _ = parse(
        with_servers(a={"url": "https://a.example", "headers": {"X-Key": "k"}, "timeout": "30s"})
    )
    assert config.servers["a"].headers == {"X-Key": "k"}
    assert config.servers["a"].timeout_seconds == 30.0


def test_timeout_applies_to_stdio_servers_too_and_zero_means_none() -> None:
    config, _ = parse(with_servers(a={"command": "x", "timeout": 5}, b={"command": "x", "timeout": 0}))
    assert config.servers["a"].timeout_seconds == 5.0
    assert config.servers["b"].timeout_seconds is None


def test_a_bad_timeout_names_its_path() -> None:
    assert parse_error(with_servers(a={"command": "x", "timeout": "soon"})) == (
        'config.json: mcpServers.a.timeout: expected a duration like "30s"'
    )


def test_env_numbers_and_booleans_become_strings_with_a_warning() -> None:
    config, warnings = parse(with_servers(a={"command": "x", "env": {"PORT": 8080, "DEBUG": True}}))
    assert config.servers["a"].env == {"PORT": "8080", "DEBUG": "true"}
    assert any("mcpServers.a.env.PORT: expected a string" in w for w in warnings)


def test_args_must_be_a_list_of_strings() -> None:
    assert parse_error(with_servers(a={"command": "x", "args": ["a", 1]})) == (
        "config.json: mcpServers.a.args: expected a list of strings"
    )


def test_header_values_must_be_strings() -> None:
    assert parse_error(with_servers(a={"url": "https://a.example", "headers": {"X": 1}})) == (
        "config.json: mcpServers.a.headers.X: expected a string"
    )


def test_a_disabled_server_is_kept_but_not_enabled() -> None:
    config, _ = parse(with_servers(a={"command": "x", "disabled": True}, b={"command": "y"}))
    assert config.servers["a"].disabled is True
    assert list(config.enabled_servers) == ["b"]


def test_options_disabled_disables_like_the_original_and_is_not_inherited() -> None:
    config, warnings = parse(
        {
            "mcpProxy": {"options": {"disabled": True}},
            "mcpServers": {
                "a": {"command": "x", "options": {"Disabled": True}},
                "b": {"command": "y", "options": {"disabled": "false"}},
            },
        }
    )
    assert config.servers["a"].disabled is True
    assert list(config.enabled_servers) == ["b"]
    assert warnings == ["config.json: mcpProxy.options.disabled: only applies in mcpServers; ignored here"]


def test_server_names_may_hold_a_slash_for_the_path_token_trick() -> None:
    config, _ = parse(with_servers(**{"fetch/s3cret": {"command": "uvx"}}))
    assert "fetch/s3cret" in config.servers


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "expected a non-empty name"),
        ("/fetch", 'must not start or end with "/"'),
        ("fetch/", 'must not start or end with "/"'),
        ("_healthz", 'must not start with "_"'),
        ("a//b", "path segments"),
        ("a?b", '"?"'),
    ],
)
def test_bad_server_names_are_errors(name: str, problem: str) -> None:
    message = parse_error(with_servers(**{name: {"command": "x"}}))
    assert message.startswith(f"config.json: mcpServers.{name}: ")
    assert problem in message


def test_a_server_that_is_not_an_object_is_an_error() -> None:
    assert parse_error(with_servers(a="npx")) == "config.json: mcpServers.a: expected an object"


def test_a_document_without_mcp_proxy_is_an_error() -> None:
    assert parse_error({"mcpServers": {}}) == 'config.json: missing "mcpProxy"'


def test_a_document_that_is_not_an_object_is_an_error() -> None:
    assert parse_error("[1, 2]") == "config.json: expected a JSON object at the top level"


def test_a_json_syntax_error_gives_line_and_column() -> None:
    message = parse_error('{\n  "mcpProxy": {\n    "addr" ":9090"\n  }\n}')
    assert message == "config.json: line 3, column 12: Expecting ':' delimiter"


def test_nan_is_not_json() -> None:
    assert parse_error('{"mcpProxy": {"maxRequestBytes": NaN}}') == (
        "config.json: line 1, column 34: NaN is not valid JSON"
    )


def test_an_empty_file_is_reported_as_such() -> None:
    assert parse_error("  \n") == "config.json: line 1, column 1: the file is empty"


def test_allowed_hosts_origins_and_max_request_bytes_are_read() -> None:
    config, _ = parse(
        {"mcpProxy": {"allowedHosts": ["mcp.local", "*"], "allowedOrigins": ["*"], "maxRequestBytes": 1024}}
    )
    assert config.allowed_hosts == ("mcp.local", "*")
    assert config.allowed_origins == ("*",)
    assert config.max_request_bytes == 1024


def test_max_request_bytes_must_be_positive() -> None:
    assert parse_error({"mcpProxy": {"maxRequestBytes": 0}}) == (
        "config.json: mcpProxy.maxRequestBytes: expected an integer >= 1"
    )
