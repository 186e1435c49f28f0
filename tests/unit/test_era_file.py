"""The remembered era of `protocol: auto` upstreams: the identity it is keyed by, the state file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mcpmux.config.model import ServerConfig, ServerOptions
from mcpmux.upstream.era_memory import EraFile, EraMemory, transport_identity

HTTP = ServerConfig("s", "streamable-http", ServerOptions(protocol="auto"), url="https://a.example/mcp")
STDIO = ServerConfig("s", "stdio", ServerOptions(protocol="auto"), command="srv", args=("--fast",))


def test_the_identity_leaves_credentials_out_and_tells_servers_apart() -> None:
    same = [
        replace(HTTP, url="https://user:secret@a.example/mcp?key=secret"),
        replace(HTTP, headers={"Authorization": "Bearer secret"}),
        replace(STDIO, env={"TOKEN": "secret"}),
    ]
    assert [transport_identity(s) for s in same] == [transport_identity(HTTP)] * 2 + [
        transport_identity(STDIO)
    ]
    different = [replace(HTTP, url="https://b.example/mcp"), replace(STDIO, args=("--slow",))]
    assert transport_identity(different[0]) != transport_identity(HTTP)
    assert transport_identity(different[1]) != transport_identity(STDIO)


def test_the_file_remembers_per_server_and_identity_and_forgets(tmp_path: Path) -> None:
    file = EraFile(str(tmp_path / "eras.json"))
    assert file.recall("s", "id1") is None
    file.store("s", "id1", True)
    file.store("t", "id2", False)
    assert (file.recall("s", "id1"), file.recall("t", "id2"), file.recall("s", "other")) == (
        True,
        False,
        None,
    )
    file.store("s", "id1", None)
    assert (file.recall("s", "id1"), file.recall("t", "id2")) == (None, False)


def test_a_damaged_file_is_ignored_and_an_unwritable_one_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    damaged = tmp_path / "eras.json"
    damaged.write_text("{not json")
    assert EraFile(str(damaged)).recall("s", "id") is None
    file = EraFile(str(tmp_path / "no-such-directory" / "eras.json"))
    file.store("s", "id", True)
    file.store("s", "id", False)
    assert sum("cannot write" in r.message for r in caplog.records) == 1


@pytest.mark.anyio
async def test_memory_probes_once_then_uses_the_file_and_forgets_what_fails(tmp_path: Path) -> None:
    file = EraFile(str(tmp_path / "eras.json"))
    probes: list[bool] = []

    async def probe() -> bool:
        probes.append(True)
        return True

    first = EraMemory("s", file, "id")
    assert await first.settle(probe) is True and await first.settle(probe) is True
    second = EraMemory("s", file, "id")  # after a restart
    assert second.remembered and await second.settle(probe) is True and len(probes) == 1
    second.forget_if_remembered()
    assert second.modern is None and file.recall("s", "id") is None
    third = EraMemory("s", file, "id")
    third.connected()
    third.forget_if_remembered()  # probed by this process, not remembered: kept
    assert await third.settle(probe) is True and len(probes) == 2
