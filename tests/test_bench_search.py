"""The tool-search benchmark runs (quick mode), so that it cannot rot; its numbers are not checked here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "search.py"


def test_quick_search_benchmark_reports_latency_and_index_memory() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert (report["tools"], report["queries"]) == (500, 100)
    assert report["results_per_query"] > 1  # the synthetic queries find tools
    assert report["index_mib"] > 0 and report["target_p50_ms"] == 2.0
    assert 0 < report["p50_ms"] <= report["p90_ms"] <= report["p99_ms"] <= report["max_ms"]
    assert "tools, 100 queries: p50" in done.stdout
