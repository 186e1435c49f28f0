"""Config as a drop-in for mcp-proxy, through the real CLI and proxy: `options.disabled`, counts, warnings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from harness import FIXTURE, ROOT, mcp_client, running_proxy
from mcpmux.config.servers import TRANSPORT_EXPECTED

pytestmark = pytest.mark.anyio


def marking_server(marker: Path, **extra: Any) -> dict[str, Any]:
    """The everything fixture over stdio, which first touches `marker`: proof that its process started."""
    code = (
        "import pathlib, runpy, sys; "
        f"pathlib.Path({str(marker)!r}).touch(); "
        f"sys.argv = [{str(FIXTURE)!r}, '--transport', 'stdio']; "
        f"runpy.run_path({str(FIXTURE)!r}, run_name='__main__')"
    )
    return {"command": sys.executable, "args": ["-c", code], **extra}


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcpmux", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def disabled_config(tmp_path: Path) -> dict[str, Any]:
    return {
        "mcpServers": {
            "on": marking_server(tmp_path / "on.started"),
            # The original's place for it: a field of the server's options (Go OptionsV2.Disabled).
            "off": marking_server(tmp_path / "off.started", options={"disabled": True}),
            "old": marking_server(tmp_path / "old.started", disabled=True),
        }
    }


async def test_options_disabled_means_no_process_no_route_and_not_merged(tmp_path: Path) -> None:
    with running_proxy(disabled_config(tmp_path), tmp_path) as proxy:
        async with httpx2.AsyncClient(timeout=30) as http:
            refused = await http.post(
                proxy.url("/off/mcp"), json={"jsonrpc": "2.0", "id": 1, "method": "ping"}
            )
        with anyio.fail_after(30):
            async with mcp_client(proxy.url("/mcp")) as session:
                merged = {tool.name for tool in (await session.list_tools()).tools}
        log = proxy.log
    assert (tmp_path / "on.started").exists()
    assert not (tmp_path / "off.started").exists()
    assert not (tmp_path / "old.started").exists()
    assert refused.status_code == 404
    assert "on__echo" in merged
    assert not [name for name in merged if not name.startswith("on__")]
    assert "INFO  <off> Disabled" in log and "INFO  <old> Disabled" in log
    assert "<off> Connecting" not in log and "<off> Handling requests" not in log
    assert "options.disabled" not in log  # no "unknown key" warning for it


def test_check_config_does_not_count_disabled_servers(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"mcpProxy": {}, **disabled_config(tmp_path)}))
    result = run_cli("--check-config", "--config", str(tmp_path / "config.json"), cwd=ROOT)
    assert (result.returncode, result.stdout) == (0, "Config OK: 1 MCP server(s) configured\n")
    assert not (tmp_path / "off.started").exists()


def write_config(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))
    return path


def typo_config(tmp_path: Path, **proxy: Any) -> dict[str, Any]:
    options = {"authToken": ["t"], "toolFliter": {"mode": "block", "list": ["fail"]}}
    return {"mcpProxy": proxy, "mcpServers": {"a": marking_server(tmp_path / "a.started", options=options)}}


def test_typos_get_a_did_you_mean_and_still_load_without_strict(tmp_path: Path) -> None:
    path = write_config(tmp_path, typo_config(tmp_path))
    result = run_cli("--check-config", "--config", str(path), cwd=ROOT)
    assert (result.returncode, result.stdout) == (0, "Config OK: 1 MCP server(s) configured\n")
    assert f'{path}: mcpServers.a.options.authToken: unknown key; did you mean "authTokens"?' in result.stderr
    assert (
        f'{path}: mcpServers.a.options.toolFliter: unknown key; did you mean "toolFilter"?' in result.stderr
    )


@pytest.mark.parametrize("how", ["--strict", "mcpProxy.strict"])
def test_strict_makes_every_warning_an_error_and_starts_nothing(tmp_path: Path, how: str) -> None:
    path = write_config(tmp_path, typo_config(tmp_path, **({"strict": True} if how != "--strict" else {})))
    flags = ("--strict",) if how == "--strict" else ()
    result = run_cli("--config", str(path), *flags, cwd=ROOT)  # serving, not only checking
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-3:] == [
        "Failed to load config: 2 errors (strict: warnings count as errors):",
        f'{path}: mcpServers.a.options.authToken: unknown key; did you mean "authTokens"?',
        f'{path}: mcpServers.a.options.toolFliter: unknown key; did you mean "toolFilter"?',
    ]
    assert not (tmp_path / "a.started").exists()
    assert "Traceback" not in result.stderr


def test_every_config_error_is_reported_in_one_run(tmp_path: Path) -> None:
    document = {
        "mcpProxy": {"addr": "nine"},
        "mcpServers": {
            "a": {"url": "https://a.example/sse", "transportType": "grpc"},
            "b": {"command": "x", "options": {"toolFilter": {"mode": "alow", "list": ["t"]}}},
            "ok": marking_server(tmp_path / "ok.started"),
        },
    }
    path = write_config(tmp_path, document)
    result = run_cli("--config", str(path), cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-4:] == [
        "Failed to load config: 3 errors:",
        f"{path}: mcpServers.a.transportType: {TRANSPORT_EXPECTED}",
        f'{path}: mcpServers.b.options.toolFilter.mode: expected "allow" or "block"',
        f'{path}: mcpProxy.addr: expected an address like ":9090" or "127.0.0.1:9090"',
    ]
    assert not (tmp_path / "ok.started").exists()
