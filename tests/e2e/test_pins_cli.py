"""`mcpmux pins record|verify|diff|approve` against real upstreams whose catalogs change between starts."""

from __future__ import annotations

import json
from pathlib import Path

from pins_kit import V1, V2, V2_DIFF, drifting, pins, write_catalog


def setup(tmp_path: Path) -> Path:
    write_catalog(tmp_path / "docs.json", V1)
    write_catalog(tmp_path / "other.json", {"tools": [{"name": "ping", "inputSchema": {"type": "object"}}]})
    config = {
        "mcpProxy": {"baseURL": "http://127.0.0.1:9", "addr": "127.0.0.1:0"},
        "mcpServers": {
            "docs": drifting(tmp_path / "docs.json", lazyStart=True),
            "other": drifting(tmp_path / "other.json"),
            "off": {"command": "false", "disabled": True},
        },
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_record_writes_every_page_of_every_server_and_verify_passes(tmp_path: Path) -> None:
    config = setup(tmp_path)
    recorded = pins(config, "record")
    assert recorded.returncode == 0, recorded.stderr
    assert recorded.stdout.startswith("Recorded 5 tools, 1 prompts, 1 resource templates of 2 server(s)")
    lock = json.loads((tmp_path / "mcpmux.lock.json").read_text())
    assert set(lock["servers"]) == {"docs", "other"}  # the lazyStart server too, not the disabled one
    assert set(lock["servers"]["docs"]["tools"]) == {"search", "fetch", "delete", "count"}  # two pages
    assert lock["servers"]["docs"]["instructions"].startswith("sha256:")
    verified = pins(config, "verify")
    assert (verified.returncode, verified.stderr) == (0, ""), verified.stderr
    assert "match" in verified.stdout


def test_verify_fails_with_a_readable_diff_after_drift_and_diff_exits_0(tmp_path: Path) -> None:
    config = setup(tmp_path)
    assert pins(config, "record").returncode == 0
    write_catalog(tmp_path / "docs.json", V2)
    verified = pins(config, "verify")
    assert verified.returncode == 1
    assert verified.stdout.splitlines() == V2_DIFF
    assert "5 change(s)" in verified.stderr and "Traceback" not in verified.stderr
    shown = pins(config, "diff", "docs")
    assert (shown.returncode, shown.stdout.splitlines()) == (0, V2_DIFF)


def test_approve_one_tool_then_the_rest(tmp_path: Path) -> None:
    config = setup(tmp_path)
    lock = tmp_path / "pins" / "custom.lock.json"
    lock.parent.mkdir()
    assert pins(config, "record", "-lock", str(lock)).returncode == 0
    write_catalog(tmp_path / "docs.json", V2)
    approved = pins(config, "approve", "docs", "upload", "--lock", str(lock))
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.splitlines()[1:] == [
        "+ tool 'upload' of server 'docs' is new (not in the lock file)"
    ]
    left = pins(config, "verify", "-lock", str(lock)).stdout.splitlines()
    assert left == [line for line in V2_DIFF if "upload" not in line]
    assert pins(config, "approve", "docs", "-lock", str(lock)).returncode == 0
    assert pins(config, "verify", "-lock", str(lock)).returncode == 0


def test_bad_arguments_and_missing_lock_are_clear_errors(tmp_path: Path) -> None:
    config = setup(tmp_path)
    missing = pins(config, "verify")
    assert missing.returncode == 1
    assert "no lock file; create it with `mcpmux pins record`" in missing.stderr
    unknown = pins(config, "approve", "nope")
    assert unknown.returncode == 2
    assert 'no enabled server "nope" in the config (servers: docs, other)' in unknown.stderr
    assert pins(config, "frobnicate").returncode == 2
    assert pins(config, "approve", "docs", "no_such_tool").returncode == 2
    (tmp_path / "mcpmux.lock.json").write_text("{not json")
    broken = pins(config, "verify")
    assert broken.returncode == 1 and "mcpmux.lock.json: not valid JSON (line 1" in broken.stderr
    assert all("Traceback" not in r.stderr for r in (missing, unknown, broken))


def test_a_server_that_cannot_start_fails_record_and_writes_nothing(tmp_path: Path) -> None:
    config = setup(tmp_path)
    (tmp_path / "other.json").unlink()  # the fixture exits at once
    document = json.loads(config.read_text())
    document["mcpProxy"]["options"] = {"connectTimeout": "5s", "restart": {"initialDelay": "10ms"}}
    config.write_text(json.dumps(document))
    recorded = pins(config, "record")
    assert recorded.returncode == 1
    assert "could not read the catalog of 1 server(s): server 'other':" in recorded.stderr
    assert not (tmp_path / "mcpmux.lock.json").exists()


def test_a_disabled_server_keeps_its_entry_and_a_removed_one_is_reported_gone(tmp_path: Path) -> None:
    config = setup(tmp_path)
    assert pins(config, "record").returncode == 0
    document = json.loads(config.read_text())
    document["mcpServers"]["other"]["disabled"] = True
    config.write_text(json.dumps(document))
    assert pins(config, "verify").returncode == 0
    del document["mcpServers"]["other"]
    config.write_text(json.dumps(document))
    verified = pins(config, "verify")
    assert (verified.returncode, verified.stdout.splitlines()) == (1, ["- server 'other' is gone"])
