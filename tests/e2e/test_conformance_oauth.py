"""The official conformance suite's client auth scenarios pass against mcpmux's upstream OAuth client.

The suite (0.1.16, installed by scripts/conformance.sh into `.conformance/` or `$CONFORMANCE_DIR`) runs
tests/conformance_oauth_client.py once per scenario: it logs in with mcpmux's `UpstreamAuth` (asked for
each request's header and told of each 401/403, as mcpmux's upstream HTTP client does), then
initializes, lists and calls tools.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import ROOT

CONFORMANCE = Path(os.environ.get("CONFORMANCE_DIR", ROOT / ".conformance"))
CLIENT = f"{sys.executable} {ROOT / 'tests' / 'conformance_oauth_client.py'}"
AUTH_SUITE_CHECKS = 223  # `--suite auth` of 0.1.16: 14 scenarios
MORE = [  # scenarios outside `--suite auth` that mcpmux supports, with their check counts
    ("auth/client-credentials-basic", 8),
    ("auth/client-credentials-jwt", 8),
    ("auth/2025-03-26-oauth-metadata-backcompat", 12),
    ("auth/2025-03-26-oauth-endpoint-fallback", 7),
    ("auth/resource-mismatch", 2),
    ("auth/offline-access-scope", 12),
    ("auth/offline-access-not-supported", 14),
]


def run_suite(tmp_path: Path, *selection: str) -> tuple[int, int, str]:
    """(passed, failed or warned) over every checks.json the run wrote, and its output."""
    binaries = CONFORMANCE / "node_modules" / ".bin"
    assert (binaries / "conformance").exists(), f"the conformance suite is not installed in {CONFORMANCE}"
    command = [
        "conformance",
        "client",
        "--command",
        CLIENT,
        *selection,
        "--timeout",
        "120000",
        "-o",
        str(tmp_path),
    ]
    env = {**os.environ, "PATH": f"{binaries}:{os.environ['PATH']}"}
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=560, check=False, cwd=ROOT)
    checks = [c for path in tmp_path.rglob("checks.json") for c in json.loads(path.read_text())]
    passed = sum(1 for c in checks if c.get("status") == "SUCCESS")
    failed = sum(1 for c in checks if c.get("status") in ("FAILURE", "WARNING"))
    return passed, failed, run.stdout[-4000:] + run.stderr[-2000:]


@pytest.mark.timeout(600)
def test_the_auth_suite_passes_against_the_upstream_oauth_client(tmp_path: Path) -> None:
    passed, failed, output = run_suite(tmp_path, "--suite", "auth")
    assert failed == 0 and passed >= AUTH_SUITE_CHECKS, output


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("scenario", "checks"), MORE)
def test_more_auth_scenarios_pass(tmp_path: Path, scenario: str, checks: int) -> None:
    passed, failed, output = run_suite(tmp_path, "--scenario", scenario)
    assert (passed, failed) == (checks, 0), output
