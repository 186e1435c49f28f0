"""The mcpmux benchmark in one command: direct stdio limits, then mcpmux in front of echo_upstream.

    python bench/run.py                      # full run (5 s per phase)
    python bench/run.py --quick              # tiny run (smoke test, numbers are not meaningful)
    python bench/run.py --sessions 1,16 --duration 10 --json bench/results-local.json
    python bench/run.py --peer sparfenyuk    # also PyPI mcp-proxy (sparfenyuk) for a side-by-side
    python bench/run.py --target sdk         # harness check against the SDK's own HTTP server

Every load runs in a separate load-generator process (bench/loadgen.py). The server under test
gets a listening socket bound here (port 0, passed with pass_fds: no port race) and must become
ready within --ready-timeout seconds, or the run fails with its stderr tail. Proxy CPU is read
from /proc/<pid>/stat (the proxy process only, not its upstream child) at the edges of each
measured window; RSS from /proc/<pid>/status. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import collections
import compileall
import datetime
import importlib.util
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LOADGEN = BENCH / "loadgen.py"
UPSTREAM = BENCH / "echo_upstream.py"
PEER_VENV = BENCH / ".peer-venv"
READY_LINE = "All clients initialized"
BIG_SIZE_BYTES = 1 << 20
KIB_PER_MIB = 1024


class BenchError(Exception):
    """A phase or a server could not be run; the message says why."""


# ---------------------------------------------------------------------------------------------
# Settings and the targets


@dataclass(frozen=True)
class Settings:
    duration_seconds: float
    warmup_seconds: float
    sessions: tuple[int, ...]
    big_runs: int
    idle_sessions: int
    settle_seconds: float
    ready_timeout_seconds: float
    repeat: int = 1

    @property
    def many(self) -> int:
        return max(self.sessions)

    @property
    def phase_timeout_seconds(self) -> float:
        return self.warmup_seconds + self.duration_seconds + 60.0


@dataclass(frozen=True)
class Endpoints:
    streamable: str
    sse: str
    merged: str | None
    merged_tool: str = "echo__echo"


MCPMUX_ENDPOINTS = Endpoints(streamable="/echo/mcp", sse="/echo/sse", merged="/mcp")
PEER_ENDPOINTS = Endpoints(streamable="/servers/echo/mcp", sse="/servers/echo/sse", merged=None)

LISTEN_FD_COMMANDS = {
    "mcpmux": [sys.executable, "-m", "mcpmux"],
    "sdk": [sys.executable, str(BENCH / "sdk_server.py")],
    "null": [sys.executable, str(BENCH / "null_server.py")],
}


def upstream_command() -> list[str]:
    return [sys.executable, str(UPSTREAM)]


def write_config(directory: Path, port: int) -> Path:
    """An mcp-proxy compatible config with one stdio server, `echo`."""
    command = upstream_command()
    config = {
        "mcpProxy": {
            "baseURL": f"http://127.0.0.1:{port}",
            "addr": f"127.0.0.1:{port}",
            "name": "bench",
            "version": "1.0.0",
            "options": {"logEnabled": False},
        },
        "mcpServers": {"echo": {"command": command[0], "args": command[1:]}},
    }
    path = directory / "config.json"
    path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
    return path


# ---------------------------------------------------------------------------------------------
# /proc readings


def read_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def child_pids(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return children


def machine_info() -> dict[str, Any]:
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "git_commit": commit,
        "command": " ".join(["python", *sys.argv]),
        "load_average_at_start": load_average(),
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------------------------------------
# The server under test


class ServerProcess:
    """A server started as a subprocess in its own process group, with its stderr drained.

    Readiness: the READY_LINE on stderr, or `probe()` returning True, whichever comes first; each is
    watched by its own thread and stamps the moment it saw readiness, so a slow probe (the socket is
    bound before the server runs, so a probe connects at once and waits for the answer) never
    delays the stderr signal.
    """

    def __init__(self, name: str, command: list[str], port: int, pass_fds: tuple[int, ...] = ()) -> None:
        self.name = name
        self.port = port
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self.ready = threading.Event()
        self.ready_at = 0.0
        self.ready_via = ""
        self._lock = threading.Lock()
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=pass_fds,
            start_new_session=True,
        )
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _mark_ready(self, via: str) -> None:
        now = time.perf_counter()
        with self._lock:
            if not self.ready.is_set():
                self.ready_at, self.ready_via = now, via
                self.ready.set()

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.stderr_tail.append(line)
            if READY_LINE in line:
                self._mark_ready(f"stderr line {READY_LINE!r}")

    def _poll(self, probe: Callable[[int], bool], deadline: float) -> None:
        while not self.ready.is_set() and self.proc.poll() is None and time.perf_counter() < deadline:
            if probe(self.port):
                self._mark_ready(probe.__doc__ or probe.__name__)
                return
            time.sleep(0.02)

    def wait_ready(self, timeout_seconds: float, probe: Callable[[int], bool]) -> float:
        """Seconds from spawn to ready; BenchError if it exits or is not ready in time."""
        deadline = self.started_at + timeout_seconds
        threading.Thread(target=self._poll, args=(probe, deadline), daemon=True).start()
        while not self.ready.wait(0.02):
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with code {self.proc.returncode}{self.describe()}")
            if time.perf_counter() > deadline:
                raise BenchError(f"{self.name} not ready within {timeout_seconds} s{self.describe()}")
        return self.ready_at - self.started_at

    def describe(self) -> str:
        if not self.stderr_tail:
            return " (no stderr output)"
        return "; stderr tail:\n    " + "\n    ".join(list(self.stderr_tail)[-15:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        try:  # the upstream children share the group; make sure none outlive the run
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def listening_socket() -> socket.socket:
    """127.0.0.1, a free port, listening: connections queue until the server passed it serves them."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def http_status(port: int, path: str, timeout_seconds: float = 0.5) -> int | None:
    """Status of a GET on 127.0.0.1:port, or None when nothing answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_seconds) as sock:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
            )
            head = sock.recv(64)
    except OSError:
        return None
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def readyz_probe(port: int) -> bool:
    """GET /_readyz answered 200"""
    return http_status(port, "/_readyz", timeout_seconds=2.0) == 200


def answers_http_probe(port: int) -> bool:
    """GET /status answered"""
    return http_status(port, "/status", timeout_seconds=2.0) is not None


@contextmanager
def open_listen_fd_server(target: str, settings: Settings) -> Iterator[tuple[ServerProcess, float]]:
    """mcpmux (or a stand-in) on a socket bound here; yields it and its startup seconds."""
    with tempfile.TemporaryDirectory(prefix="mcpmux-bench-") as tmp:
        sock = listening_socket()
        port = sock.getsockname()[1]
        config = write_config(Path(tmp), port)
        command = [*LISTEN_FD_COMMANDS[target], "--config", str(config), "--listen-fd", str(sock.fileno())]
        server = ServerProcess(target, command, port, pass_fds=(sock.fileno(),))
        sock.close()
        try:
            yield server, server.wait_ready(settings.ready_timeout_seconds, readyz_probe)
        finally:
            server.stop()


@contextmanager
def open_peer_sparfenyuk(settings: Settings) -> Iterator[tuple[ServerProcess, float]]:
    """PyPI mcp-proxy (sparfenyuk) from bench/.peer-venv; it binds its own port (picked free here)."""
    executable = PEER_VENV / "bin" / "mcp-proxy"
    if not executable.exists():
        install_peer()
    with tempfile.TemporaryDirectory(prefix="mcpmux-bench-peer-") as tmp:
        command = upstream_command()
        config = Path(tmp) / "servers.json"
        config.write_bytes(
            orjson.dumps({"mcpServers": {"echo": {"command": command[0], "args": command[1:]}}})
        )
        with socket.socket() as probe_sock:
            probe_sock.bind(("127.0.0.1", 0))
            port = probe_sock.getsockname()[1]
        args = ["--host", "127.0.0.1", "--port", str(port), "--named-server-config", str(config)]
        server = ServerProcess(
            "sparfenyuk mcp-proxy", [str(executable), *args, "--log-level", "WARNING"], port
        )
        try:
            yield server, server.wait_ready(settings.ready_timeout_seconds, answers_http_probe)
        finally:
            server.stop()


def install_peer() -> None:
    print("installing PyPI mcp-proxy into bench/.peer-venv ...", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True, timeout=120)
        pip = [str(PEER_VENV / "bin" / "pip"), "install", "-q", "mcp-proxy"]
        subprocess.run(pip, check=True, timeout=600, capture_output=True)
    except (subprocess.SubprocessError, OSError) as exc:
        raise BenchError(f"could not install PyPI mcp-proxy into {PEER_VENV}: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# Load phases


def run_loadgen(args: list[str], timeout_seconds: float) -> dict[str, Any]:
    command = [sys.executable, str(LOADGEN), *args]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout_seconds)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"load generator timed out after {timeout_seconds} s: {args}") from exc
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-8:]
        raise BenchError(f"load generator failed ({done.returncode}): " + " | ".join(tail))
    return orjson.loads(done.stdout.strip().splitlines()[-1])


def loop_args(settings: Settings, sessions: int, tool: str = "echo", arguments: str = "") -> list[str]:
    args = ["--sessions", str(sessions), "--duration", str(settings.duration_seconds)]
    args += ["--warmup", str(settings.warmup_seconds), "--tool", tool]
    return [*args, "--arguments", arguments or '{"text":"hello"}']


def big_arguments() -> str:
    return orjson.dumps({"size": BIG_SIZE_BYTES}).decode()


def summarize(report: dict[str, Any], server_pid: int | None, upstream_pids: list[int]) -> dict[str, Any]:
    """The loadgen report plus the proxy's and upstream's CPU per call picked out of `watched`."""
    watched = report.pop("watched", {})
    if server_pid is not None and str(server_pid) in watched:
        proxy = watched[str(server_pid)]
        report.update(proxy_cpu_per_call_ms=proxy["cpu_per_call_ms"], proxy_cpu_share=proxy["cpu_share"])
        report["proxy_rss_kib"] = proxy["rss_kib"]
    upstream = [watched[str(p)] for p in upstream_pids if str(p) in watched]
    ours = report["loadgen_cpu_share"] + sum(w["cpu_share"] for w in watched.values())
    report["others_cpu_share"] = round(max(0.0, report["machine_busy_share"] - ours), 2)
    if upstream:
        cpu = sum(u["cpu_s"] for u in upstream)
        report["upstream_cpu_per_call_ms"] = (
            round(1000 * cpu / report["calls"], 4) if report["calls"] else None
        )
    return report


def guarded(results: dict[str, Any], name: str, measure: Callable[[], dict[str, Any]]) -> None:
    """Run one phase; a failure is recorded (and printed) instead of ending the run."""
    print(f"  {name} ...", file=sys.stderr, flush=True)
    try:
        results[name] = measure()
    except BenchError as exc:
        print(f"  {name} FAILED: {exc}", file=sys.stderr, flush=True)
        results[name] = {"failed": str(exc), "errors": 1, "calls": 0}


def measure_direct(settings: Settings) -> dict[str, Any]:
    """The stdio upstream driven directly: the limit a proxy in front of it is compared with."""
    results: dict[str, Any] = {}
    timeout = settings.phase_timeout_seconds
    for sessions in sorted(set(settings.sessions)):
        guarded(results, f"stdio_{sessions}", lambda s=sessions: direct_phase(settings, s, timeout))
    guarded(
        results,
        "stdio_big_1",
        lambda: direct_phase(settings, 1, timeout, "big", big_arguments()),
    )
    return results


def direct_phase(
    settings: Settings, sessions: int, timeout: float, tool: str = "echo", arguments: str = ""
) -> dict:
    return best_of(settings.repeat, lambda: direct_once(settings, sessions, timeout, tool, arguments))


def direct_once(
    settings: Settings, sessions: int, timeout: float, tool: str = "echo", arguments: str = ""
) -> dict[str, Any]:
    report = run_loadgen(["direct", *loop_args(settings, sessions, tool, arguments)], timeout)
    return summarize(report, None, [report.pop("upstream_pid")])


def best_of(repeat: int, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The run with the most calls/s out of `repeat` (the one other work disturbed least).

    Errors are summed over every run and every run's calls/s is kept in `calls_per_s_all`.
    """
    return keep_best([measure() for _ in range(repeat)])


def paired_latency(direct: list[dict[str, Any]], proxy: list[dict[str, Any]]) -> dict[str, Any]:
    """p50 of the proxy minus p50 of direct stdio, round by round; the median over the rounds."""
    rounds = []
    for d, p in zip(direct, proxy, strict=False):  # a failed phase leaves a round without its pair
        if d.get("p50_ms") is None or p.get("p50_ms") is None:
            continue
        added_ms = round(p["p50_ms"] - d["p50_ms"], 4)
        rounds.append({"direct_p50_ms": d["p50_ms"], "proxy_p50_ms": p["p50_ms"], "added_ms": added_ms})
    added = sorted(r["added_ms"] for r in rounds)
    median = None
    if added:
        middle = len(added) // 2
        median = added[middle] if len(added) % 2 else round((added[middle - 1] + added[middle]) / 2, 4)
    return {"rounds": rounds, "median_added_ms": median}


def keep_best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the most calls/s, with every run's calls/s and the errors of all of them."""
    repeat = len(runs)
    best = dict(max(runs, key=lambda r: r["calls_per_s"]))
    if repeat > 1:
        best["calls_per_s_all"] = [r["calls_per_s"] for r in runs]
        best["errors"] = sum(r["errors"] for r in runs)
        best["error_samples"] = [e for r in runs for e in r["error_samples"]][:5]
    return best


def in_rounds(
    repeat: int, phases: list[tuple[str, Callable[[], dict[str, Any]]]], results: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """Every phase once per round, `repeat` rounds; `results` gets each phase's best run (or its
    failure); returns every run of every phase."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in phases}
    for _ in range(repeat):
        for name, once in phases:
            scratch: dict[str, Any] = {}
            guarded(scratch, name, once)
            runs[name].append(scratch[name])
    for name, got in runs.items():
        failed = [r for r in got if "failed" in r]
        results[name] = failed[0] if failed else keep_best(got)
    return runs


@dataclass
class ProxyRun:
    """Measures one server under test, phase by phase, into `results`."""

    server: ServerProcess
    endpoints: Endpoints
    settings: Settings
    paired: bool = False  # measure direct stdio_1 in each round too (servers in front of echo_upstream)
    results: dict[str, Any] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.port}{path}"

    def loop_once(self, mode: str, path: str, sessions: int, tool: str = "echo", arguments: str = "") -> dict:
        if self.server.proc.poll() is not None:
            raise BenchError(f"{self.server.name} is no longer running{self.server.describe()}")
        upstreams = child_pids(self.server.pid)
        watch = ",".join(str(p) for p in [self.server.pid, *upstreams])
        args = [mode, "--url", self.url(path), *loop_args(self.settings, sessions, tool, arguments)]
        report = run_loadgen([*args, "--watch-pid", watch], self.settings.phase_timeout_seconds)
        return summarize(report, self.server.pid, upstreams)

    def rss_kib(self) -> int:
        return read_rss_kib(self.server.pid)

    def measure_all(self) -> dict[str, Any]:
        settings, ep, res = self.settings, self.endpoints, self.results
        time.sleep(settings.settle_seconds)
        res["idle_rss_kib"] = self.rss_kib()
        many = settings.many
        phases: list[tuple[str, Callable[[], dict[str, Any]]]] = []
        if self.paired and 1 in settings.sessions:
            # The one-caller baseline again, right before the proxy's one-session phase in each round:
            # the added latency is then a difference of two figures measured under the same conditions.
            timeout = settings.phase_timeout_seconds
            phases.append(("paired_stdio_1", lambda: direct_once(settings, 1, timeout)))
        phases += [
            (f"streamable_{s}", lambda s=s: self.loop_once("http", ep.streamable, s))
            for s in sorted(set(settings.sessions))
        ]
        phases.append((f"sse_{many}", lambda: self.loop_once("sse", ep.sse, many)))
        if ep.merged is not None:
            merged = ep.merged
            phases.append((f"merged_{many}", lambda: self.loop_once("http", merged, many, ep.merged_tool)))
        # With --repeat N the echo phases run in rounds (streamable, SSE, merged, streamable, ...), so
        # the phases a ratio compares were measured in alternation, not minutes apart.
        runs = in_rounds(settings.repeat, phases, res)
        if "paired_stdio_1" in runs:
            res["paired_latency"] = paired_latency(runs["paired_stdio_1"], runs.get("streamable_1", []))
        guarded(res, "idle_sessions", self.measure_idle_sessions)
        guarded(res, "big_1", self.measure_big)
        return res

    def measure_idle_sessions(self) -> dict[str, Any]:
        """RSS with N more idle sessions open (after the loops above warmed every code path)."""
        time.sleep(self.settings.settle_seconds)
        before = self.rss_kib()
        command = [sys.executable, str(LOADGEN), "idle", "--url", self.url(self.endpoints.streamable)]
        command += ["--sessions", str(self.settings.idle_sessions)]
        idle = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            line = read_line_with_timeout(idle, 30.0)
            if not line:
                raise BenchError(f"idle sessions failed: {idle.stderr.read().decode()[-600:]}")  # type: ignore[union-attr]
            opened = orjson.loads(line)
            time.sleep(self.settings.settle_seconds)
            after = self.rss_kib()
        finally:
            idle.stdin.close()  # type: ignore[union-attr]
            try:
                idle.wait(15)
            except subprocess.TimeoutExpired:
                idle.kill()
        return {
            "sessions": opened["sessions_open"],
            "open_seconds": opened["open_seconds"],
            "rss_before_kib": before,
            "rss_after_kib": after,
            "added_kib": after - before,
            "errors": 0,
            "calls": opened["sessions_open"],
        }

    def measure_big(self) -> dict[str, Any]:
        """1 MiB results at one session, repeated; RSS after each run shows whether memory is bounded."""
        rss = [self.rss_kib()]
        runs = []
        for _ in range(self.settings.big_runs):
            runs.append(self.loop_once("http", self.endpoints.streamable, 1, "big", big_arguments()))
            time.sleep(self.settings.settle_seconds)
            rss.append(self.rss_kib())
        # The median run: one run disturbed by other work on the host neither makes nor breaks it.
        middle = sorted(runs, key=lambda r: r["calls_per_s"])[len(runs) // 2]
        return {
            "runs": runs,
            "rss_kib": rss,
            "calls_per_s": middle["calls_per_s"],
            "calls_per_s_all": [r["calls_per_s"] for r in runs],
            "p50_ms": middle["p50_ms"],
            "calls": sum(r["calls"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
            "growth_after_first_kib": rss[-1] - rss[1],
            "p99_ms": middle["p99_ms"],
            "proxy_cpu_per_call_ms": max(r.get("proxy_cpu_per_call_ms") or 0 for r in runs),
            "upstream_cpu_per_call_ms": max(r.get("upstream_cpu_per_call_ms") or 0 for r in runs),
            "loadgen_cpu_share": max(r["loadgen_cpu_share"] for r in runs),
            "loadgen_cpu_per_call_ms": max(r["loadgen_cpu_per_call_ms"] or 0 for r in runs),
            "others_cpu_share": max(r["others_cpu_share"] for r in runs),
        }


def read_line_with_timeout(proc: subprocess.Popen[bytes], timeout_seconds: float) -> bytes:
    box: list[bytes] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout_seconds)
    return box[0] if box else b""


@dataclass(frozen=True)
class Contender:
    """A server to measure: its name, how to start it, its URLs, and whether it has an upstream."""

    name: str
    open: Callable[[Settings], AbstractContextManager[tuple[ServerProcess, float]]]
    endpoints: Endpoints
    has_upstream: bool


def contenders(args: argparse.Namespace) -> list[Contender]:
    target = args.target
    found = [
        Contender(
            target,
            lambda settings: open_listen_fd_server(target, settings),
            MCPMUX_ENDPOINTS,
            has_upstream=target == "mcpmux",
        )
    ]
    if args.peer == "sparfenyuk":
        found.append(Contender("sparfenyuk", open_peer_sparfenyuk, PEER_ENDPOINTS, has_upstream=True))
    return found


def measure_server(contender: Contender, settings: Settings) -> dict:
    """Every phase against one server; startup is the least disturbed of `repeat` cold starts."""
    print(f"starting {contender.name} ...", file=sys.stderr, flush=True)
    endpoints, has_upstream = contender.endpoints, contender.has_upstream
    startups = []
    for _ in range(settings.repeat - 1):
        with contender.open(settings) as (_server, startup_seconds):
            startups.append(startup_seconds)
    with contender.open(settings) as (server, startup_seconds):
        startups.append(startup_seconds)
        run = ProxyRun(server, endpoints, settings, paired=has_upstream)
        run.results["startup_s"] = round(min(startups), 4)
        run.results["startup_s_all"] = [round(s, 4) for s in startups]
        run.results["ready_via"] = server.ready_via
        run.results["has_upstream"] = has_upstream
        run.results["pid"] = server.pid
        return run.measure_all()


# ---------------------------------------------------------------------------------------------
# Checks and the table


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None
    limit: float
    higher_is_better: bool
    unit: str

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "limit": self.limit,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "passed": self.passed,
        }


def field_of(results: dict[str, Any], phase: str, key: str) -> float | None:
    value = results.get(phase, {}).get(key) if isinstance(results.get(phase), dict) else None
    return value if isinstance(value, (int, float)) else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def build_checks(direct: dict, proxy: dict, settings: Settings) -> list[Check]:
    many = settings.many
    p50_proxy = field_of(proxy, "streamable_1", "p50_ms")
    p50_direct = field_of(direct, "stdio_1", "p50_ms")
    added = round(p50_proxy - p50_direct, 4) if p50_proxy is not None and p50_direct is not None else None
    latency_check = "added p50 latency, 1 session (proxy - direct)"
    paired = proxy.get("paired_latency", {}).get("median_added_ms")
    if paired is not None:
        added, latency_check = paired, "added p50 latency, 1 session (paired rounds, median)"
    startup = proxy.get("startup_s")
    upstream_start = field_of(direct, "stdio_1", "upstream_start_s")
    if proxy.get("has_upstream") and startup is not None and upstream_start is not None:
        startup = round(max(0.0, startup - upstream_start), 4)
    streamable = field_of(proxy, f"streamable_{many}", "calls_per_s")
    big = proxy.get("big_1", {})
    idle = field_of(proxy, "idle_sessions", "added_kib")
    growth = big.get("growth_after_first_kib") if isinstance(big, dict) else None
    return [
        Check(f"streamable HTTP calls/s, {many} sessions", streamable, 5000, True, "calls/s"),
        Check(
            f"proxy CPU per call, {many} sessions",
            field_of(proxy, f"streamable_{many}", "proxy_cpu_per_call_ms"),
            0.2,
            False,
            "ms",
        ),
        Check(latency_check, added, 0.3, False, "ms"),
        Check(
            "1 MiB results calls/s, 1 session (median run)",
            field_of(proxy, "big_1", "calls_per_s"),
            150,
            True,
            "calls/s",
        ),
        Check(
            "1 MiB results: RSS growth, first -> last run",
            growth / KIB_PER_MIB if growth is not None else None,
            5.0,
            False,
            "MiB",
        ),
        Check(
            "idle RSS",
            proxy["idle_rss_kib"] / KIB_PER_MIB if "idle_rss_kib" in proxy else None,
            60.0,
            False,
            "MiB",
        ),
        Check(
            f"{settings.idle_sessions} idle sessions add",
            idle / KIB_PER_MIB if idle is not None else None,
            2.0,
            False,
            "MiB",
        ),
        Check("startup to ready (minus the upstream's own start)", startup, 0.5, False, "s"),
        Check(
            f"legacy SSE / streamable, {many} sessions",
            ratio(field_of(proxy, f"sse_{many}", "calls_per_s"), streamable),
            0.7,
            True,
            "x",
        ),
        Check(
            f"merged / per-server, {many} sessions",
            ratio(field_of(proxy, f"merged_{many}", "calls_per_s"), streamable),
            0.7,
            True,
            "x",
        ),
    ]


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) < 100:
            return f"{value:.{digits}f}"
        return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def phase_rows(name: str, results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for phase, r in results.items():
        if not isinstance(r, dict) or "calls" not in r:
            continue
        if "failed" in r:
            rows.append([f"{name} {phase}", "FAILED", *[""] * 7, r["failed"][:80]])
            continue
        if phase == "idle_sessions":
            continue
        rows.append(
            [
                f"{name} {phase}",
                fmt(r.get("calls_per_s")),
                fmt(r.get("p50_ms")),
                fmt(r.get("p99_ms")),
                fmt(r.get("errors")),
                fmt(r.get("proxy_cpu_per_call_ms")),
                fmt(r.get("upstream_cpu_per_call_ms")),
                fmt(r.get("loadgen_cpu_per_call_ms")),
                fmt(r.get("loadgen_cpu_share"), 2),
                fmt(r.get("others_cpu_share"), 2),
            ]
        )
    return rows


PHASE_HEADER = [
    "phase",
    "calls/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "proxy CPU/call ms",
    "upstream CPU/call ms",
    "loadgen CPU/call ms",
    "loadgen CPU share",
    "others CPU share",
]


def render_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=False)) + " |"

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def check_rows(checks: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for c in checks:
        target = f"{'>=' if c['higher_is_better'] else '<='} {c['limit']} {c['unit']}"
        rows.append(
            [c["name"], fmt(c["value"]), target, {True: "PASS", False: "FAIL", None: "n/a"}[c["passed"]]]
        )
    return rows


def memory_lines(name: str, proxy: dict[str, Any]) -> list[str]:
    big_rss = [round(k / KIB_PER_MIB, 1) for k in proxy.get("big_1", {}).get("rss_kib", [])]
    lines = [
        f"{name}: startup {fmt(proxy.get('startup_s'))} s (ready via {proxy.get('ready_via')}; "
        f"every start {proxy.get('startup_s_all')}), "
        f"idle RSS {fmt(kib_to_mib(proxy.get('idle_rss_kib')))} MiB, "
        f"RSS before and after each 1 MiB run {big_rss} MiB "
        f"(calls/s of each run: {proxy.get('big_1', {}).get('calls_per_s_all')})"
    ]
    paired = proxy.get("paired_latency", {}).get("rounds")
    if paired:
        pairs = ", ".join(f"{r['proxy_p50_ms']:.3f} - {r['direct_p50_ms']:.3f}" for r in paired)
        lines.append(f"{name}: one-session p50, proxy - direct stdio, round by round: {pairs} ms")
    idle = proxy.get("idle_sessions", {})
    if "added_kib" in idle:
        lines.append(
            f"{name}: {idle['sessions']} idle sessions: RSS {idle['rss_before_kib'] / KIB_PER_MIB:.1f} -> "
            f"{idle['rss_after_kib'] / KIB_PER_MIB:.1f} MiB"
        )
    return lines


def print_report(results: dict[str, Any]) -> None:
    rows = phase_rows("direct", results["direct"])
    for name, proxy in results["targets"].items():
        rows += phase_rows(name, proxy)
    print(render_table(PHASE_HEADER, rows))
    for name, proxy in results["targets"].items():
        if "failed" in proxy:
            print(f"\n{name}: FAILED: {proxy['failed']}")
            continue
        print("\n" + "\n".join(memory_lines(name, proxy)))
        print(render_table(["check", "measured", "target", "result"], check_rows(results["checks"][name])))
        print(render_table(["ratio", "value"], [[k, fmt(v)] for k, v in results["ratios"][name].items()]))


def kib_to_mib(kib: int | None) -> float | None:
    return kib / KIB_PER_MIB if kib is not None else None


def ratios(direct: dict, proxy: dict, settings: Settings) -> dict[str, float | None]:
    many = settings.many
    out: dict[str, float | None] = {}
    for s in sorted(set(settings.sessions)):
        out[f"proxy / direct calls/s, {s} sessions"] = ratio(
            field_of(proxy, f"streamable_{s}", "calls_per_s"), field_of(direct, f"stdio_{s}", "calls_per_s")
        )
    streamable = field_of(proxy, f"streamable_{many}", "calls_per_s")
    out[f"legacy SSE / streamable, {many}"] = ratio(field_of(proxy, f"sse_{many}", "calls_per_s"), streamable)
    out[f"merged / per-server, {many}"] = ratio(field_of(proxy, f"merged_{many}", "calls_per_s"), streamable)
    out["1 MiB proxy / direct calls/s"] = ratio(
        field_of(proxy, "big_1", "calls_per_s"), field_of(direct, "stdio_big_1", "calls_per_s")
    )
    return out


# ---------------------------------------------------------------------------------------------
# Main


def phase_parser(doc: str | None) -> argparse.ArgumentParser:
    """The flags every benchmark driver shares: --quick, --duration, --warmup."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny run: 0.4 s phases (a smoke test)")
    parser.add_argument("--duration", type=float, help="measured seconds per phase (default 5)")
    parser.add_argument("--warmup", type=float, help="warmup seconds per phase (default 1)")
    return parser


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Settings]:
    parser = phase_parser(__doc__)
    parser.add_argument("--sessions", default="1,16", help="session counts, comma-separated")
    parser.add_argument("--idle-sessions", type=int, default=100)
    parser.add_argument("--big-runs", type=int, default=3, help="repeated 1 MiB runs")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run each echo phase N times and keep the fastest run"
    )
    parser.add_argument(
        "--target",
        choices=sorted(LISTEN_FD_COMMANDS),
        default="mcpmux",
        help="server under test; sdk and null are stand-ins to check the harness",
    )
    parser.add_argument("--peer", choices=["sparfenyuk"], help="also measure this peer proxy")
    parser.add_argument("--no-direct", action="store_true", help="skip the direct stdio phases")
    parser.add_argument("--ready-timeout", type=float, default=20.0, help="seconds to wait for readiness")
    parser.add_argument(
        "--mcpmux-src", type=Path, help="run mcpmux from this src/ directory (an A/B against another commit)"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--render", type=Path, help="print the tables of a saved --json file and exit")
    parser.add_argument("--strict", action="store_true", help="exit 3 when a target check fails")
    args = parser.parse_args(argv)
    return args, phase_settings(args, args.big_runs, args.idle_sessions, args.ready_timeout, args.repeat)


def phase_settings(
    args: argparse.Namespace, big_runs: int, idle_sessions: int, ready_timeout: float, repeat: int
) -> Settings:
    """Settings from the shared flags (`phase_parser`) plus `--sessions` and the given counts."""
    duration = args.duration if args.duration is not None else (0.4 if args.quick else 5.0)
    warmup = args.warmup if args.warmup is not None else (0.1 if args.quick else 1.0)
    return Settings(
        duration_seconds=duration,
        warmup_seconds=warmup,
        sessions=tuple(int(s) for s in args.sessions.split(",") if s),
        big_runs=big_runs,
        idle_sessions=idle_sessions,
        settle_seconds=0.2 if args.quick else 0.5,
        ready_timeout_seconds=ready_timeout,
        repeat=max(1, repeat),
    )


def use_mcpmux_src(src: Path, meta: dict[str, Any]) -> None:
    """Servers started from now on (and `compile_mcpmux`) import mcpmux from `src`; `meta` records it."""
    src = src.resolve()
    os.environ["PYTHONPATH"] = str(src)
    sys.path.insert(0, str(src))
    importlib.invalidate_caches()
    commit = subprocess.run(
        ["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    meta["mcpmux_src"] = str(src)
    meta["harness_commit"] = meta["git_commit"]
    meta["git_commit"] = commit or meta["git_commit"]  # the commit measured


def compile_mcpmux() -> None:
    """Byte-compile the mcpmux package, as a wheel install does, so startup is not compile time.

    An editable install (`pip install -e .`) under PYTHONDONTWRITEBYTECODE=1 never writes .pyc
    files: every start would compile each module from source (~0.1 s here), which no installed
    mcpmux pays.
    """
    spec = importlib.util.find_spec("mcpmux")
    for location in (spec.submodule_search_locations or []) if spec else []:
        compileall.compile_dir(location, quiet=1)


def count_errors(section: dict[str, Any]) -> int:
    return sum(r.get("errors", 0) for r in section.values() if isinstance(r, dict))


def print_header(meta: dict[str, Any]) -> None:
    print(
        f"{meta['date']}, {meta['nproc']} x {meta['cpu_model']}, Python {meta['python']}, "
        f"load average {meta['load_average_at_start']} -> {meta.get('load_average_at_end')}"
    )
    print(f"command: {meta['command']} (commit {meta['git_commit']})")


def main(argv: list[str] | None = None) -> int:
    args, settings = parse_args(argv)
    if args.render:
        saved = orjson.loads(args.render.read_bytes())
        print_header(saved["meta"])
        print_report(saved)
        return 0
    results: dict[str, Any] = {
        "meta": machine_info(),
        "settings": settings.__dict__ | {"sessions": list(settings.sessions)},
        "direct": {},
        "targets": {},
        "checks": {},
        "ratios": {},
    }
    exit_code = 0
    if args.mcpmux_src:  # the servers started below import mcpmux from there (and so does compile_mcpmux)
        use_mcpmux_src(args.mcpmux_src, results["meta"])
    if args.target == "mcpmux":
        compile_mcpmux()
    if not args.no_direct:
        print("direct stdio ...", file=sys.stderr, flush=True)
        results["direct"] = measure_direct(settings)
    for contender in contenders(args):
        name = contender.name
        try:
            proxy = measure_server(contender, settings)
        except BenchError as exc:
            print(f"\n{name}: FAILED: {exc}", file=sys.stderr)
            results["targets"][name] = {"failed": str(exc)}
            exit_code = 2
            continue
        results["targets"][name] = proxy
        results["checks"][name] = [c.as_dict() for c in build_checks(results["direct"], proxy, settings)]
        results["ratios"][name] = ratios(results["direct"], proxy, settings)
    errors = count_errors(results["direct"]) + sum(count_errors(t) for t in results["targets"].values())
    results["errors"] = errors
    results["meta"]["load_average_at_end"] = load_average()
    print()
    print_header(results["meta"])
    print_report(results)
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    if errors and exit_code == 0:
        exit_code = 1
    failed_checks = any(c["passed"] is False for checks in results["checks"].values() for c in checks)
    if args.strict and failed_checks and exit_code == 0:
        exit_code = 3
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
