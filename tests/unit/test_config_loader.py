"""Loading a config from a file or an http(s) URL, with .env files and logged warnings."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mcpmux.config.loader import load_config
from mcpmux.errors import ConfigError

MINIMAL = {"mcpProxy": {"name": "$NAME"}, "mcpServers": {"s": {"command": "x"}}}


def write_config(directory: Path, document: Any = MINIMAL, name: str = "config.json") -> str:
    path = directory / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def test_a_config_file_is_loaded_and_its_source_recorded(tmp_path: Path) -> None:
    source = write_config(tmp_path)
    config = load_config(source, environ={"NAME": "mine"})
    assert (config.name, config.source, list(config.servers)) == ("mine", source, ["s"])


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(str(tmp_path / "nope.json"))
    assert str(caught.value) == f"{tmp_path / 'nope.json'}: file not found"


def test_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(str(tmp_path))


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_bytes(b'{"mcpProxy": {"name": "\xff"}}')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(str(tmp_path / "bad.json"))


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps({"mcpProxy": {}}).encode())
    assert load_config(str(tmp_path / "bom.json")).servers == {}


def test_warnings_are_logged_on_the_config_logger(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = write_config(tmp_path, {"mcpProxy": {"nmae": "typo"}})
    with caplog.at_level(logging.WARNING, logger="mcpmux.config"):
        load_config(source, environ={})
    assert [r.getMessage() for r in caplog.records] == [
        f'{source}: mcpProxy.nmae: unknown key; did you mean "name"?'
    ]


def test_a_dotenv_next_to_the_config_is_read(tmp_path: Path) -> None:
    source = write_config(tmp_path)
    (tmp_path / ".env").write_text("NAME=from-dotenv\n")
    assert load_config(source, environ={}).name == "from-dotenv"


def test_the_real_environment_wins_over_the_dotenv_file(tmp_path: Path) -> None:
    source = write_config(tmp_path)
    (tmp_path / ".env").write_text("NAME=from-dotenv\n")
    assert load_config(source, environ={"NAME": "from-env"}).name == "from-env"


def test_an_explicit_env_file_replaces_the_neighbouring_one(tmp_path: Path) -> None:
    source = write_config(tmp_path)
    (tmp_path / ".env").write_text("NAME=neighbour\n")
    (tmp_path / "prod.env").write_text("export NAME='explicit'\n")
    assert load_config(source, env_file=str(tmp_path / "prod.env"), environ={}).name == "explicit"


def test_a_missing_explicit_env_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.env: file not found"):
        load_config(write_config(tmp_path), env_file=str(tmp_path / "missing.env"), environ={})


def test_no_dotenv_is_read_when_expansion_is_off(tmp_path: Path) -> None:
    source = write_config(tmp_path)
    (tmp_path / ".env").write_text("this line is broken\n")
    assert load_config(source, expand_env=False).name == "$NAME"


class ConfigHandler(BaseHTTPRequestHandler):
    seen_headers: dict[str, str] = {}

    def do_GET(self) -> None:
        ConfigHandler.seen_headers = dict(self.headers.items())
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/config.json")
            self.end_headers()
            return
        status, body = (200, json.dumps(MINIMAL).encode()) if self.path == "/config.json" else (404, b"no")
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def config_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ConfigHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_remote_config_is_fetched_with_the_given_headers(config_server: str) -> None:
    url = f"{config_server}/config.json"
    config = load_config(
        url, http_headers={"X-Api-Key": "k1", "Authorization": "Bearer t"}, environ={"NAME": "r"}
    )
    assert (config.name, config.source) == ("r", url)
    assert ConfigHandler.seen_headers["X-Api-Key"] == "k1"
    assert ConfigHandler.seen_headers["Authorization"] == "Bearer t"


def test_a_remote_config_follows_redirects(config_server: str) -> None:
    assert list(load_config(f"{config_server}/redirect", environ={}).servers) == ["s"]


def test_a_remote_http_error_status_is_a_config_error(config_server: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(f"{config_server}/missing.json")
    assert str(caught.value) == f"{config_server}/missing.json: cannot fetch: HTTP 404 Not Found"


def test_an_unreachable_remote_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot fetch"):
        load_config("http://127.0.0.1:1/config.json", http_timeout_seconds=2)


def test_mcpmux_python_expands_to_the_interpreter_mcpmux_runs_under(tmp_path: Path) -> None:
    source = write_config(tmp_path, {"mcpProxy": {}, "mcpServers": {"s": {"command": "${MCPMUX_PYTHON}"}}})
    assert load_config(source, environ={}).servers["s"].command == sys.executable
    (tmp_path / ".env").write_text("MCPMUX_PYTHON=/from/dotenv\n")
    assert load_config(source, environ={}).servers["s"].command == "/from/dotenv"
    assert load_config(source, environ={"MCPMUX_PYTHON": "/env"}).servers["s"].command == "/env"
    assert load_config(source, environ={}, expand_env=False).servers["s"].command == "${MCPMUX_PYTHON}"
