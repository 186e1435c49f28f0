"""The cluster benchmark runs: redis-server, three replicas, every phase without errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_cluster_bench_runs_every_phase_without_errors() -> None:
    command = [sys.executable, str(ROOT / "bench" / "cluster.py"), "--quick", "--sessions", "2"]
    done = subprocess.run(command, capture_output=True, timeout=120, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    rows = json.loads(done.stdout.splitlines()[-1])
    assert [row["phase"] for row in rows] == [
        "1 replica",
        "3 replicas",
        "direct (1 session)",
        "forwarded (1 session)",
    ]
    assert all(row["calls_per_s"] > 0 and row["errors"] == 0 for row in rows)
