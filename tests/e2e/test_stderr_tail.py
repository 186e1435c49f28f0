"""A stdio server that fails at start is reported with the last lines of its stderr, secrets redacted
(issue 19): in the error log line and in the runtime state `/_readyz` and the status JSON read."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from fault_kit import FAST_RESTART, readyz

from harness import running_proxy, wait_for_log

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-value-42"
FAILING = (
    "import os, sys\n"
    "print('starting with token=' + os.environ['API_TOKEN'], file=sys.stderr)\n"
    "print('the key is ' + os.environ['API_TOKEN'], file=sys.stderr)\n"
    "import no_such_module_for_mcpmux\n"
)


def failing(script: str, secret: str) -> dict[str, Any]:
    """A stdio server running `script` with `secret` in its environment, restarted fast."""
    return {
        "command": sys.executable,
        "args": ["-c", script],
        "env": {"API_TOKEN": secret},
        "options": {"restart": FAST_RESTART},
    }


async def test_a_server_failing_at_start_shows_its_stderr_tail_redacted(tmp_path: Path) -> None:
    config = {"mcpServers": {"broken": failing(FAILING, SECRET)}}
    with running_proxy(config, tmp_path) as proxy, anyio.fail_after(30):
        line = await wait_for_log(proxy, r"broken failed to connect")
        assert "process exited with code 1; stderr:" in line, line
        assert "ModuleNotFoundError: No module named 'no_such_module_for_mcpmux'" in line, line
        status, body = readyz(proxy)
        assert status == 503
        broken = body["servers"]["broken"]
        assert broken["last_stderr"][-1] == "ModuleNotFoundError: No module named 'no_such_module_for_mcpmux'"
        assert "starting with token=***" in broken["last_stderr"]
        assert "the key is ***" in broken["last_stderr"]
        assert len(broken["last_stderr"]) <= 10
    assert SECRET not in proxy.log
    assert SECRET not in str(body)


LONG_SECRET = "long-s3cr3t-" + "v" * 48
STRADDLING = (
    "import os, sys\n"
    "print('x' * 490 + ' ' + os.environ['API_TOKEN'], file=sys.stderr)\n"  # it straddles the 500-char cut
    "import no_such_module_for_mcpmux\n"
)


async def test_a_secret_straddling_the_line_cut_shows_no_part_of_itself(tmp_path: Path) -> None:
    config = {"mcpServers": {"broken": failing(STRADDLING, LONG_SECRET)}}
    with running_proxy(config, tmp_path) as proxy, anyio.fail_after(30):
        await wait_for_log(proxy, r"broken failed to connect")
        _status, body = readyz(proxy)
    lines = body["servers"]["broken"]["last_stderr"]
    assert lines[0] == "x" * 490 + " ***"  # was cut at 500 first: "long-s3cr" stayed, unredacted
    assert LONG_SECRET[:9] not in str(body) and LONG_SECRET[:9] not in proxy.log
