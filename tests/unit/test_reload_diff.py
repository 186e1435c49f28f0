"""Unit tests of reload.py: which servers a new config adds, removes, changes or leaves alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcpmux.config.model import ProxyConfig
from mcpmux.config.parse import parse_config
from mcpmux.reload import diff_configs, file_signature, watch_file


def config(servers: dict[str, Any], **proxy: Any) -> ProxyConfig:
    text = json.dumps({"mcpProxy": {"addr": ":9090", **proxy}, "mcpServers": servers})
    parsed, _warnings = parse_config(text, "config.json", environ={}, expand_env=False)
    return parsed


def stdio(*args: str, **options: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"command": "server", "args": list(args)}
    if options:
        entry["options"] = options
    return entry


def test_servers_are_sorted_into_added_removed_changed_and_unchanged() -> None:
    old = config({"keep": stdio(), "change": stdio("a"), "drop": stdio()})
    new = config({"keep": stdio(), "change": stdio("b"), "add": stdio()})
    diff = diff_configs(old, new)
    assert diff.added == ("add",)
    assert diff.removed == ("drop",)
    assert diff.changed == ("change",)
    assert diff.unchanged == ("keep",)
    assert diff.summary() == "added add; changed change; removed drop"


def test_an_identical_config_changes_nothing() -> None:
    servers = {"a": stdio("x", logEnabled=True), "b": {"url": "http://up/mcp", "headers": {"k": "v"}}}
    diff = diff_configs(config(servers), config(servers))
    assert not diff.servers_changed
    assert diff.unchanged == ("a", "b")
    assert diff.summary() == "no server changed"


def test_a_changed_option_env_or_header_counts_as_a_change() -> None:
    old = config(
        {"o": stdio(), "e": {**stdio(), "env": {"A": "1"}}, "h": {"url": "http://u", "headers": {"k": "1"}}}
    )
    new = config(
        {
            "o": stdio(requestTimeout="5s"),
            "e": {**stdio(), "env": {"A": "2"}},
            "h": {"url": "http://u", "headers": {"k": "2"}},
        }
    )
    assert diff_configs(old, new).changed == ("o", "e", "h")


def test_a_change_of_inherited_defaults_changes_every_server_that_inherits_them() -> None:
    servers = {"inherits": stdio(), "own": stdio(panicIfInvalid=False)}
    old = config(servers, options={"panicIfInvalid": False})
    new = config(servers, options={"panicIfInvalid": True})
    assert diff_configs(old, new).changed == ("inherits",)


def test_disabling_a_server_removes_it_and_enabling_adds_it() -> None:
    enabled = config({"a": stdio(), "b": stdio()})
    disabled = config({"a": {**stdio(), "disabled": True}, "b": stdio()})
    assert diff_configs(enabled, disabled).removed == ("a",)
    assert diff_configs(disabled, enabled).added == ("a",)


def test_a_new_listen_address_is_reported_as_needing_a_restart() -> None:
    servers = {"a": stdio()}
    assert diff_configs(config(servers), config(servers, addr=":9091")).startup_only == ("mcpProxy.addr",)
    assert diff_configs(config(servers), config(servers)).startup_only == ()


def test_the_file_signature_changes_when_the_file_is_rewritten_and_is_none_when_it_is_gone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.json"
    path.write_text("{}")
    first = file_signature(str(path))
    path.write_text('{"mcpProxy": {}}')
    assert file_signature(str(path)) not in (None, first)
    path.unlink()
    assert file_signature(str(path)) is None


@pytest.mark.anyio
async def test_watching_a_file_reports_each_rewrite_once(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{}")
    seen = anyio.Event()
    calls: list[str] = []

    async def on_change() -> None:
        calls.append(path.read_text())
        seen.set()

    baseline = file_signature(str(path))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: watch_file(
                    str(path), on_change, interval_seconds=0.01, settle_seconds=0.01, baseline=baseline
                )
            )
            path.write_text('{"changed": true}')
            await seen.wait()
            tg.cancel_scope.cancel()
    assert calls == ['{"changed": true}']
