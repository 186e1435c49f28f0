"""The README's two commands side by side: a running `scripts/quickstart` keeps serving while
`scripts/test` installs and runs, because each has its own environment (.venv and .venv-test).

This runs both real scripts in a copy of the checkout, fresh environments included (a few minutes)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


def this_venv() -> str:
    """The environment running these tests, for scripts that take MCPMUX_TEST_VENV."""
    assert sys.prefix != sys.base_prefix, "run the tests from a virtual environment (scripts/test does)"
    return sys.prefix


def test_lint_runs_ruff_check_ruff_format_and_mypy_strict_and_reports_each_failure(tmp_path: Path) -> None:
    repo = copy_checkout(tmp_path / "repo")
    probe = repo / "src" / "mcpmux" / "lint_probe.py"
    # An unused import (ruff check), spacing ruff format would change, and an untyped def (mypy --strict).
    probe.write_text('"""Probe."""\n\nimport os\n\nspaced   = 1\n\n\ndef untyped(x):\n    return x\n')
    env = {**clean_env(), "MCPMUX_TEST_VENV": this_venv()}
    result = subprocess.run(
        [str(repo / "scripts" / "lint")], cwd=repo, env=env, capture_output=True, text=True, timeout=600
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "F401 [*] `os` imported but unused\n --> src/mcpmux/lint_probe.py:3:8" in output
    assert "unformatted: File would be reformatted\n --> src/mcpmux/lint_probe.py" in output
    assert "lint_probe.py:8: error: Function is missing a type annotation" in output
    failed = [line for line in result.stderr.splitlines() if line.startswith("lint: FAILED: ")]
    assert failed == [
        "lint: FAILED: ruff check",
        "lint: FAILED: ruff format --check",
        "lint: FAILED: mypy --strict",
    ]


def test_ci_runs_setup_then_lint_then_the_readme_test_command() -> None:
    steps = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("scripts/")]
    assert steps == ["scripts/setup-test-env", "scripts/lint", "scripts/test -q"]


def test_scripts_test_fails_when_pytest_collects_no_test() -> None:
    env = {**clean_env(), "MCPMUX_TEST_VENV": this_venv()}
    result = subprocess.run(
        [str(ROOT / "scripts" / "test"), "-q", "-k", "no_test_is_named_so", "tests/unit/test_naming.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: pytest collected no tests" in result.stderr
