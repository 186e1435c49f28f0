"""The command line: Go-style flags, --check-config, client-config output and exit codes."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcpmux import __version__
from mcpmux.cli import UsageError, main, parse_args, parse_http_headers

CONFIG = {
    "mcpProxy": {
        "baseURL": "https://mcp.example.com/",
        "name": "My Proxy",
        "options": {"authTokens": ["tok"]},
    },
    "mcpServers": {
        "github": {"command": "npx", "args": ["-y", "server-github"], "env": {"T": "$GH_TOKEN"}},
        "fetch": {"command": "uvx", "options": {"authTokens": []}},
        "old": {"url": "https://old.example/sse", "disabled": True},
    },
}


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG))
    return path


def run_mcpmux(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcpmux", *args], cwd=cwd, capture_output=True, text=True, timeout=30
    )


def test_check_config_as_a_real_process_reports_the_server_count_and_exits_0(config_path: Path) -> None:
    result = run_mcpmux("--check-config", cwd=config_path.parent)
    assert result.returncode == 0
    assert result.stdout == "Config OK: 2 MCP server(s) configured\n"
    assert 'environment variable "GH_TOKEN" is not set' in result.stderr


def test_check_config_with_a_broken_config_prints_the_error_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"mcpProxy": {}, "mcpServers": {"github": {"args": []}}}')
    result = run_mcpmux("-check-config", "-config", "bad.json", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert (
        result.stderr.strip()
        == 'Failed to load config: bad.json: mcpServers.github: needs "command" or "url"'
    )
    assert "Traceback" not in result.stderr


def test_version_prints_the_package_version() -> None:
    result = run_mcpmux("--version", cwd=Path.cwd())
    assert (result.returncode, result.stdout) == (0, f"mcpmux {__version__}\n")


def test_client_config_subcommand_prints_json_as_a_real_process(config_path: Path) -> None:
    result = run_mcpmux(
        "-config=config.json", "client-config", "--type", "streamable-http", cwd=config_path.parent
    )
    assert result.returncode == 0, result.stderr
    servers = json.loads(result.stdout)["mcpServers"]
    assert servers["github"] == {
        "type": "http",
        "url": "https://mcp.example.com/github/mcp",
        "headers": {"Authorization": "Bearer tok"},
    }
    assert servers["fetch"] == {"type": "http", "url": "https://mcp.example.com/fetch/mcp"}
    assert "old" not in servers
    assert servers["My-Proxy"]["url"] == "https://mcp.example.com/mcp"


def test_single_dash_config_flag_is_accepted(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-config", str(config_path), "-check-config"]) == 0
    assert capsys.readouterr().out == "Config OK: 2 MCP server(s) configured\n"


def test_expand_env_false_keeps_dollar_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.json").write_text(
        '{"mcpProxy": {"baseURL": "http://h"}, "mcpServers": {"$NAME": {"command": "x"}}}'
    )
    assert (
        main([f"--config={tmp_path / 'c.json'}", "-expand-env=false", "client-config", "-type", "sse"]) == 0
    )
    # the entry name is client-safe; the route's own name stays in the URL
    assert json.loads(capsys.readouterr().out)["mcpServers"]["NAME"]["url"] == "http://h/$NAME/sse"


def test_print_client_config_flag_uses_the_proxy_type(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(config_path), "--print-client-config"]) == 0
    assert (
        json.loads(capsys.readouterr().out)["mcpServers"]["fetch"]["url"]
        == "https://mcp.example.com/fetch/sse"
    )


def test_client_config_can_select_servers(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-config", str(config_path), "client-config", "-server", "fetch", "--server=github"]) == 0
    assert list(json.loads(capsys.readouterr().out)["mcpServers"]) == ["fetch", "github"]


def test_client_config_with_an_unknown_server_exits_2(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-config", str(config_path), "client-config", "-server", "nope"]) == 2
    assert 'unknown server "nope"' in capsys.readouterr().err


def test_a_missing_config_file_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-config", str(tmp_path / "none.json"), "-check-config"]) == 2
    assert capsys.readouterr().err == f"Failed to load config: {tmp_path / 'none.json'}: file not found\n"


def test_help_prints_usage_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-h"]) == 0
    assert "-config string" in capsys.readouterr().out


def test_an_unknown_flag_is_a_usage_error_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-nope"]) == 2
    assert "flag provided but not defined: -nope" in capsys.readouterr().err


def test_a_flag_without_its_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config"]) == 2
    assert "flag needs an argument: -config" in capsys.readouterr().err


def test_go_style_flags_parse_in_every_spelling() -> None:
    args = parse_args(
        [
            "-config=a.json",
            "--insecure",
            "-expand-env=0",
            "--http-timeout",
            "2.5",
            "-log-level=DEBUG",
            "-listen-fd",
            "3",
        ]
    )
    assert (args.config, args.insecure, args.expand_env, args.http_timeout) == ("a.json", True, False, 2.5)
    assert (args.log_level, args.listen_fd, args.command) == ("DEBUG", 3, None)


def test_defaults_match_the_original() -> None:
    args = parse_args([])
    assert (args.config, args.expand_env, args.http_timeout, args.log_level, args.log_format) == (
        "config.json",
        True,
        10.0,
        "info",
        "text",
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["-expand-env=maybe"],
        ["-log-level", "loud"],
        ["-log-format", "xml"],
        ["-http-timeout", "0"],
        ["-listen-fd", "x"],
        ["stray"],
        ["-http-headers", "no-colon"],
        ["client-config", "extra"],
    ],
)
def test_bad_arguments_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        parse_args(argv)


def test_a_bool_flag_does_not_swallow_the_next_argument() -> None:
    args = parse_args(["-insecure", "client-config", "-type", "sse"])
    assert (args.insecure, args.command, args.type) == (True, "client-config", "sse")


def test_http_headers_parse_from_semicolon_separated_pairs() -> None:
    assert parse_http_headers("Authorization: Bearer x; X-Key:a:b;") == {
        "Authorization": "Bearer x",
        "X-Key": "a:b",
    }
    assert parse_http_headers(None) == {}


def test_double_dash_ends_flags() -> None:
    with pytest.raises(UsageError, match='unexpected argument "-config"'):
        parse_args(["--", "-config"])


def test_pins_subcommand_takes_its_action_names_and_flags_in_any_order() -> None:
    args = parse_args(["-config", "c.json", "pins", "approve", "docs", "-lock", "x.lock", "search"])
    assert (args.command, args.pins_action, args.names, args.lock) == (
        "pins",
        "approve",
        ["docs", "search"],
        "x.lock",
    )
    assert parse_args(["pins", "verify"]).names == []
    with pytest.raises(UsageError, match="flag provided but not defined: -nope"):
        parse_args(["pins", "record", "-nope"])
