"""The 2026-07-28 era against the handshake era on one mcpmux: stateless envelope calls vs session calls.

    python bench/eras.py                  # 3 alternating rounds of 5 s phases, 1 and 16 callers
    python bench/eras.py --quick          # tiny run (what tests/test_bench.py runs; numbers not meaningful)
    python bench/eras.py --sessions 16 --repeat 5 --strict   # exit 3 when a ratio is below 0.8
    python bench/eras.py --mcpmux-src /tmp/old/src   # the mcpmux of another checkout (before/after)

One mcpmux in front of the stdio echo upstream (bench/echo_upstream.py), the same `/echo/mcp` URL for both:
`session_N` is N handshake-era sessions (initialize once, then `tools/call` with `Mcp-Session-Id`);
`stateless_N` is N keep-alive connections sending 2026-07-28 calls (no initialize, no session; each
`tools/call` carries `_meta` protocol version and client capabilities and the MCP-Protocol-Version,
Mcp-Method and Mcp-Name headers). The phases alternate round by round (run.py's round runner), each
keeps its best round, and the ratio stateless / session calls/s is checked against 0.8 (issue 15: the
2026 era within 20% of the 2025 era). The last line of output is a JSON report.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from run import (
    MCPMUX_ENDPOINTS,
    BenchError,
    ProxyRun,
    Settings,
    compile_mcpmux,
    fmt,
    in_rounds,
    load_average,
    machine_info,
    open_listen_fd_server,
    phase_parser,
    phase_settings,
    render_table,
    use_mcpmux_src,
)

TARGET_RATIO = 0.8


def parse_args(argv: list[str] | None) -> tuple[bool, Path | None, Settings]:
    parser = phase_parser(__doc__)
    parser.add_argument("--sessions", default="1,16", help="concurrent callers, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds, best kept")
    parser.add_argument("--strict", action="store_true", help=f"exit 3 when a ratio is below {TARGET_RATIO}")
    parser.add_argument(
        "--mcpmux-src", type=Path, help="run mcpmux from this src/ directory (a before/after of two commits)"
    )
    args = parser.parse_args(argv)
    settings = phase_settings(args, 0, 0, 20.0, 1 if args.quick else args.repeat)
    return args.strict, args.mcpmux_src, settings


def era_phases(run: ProxyRun, sessions: tuple[int, ...]) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
    """Per caller count: the handshake-era phase, then the stateless one, on the same URL."""
    path = MCPMUX_ENDPOINTS.streamable
    phases: list[tuple[str, Callable[[], dict[str, Any]]]] = []
    for s in sorted(set(sessions)):
        phases.append((f"session_{s}", lambda s=s: run.loop_once("http", path, s)))
        phases.append((f"stateless_{s}", lambda s=s: run.loop_once("stateless", path, s)))
    return phases


def era_ratios(results: dict[str, Any], sessions: tuple[int, ...]) -> dict[str, float | None]:
    """stateless / session calls/s per caller count (None when a phase failed or made no call)."""
    out: dict[str, float | None] = {}
    for s in sorted(set(sessions)):
        modern = results.get(f"stateless_{s}", {}).get("calls_per_s")
        legacy = results.get(f"session_{s}", {}).get("calls_per_s")
        out[str(s)] = round(modern / legacy, 3) if modern and legacy else None
    return out


def print_table(results: dict[str, Any], ratios: dict[str, float | None]) -> None:
    rows = []
    for callers, value in ratios.items():
        legacy, modern = results[f"session_{callers}"], results[f"stateless_{callers}"]
        verdict = "n/a" if value is None else ("PASS" if value >= TARGET_RATIO else "FAIL")
        rows.append(
            [
                callers,
                fmt(legacy.get("calls_per_s"), 1),
                fmt(modern.get("calls_per_s"), 1),
                fmt(legacy.get("p50_ms")),
                fmt(modern.get("p50_ms")),
                fmt(legacy.get("proxy_cpu_per_call_ms")),
                fmt(modern.get("proxy_cpu_per_call_ms")),
                f"{fmt(value)} ({verdict}, >= {TARGET_RATIO})",
            ]
        )
    header = ["callers", "session/s", "stateless/s", "session p50 ms", "stateless p50 ms"]
    header += ["session proxy cpu ms/call", "stateless proxy cpu ms/call", "ratio"]
    print(render_table(header, rows))


def main(argv: list[str] | None = None) -> int:
    strict, src, settings = parse_args(argv)
    report: dict[str, Any] = {"meta": machine_info(), "settings": settings.__dict__}
    if src:  # the proxy started below imports mcpmux from there
        use_mcpmux_src(src, report["meta"])
    compile_mcpmux()
    try:
        with open_listen_fd_server("mcpmux", settings) as (server, _startup):
            run = ProxyRun(server, MCPMUX_ENDPOINTS, settings)
            in_rounds(settings.repeat, era_phases(run, settings.sessions), run.results)
    except BenchError as exc:
        print(f"mcpmux: FAILED: {exc}", file=sys.stderr)
        return 2
    ratios = era_ratios(run.results, settings.sessions)
    report["meta"]["load_average_at_end"] = load_average()
    report.update(phases=run.results, ratios=ratios, target_ratio=TARGET_RATIO)
    report["errors"] = sum(r.get("errors", 0) for r in run.results.values())
    meta = report["meta"]
    print(f"{meta['date']}, load average {meta['load_average_at_start']} -> {meta['load_average_at_end']}")
    print_table(run.results, ratios)
    print(orjson.dumps(report).decode())
    if report["errors"]:
        return 1
    below = any(value is not None and value < TARGET_RATIO for value in ratios.values())
    return 3 if strict and below else 0


if __name__ == "__main__":
    sys.exit(main())
