"""A/B of the local benchmark (bench/run.py) between two commits, run in alternation on one machine.

    python bench/ab.py --before eec1c01 --after main --rounds 3
    python bench/ab.py --before eec1c01 --after main --rounds 3 -- --duration 3 --big-runs 1

Each commit is checked out once into its own git worktree (/tmp/mcpmux-ab-<commit>); every round runs
this tree's bench/run.py (the same harness for both) with `--mcpmux-src <worktree>/src --no-direct`,
before then after in odd rounds and after then before in even ones (ABBA), so that a machine getting
busier or quieter during the run weighs on both alike. Arguments after `--` go to every bench/run.py.
The report is the median of the rounds per phase and commit, and the ratio after/before: calls/s
(above 1 is faster) and proxy CPU per call (below 1 is cheaper). The worktrees are removed at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "bench" / "run.py"
PHASES = ("streamable_1", "streamable_16", "sse_16", "merged_16", "big_1")
FIELDS = ("calls_per_s", "proxy_cpu_per_call_ms", "p50_ms")


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


def checkout(revision: str) -> tuple[str, Path]:
    """The commit `revision` names and a worktree of it (made once, detached)."""
    commit = git("rev-parse", "--short", f"{revision}^{{commit}}").strip()
    path = Path(tempfile.gettempdir()) / f"mcpmux-ab-{commit}"
    if not path.exists():
        git("worktree", "add", "--detach", str(path), commit)
    return commit, path


def run_once(src: Path, out: Path, extra: list[str]) -> dict[str, Any]:
    """One bench/run.py of the mcpmux in `src`; its results."""
    command = [sys.executable, str(RUN), "--mcpmux-src", str(src), "--no-direct", "--json", str(out), *extra]
    print("$", " ".join(command), file=sys.stderr, flush=True)
    done = subprocess.run(command, stdout=subprocess.DEVNULL, check=False)
    if done.returncode not in (0, 3):  # 3: a target check failed, the figures are still measured
        raise SystemExit(f"bench/run.py failed ({done.returncode}) for {src}")
    results: dict[str, Any] = orjson.loads(out.read_bytes())
    return results


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, dict[str, float | None]]]:
    """phase -> label -> field -> the median over the rounds (None when no round measured it). Pure."""
    table: dict[str, dict[str, dict[str, float | None]]] = {}
    for phase in PHASES:
        for label, results in runs.items():
            row = table.setdefault(phase, {}).setdefault(label, {})
            for name in FIELDS:
                values = [
                    r["targets"]["mcpmux"][phase][name]
                    for r in results
                    if isinstance(r["targets"]["mcpmux"].get(phase), dict)
                    and r["targets"]["mcpmux"][phase].get(name) is not None
                ]
                row[name] = statistics.median(values) if values else None
    return table


def ratio(after: float | None, before: float | None) -> str:
    return f"{after / before:.2f}" if after is not None and before else "-"


def render(table: dict[str, dict[str, dict[str, float | None]]], before: str, after: str) -> str:
    """The report as a Markdown table (medians of the rounds, and after/before). Pure."""
    lines = [
        f"| phase | calls/s {before} | calls/s {after} | after/before | "
        f"proxy CPU/call ms {before} | {after} | after/before | p50 ms {before} | {after} |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for phase, by_label in table.items():
        old, new = by_label[before], by_label[after]
        lines.append(
            f"| {phase} | {fmt(old['calls_per_s'])} | {fmt(new['calls_per_s'])} | "
            f"{ratio(new['calls_per_s'], old['calls_per_s'])} | {fmt(old['proxy_cpu_per_call_ms'])} | "
            f"{fmt(new['proxy_cpu_per_call_ms'])} | "
            f"{ratio(new['proxy_cpu_per_call_ms'], old['proxy_cpu_per_call_ms'])} | "
            f"{fmt(old['p50_ms'])} | {fmt(new['p50_ms'])} |"
        )
    return "\n".join(lines)


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", required=True, help="the commit before (any git revision)")
    parser.add_argument("--after", default="HEAD", help="the commit after (default HEAD)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each commit, in alternation")
    parser.add_argument("--json", type=Path, help="write every run's results and the summary here")
    parser.add_argument("--keep", action="store_true", help="keep the worktrees")
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    (before, before_tree), (after, after_tree) = checkout(args.before), checkout(args.after)
    trees = {before: before_tree, after: after_tree}
    runs: dict[str, list[dict[str, Any]]] = {before: [], after: []}
    loads = [os.getloadavg()]
    try:
        with tempfile.TemporaryDirectory(prefix="mcpmux-ab-runs-") as tmp:
            for round_ in range(max(1, args.rounds)):
                order = (before, after) if round_ % 2 == 0 else (after, before)
                for label in order:
                    out = Path(tmp) / f"{label}-{round_}.json"
                    runs[label].append(run_once(trees[label] / "src", out, extra))
                    loads.append(os.getloadavg())
    finally:
        if not args.keep:
            for tree in trees.values():
                git("worktree", "remove", "--force", str(tree))
    table = summarise(runs)
    print(f"A/B {before} -> {after}, {args.rounds} rounds each (ABBA), bench/run.py {' '.join(extra)}")
    print("load average (1 min) before and after each run:", " ".join(f"{x[0]:.2f}" for x in loads))
    print(render(table, before, after))
    if args.json:
        args.json.write_bytes(orjson.dumps({"runs": runs, "summary": table}, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
