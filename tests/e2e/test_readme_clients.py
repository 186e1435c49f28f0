"""The README's client snippets, copied out of README.md and run against a real mcpmux: the Python SDK 2.x
client, the TypeScript SDK client (installed with npm under .cache/), and the Claude Code / VS Code configs
(their shape checked against `mcpmux client-config`, then used to connect)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from harness import ROOT, ProxyProcess, running_proxy
from mcpmux.config.jsonc import load_json, strip_comments

TOKEN = "readme-token"
README_BASE = "http://127.0.0.1:9090"
TS_SDK = "@modelcontextprotocol/sdk"
TS_SDK_VERSION = "1.32.2"
TS_DIR = ROOT / ".cache" / "ts-client"
MIN_NODE_MAJOR = 18


def readme_snippet(name: str) -> str:
    """The fenced code block right after `<!-- test: NAME -->` in README.md."""
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- test: {re.escape(name)} -->\n```[a-z]*\n(.*?)\n```\n", text, re.S)
    assert match, f"README.md has no snippet marked <!-- test: {name} -->"
    return match.group(1) + "\n"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    """The quickstart's example config, with an auth token on every route."""
    config = load_json(strip_comments((ROOT / "examples" / "config.json").read_text()))
    del config["mcpProxy"]["baseURL"], config["mcpProxy"]["addr"]  # the harness binds its own port
    config["mcpProxy"]["options"]["authTokens"] = [TOKEN]
    with running_proxy(config, tmp_path_factory.mktemp("readme")) as running:
        yield running


def client_env(proxy: ProxyProcess) -> dict[str, str]:
    return {**os.environ, "MCPMUX_URL": proxy.url("/mcp"), "MCPMUX_TOKEN": TOKEN}


def assert_listed_and_called(output: str) -> None:
    assert re.search(r"^tools: .*\bnotes__add_note\b.*$", output, re.M), output
    assert re.search(r"^clock__add: ok 5(\.0)?$", output, re.M), output


def test_the_python_sdk_snippet_lists_and_calls_tools(proxy: ProxyProcess, tmp_path: Path) -> None:
    script = tmp_path / "client.py"
    script.write_text(readme_snippet("python-client"))
    result = subprocess.run(
        [sys.executable, str(script)], env=client_env(proxy), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert_listed_and_called(result.stdout)


def node_binary() -> str:
    """The system `node` when it is new enough, else the Node that scripts/conformance.sh installs."""
    candidates = [shutil.which("node")]
    conformance = Path(os.environ.get("CONFORMANCE_DIR", ROOT / ".conformance"))
    candidates.append(str(conformance / "node_modules" / ".bin" / "node"))
    for node in filter(None, candidates):
        try:
            major = subprocess.run(
                [node, "-p", "process.versions.node.split('.')[0]"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.strip()
        except OSError:
            continue
        if major.isdigit() and int(major) >= MIN_NODE_MAJOR:
            return node
    pytest.fail(f"the TypeScript snippet needs Node >= {MIN_NODE_MAJOR}: none on PATH or in {conformance}")


def install_ts_sdk() -> None:
    """npm install the pinned SDK once into .cache/ts-client (its npm cache under .cache/npm)."""
    installed = TS_DIR / "node_modules" / TS_SDK / "package.json"
    if installed.exists() and json.loads(installed.read_text())["version"] == TS_SDK_VERSION:
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(f"the TypeScript snippet needs npm to install {TS_SDK}@{TS_SDK_VERSION}")
    TS_DIR.mkdir(parents=True, exist_ok=True)
    (TS_DIR / "package.json").write_text('{"private": true, "type": "module"}\n')
    where = ["--prefix", str(TS_DIR), "--cache", str(ROOT / ".cache" / "npm")]
    quiet = ["--no-audit", "--no-fund", "--loglevel=error", "--save-exact"]
    result = subprocess.run(
        [npm, "install", *where, *quiet, f"{TS_SDK}@{TS_SDK_VERSION}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"npm install {TS_SDK}@{TS_SDK_VERSION} failed:\n{result.stderr}"


@pytest.mark.timeout(900)
def test_the_typescript_sdk_snippet_lists_and_calls_tools(proxy: ProxyProcess) -> None:
    node = node_binary()
    install_ts_sdk()
    script = TS_DIR / "readme-client.mjs"
    script.write_text(readme_snippet("typescript-client"))
    result = subprocess.run(
        [node, str(script)], cwd=TS_DIR, env=client_env(proxy), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert_listed_and_called(result.stdout)


def printed_client_config(proxy: ProxyProcess) -> dict[str, Any]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mcpmux",
            "--config",
            str(proxy.config_path),
            "client-config",
            "--type",
            "http",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    printed: dict[str, Any] = json.loads(result.stdout)["mcpServers"]
    return printed


async def connect_and_list(url: str, headers: dict[str, str]) -> set[str]:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    with anyio.fail_after(60):
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            async with streamable_http_client(url, http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    return {tool.name for tool in (await session.list_tools()).tools}


def check_entry_and_connect(entry: dict[str, Any], proxy: ProxyProcess, placeholder: str) -> None:
    """Same shape as what client-config prints for the merged endpoint; then it connects for real."""
    printed = printed_client_config(proxy)
    merged = next(value for value in printed.values() if value["url"] == proxy.url("/mcp"))
    assert entry.keys() == merged.keys()
    assert entry["type"] == merged["type"] == "http"
    assert entry["url"] == f"{README_BASE}/mcp"
    assert entry["headers"].keys() == merged["headers"].keys() == {"Authorization"}
    assert entry["headers"]["Authorization"] == f"Bearer {placeholder}"
    assert merged["headers"]["Authorization"] == f"Bearer {TOKEN}"
    url = entry["url"].replace(README_BASE, proxy.base)
    headers = {name: value.replace(placeholder, TOKEN) for name, value in entry["headers"].items()}
    tools = anyio.run(connect_and_list, url, headers)
    assert {"notes__add_note", "clock__add"} <= tools


def test_the_claude_code_config_matches_client_config_and_connects(proxy: ProxyProcess) -> None:
    document = json.loads(readme_snippet("claude-code-config"))
    assert list(document) == ["mcpServers"]
    check_entry_and_connect(document["mcpServers"]["mcpmux"], proxy, "${MCPMUX_TOKEN}")


def test_the_vscode_config_matches_client_config_and_connects(proxy: ProxyProcess) -> None:
    document = json.loads(readme_snippet("vscode-config"))
    assert set(document) == {"servers", "inputs"}
    (prompt,) = document["inputs"]
    assert (prompt["type"], prompt["id"], prompt["password"]) == ("promptString", "mcpmux-token", True)
    check_entry_and_connect(document["servers"]["mcpmux"], proxy, "${input:mcpmux-token}")
