"""The official MCP conformance suite passes in full through mcpmux, for a stdio and an HTTP upstream.

`scripts/conformance.sh` installs Node 26 and the suite into `.conformance/` on first use (about 30 s)
and exits non-zero unless every counted check passed and at least CONFORMANCE_MIN_PASSED did. A
missing npm or a suite that cannot run is a failure, never a skip: CI installs what it needs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from relay_kit import relay_proxy

from harness import ROOT, ProxyProcess

SCRIPT = ROOT / "scripts" / "conformance.sh"
ALL_CHECKS = 44  # the full count of @modelcontextprotocol/conformance 0.1.16 with --suite all
SUITE_TIMEOUT_SECONDS = 240


@pytest.fixture(params=["stdio", "streamable-http"])
def proxy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProxyProcess]:
    """mcpmux fronting the everything fixture (shared over stdio, isolated sessions over HTTP)."""
    with relay_proxy(tmp_path, {"everything": (request.param, (), {})}, debug=False) as running:
        yield running


@pytest.mark.timeout(300)
def test_the_official_conformance_suite_passes_every_check_through_mcpmux(proxy: ProxyProcess) -> None:
    assert shutil.which("npm"), "npm is needed: scripts/conformance.sh installs the suite with it"
    env = {
        **os.environ,
        "CONFORMANCE_MIN_PASSED": str(ALL_CHECKS),
        "CONFORMANCE_TIMEOUT_SECONDS": str(SUITE_TIMEOUT_SECONDS),
    }
    run = subprocess.run(
        [str(SCRIPT), proxy.url("/everything/mcp")],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT_SECONDS + 30,
        check=False,
    )
    output = run.stdout + run.stderr
    log = proxy.log[-4000:]
    assert run.returncode == 0, f"the conformance suite failed:\n{output[-6000:]}\n--- mcpmux log ---\n{log}"
    assert f"conformance: {ALL_CHECKS} passed, 0 failed" in output, output[-3000:]
