"""The bundled example config runs from the venv's `mcpmux` without activating the venv."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest

from harness import ROOT, mcp_client, running_proxy
from mcpmux.config.jsonc import load_json, strip_comments

pytestmark = pytest.mark.anyio

# A PATH without the venv (nor pyenv shims): a bare `python3` here is the system one, without `mcp`.
PATH_WITHOUT_VENV = "/usr/bin:/bin"


def example_config() -> dict:
    return load_json(strip_comments((ROOT / "examples" / "config.json").read_text()))


async def test_the_example_runs_from_the_venv_binary_without_activation(tmp_path: Path) -> None:
    config = example_config()
    del config["mcpProxy"]["baseURL"], config["mcpProxy"]["addr"]  # the harness binds its own port
    mcpmux = Path(sys.executable).with_name("mcpmux")  # .venv/bin/mcpmux, run by its path
    env = {"PATH": PATH_WITHOUT_VENV, "VIRTUAL_ENV": "", "PYTHONPATH": ""}
    with running_proxy(config, tmp_path, launcher=(str(mcpmux),), env=env) as proxy:
        with anyio.fail_after(60):
            async with mcp_client(proxy.url("/mcp")) as session:
                names = {tool.name for tool in (await session.list_tools()).tools}
                added = await session.call_tool("notes__add_note", {"title": "t", "text": "x"})
                summed = await session.call_tool("clock__add", {"a": 2, "b": 3})
    assert {"notes__add_note", "notes__list_notes", "clock__now", "clock__add"} <= names
    assert not added.is_error and not summed.is_error
    assert "5" in json.dumps(summed.model_dump(mode="json"))
