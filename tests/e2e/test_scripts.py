"""The README's two commands side by side: a running `scripts/quickstart` keeps serving while
`scripts/test` installs and runs, because each has its own environment (.venv and .venv-test).

This runs both real scripts in a copy of the checkout, fresh environments included (a few minutes)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx2
import pytest

from harness import ROOT, running_proxy
from mcpmux.config.jsonc import load_json, strip_comments

INSTALL_TIMEOUT_SECONDS = 900.0


def copy_checkout(target: Path) -> Path:
    """The checkout's tracked and untracked-but-not-ignored files (no venvs, caches or node_modules)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def clean_env() -> dict[str, str]:
    """The environment of a new shell: no venv active, no test-run variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    return env


def get(base: str, path: str) -> httpx2.Response:
    return httpx2.get(f"{base}{path}", timeout=30)


@pytest.mark.timeout(2 * INSTALL_TIMEOUT_SECONDS + 120)
def test_a_running_quickstart_keeps_answering_while_scripts_test_installs(tmp_path: Path) -> None:
    repo = copy_checkout(tmp_path / "repo")
    config = load_json(strip_comments((repo / "examples" / "config.json").read_text()))
    del config["mcpProxy"]["baseURL"], config["mcpProxy"]["addr"]  # the harness binds its own port
    quickstart = (str(repo / "scripts" / "quickstart"),)
    with running_proxy(config, tmp_path, wait=False, launcher=quickstart, env=clean_env()) as proxy:
        proxy.wait_for_line(r"All clients initialized", timeout=INSTALL_TIMEOUT_SECONDS)
        tests = subprocess.Popen(
            [str(repo / "scripts" / "test"), "-q", "-p", "no:cacheprovider", "tests/unit/test_naming.py"],
            cwd=repo,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + INSTALL_TIMEOUT_SECONDS
            while tests.poll() is None and time.monotonic() < deadline:
                assert get(proxy.base, "/_readyz").status_code == 200  # all along the install
                try:
                    tests.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            if tests.poll() is None:
                tests.kill()
            output = tests.communicate(timeout=60)[0].decode(errors="replace")
        # The first scrape only now: /metrics imports its module lazily, which fails when the install
        # has replaced the package under the running server (the bug this guards against).
        metrics = get(proxy.base, "/metrics")
    assert tests.returncode == 0, output
    assert metrics.status_code == 200, metrics.text
    assert "mcpmux_requests_total" in metrics.text
    assert (repo / ".venv" / "bin" / "mcpmux").exists() and (repo / ".venv-test" / "bin" / "pytest").exists()
