"""The official conformance suite's 2026-07-28 requirement set through mcpmux, with a 2025-only upstream.

The suite (`@modelcontextprotocol/conformance` 0.2.0-alpha line, `--requirements 2026-07-28`) is
installed on first use into CONFORMANCE_2026_DIR (default `.conformance-2026/`, beside the 0.1.16 suite's
`.conformance/`, whose Node 26 it runs on: run `scripts/conformance.sh` once first). Every scored check
must pass except those listed in CANNOT_PASS, each with the reason it cannot pass by construction. The
upstream is the everything fixture, spoken to in the handshake era (stdio, streamable HTTP) and in the
2026-07-28 era (`protocol: "2026-07-28"`, streamable HTTP and stdio; its tools then ask with input_required).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from relay_kit import relay_proxy

from harness import ROOT, ProxyProcess

SUITE = "@modelcontextprotocol/conformance@0.2.0-alpha.12"
SUITE_DIR = Path(os.environ.get("CONFORMANCE_2026_DIR", ROOT / ".conformance-2026"))
NODE_DIR = Path(os.environ.get("CONFORMANCE_DIR", ROOT / ".conformance"))
SUITE_TIMEOUT_SECONDS = 300
MIN_PASSED = 110  # scored checks passing through mcpmux with the everything fixture (113 when written)
REQUIREMENTS = ("--requirements", "2026-07-28", "-o")
CANNOT_PASS_WITH_2025_UPSTREAM = {
    # The suite wants the server's own key ("user_name") in inputRequests. A handshake-era upstream
    # asks with a JSON-RPC request (elicitation/create), which has no key at all: mcpmux keys it by its own
    # request id. (A 2026 upstream's own keys are kept, so with one it passes.)
    "sep-2322-elicitation-incomplete",
}


def suite_js() -> Path:
    """The installed 2026 suite's entry point, installing it with npm if needed."""
    entry = SUITE_DIR / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
    if not entry.exists():
        assert shutil.which("npm"), "npm is needed to install the 2026-07-28 conformance suite"
        SUITE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(SUITE_DIR), "--no-audit", "--no-fund", SUITE],
            check=True,
            capture_output=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
    return entry


UPSTREAMS = {
    "stdio": ("stdio", (), {}),
    "streamable-http": ("streamable-http", (), {}),
    # the same fixture, spoken to in the 2026-07-28 era (it serves both eras)
    "2026-upstream": ("streamable-http", (), {"protocol": "2026-07-28", "sessionMode": "shared"}),
    "2026-stdio-upstream": ("stdio", (), {"protocol": "2026-07-28"}),
}


@pytest.fixture(params=list(UPSTREAMS))
def proxy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProxyProcess]:
    with relay_proxy(tmp_path, {"everything": UPSTREAMS[request.param]}, debug=False) as running:
        running.upstream_kind = request.param  # type: ignore[attr-defined]
        yield running


def failures(results: Path, unscored: set[str], allowed: set[str]) -> tuple[int, list[str]]:
    """Passed scored checks, and the failed ones as `scenario: check id: message`."""
    passed, failed = 0, []
    for checks_file in sorted(results.glob("server-*/checks.json")):
        scenario = re.sub(r"^server-|-\d{4}-\d\d-\d\dT.*$", "", checks_file.parent.name)
        if scenario in unscored:
            continue
        for check in json.loads(checks_file.read_text()):
            if check.get("status") == "SUCCESS":
                passed += 1
            elif check.get("status") == "FAILURE" and check.get("id") not in allowed:
                failed.append(f"{scenario}: {check.get('id')}: {check.get('errorMessage')}")
    return passed, failed


@pytest.mark.timeout(SUITE_TIMEOUT_SECONDS + 120)
def test_the_2026_requirement_set_passes_through_mcpmux_to_a_2025_upstream(
    proxy: ProxyProcess, tmp_path: Path
) -> None:
    node = NODE_DIR / "node_modules" / ".bin" / "node"
    assert node.exists(), f"Node 26 is missing at {node}: run scripts/conformance.sh once to install it"
    results = tmp_path / "results"
    url = proxy.url("/everything/mcp")
    run = subprocess.run(
        [str(node), str(suite_js()), "server", "--url", url, *REQUIREMENTS, str(results)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT_SECONDS,
        check=False,
    )
    output = run.stdout + run.stderr
    unscored_part = output.split("Not scored for 2026-07-28", 1)[-1] if "Not scored" in output else ""
    unscored = set(re.findall(r"[✗✓] ([\w-]+) \((?:extension|pending)\)", unscored_part))
    modern = proxy.upstream_kind.startswith("2026")  # type: ignore[attr-defined]
    passed, failed = failures(results, unscored, set() if modern else CANNOT_PASS_WITH_2025_UPSTREAM)
    assert not failed, "\n".join(failed) + "\n--- suite output ---\n" + output[-3000:]
    # pending (not scored) but passing: JSON Schema 2020-12 keywords reach the client as the server wrote them
    assert "✓ json-schema-2020-12 (pending)" in unscored_part, unscored_part
    assert passed >= MIN_PASSED, output[-3000:]
