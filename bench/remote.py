"""mcpmux in front of a near-free remote upstream (streamable HTTP and legacy SSE), beside its limit.

    python bench/remote.py                   # 5 s phases, 3 rounds in alternation (~3 minutes)
    python bench/remote.py --quick           # smoke test (numbers are noise)
    python bench/remote.py --repeat 5 --json /tmp/remote.json

The upstream is `null_server.py` (prebuilt replies on raw asyncio protocols): its streamable-HTTP
URL answers in ~0.05 ms and says 405 to the GET stream; its legacy SSE URL replies on the stream.
mcpmux serves it as `web` (streamable HTTP, shared session), `webiso` (the same, isolated sessions)
and `legacy` (legacy SSE upstream, shared), plus the stdio `echo` upstream (`echo_upstream.py`) so the
HTTP upstream path is compared with the stdio path in the same run (16 sessions and 1 MiB results).
Each round runs the direct phases (the load generator against the upstream itself) right before
the proxy's, so every ratio compares figures measured in alternation on this shared machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from run import (
    BENCH,
    KIB_PER_MIB,
    PHASE_HEADER,
    BenchError,
    Check,
    ServerProcess,
    Settings,
    big_arguments,
    check_rows,
    child_pids,
    compile_mcpmux,
    count_errors,
    field_of,
    fmt,
    guarded,
    in_rounds,
    listening_socket,
    load_average,
    loop_args,
    machine_info,
    paired_latency,
    phase_parser,
    phase_rows,
    ratio,
    read_rss_kib,
    readyz_probe,
    render_table,
    run_loadgen,
    summarize,
    upstream_command,
)

NULL_SERVER = BENCH / "null_server.py"
CHURN_SESSIONS = 100


@contextmanager
def started(name: str, command: Callable[[int], list[str]], settings: Settings) -> Iterator[ServerProcess]:
    """`command(port) --listen-fd N` on a socket bound here, ready (stderr line or /_readyz)."""
    sock = listening_socket()
    port = sock.getsockname()[1]
    argv = [*command(port), "--listen-fd", str(sock.fileno())]
    server = ServerProcess(name, argv, port, (sock.fileno(),))
    sock.close()
    try:
        server.wait_ready(settings.ready_timeout_seconds, readyz_probe)
        yield server
    finally:
        server.stop()


def proxy_config(directory: Path, port: int, upstream: str) -> Path:
    stdio, shared = upstream_command(), "shared"
    servers = {
        "web": {
            "url": f"{upstream}/echo/mcp",
            "transportType": "streamable-http",
            "options": {"sessionMode": shared},  # (isolated is the default for HTTP upstreams)
        },
        "webiso": {
            "url": f"{upstream}/echo/mcp",
            "transportType": "streamable-http",
            "options": {"sessionMode": "isolated"},
        },
        "legacy": {"url": f"{upstream}/echo/sse", "transportType": "sse", "options": {"sessionMode": shared}},
        "echo": {"command": stdio[0], "args": stdio[1:]},
    }
    proxy = {"addr": f"127.0.0.1:{port}", "name": "bench", "options": {"logEnabled": False}}
    config = {"mcpProxy": {**proxy, "baseURL": f"http://127.0.0.1:{port}"}, "mcpServers": servers}
    path = directory / "config.json"
    path.write_bytes(orjson.dumps(config))
    return path


class RemoteRun:
    """The phases against one upstream and one mcpmux in front of it."""

    def __init__(self, settings: Settings, upstream: ServerProcess, proxy: ServerProcess) -> None:
        self.settings, self.upstream, self.proxy = settings, upstream, proxy
        self.results: dict[str, Any] = {}

    def load(self, mode: str, url: str, sessions: int, via_proxy: bool, tool: str = "echo") -> dict:
        for server in (self.upstream, self.proxy):
            if server.proc.poll() is not None:
                raise BenchError(f"{server.name} is no longer running{server.describe()}")
        arguments = big_arguments() if tool == "big" else ""
        children = child_pids(self.proxy.pid) if via_proxy else []  # the stdio upstream
        watched = [self.upstream.pid, *([self.proxy.pid] if via_proxy else []), *children]
        args = [mode, "--url", url, *loop_args(self.settings, sessions, tool, arguments)]
        args += ["--watch-pid", ",".join(map(str, watched))]
        report = run_loadgen(args, self.settings.phase_timeout_seconds)
        upstreams = [self.upstream.pid, *children]
        return summarize(report, self.proxy.pid if via_proxy else None, upstreams)

    def up(self, path: str) -> str:
        return f"http://127.0.0.1:{self.upstream.port}{path}"

    def mux(self, path: str) -> str:
        return f"http://127.0.0.1:{self.proxy.port}{path}"

    def echo_phases(self) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
        many = self.settings.many
        return [
            ("direct_http_1", lambda: self.load("http", self.up("/echo/mcp"), 1, False)),
            ("http_1", lambda: self.load("http", self.mux("/web/mcp"), 1, True)),
            (f"direct_http_{many}", lambda: self.load("http", self.up("/echo/mcp"), many, False)),
            (f"http_{many}", lambda: self.load("http", self.mux("/web/mcp"), many, True)),
            (f"sse_upstream_{many}", lambda: self.load("http", self.mux("/legacy/mcp"), many, True)),
            (f"isolated_{many}", lambda: self.load("http", self.mux("/webiso/mcp"), many, True)),
            (f"stdio_upstream_{many}", lambda: self.load("http", self.mux("/echo/mcp"), many, True)),
            (f"direct_sse_{many}", lambda: self.load("sse", self.up("/echo/sse"), many, False)),
        ]

    def measure(self) -> dict[str, Any]:
        runs = in_rounds(self.settings.repeat, self.echo_phases(), self.results)
        self.results["paired_latency"] = paired_latency(runs["direct_http_1"], runs["http_1"])
        guarded(self.results, "big", self.measure_big)
        guarded(self.results, "isolated_churn", self.measure_churn)
        return self.results

    def measure_big(self) -> dict[str, Any]:
        """1 MiB results from the HTTP upstream and from the stdio one, in alternation; RSS after each."""
        rss = [read_rss_kib(self.proxy.pid)]
        http, stdio = [], []
        for _ in range(self.settings.big_runs):
            http.append(self.load("http", self.mux("/web/mcp"), 1, True, "big"))
            stdio.append(self.load("http", self.mux("/echo/mcp"), 1, True, "big"))
            time.sleep(self.settings.settle_seconds)
            rss.append(read_rss_kib(self.proxy.pid))
        self.results["big_http_1"] = median_run(http)
        self.results["big_stdio_1"] = median_run(stdio)
        errors = sum(r["errors"] for r in http + stdio)
        return {"rss_kib": rss, "growth_after_first_kib": rss[-1] - rss[1], "errors": errors}

    def measure_churn(self) -> dict[str, Any]:
        """Rounds of 100 isolated sessions opened, used and DELETEd; RSS after each round."""
        rss, errors, opened = [], 0, 0
        churn = Settings(**{**self.settings.__dict__, "duration_seconds": 0.3, "warmup_seconds": 0.05})
        for _ in range(6):
            args = ["http", "--url", self.mux("/webiso/mcp"), *loop_args(churn, CHURN_SESSIONS)]
            report = run_loadgen(args, self.settings.phase_timeout_seconds)
            errors += report["errors"]
            opened += report.get("sessions", CHURN_SESSIONS)
            time.sleep(self.settings.settle_seconds)
            rss.append(read_rss_kib(self.proxy.pid))
        return {"rss_kib": rss, "growth_after_first_kib": rss[-1] - rss[0], "errors": errors}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    middle = dict(sorted(runs, key=lambda r: r["calls_per_s"])[len(runs) // 2])
    middle["calls_per_s_all"] = [r["calls_per_s"] for r in runs]
    middle["errors"] = sum(r["errors"] for r in runs)
    return middle


def mib(kib: float | None) -> float | None:
    return round(kib / KIB_PER_MIB, 3) if kib is not None else None


def build_checks(res: dict[str, Any], many: int) -> list[Check]:
    streamable = field_of(res, f"http_{many}", "calls_per_s")
    big, churn = res.get("big", {}), res.get("isolated_churn", {})
    big_ratio = ratio(field_of(res, "big_http_1", "calls_per_s"), field_of(res, "big_stdio_1", "calls_per_s"))
    sse = ratio(field_of(res, f"sse_upstream_{many}", "calls_per_s"), streamable)
    rows: list[tuple[str, float | None, float, bool, str]] = [
        (f"HTTP upstream calls/s, {many} sessions", streamable, 8000, True, "calls/s"),
        (
            f"proxy CPU per call, HTTP upstream, {many} sessions",
            field_of(res, f"http_{many}", "proxy_cpu_per_call_ms"),
            0.15,
            False,
            "ms",
        ),
        (
            "added p50, 1 session (proxy - direct HTTP, paired rounds, median)",
            res.get("paired_latency", {}).get("median_added_ms"),
            0.3,
            False,
            "ms",
        ),
        (f"legacy-SSE upstream / HTTP upstream, {many} sessions", sse, 0.7, True, "x"),
        ("1 MiB results: HTTP upstream / stdio upstream", big_ratio, 0.8, True, "x"),
        ("1 MiB results: RSS growth", mib(big.get("growth_after_first_kib")), 5.0, False, "MiB"),
        (
            f"isolated: 6 x {CHURN_SESSIONS} sessions opened and closed, RSS growth",
            mib(churn.get("growth_after_first_kib")),
            2.0,
            False,
            "MiB",
        ),
    ]
    return [Check(*row) for row in rows]


def ratios(res: dict[str, Any], many: int) -> list[list[str]]:
    def r(a: str, b: str) -> str:
        return fmt(ratio(field_of(res, a, "calls_per_s"), field_of(res, b, "calls_per_s")))

    return [
        ["proxy / direct HTTP, 1 session", r("http_1", "direct_http_1")],
        [f"proxy / direct HTTP, {many} sessions", r(f"http_{many}", f"direct_http_{many}")],
        [f"isolated / shared, {many} sessions", r(f"isolated_{many}", f"http_{many}")],
        [f"HTTP upstream / stdio upstream, {many} sessions", r(f"http_{many}", f"stdio_upstream_{many}")],
        [f"legacy-SSE upstream / HTTP upstream, {many}", r(f"sse_upstream_{many}", f"http_{many}")],
        ["1 MiB: HTTP upstream / stdio upstream", r("big_http_1", "big_stdio_1")],
    ]


def print_report(results: dict[str, Any]) -> None:
    meta, res, many = results["meta"], results["phases"], results["settings"]["sessions"][-1]
    print(f"{meta['date']}, {meta['nproc']} x {meta['cpu_model']}, Python {meta['python']}, ", end="")
    print(f"load average {meta['load_average_at_start']} -> {meta.get('load_average_at_end')}")
    print(f"command: {meta['command']} (commit {meta['git_commit']})")
    print(render_table(PHASE_HEADER, phase_rows("remote", res)))
    pairs = res.get("paired_latency", {}).get("rounds", [])
    added = ", ".join(f"{p['proxy_p50_ms']:.3f} - {p['direct_p50_ms']:.3f}" for p in pairs)
    print(f"one-session p50, proxy - direct HTTP, round by round: {added} ms")
    for name in ("big", "isolated_churn"):
        rss = [round(k / KIB_PER_MIB, 1) for k in res.get(name, {}).get("rss_kib", [])]
        print(f"{name}: proxy RSS after each round {rss} MiB")
    print(render_table(["check", "measured", "target", "result"], check_rows(results["checks"])))
    print(render_table(["ratio", "value"], ratios(res, many)))


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Settings]:
    parser = phase_parser(__doc__)
    parser.add_argument("--sessions", type=int, default=16, help="sessions of the many-session phases")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the echo phases (fastest kept)")
    parser.add_argument("--big-runs", type=int, default=3, help="1 MiB runs per upstream kind")
    parser.add_argument("--ready-timeout", type=float, default=20.0)
    parser.add_argument(
        "--mcpmux-src", type=Path, help="run mcpmux from this src/ directory (an A/B against another commit)"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--strict", action="store_true", help="exit 3 when a target check fails")
    args = parser.parse_args(argv)
    settings = Settings(
        duration_seconds=args.duration or (0.4 if args.quick else 5.0),
        warmup_seconds=args.warmup or (0.1 if args.quick else 1.0),
        sessions=(1, args.sessions),
        big_runs=args.big_runs,
        idle_sessions=0,
        settle_seconds=0.2 if args.quick else 0.5,
        ready_timeout_seconds=args.ready_timeout,
        repeat=1 if args.quick else max(1, args.repeat),
    )
    return args, settings


def main(argv: list[str] | None = None) -> int:
    args, settings = parse_args(argv)
    if args.mcpmux_src:  # the servers started below import mcpmux from there
        os.environ["PYTHONPATH"] = str(args.mcpmux_src.resolve())
    compile_mcpmux()
    results: dict[str, Any] = {"meta": machine_info(), "settings": {"sessions": list(settings.sessions)}}
    try:
        with (
            started("upstream", lambda _port: [sys.executable, str(NULL_SERVER)], settings) as upstream,
            tempfile.TemporaryDirectory(prefix="mcpmux-remote-") as tmp,
        ):

            def mcpmux(port: int) -> list[str]:
                config = proxy_config(Path(tmp), port, f"http://127.0.0.1:{upstream.port}")
                return [sys.executable, "-m", "mcpmux", "--config", str(config)]

            with started("mcpmux", mcpmux, settings) as proxy:
                results["phases"] = RemoteRun(settings, upstream, proxy).measure()
    except BenchError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 2
    results["checks"] = [c.as_dict() for c in build_checks(results["phases"], settings.many)]
    results["meta"]["load_average_at_end"] = load_average()
    print_report(results)
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    if count_errors(results["phases"]):
        return 1
    return 3 if args.strict and any(c["passed"] is False for c in results["checks"]) else 0


if __name__ == "__main__":
    sys.exit(main())
