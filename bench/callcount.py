"""Python function calls per proxied call, of two commits: a noise-free before/after of the hot path.

    python bench/callcount.py --before eec1c01 --after HEAD
    python bench/callcount.py --before eec1c01 --after HEAD --modes http,sse --sessions 16 --top 40

CPU per call moves by 20-30% between runs minutes apart on a shared VM (bench/RESULTS.md); the number of
Python function calls the proxy makes per request does not. For each commit (checked out like bench/ab.py
does) and each mode, one mcpmux runs under cProfile in front of the stdio echo upstream, a first
bench/loadgen.py run warms it up (sessions, caches, lazy imports), SIGUSR1 takes a snapshot of the
profile, a second run is measured, and a second snapshot closes it: the difference, divided by the
calls the second run made, is the cost of one call in the steady state. Reported per mode: every call
cProfile sees (Python functions, builtins and coroutine resumes; each resume of a coroutine frame counts
as a call, so deeper await chains cost more) and the Python-level part alone, with the ratio
after/before; `--top N` lists the functions whose calls per request changed most.

`--instructions` counts machine instructions instead (valgrind's callgrind, C code included: the event
loop, httptools, orjson): the proxy runs under callgrind with instrumentation off, the warm-up run goes
at near-native speed, instrumentation is switched on (`callgrind_control -i on`) for the measured run
only, then for as long again with no call (timers, the config watch: work that comes with time, not
with calls), and the difference is divided by the calls the measured run made. About 50x slower while
measuring, but repeatable to about 1% between runs (the stdio upstream and the load generator run
natively, outside valgrind; four runs of eec1c01 against c21a6ad gave x1.143 to x1.149).

Modes: `http` (streamable HTTP, /echo/mcp), `sse` (legacy SSE, /echo/sse), `merged` (/mcp, tool
echo__echo), `stateless` (2026-07-28 calls on /echo/mcp; the echo upstream speaks the handshake era).
Compare two modes of one commit by running both against the same tree (`--before HEAD --after-src src`).
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from ab import git

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
MODES = {
    "http": ("http", "/echo/mcp", "echo", None),
    "sse": ("sse", "/echo/sse", "echo", None),
    "merged": ("http", "/mcp", "echo__echo", None),
    "stateless": ("stateless", "/echo/mcp", "echo", None),
}
WRAPPER = """
import cProfile, signal, sys
sys.path.insert(0, {src!r})
from mcpmux.cli import main
profile = cProfile.Profile()
snapshots = iter({snapshots!r})
def snapshot(signum, frame):
    profile.disable()
    profile.dump_stats(next(snapshots))
    profile.enable()
signal.signal(signal.SIGUSR1, snapshot)
profile.enable()
main(['--config', {config!r}])
"""

PLAIN = """
import sys
sys.path.insert(0, {src!r})
from mcpmux.cli import main
main(['--config', {config!r}])
"""
INSTRUCTIONS = ("~", "instructions")
Counts = dict[tuple[str, str], int]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def load(path: Path) -> Counts:
    """(file, function) -> calls, the file shortened to its path under src/ or its name (no line numbers:
    they differ between commits)."""
    stats: Any = pstats.Stats(str(path))
    out: Counts = {}
    for (file, _line, name), row in stats.stats.items():
        short = file.split("/src/")[-1] if "/src/" in file else file.rsplit("/", 1)[-1]
        out[(short, name)] = out.get((short, name), 0) + row[1]
    return out


def loadgen(mode: str, url: str, tool: str, sessions: int, duration: float) -> int:
    command = [sys.executable, str(BENCH / "loadgen.py"), mode, "--url", url, "--sessions", str(sessions)]
    command += ["--duration", str(duration), "--warmup", "0", "--tool", tool]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SystemExit(f"loadgen failed: {done.stderr[-2000:]}")
    report = json.loads(lines[-1])
    if report.get("errors"):
        raise SystemExit(f"loadgen saw errors: {report['errors']}")
    calls: int = report["calls"]
    return calls


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_readyz", timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"mcpmux did not become ready (exit {proc.poll()}); see its stderr")


def wait_file(path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 0:
            time.sleep(0.3)  # dump_stats writes in one go; let it finish
            return
        time.sleep(0.05)
    raise SystemExit(f"no profile snapshot at {path}")


def write_config(tmp: Path, port: int, protocol: str | None) -> Path:
    server: dict[str, Any] = {"command": sys.executable, "args": [str(BENCH / "echo_upstream.py")]}
    if protocol:
        server["options"] = {"protocol": protocol}
    config = tmp / f"config-{port}.json"
    proxy = {
        "addr": f"127.0.0.1:{port}",
        "baseURL": f"http://127.0.0.1:{port}",
        "options": {"logEnabled": False},
    }
    config.write_text(json.dumps({"mcpProxy": proxy, "mcpServers": {"echo": server}}))
    return config


def callgrind_parts(prefix: Path) -> dict[int, int]:
    """Dump number -> instructions (Ir) of the proxy's callgrind dumps `prefix.<pid>.<n>` (a child forked
    before its exec may leave an empty file beside them)."""
    parts: dict[int, int] = {}
    for path in prefix.parent.glob(f"{prefix.name}.*.*"):
        for line in path.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                number = int(path.name.rsplit(".", 1)[1])
                parts[number] = max(parts.get(number, 0), int(line.split()[1]))
    return parts


def measure_instructions(
    src: Path, mode: str, sessions: int, duration: float, tmp: Path
) -> tuple[Counts, int]:
    """Machine instructions the proxy executed during the measured run, and the MCP calls it made."""
    kind, path, tool, protocol = MODES[mode]
    port = free_port()
    config = write_config(tmp, port, protocol)
    out = tmp / f"callgrind-{port}.out"
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}.%p"]
    command += [sys.executable, "-c", PLAIN.format(src=str(src), config=str(config))]
    log = (tmp / f"log-{port}").open("wb")
    proc = subprocess.Popen(command, stderr=log, stdout=subprocess.DEVNULL)
    try:
        wait_ready(port, proc)
        url = f"http://127.0.0.1:{port}{path}"
        loadgen(kind, url, tool, sessions, max(1.0, duration / 2))
        control = ["callgrind_control", "-i", "on", str(proc.pid)]
        subprocess.run(control, capture_output=True, check=True)
        started = time.monotonic()
        calls = loadgen(kind, url, tool, sessions, duration)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True, check=True)
        time.sleep(time.monotonic() - started)  # as long idle: what the timers cost without a call
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True, check=True)
    finally:
        proc.terminate()
        proc.wait(120)
        log.close()
    parts = callgrind_parts(out)
    if not {1, 2} <= set(parts):
        raise SystemExit(f"callgrind dumps missing for {src}: {parts}")
    return {INSTRUCTIONS: parts[1] - parts[2]}, calls


def measure(src: Path, mode: str, sessions: int, duration: float, tmp: Path) -> tuple[Counts, int]:
    """Calls per function during the measured run, and the MCP calls it made."""
    kind, path, tool, protocol = MODES[mode]
    port = free_port()
    config = write_config(tmp, port, protocol)
    first, second = tmp / f"a-{port}.prof", tmp / f"b-{port}.prof"
    code = WRAPPER.format(src=str(src), snapshots=[str(first), str(second)], config=str(config))
    log = (tmp / f"log-{port}").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=log, stdout=subprocess.DEVNULL)
    try:
        wait_ready(port, proc)
        url = f"http://127.0.0.1:{port}{path}"
        loadgen(kind, url, tool, sessions, max(1.0, duration / 2))
        proc.send_signal(signal.SIGUSR1)
        wait_file(first)
        calls = loadgen(kind, url, tool, sessions, duration)
        proc.send_signal(signal.SIGUSR1)
        wait_file(second)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    before, after = load(first), load(second)
    return {key: n - before.get(key, 0) for key, n in after.items() if n != before.get(key, 0)}, calls


def checkout(revision: str) -> tuple[str, Path]:
    """The commit `revision` names and a worktree of it of this run's own (detached; several runs at once
    never share or remove each other's)."""
    commit = git("rev-parse", "--short", f"{revision}^{{commit}}").strip()
    path = Path(tempfile.mkdtemp(prefix=f"mcpmux-callcount-{commit}-"))
    git("worktree", "add", "--detach", str(path), commit)
    return commit, path


def python_level(counts: Counts) -> int:
    return sum(n for (file, _), n in counts.items() if file != "~")


def report(mode: str, results: dict[str, tuple[Counts, int]], top: int) -> None:
    (before, (old, old_calls)), (after, (new, new_calls)) = results.items()
    if INSTRUCTIONS in old:
        ir_old, ir_new = old[INSTRUCTIONS] / old_calls, new[INSTRUCTIONS] / new_calls
        print(
            f"{mode}: instructions per request {before} {ir_old:,.0f}, {after} {ir_new:,.0f} "
            f"(x{ir_new / ir_old:.3f}; {old_calls} and {new_calls} calls measured)"
        )
        return
    total_old, total_new = sum(old.values()) / old_calls, sum(new.values()) / new_calls
    py_old, py_new = python_level(old) / old_calls, python_level(new) / new_calls
    print(
        f"{mode}: calls per request {before} {total_old:.1f}, {after} {total_new:.1f} "
        f"(x{total_new / total_old:.2f}); Python-level {py_old:.1f} -> {py_new:.1f} (x{py_new / py_old:.2f})"
    )
    if top <= 0:
        return
    rows = []
    for key in set(old) | set(new):
        a, b = old.get(key, 0) / old_calls, new.get(key, 0) / new_calls
        if abs(b - a) >= 0.05:
            rows.append((b - a, a, b, f"{key[0]}:{key[1]}"))
    for delta, a, b, name in sorted(rows, key=lambda r: -abs(r[0]))[:top]:
        print(f"  {delta:+7.2f}  {a:6.2f} -> {b:6.2f}  {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", required=True, help="the commit before (any git revision)")
    parser.add_argument("--after", default="HEAD", help="the commit after (default HEAD)")
    parser.add_argument("--after-src", type=Path, help="use this src/ directory as the after (a work tree)")
    parser.add_argument("--modes", default="http,sse,merged", help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per run")
    parser.add_argument("--top", type=int, default=0, help="list the N functions that changed most")
    parser.add_argument("--instructions", action="store_true", help="count machine instructions (valgrind)")
    args = parser.parse_args(argv)
    before, before_tree = checkout(args.before)
    trees = {before: before_tree / "src"}
    if args.after_src:
        trees["work tree"] = args.after_src.resolve()
    else:
        after, after_tree = checkout(args.after)
        trees[after] = after_tree / "src"
    try:
        with tempfile.TemporaryDirectory(prefix="mcpmux-callcount-") as tmp:
            for mode in args.modes.split(","):
                how = measure_instructions if args.instructions else measure
                results = {
                    label: how(src, mode, args.sessions, args.duration, Path(tmp))
                    for label, src in trees.items()
                }
                report(mode, results, args.top)
    finally:
        for label, src in trees.items():
            if label != "work tree":
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(src.parent)], check=False
                )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
